/* SPDX-License-Identifier: MIT */
#pragma once

/* The parts table's traffic (doc/sync.md, "Big notebooks"): fetching the parts an item names, and
 * collecting the parts no version names any more. parts.c splits and joins; this sends. Both run
 * one request at a time, and report once, from a callback, never from inside the starting call. */

#include <cjson/cJSON.h>

#include "remote.h"

/* Owner of a notebook's parts: "user_id/notebook_id" (a user_id holds no '/'). NULL: no memory. */
char *partio_owner(const char *user_id, const char *notebook_id);

/* error: 0 (item is joined), -ENOENT (a part is missing), -EBADMSG (a part is not what its name
 * says, or the item's references are malformed), -EFBIG (as parts_check()), -ECANCELED (shutdown), -EIO (the
 * remote failed to answer; reply_cls says how: DDB_RETRYABLE for no answer at all). item stays the caller's.
 */
typedef void (*PartioFetchFunc)(void *userdata, int error, DdbErrorClass reply_cls, const char *message,
                                cJSON *item);

/* Fetches every part item names (strongly consistent GetItem of each, in turn; *fetched counts
 * them) and joins them into item. 1: the callback runs later; 0: item names no part, nothing to do
 * (no callback); a negative error (-EBADMSG, -EFBIG: as parts_check()), and no callback. */
int partio_fetch(Remote *remote, const char *table, const char *owner, cJSON *item, uint64_t *fetched,
                 PartioFetchFunc done, void *userdata);

/* done: error as above (0: the pass ran); again: a part no version names, not yet old enough to go,
 * so another pass is due in a grace time. */
typedef void (*PartioCollectFunc)(void *userdata, int error, bool again);

/* One collection pass over a notebook's parts: lists them, reads the notebook's item (strongly
 * consistent, after the list), then marks (stale_at) every part the item does not name and that
 * was written more than grace_usec ago, and deletes every part marked more than grace_usec ago
 * that the item does not name (*deleted counts them). */
int partio_collect(Remote *remote, const char *parts_table, const char *table, const char *user_id,
                   const char *notebook_id, uint64_t grace_usec, uint64_t *deleted, PartioCollectFunc done,
                   void *userdata);
