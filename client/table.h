/* SPDX-License-Identifier: MIT */
#pragma once

/* notebookctl table create|check: talks to DynamoDB itself (not through the daemon), with the
 * daemon's [remote] settings and the standard AWS credential chain, so that the table can be made
 * before notebookd first syncs. */

#include <stdbool.h>
#include <stdint.h>

typedef struct TableArgs {
        const char *config_path; /* NULL: the daemon's default configuration, if present */
        const char *table;       /* overrides [remote] table */
        const char *endpoint;    /* overrides [remote] endpoint and AWS_ENDPOINT_URL* */
        const char *region;      /* overrides [remote] region and AWS_REGION */
        uint64_t wait_usec;      /* create: how long to wait for the table to become active */
        bool json;
} TableArgs;

/* Both return a notebookctl exit code (ctl.h). */
int table_create(const TableArgs *a);
int table_check(const TableArgs *a);
