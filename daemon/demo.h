/* SPDX-License-Identifier: MIT */
#pragma once

/* Content of the notebooks every user is provisioned with: blank-{user_id} and demo-{user_id}. */

#include <cjson/cJSON.h>

/* Bumped whenever the demo content changes; stored in the notebook's demo_version. */
#define DEMO_VERSION 1
#define DEMO_NAME    "Demo Notebook"
#define BLANK_NAME   "Blank Notebook"

/* New arrays of complete cells (every field of a cell present: id, type, code, status "idle",
 * stdout "", outputs [], error null, reads, writes). Cell ids are fixed ("demo-cell-1" ...,
 * "blank-cell-1") so that two devices provisioning the same user produce the same cells.
 * Return 0 or -ENOMEM. */
int demo_cells_new(cJSON **ret);
int blank_cells_new(cJSON **ret);
