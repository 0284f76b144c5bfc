/* SPDX-License-Identifier: MIT */
#pragma once

/* Notebooks larger than a DynamoDB item: the cell values that do not fit move out of the
 * notebook's item into part items, immutable and named by the SHA-256 of their bytes, written
 * before the item that names them. Pure functions: nothing here sends anything.
 *
 * A moved attribute A of a cell (outputs first, the largest first; then code, stdout and error)
 * is replaced in the cell by A_ref, a map:
 *   enc    S       "zlib" (RFC 1950) or "raw": how the parts' bytes, concatenated, encode the text
 *   bytes  N       the length of the decoded text
 *   parts  L of S  the hex SHA-256 of each part's bytes, in order
 * The decoded text is the attribute's value in DynamoDB's JSON, an AttributeValue ({"L": [...]}
 * for outputs, {"S": "..."} for code): a reader joins the parts, inflates them if "zlib", parses
 * the JSON and puts the value back under A. */

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#define PARTS_CHUNK_BYTES     (256u * 1024) /* bytes of one part at most */
#define PARTS_MIN_VALUE_BYTES 1024          /* a smaller value never moves */
/* What a reader takes at most, whatever a reference claims: one value (a cell holds at most 8 MiB
 * of outputs, which DynamoDB's JSON may double by escaping), and all of one item's together. */
#define PARTS_MAX_VALUE_BYTES  (32u * 1024 * 1024)
#define PARTS_MAX_JOINED_BYTES (64u * 1024 * 1024)

typedef struct Part {
        char hash[65]; /* hex SHA-256 of data */
        unsigned char *data;
        size_t size;
} Part;

typedef struct Parts {
        Part *v;
        size_t n;
} Parts;

void parts_done(Parts *p);
const Part *parts_find(const Parts *p, const char *hash);
/* Adds a copy of data under its hash, unless a part of that hash is there. 0, -ENOMEM, -EIO. */
int parts_add(Parts *p, const void *data, size_t size);

/* Moves values of item's cells into parts until ddb_item_size(item) <= target, and adds those
 * parts to *out. 0; -E2BIG if the item cannot get that small (what was moved stays moved);
 * -ENOMEM; -EIO (the hash or the compression failed). */
int parts_split(cJSON *item, size_t target, Parts *out);
/* The same, reusing what an earlier split learned: known maps the hex SHA-256 of a value's text
 * (as the value is printed unformatted) to its reference, for values whose parts the table holds:
 * such a value moves by that reference, without being encoded again or adding parts. learned (may
 * be NULL) gets the hash and reference of every value moved. */
int parts_split_known(cJSON *item, size_t target, const cJSON *known, cJSON *learned, Parts *out);

/* Whether item names any part (a cell attribute A_ref). */
bool parts_named(const cJSON *item);

/* Calls fn for every part item names, in order (a part named twice is named twice). Stops at the
 * first negative return, which it returns; -EBADMSG for a malformed reference. */
int parts_foreach_name(const cJSON *item, int (*fn)(const char *hash, void *userdata), void *userdata);

/* Checks item's references before anything is fetched for them: 0; -EBADMSG for a malformed one,
 * or one claiming a value larger than PARTS_MAX_VALUE_BYTES; -EFBIG when together they claim more
 * than PARTS_MAX_JOINED_BYTES. */
int parts_check(const cJSON *item);

/* Puts every moved value back in item, from have. -ENOENT: a part is not in have; -EBADMSG: a
 * part's bytes do not hash to its name, the parts are longer than the reference allows, the text
 * does not decode to the length the reference gives, or it is no AttributeValue; -EFBIG as
 * parts_check(); -ENOMEM. item is unchanged on error. */
int parts_join(cJSON *item, const Parts *have);

/* The references item carries, to keep beside a snapshot of the version: an array of
 * [cell index, attribute name, reference], empty when it names no parts; NULL: out of memory. */
cJSON *parts_refs(const cJSON *item);
/* Whether a reference of refs names the part hash; whether refs name every part of ref. */
bool parts_refs_name(const cJSON *refs, const char *hash);
bool parts_ref_within(const cJSON *ref, const cJSON *refs);
/* Puts back in item the values it shares with a version already held: full, that version joined,
 * and refs, its references. A reference of item equal to one of refs, under the same attribute,
 * takes the value full holds there. What is not found stays a reference (parts_join() then needs
 * its parts). 0 or -ENOMEM. */
int parts_join_known(cJSON *item, const cJSON *refs, const cJSON *full);
