/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddb.h"
#include "parts.h"
#include "tap.h"

#define KIB    1024
#define TARGET (DDB_MAX_ITEM_BYTES - 8 * KIB)

static uint64_t seed = 0x5eed;

static unsigned next_random(void)
{
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        return (unsigned)seed;
}

/* n bytes of base64-looking noise (an image does not compress), or of repetitive HTML. */
static char *filler(size_t n, bool noise)
{
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        static const char html[] = "<tr><td>row</td><td>12.5</td><td>value</td></tr>\n";
        char *s = malloc(n + 1);

        for (size_t i = 0; i < n; i++)
                s[i] = noise ? b64[next_random() % 64] : html[i % (sizeof(html) - 1)];
        s[n] = 0;
        return s;
}

static cJSON *output(const char *mime, char *data)
{
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "mime_type", mime);
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddObjectToObject(o, "metadata");
        free(data);
        return o;
}

static cJSON *cell(const char *id, char *code, cJSON *outputs)
{
        cJSON *c = cJSON_CreateObject();

        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "python");
        cJSON_AddStringToObject(c, "code", code);
        cJSON_AddStringToObject(c, "status", "idle");
        cJSON_AddStringToObject(c, "stdout", "");
        cJSON_AddItemToObject(c, "outputs", outputs ? outputs : cJSON_CreateArray());
        cJSON_AddNullToObject(c, "error");
        cJSON_AddItemToObject(c, "reads", cJSON_CreateArray());
        cJSON_AddItemToObject(c, "writes", cJSON_CreateArray());
        free(code);
        return c;
}

/* A data notebook: two PNG-like images of 150 KB and 600 KB, an HTML table of 2 MB, a 300 KB
 * cell of code, and 20 small cells. */
static cJSON *big_notebook(void)
{
        cJSON *nb = cJSON_CreateObject(), *cells = cJSON_CreateArray(), *o;

        cJSON_AddStringToObject(nb, "id", "big");
        cJSON_AddStringToObject(nb, "user_id", "alice");
        cJSON_AddStringToObject(nb, "name", "Plots");
        cJSON_AddNullToObject(nb, "db_conn_string");
        cJSON_AddNumberToObject(nb, "revision", 7);
        cJSON_AddStringToObject(nb, "created_at", "2026-12-01T10:00:00.000Z");
        cJSON_AddStringToObject(nb, "updated_at", "2026-12-01T10:00:00.000Z");
        cJSON_AddNullToObject(nb, "ttl");
        cJSON_AddNullToObject(nb, "demo_version");
        for (int i = 0; i < 20; i++) {
                char id[16], code[32];

                snprintf(id, sizeof(id), "small-%d", i);
                snprintf(code, sizeof(code), "x%d = %d", i, i);
                cJSON_AddItemToArray(cells, cell(id, strdup(code), NULL));
        }
        o = cJSON_CreateArray();
        cJSON_AddItemToArray(o, output("image/png", filler(150 * KIB, true)));
        cJSON_AddItemToArray(cells, cell("plot-1", strdup("plt.show()"), o));
        o = cJSON_CreateArray();
        cJSON_AddItemToArray(o, output("image/png", filler(600 * KIB, true)));
        cJSON_AddItemToArray(cells, cell("plot-2", strdup("plt.show()"), o));
        o = cJSON_CreateArray();
        cJSON_AddItemToArray(o, output("text/html", filler(2048 * KIB, false)));
        cJSON_AddItemToArray(cells, cell("table", strdup("df"), o));
        cJSON_AddItemToArray(cells, cell("long-code", filler(300 * KIB, false), NULL));
        cJSON_AddItemToObject(nb, "cells", cells);
        return nb;
}

static int collect(const char *hash, void *userdata)
{
        Parts *named = userdata;

        return parts_add(named, hash, strlen(hash));
}

static size_t count_names(const cJSON *item)
{
        Parts named = { 0 };
        size_t n;

        if (parts_foreach_name(item, collect, &named) < 0)
                return SIZE_MAX;
        n = named.n;
        parts_done(&named);
        return n;
}

static void test_round_trip(void)
{
        cJSON *nb = big_notebook(), *item = NULL, *whole, *back = NULL;
        Parts parts = { 0 };
        bool sizes_ok = true, zlib = false;
        size_t stored = 0;
        char *text;

        ok(ddb_item_from_notebook(nb, "token-1", &item) == 0, "item of a 3 MB notebook");
        whole = cJSON_Duplicate(item, true);
        ok(ddb_item_size(item) > DDB_MAX_ITEM_BYTES, "it is over DynamoDB's limit (%zu bytes)",
           ddb_item_size(item));
        is_int(parts_split(item, TARGET, &parts), 0, "split");
        ok(ddb_item_size(item) <= TARGET, "the notebook's item fits: %zu bytes", ddb_item_size(item));
        for (size_t i = 0; i < parts.n; i++)
                sizes_ok &= parts.v[i].size <= PARTS_CHUNK_BYTES;
        ok(parts.n > 0 && sizes_ok, "%zu parts, each at most %u bytes", parts.n, PARTS_CHUNK_BYTES);
        is_int((long long)count_names(item), (long long)parts.n, "the item names every part, each once");

        text = cJSON_PrintUnformatted(item);
        zlib = strstr(text, "\"zlib\"") != NULL;
        free(text);
        for (size_t i = 0; i < parts.n; i++)
                stored += parts.v[i].size;
        ok(zlib && stored < 800 * KIB, "values are compressed: %zu bytes of parts for 2.6 MB moved", stored);
        {
                const cJSON *first =
                        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "cells"), "L"), 0);

                ok(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "M"), "code"),
                   "small cells keep their values");
        }

        is_int(parts_join(item, &parts), 0, "join");
        {
                char *a = cJSON_PrintUnformatted(item), *b = cJSON_PrintUnformatted(whole);

                ok(a && b && strcmp(a, b) == 0,
                   "the joined item is the item before the split, member for member");
                free(a);
                free(b);
        }
        ok(ddb_notebook_from_item(item, &back, NULL) == 0 &&
                   cJSON_Compare(cJSON_GetObjectItem(back, "cells"), cJSON_GetObjectItem(nb, "cells"), true),
           "and reads back as the notebook");
        parts_done(&parts);
        cJSON_Delete(back);
        cJSON_Delete(whole);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

static void test_damage(void)
{
        cJSON *nb = big_notebook(), *item = NULL, *split;
        Parts parts = { 0 }, fewer = { 0 };

        ddb_item_from_notebook(nb, NULL, &item);
        parts_split(item, TARGET, &parts);
        split = cJSON_Duplicate(item, true);
        for (size_t i = 1; i < parts.n; i++)
                parts_add(&fewer, parts.v[i].data, parts.v[i].size);
        is_int(parts_join(item, &fewer), -ENOENT, "a missing part: -ENOENT");
        ok(cJSON_Compare(item, split, true), "and the item is unchanged");

        parts.v[0].data[parts.v[0].size / 2] ^= 1;
        is_int(parts_join(item, &parts), -EBADMSG, "a part whose bytes do not hash to its name: -EBADMSG");
        ok(cJSON_Compare(item, split, true), "and the item is unchanged");
        parts_done(&parts);
        parts_done(&fewer);
        cJSON_Delete(split);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

/* An edit of one small cell of a big notebook writes no new part: the values that moved are the
 * same, and their parts are named by their content. */
static void test_small_edit(void)
{
        cJSON *nb = big_notebook(), *item = NULL, *cells;
        Parts before = { 0 }, after = { 0 };
        size_t fresh = 0;

        ddb_item_from_notebook(nb, NULL, &item);
        parts_split(item, TARGET, &before);
        cJSON_Delete(item);
        cells = cJSON_GetObjectItem(nb, "cells");
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cells, 3), "code", cJSON_CreateString("x3 = 'edited'"));
        ddb_item_from_notebook(nb, NULL, &item);
        is_int(parts_split(item, TARGET, &after), 0, "split after an edit of a small cell");
        for (size_t i = 0; i < after.n; i++)
                fresh += !parts_find(&before, after.v[i].hash);
        is_int((long long)fresh, 0, "no part is new: only the notebook's item is written again");
        parts_done(&before);
        parts_done(&after);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

static void test_too_many_small(void)
{
        cJSON *nb = big_notebook(), *cells = cJSON_CreateArray(), *item = NULL;
        Parts parts = { 0 };

        /* 1000 cells of 500 bytes each: no value is worth a part, and together they do not fit. */
        for (int i = 0; i < 1000; i++) {
                char id[16];

                snprintf(id, sizeof(id), "c%d", i);
                cJSON_AddItemToArray(cells, cell(id, filler(500, true), NULL));
        }
        cJSON_ReplaceItemInObject(nb, "cells", cells);
        ddb_item_from_notebook(nb, NULL, &item);
        is_int(parts_split(item, TARGET, &parts), -E2BIG, "many small values that do not fit: -E2BIG");
        parts_done(&parts);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

static void test_same_value_twice(void)
{
        cJSON *nb = big_notebook(), *cells = cJSON_GetObjectItem(nb, "cells"), *item = NULL;
        Parts once = { 0 }, twice = { 0 };

        ddb_item_from_notebook(nb, NULL, &item);
        parts_split(item, TARGET, &once);
        cJSON_Delete(item);
        /* The 600 KB image in a second cell too: its parts are the same parts. */
        cJSON_AddItemToArray(cells, cJSON_Duplicate(cJSON_GetArrayItem(cells, 21), true));
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cells, 24), "id", cJSON_CreateString("plot-2-copy"));
        ddb_item_from_notebook(nb, NULL, &item);
        is_int(parts_split(item, TARGET, &twice), 0, "split with one image in two cells");
        is_int((long long)twice.n, (long long)once.n, "the image is stored once (%zu parts)", twice.n);
        parts_done(&once);
        parts_done(&twice);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

/* Part items: the bytes go out as base64 and come back the same, of every length mod 3; DynamoDB
 * counts them raw; the bodies say what the layout says. */
static void test_part_items(void)
{
        unsigned char data[300];
        bool same = true;
        cJSON *b;
        char *text;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (unsigned char)next_random();
        for (size_t n = 0; n <= sizeof(data); n += 7) {
                unsigned char *back = NULL;
                size_t back_n = 0;

                b = ddb_part_put_body("notebooks-parts", "alice/big", "ab", data, n,
                                      "2026-12-06T10:00:00.000Z");
                same &= b && ddb_part_data(cJSON_GetObjectItem(b, "Item"), &back, &back_n) == 0 &&
                        back_n == n && memcmp(back, data, n) == 0;
                if (b && n == 299)
                        same &= ddb_item_size(cJSON_GetObjectItem(b, "Item")) ==
                                strlen("owner") + strlen("alice/big") + strlen("part") + 2 + strlen("data") +
                                        n + strlen("created_at") + 24;
                free(back);
                cJSON_Delete(b);
        }
        ok(same, "part items: bytes of every length come back the same, and count raw in the item's size");

        b = cJSON_Parse("{\"data\":{\"B\":\"AB=C\"}}");
        {
                unsigned char *back = NULL;
                size_t n;

                is_int(ddb_part_data(b, &back, &n), -EBADMSG, "base64 with padding inside: -EBADMSG");
                free(back);
        }
        cJSON_Delete(b);

        b = ddb_part_delete_body("t", "alice/big", "ab", "2026-12-06T09:00:00.000Z");
        text = cJSON_PrintUnformatted(b);
        ok(text && strstr(text, "\"ConditionExpression\":\"#s = :s\"") &&
                   strstr(text, "\":s\":{\"S\":\"2026-12-06T09:00:00.000Z\"}") &&
                   strstr(text, "\"Key\":{\"owner\":{\"S\":\"alice/big\"},\"part\":{\"S\":\"ab\"}}"),
           "a part's delete is conditioned on the mark it was seen with: %s", text);
        free(text);
        cJSON_Delete(b);
        b = ddb_part_mark_body("t", "alice/big", "ab", "2026-12-06T08:00:00.000Z",
                               "2026-12-06T09:00:00.000Z");
        text = cJSON_PrintUnformatted(b);
        ok(text && strstr(text, "\"ConditionExpression\":\"#c = :c AND attribute_not_exists(#s)\"") &&
                   strstr(text, "\"UpdateExpression\":\"SET #s = :now\""),
           "a part is marked only if it is still the write that was seen: %s", text);
        free(text);
        cJSON_Delete(b);
        b = ddb_create_parts_table_body("notebooks-parts");
        text = cJSON_PrintUnformatted(b);
        ok(text && strstr(text, "\"KeySchema\":[{\"AttributeName\":\"owner\",\"KeyType\":\"HASH\"},"
                                "{\"AttributeName\":\"part\",\"KeyType\":\"RANGE\"}]"),
           "the parts table: owner, part");
        free(text);
        cJSON_Delete(b);
}

/* What a later version shares with one held: its values come from that version, no part needed;
 * what changed stays a reference. What an earlier split learned moves without being encoded. */
static void test_known(void)
{
        cJSON *nb = big_notebook(), *cells = cJSON_GetObjectItem(nb, "cells"), *item = NULL, *wire, *refs,
              *learned = cJSON_CreateObject(), *whole, *again;
        Parts parts = { 0 };
        bool within = true;
        const cJSON *e;

        ddb_item_from_notebook(nb, "t1", &item);
        whole = cJSON_Duplicate(item, true);
        ok(!parts_named(item), "a whole item names no parts");
        is_int(parts_split_known(item, TARGET, NULL, learned, &parts), 0, "split, learning");
        ok(parts_named(item), "the split item names parts");
        refs = parts_refs(item);
        is_int(cJSON_GetArraySize(refs), cJSON_GetArraySize(learned), "one reference per moved value (%d)",
               cJSON_GetArraySize(refs));
        cJSON_ArrayForEach(e, learned) within = within && parts_ref_within(e, refs);
        ok(within, "every learned reference's parts are named by the item's references");
        within = parts.n > 0;
        for (size_t i = 0; i < parts.n; i++)
                within = within && parts_refs_name(refs, parts.v[i].hash);
        ok(within, "each of the %zu parts is named by the references", parts.n);
        ok(!parts_refs_name(refs, "0000000000000000000000000000000000000000000000000000000000000000"),
           "an unknown hash is not");

        /* The same notebook, whole, joined from what is held: nothing to fetch. */
        wire = cJSON_Duplicate(item, true);
        is_int(parts_join_known(wire, refs, whole), 0, "join from the version held");
        ok(!parts_named(wire) && cJSON_Compare(wire, whole, true), "every value comes back, the item whole");
        cJSON_Delete(wire);

        /* A later version with the 600 KB image changed: everything but that image is known. */
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(cells, 21), "outputs", cJSON_CreateArray());
        cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetArrayItem(cells, 21), "outputs"),
                             output("image/png", filler(600 * KIB, true)));
        cJSON_Delete(item);
        item = NULL;
        ddb_item_from_notebook(nb, "t2", &item);
        again = cJSON_Duplicate(item, true);
        {
                Parts fresh = { 0 };

                is_int(parts_split_known(item, TARGET, learned, NULL, &fresh), 0,
                       "split of the later version");
                ok(fresh.n > 0 && fresh.n <= 3, "only the changed image is encoded into parts (%zu)",
                   fresh.n);
                wire = cJSON_Duplicate(item, true);
                parts_join_known(wire, refs, whole);
                is_int(count_names(wire), (long long)fresh.n,
                       "joined from the held version, only its parts are missing");
                is_int(parts_join(wire, &fresh), 0, "and with them");
                ok(cJSON_Compare(wire, again, true), "the later version comes back whole");
                cJSON_Delete(wire);
                parts_done(&fresh);
        }
        /* A reference under another attribute is not taken for this one. */
        wire = cJSON_Duplicate(item, true);
        cJSON_ArrayForEach(e, refs)
        {
                cJSON *n = cJSON_GetArrayItem(e, 1);

                cJSON_SetValuestring(n, strcmp(n->valuestring, "code_ref") ? "code_ref" : "stdout_ref");
        }
        parts_join_known(wire, refs, whole);
        ok(cJSON_Compare(wire, item, true), "references under other attribute names join nothing");
        cJSON_Delete(wire);
        parts_done(&parts);
        cJSON_Delete(again);
        cJSON_Delete(refs);
        cJSON_Delete(learned);
        cJSON_Delete(whole);
        cJSON_Delete(item);
        cJSON_Delete(nb);
}

/* What a reference claims is bounded before anything is fetched, and while joining. */
static void test_claims(void)
{
        cJSON *item;
        Parts have = { 0 };
        char text[1024], hash[65];
        static const char part[] = "{\"S\":\"x\"}";

        parts_add(&have, part, strlen(part));
        strcpy(hash, have.v[0].hash);
#define ITEM(refs) "{\"cells\":{\"L\":[{\"M\":{\"id\":{\"S\":\"c\"}," refs "}}]}}"
#define REF(name, enc, bytes, parts)                                                 \
        "\"" name "\":{\"M\":{\"enc\":{\"S\":\"" enc "\"},\"bytes\":{\"N\":\"" bytes \
        "\"},\"parts\":{\"L\":[" parts "]}}}"
        snprintf(text, sizeof(text), ITEM(REF("code_ref", "raw", "%zu", "{\"S\":\"%s\"}")), strlen(part),
                 hash);
        item = cJSON_Parse(text);
        is_int(parts_check(item), 0, "a reference of what it holds passes");
        is_int(parts_join(item, &have), 0, "and joins");
        cJSON_Delete(item);

        snprintf(text, sizeof(text), ITEM(REF("code_ref", "zlib", "33554433", "{\"S\":\"%s\"}")), hash);
        item = cJSON_Parse(text);
        is_int(parts_check(item), -EBADMSG, "a value over 32 MiB is refused before anything is fetched");
        cJSON_Delete(item);

        snprintf(text, sizeof(text),
                 ITEM(REF("code_ref", "zlib", "30000000", "{\"S\":\"%s\"}") "," REF(
                         "stdout_ref", "zlib", "30000000",
                         "{\"S\":\"%s\"}") "," REF("error_ref", "zlib", "30000000", "{\"S\":\"%s\"}")),
                 hash, hash, hash);
        item = cJSON_Parse(text);
        is_int(parts_check(item), -EFBIG, "values over 64 MiB together: -EFBIG");
        cJSON_Delete(item);

        snprintf(text, sizeof(text), ITEM(REF("code_ref", "raw", "%zu", "{\"S\":\"%s\"},{\"S\":\"%s\"}")),
                 strlen(part), hash, hash);
        item = cJSON_Parse(text);
        is_int(parts_join(item, &have), -EBADMSG, "a part named twice, past the length claimed: corrupt");
        ok(parts_named(item), "and the item is left as it was");
        cJSON_Delete(item);
#undef REF
#undef ITEM
        parts_done(&have);
}

int main(void)
{
        test_claims();
        test_known();
        test_part_items();
        test_round_trip();
        test_damage();
        test_small_edit();
        test_too_many_small();
        test_same_value_twice();
        return tap_done();
}
