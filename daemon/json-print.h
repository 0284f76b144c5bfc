/* SPDX-License-Identifier: MIT */
#pragma once

/* JSON text in which every number reads back to the very double it is (cJSON's own printer keeps
 * 15 digits when they come within a rounding step, and so changes 0.30000000000000004 and
 * 9007199254740991): the shortest of 15 to 17 digits that round-trips, integers in full.
 * Non-finite numbers print as null. Shared by the daemon and libnbclient (it needs only cJSON and
 * the C library). NULL on OOM. */

#include <stdbool.h>
#include <cjson/cJSON.h>

/* One number so (non-finite: "null"). */
#define JSON_NUMBER_MAX 40
void json_number(char buf[static JSON_NUMBER_MAX], double d);

/* Compact, as the protocol sends it; with newline, a '\n' ends the text. */
char *json_print(const cJSON *v, bool newline);
/* For people: cJSON_Print()'s layout (objects a member a line, indented with tabs). */
char *json_print_indented(const cJSON *v);
