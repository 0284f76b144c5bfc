/* SPDX-License-Identifier: MIT */
#pragma once

/* Three-way merge of two versions of a notebook against their common ancestor, cell by cell.
 * Pure: works on the protocol's JSON notebooks (doc/protocol.md), touches no database and no
 * network. The rules, with their reasons, are in doc/sync.md ("Merging"). */

#include <cjson/cJSON.h>

/* Appended to a cell's id to name the copy that keeps our version of a cell both sides changed
 * differently ("c1~conflict", then "c1~conflict2", ...). */
#define MERGE_CONFLICT_SUFFIX "~conflict"

/* Merges local and remote, both descended from base (NULL: no common ancestor, both created the
 * notebook on their own; then cells are compared as if the base had none, and a notebook field
 * that differs is a conflict, even a null against a value). The result has the notebook fields
 * (name, db_conn_string, ttl, demo_version) and cells of the merge; id, user_id, created_at come
 * from remote; revision and updated_at are the caller's to set (copied from remote).
 *
 * A cell's source (type, code) decides; its results (status, stdout, outputs, error, reads,
 * writes) follow the source they came from. Two versions with the same source but different
 * results are not a conflict: remote's stand (results are recomputable). Cells keep remote's
 * order; local's insertions, the cells it kept that remote deleted, and the cells only local
 * moved (taken out of base's relative order) go right after the cell before them in local.
 * Equal inputs give byte-for-byte equal results.
 *
 * *ret_conflicts (may be NULL) gets an array, one object per conflict, the fields first, then
 * the cells in the merged order:
 *   {"cell_id": "c1", "copy_id": "c1~conflict"}   both changed cell c1's source differently:
 *                                                  remote's version stands as c1, ours right
 *                                                  after it (the id cut to MAX_ID_BYTES)
 *   {"field": "name", "local": <our value>}       both changed a notebook field differently:
 *                                                  remote's value stands, ours is recorded here
 * Returns 0, -EINVAL (not notebooks: no cells array, a cell id missing, invalid or twice in one
 * version), -E2BIG (the merge, copies included, would pass max_cells; nothing merged), -ENOMEM. */
int merge_notebooks(const cJSON *base, const cJSON *local, const cJSON *remote, unsigned max_cells,
                    unsigned flags, cJSON **ret_merged, cJSON **ret_conflicts);

/* flags: name a copy after its content, "ID~conflict-HHHHHHHH" (8 hex digits of a hash of its type
 * and code; "-2", "-3" ... after that if taken), instead of "ID~conflict", "ID~conflict2" ....
 * Devices that merge their own versions of one cell at the same time then make copies under
 * different ids, which merge again without colliding, while the same version copied on two devices
 * is one copy. */
#define MERGE_COPY_ID_BY_CONTENT 1u
