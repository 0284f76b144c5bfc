/* SPDX-License-Identifier: MIT */
/* Big notebooks' parts, as a pull reads them. The first byte picks what the rest is:
 *   even: an item (JSON) that names no part. parts_split() with a target from the second byte,
 *         then parts_join() with the parts it made, must give back the item exactly (also when
 *         it could not fit);
 *   odd:  an item naming parts, then, after a NUL, part bytes (each: a length byte, then that
 *         many bytes). parts_join() must succeed or leave the item as it was, and a joined item
 *         names no part any more. The item is also read as a part item (ddb_part_data()). A
 *         joined item is the version held: joining the item from it and its references
 *         (parts_join_known()) must give the same, with no part. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "fuzz.h"
#include "model.h"
#include "parts.h"
#include "util.h"

/* Equal as printed: cJSON_Compare() takes an object with a key twice for unequal to itself. */
static bool same(const cJSON *a, const cJSON *b)
{
        _cleanup_free_ char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);

        return x && y && streq(x, y);
}

/* Whether the item, printed, parses back the same: not when it holds a number JSON cannot print
 * (1e999 prints as null), which an item DynamoDB sends never does (its numbers are strings). */
static bool prints_back(const cJSON *item)
{
        _cleanup_free_ char *text = cJSON_PrintUnformatted(item);
        cJSON *again = text ? cJSON_Parse(text) : NULL;
        bool ok = again && same(item, again);

        cJSON_Delete(again);
        return ok;
}

static int count(const char *hash, void *userdata)
{
        (*(size_t *)userdata)++;
        return 0;
}

static void split_join(const char *text, size_t target)
{
        cJSON *item = cJSON_Parse(text), *copy;
        Parts parts = { 0 };
        int r;

        size_t named = 0;

        /* An item from ddb_item_from_notebook() names no part yet; one that does (or holds what
         * reads as a broken reference) is join_given()'s. */
        ModelError e;

        /* Nor a key twice in one object: the first would move, the second stay in its way. */
        if (!cJSON_IsObject(item) || parts_foreach_name(item, count, &named) < 0 || named > 0 ||
            !prints_back(item) || model_check_unique_keys(item, &e) != 0) {
                cJSON_Delete(item);
                return;
        }
        copy = cJSON_Duplicate(item, true);
        fuzz_check(copy);
        r = parts_split(item, target, &parts);
        fuzz_check(r == 0 || r == -E2BIG || r == -ENOMEM);
        if (r == 0)
                fuzz_check(ddb_item_size(item) <= target);
        for (size_t i = 0; i < parts.n; i++)
                fuzz_check(parts.v[i].size <= PARTS_CHUNK_BYTES);
        r = parts_join(item, &parts);
        fuzz_check(r == 0 || r == -ENOMEM);
        if (r == 0)
                fuzz_check(same(item, copy));
        parts_done(&parts);
        cJSON_Delete(copy);
        cJSON_Delete(item);
}

static void join_given(const uint8_t *data, size_t size)
{
        const uint8_t *nul = memchr(data, 0, size);
        _cleanup_free_ char *text = strndup((const char *)data, nul ? (size_t)(nul - data) : size);
        cJSON *item = text ? cJSON_Parse(text) : NULL, *copy, *refs;
        Parts have = { 0 };
        unsigned char *bytes = NULL;
        size_t n = 0, named = 0;
        int r;

        if (!item)
                return;
        r = ddb_part_data(item, &bytes, &n);
        fuzz_check(r == 0 || r == -EBADMSG || r == -ENOMEM);
        free(bytes);
        copy = cJSON_Duplicate(item, true);
        fuzz_check(copy);
        for (const uint8_t *p = nul ? nul + 1 : data + size; p < data + size;) {
                size_t len = MIN((size_t)*p, (size_t)(data + size - p - 1));

                fuzz_check(parts_add(&have, p + 1, len) == 0);
                p += 1 + len;
        }
        refs = parts_refs(item);
        fuzz_check(refs && (cJSON_GetArraySize(refs) > 0) == parts_named(item));
        r = parts_join(item, &have);
        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG || r == -ENOMEM);
        if (r == 0) {
                fuzz_check(parts_foreach_name(item, count, &named) == 0 && named == 0);
                fuzz_check(!parts_named(item));
                /* The joined item as the version held: every reference is known. */
                fuzz_check(parts_join_known(copy, refs, item) == 0);
                fuzz_check(same(copy, item));
        } else
                fuzz_check(same(item, copy));
        cJSON_Delete(refs);
        parts_done(&have);
        cJSON_Delete(copy);
        cJSON_Delete(item);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        if (data[0] % 2 == 0) {
                _cleanup_free_ char *text = strndup((const char *)data + 2, size - 2);

                if (text)
                        /* Targets from 64 bytes up, so that small items split too. */
                        split_join(text, 64 + (size_t)data[1] * 64);
        } else
                join_given(data + 1, size - 1);
        return 0;
}
