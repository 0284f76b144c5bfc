/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>

#include "ddb.h"
#include "model.h"
#include "tap.h"

/* A notebook like the demo: six cells, python and sql, outputs of every kind (text, a base64
 * image, a table, Plotly and Vega-Lite JSON with numbers), in the protocol's key order and with
 * idle cells, so that it must come back byte for byte. */
static const char *const DEMO =
        "{\"id\":\"demo-alice\",\"user_id\":\"alice\",\"name\":\"Demo Notebook\",\"db_conn_string\":null,"
        "\"revision\":3,\"created_at\":\"2026-11-26T10:00:00.000Z\",\"updated_at\":\"2026-11-26T10:05:12."
        "345Z\","
        "\"ttl\":null,\"demo_version\":1,\"cells\":["
        "{\"id\":\"demo-cell-1\",\"type\":\"python\",\"code\":\"x = "
        "10\",\"status\":\"idle\",\"stdout\":\"\","
        "\"outputs\":[],\"error\":null,\"reads\":[],\"writes\":[\"x\"]},"
        "{\"id\":\"demo-cell-2\",\"type\":\"python\",\"code\":\"y = x + 5\",\"status\":\"idle\","
        "\"stdout\":\"\",\"outputs\":[{\"mime_type\":\"text/plain\",\"data\":\"15\",\"metadata\":{}}],"
        "\"error\":null,\"reads\":[\"x\"],\"writes\":[\"y\"]},"
        "{\"id\":\"demo-cell-3\",\"type\":\"python\",\"code\":\"import matplotlib.pyplot as "
        "plt\\nplt.show()\","
        "\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[{\"mime_type\":\"image/png\","
        "\"data\":\"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+"
        "M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\","
        "\"metadata\":{\"width\":800,\"height\":400}}],\"error\":null,\"reads\":[\"x\",\"y\"],"
        "\"writes\":[\"plt\",\"np\",\"t\",\"fig\",\"ax\"]},"
        "{\"id\":\"demo-cell-4\",\"type\":\"python\",\"code\":\"import pandas as "
        "pd\\ndf\",\"status\":\"idle\","
        "\"stdout\":\"\",\"outputs\":[{\"mime_type\":\"application/json\",\"data\":{\"type\":\"table\","
        "\"columns\":[\"step\",\"value\",\"squared\"],\"rows\":[[1,15,225],[2,30,900],[3,45,2025]]},"
        "\"metadata\":{\"index\":false}}],\"error\":null,\"reads\":[\"x\",\"y\"],\"writes\":[\"pd\",\"df\"]}"
        ","
        "{\"id\":\"demo-cell-5\",\"type\":\"python\",\"code\":\"import plotly.express as px\\nline_chart\","
        "\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[{\"mime_type\":\"application/vnd.plotly.v1+json\","
        "\"data\":{\"data\":[{\"x\":[1,2,3],\"y\":[15,30,45],\"mode\":\"lines+markers\",\"opacity\":0.85}],"
        "\"layout\":{\"title\":{\"text\":\"Plotly: value by "
        "step\"},\"showlegend\":false}},\"metadata\":{}}],"
        "\"error\":null,\"reads\":[\"df\"],\"writes\":[\"px\",\"line_chart\"]},"
        "{\"id\":\"demo-cell-6\",\"type\":\"sql\",\"code\":\"SELECT 1 AS one\",\"status\":\"idle\","
        "\"stdout\":\"\",\"outputs\":[],\"error\":\"no database connection configured\",\"reads\":[],"
        "\"writes\":[]}]}";

/* The edge cases: nulls, empty strings and lists, unicode everywhere (keys of output maps too),
 * numbers a double holds only with 17 digits, integers at 2^53 - 1, a ttl. */
static const char *const EDGES =
        "{\"id\":\"n\\u00e9-\\ud83d\\ude00\",\"user_id\":\"\\u7528\\u6237\",\"name\":\"\",\"db_conn_"
        "string\":null,"
        "\"revision\":9007199254740991,\"created_at\":\"2026-01-01T00:00:00.000Z\",\"updated_at\":\"\","
        "\"ttl\":1767225600,\"demo_version\":null,\"cells\":["
        "{\"id\":\"c\",\"type\":\"sql\",\"code\":\"\",\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[],"
        "\"error\":null,\"reads\":[],\"writes\":[]},"
        "{\"id\":\"\\u00fc\",\"type\":\"python\",\"code\":\"print('\\u20ac "
        "\\ud834\\udd1e')\",\"status\":\"idle\","
        "\"stdout\":\"\\u20ac \\ud834\\udd1e\\n\",\"outputs\":["
        "{\"mime_type\":\"application/"
        "json\",\"data\":{\"\\u00e9t\\u00e9\":[0.30000000000000004,9007199254740991,"
        "-9007199254740991,-0.5,1e-07,1.5e+125,123456789.12345679,0,true,false,null,\"\",[],{"
        "},"
        "{\"deep\":[[{\"x\":[1.5]}]]}]},\"metadata\":{}},"
        "{\"mime_type\":\"text/plain\",\"data\":[],\"metadata\":{\"n\":2.5e-130}},"
        "{\"mime_type\":\"text/"
        "html\",\"data\":\"\",\"metadata\":{\"\u043a\u043b\u044e\u0447\":\"\u2603\"}}],"
        "\"error\":\"Traceback \\u2026\",\"reads\":[\"\\u03b1\"],\"writes\":[\"\\u03b2\",\"\"]}]}";

static cJSON *parse(const char *s)
{
        cJSON *v = cJSON_Parse(s);

        if (!v)
                printf("# cannot parse test JSON near: %.60s\n", cJSON_GetErrorPtr());
        return v;
}

static char *print(const cJSON *v)
{
        return model_json_print(v, false);
}

/* The type tag of an AttributeValue, "" when it is not one. */
static const char *tag(const cJSON *av)
{
        return cJSON_IsObject(av) && av->child && !av->child->next ? av->child->string : "";
}

static const cJSON *get(const cJSON *obj, const char *key)
{
        return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static void test_round_trip(const char *name, const char *text)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = parse(text), *item = NULL, *back = NULL, *item2 = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *sid = NULL, *i1 = NULL, *i2 = NULL;

        is_int(ddb_item_from_notebook(nb, "3f1c0e4e-sync", &item), 0, "%s: the notebook becomes an item",
               name);
        is_int(ddb_notebook_from_item(item, &back, &sid), 0, "%s: the item reads back", name);
        is_str(sid, "3f1c0e4e-sync", "%s: with its sync_id", name);
        a = print(nb);
        b = print(back);
        is_str(b, a, "%s: the notebook comes back byte for byte", name);
        /* And the item made from what came back is the same item. */
        is_int(ddb_item_from_notebook(back, "3f1c0e4e-sync", &item2), 0, "%s: marshals again", name);
        i1 = print(item);
        i2 = print(item2);
        is_str(i2, i1, "%s: to the same item", name);
}

static void test_exact_numbers(void)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = parse(EDGES), *item = NULL;
        _cleanup_free_ char *text = NULL;

        ddb_item_from_notebook(nb, NULL, &item);
        text = print(item);
        ok(text && strstr(text, "{\"N\":\"0.30000000000000004\"}"),
           "0.30000000000000004 keeps its 17 digits");
        ok(text && strstr(text, "\"revision\":{\"N\":\"9007199254740991\"}") &&
                   strstr(text, "{\"N\":\"-9007199254740991\"}"),
           "2^53 - 1 is written in full");
        ok(text && strstr(text, "{\"N\":\"123456789.12345679\"}"),
           "a long fraction keeps the shortest exact text");
        ok(text && strstr(text, "{\"N\":\"1e-07\"}") && strstr(text, "{\"N\":\"1.5e+125\"}"),
           "exponents are written as DynamoDB reads them");
        ok(text && strstr(text, "\"ttl\":{\"N\":\"1767225600\"}"), "a set ttl is a number");
        ok(text && !strstr(text, "demo_version"), "an unset demo_version is left out");
        ok(text && !strstr(text, "sync_id"), "no sync_id given, none written");
        ok(text && strstr(text, "\"name\":{\"S\":\"\"}"), "an empty name stays an empty string, not NULL");
        ok(text && strstr(text, "{\"L\":[]}") && strstr(text, "{\"M\":{}}"), "empty lists and maps stay");
}

/* The seed's item, attribute by attribute: names, order and types. */
static void test_shape(void)
{
        static const struct {
                const char *name, *tag;
        } want[] = {
                { "user_id", "S" },           { "notebook_id", "S" }, { "name", "S" },
                { "db_conn_string", "NULL" }, { "revision", "N" },    { "cells", "L" },
                { "created_at", "S" },        { "updated_at", "S" },  { "demo_version", "N" },
                { "sync_id", "S" },
        };
        static const struct {
                const char *name, *tag;
        } cell_want[] = {
                { "id", "S" },      { "type", "S" },     { "code", "S" },  { "stdout", "S" },
                { "outputs", "L" }, { "error", "NULL" }, { "reads", "L" }, { "writes", "L" },
        };
        _cleanup_(cJSON_Deletep) cJSON *nb = parse(DEMO), *item = NULL;
        const cJSON *a, *cell, *c, *output;
        size_t i = 0;
        bool good = true;

        /* A cell that ran: its status must not reach the table. */
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(get(nb, "cells"), 0), "status",
                                  cJSON_CreateString("error"));
        is_int(ddb_item_from_notebook(nb, "s-1", &item), 0, "the demo marshals");
        cJSON_ArrayForEach(a, item)
        {
                if (i >= ELEMENTSOF(want) || !streq(a->string, want[i].name) ||
                    !streq(tag(a), want[i].tag)) {
                        printf("#   attribute %zu: %s %s\n", i, a->string, tag(a));
                        good = false;
                }
                i++;
        }
        ok(good && i == ELEMENTSOF(want), "top-level attributes: the seed's, in order, with their types");
        is_str(get(get(item, "user_id"), "S")->valuestring, "alice", "user_id is the partition key");
        is_str(get(get(item, "notebook_id"), "S")->valuestring, "demo-alice",
               "notebook_id is the notebook's id");
        ok(!get(item, "ttl"), "an unset ttl is left out, so the item never expires");

        cell = cJSON_GetArrayItem(get(get(item, "cells"), "L"), 0);
        is_str(tag(cell), "M", "a cell is a map");
        i = 0;
        good = true;
        cJSON_ArrayForEach(c, get(cell, "M"))
        {
                if (i >= ELEMENTSOF(cell_want) || !streq(c->string, cell_want[i].name) ||
                    !streq(tag(c), cell_want[i].tag))
                        good = false;
                i++;
        }
        ok(good && i == ELEMENTSOF(cell_want),
           "a cell: id, type, code, stdout, outputs, error, reads, writes");
        {
                _cleanup_free_ char *text = print(cell);

                ok(text && !strstr(text, "status"), "no cell status in the item");
        }
        is_str(tag(cJSON_GetArrayItem(get(get(get(cell, "M"), "writes"), "L"), 0)), "S",
               "writes is a list of S");

        cell = cJSON_GetArrayItem(get(get(item, "cells"), "L"), 3);
        output = get(cJSON_GetArrayItem(get(get(get(cell, "M"), "outputs"), "L"), 0), "M");
        ok(output && streq(tag(get(output, "mime_type")), "S") && streq(tag(get(output, "data")), "M") &&
                   streq(tag(get(output, "metadata")), "M") && cJSON_GetArraySize(output) == 3,
           "an output: mime_type S, data M (a JSON object), metadata M");
        is_str(tag(get(get(output, "metadata"), "M")->child), "BOOL", "false in metadata is BOOL");
        is_str(get(cJSON_GetArrayItem(
                           get(cJSON_GetArrayItem(get(get(get(get(output, "data"), "M"), "rows"), "L"), 2),
                               "L"),
                           2),
                   "N")
                       ->valuestring,
               "2025", "numbers in data are N with their text");
        cell = cJSON_GetArrayItem(get(get(item, "cells"), "L"), 2);
        output = get(cJSON_GetArrayItem(get(get(get(cell, "M"), "outputs"), "L"), 0), "M");
        is_str(tag(get(output, "data")), "S", "a base64 image is data S");
        cell = cJSON_GetArrayItem(get(get(item, "cells"), "L"), 5);
        is_str(tag(get(get(cell, "M"), "error")), "S", "a cell's error is S when set");
}

/* An item of the right shape, and ways to break it. */
static const char *const GOOD_ITEM =
        "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},\"name\":{\"NULL\":true},"
        "\"revision\":{\"N\":\"2\"},\"created_at\":{\"S\":\"c\"},\"updated_at\":{\"S\":\"d\"},"
        "\"cells\":{\"L\":[{\"M\":{\"id\":{\"S\":\"c1\"},\"type\":{\"S\":\"python\"},\"code\":{\"S\":\"x="
        "1\"},"
        "\"status\":{\"S\":\"running\"},\"stdout\":{\"S\":\"\"},\"outputs\":{\"L\":[{\"M\":{\"mime_type\":{"
        "\"S\":"
        "\"text/plain\"},\"data\":{\"S\":\"1\"},\"metadata\":{\"M\":{}}}}]},\"error\":{\"NULL\":true},"
        "\"reads\":{\"L\":[]},\"writes\":{\"L\":[{\"S\":\"x\"}]},\"extra\":{\"N\":\"1\"}}}]},"
        "\"some_other_app_field\":{\"SS\":[\"a\"]}}";

static void test_from_item(void)
{
        _cleanup_(cJSON_Deletep) cJSON *item = parse(GOOD_ITEM), *nb = NULL;
        _cleanup_free_ char *sid = (char *)1, *text = NULL;
        const cJSON *cell;

        is_int(ddb_notebook_from_item(item, &nb, &sid), 0, "an item read: unknown attributes are ignored");
        ok(sid == NULL, "no sync_id: NULL");
        text = print(nb);
        is_str(text,
               "{\"id\":\"n\",\"user_id\":\"u\",\"name\":null,\"db_conn_string\":null,\"revision\":2,"
               "\"created_at\":\"c\",\"updated_at\":\"d\",\"ttl\":null,\"demo_version\":null,\"cells\":[{"
               "\"id\":"
               "\"c1\",\"type\":\"python\",\"code\":\"x=1\",\"status\":\"idle\",\"stdout\":\"\",\"outputs\":"
               "[{"
               "\"mime_type\":\"text/plain\",\"data\":\"1\",\"metadata\":{}}],\"error\":null,\"reads\":[],"
               "\"writes\":[\"x\"]}]}",
               "the protocol notebook: absent nullable attributes are null, cells idle");
        cell = cJSON_GetArrayItem(get(nb, "cells"), 0);
        is_str(get(cell, "status")->valuestring, "idle", "a stored status is not taken over");
}

static void test_malformed(void)
{
        /* Each replaces one attribute of GOOD_ITEM (or removes it: "-"). */
        static const struct {
                const char *attr, *value, *why;
        } bad[] = {
                { "user_id", "-", "no user_id" },
                { "user_id", "{\"N\":\"1\"}", "user_id not S" },
                { "notebook_id", "{\"S\":\"\"}", "an empty key" },
                { "notebook_id", "{\"NULL\":true}", "a NULL key" },
                { "notebook_id", "{\"S\":\"evil\\n<0>forged\"}", "a notebook_id with a newline" },
                { "user_id", "{\"S\":\"a/b\"}", "a user_id with a slash" },
                { "revision", "{\"S\":\"1\"}", "revision S" },
                { "revision", "{\"N\":\"1.5\"}", "revision not an integer" },
                { "revision", "{\"N\":\"-1\"}", "revision negative" },
                { "revision", "{\"N\":\"x1\"}", "revision not a number" },
                { "revision", "{\"N\":\"inf\"}", "revision infinite" },
                { "revision", "{\"N\":\" 1\"}", "revision with a space" },
                { "revision", "{\"N\":\"1e400\"}", "revision beyond a double" },
                { "revision", "-", "no revision" },
                { "name", "{\"BOOL\":true}", "name BOOL" },
                { "name", "{\"NULL\":false}", "NULL false" },
                { "name", "{\"S\":\"a\",\"N\":\"1\"}", "two types in one value" },
                { "name", "{}", "no type" },
                { "name", "\"plain\"", "not an AttributeValue" },
                { "created_at", "-", "no created_at" },
                { "updated_at", "{\"N\":\"1\"}", "updated_at N" },
                { "ttl", "{\"S\":\"1767225600\"}", "ttl S" },
                { "demo_version", "{\"BOOL\":true}", "demo_version BOOL" },
                { "sync_id", "{\"N\":\"1\"}", "sync_id N" },
                { "cells", "-", "no cells" },
                { "cells", "{\"M\":{}}", "cells a map" },
                { "cells", "{\"L\":[{\"S\":\"c\"}]}", "a cell not a map" },
                { "cells", "{\"L\":[{\"M\":{\"id\":{\"S\":\"c\"}}}]}", "a cell with only an id" },
        };
        /* And ways to break the cell. */
        static const struct {
                const char *attr, *value, *why;
        } bad_cell[] = {
                { "type", "{\"S\":\"ruby\"}", "a cell type that is not python or sql" },
                { "id", "{\"S\":\"c\\u0001\"}", "a cell id with a control character" },
                { "code", "-", "no code" },
                { "stdout", "{\"NULL\":true}", "stdout NULL" },
                { "error", "{\"N\":\"1\"}", "error N" },
                { "reads", "{\"L\":[{\"N\":\"1\"}]}", "reads with a number" },
                { "writes", "{\"SS\":[\"x\"]}", "writes a string set" },
                { "outputs", "{\"L\":[{\"S\":\"o\"}]}", "an output not a map" },
                { "outputs",
                  "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"N\":\"1\"},\"metadata\":{\"M\":{}"
                  "}}}]}",
                  "data a number" },
                { "outputs",
                  "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"BOOL\":true},\"metadata\":{\"M\":"
                  "{}}}}]}",
                  "data a bool" },
                { "outputs", "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"S\":\"x\"}}}]}",
                  "no metadata" },
                { "outputs", "{\"L\":[{\"M\":{\"data\":{\"S\":\"x\"},\"metadata\":{\"M\":{}}}}]}",
                  "no mime_type" },
                { "outputs",
                  "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"L\":[{\"B\":\"AAE=\"}]},"
                  "\"metadata\":{\"M\":{}}}}]}",
                  "binary in data" },
                { "outputs",
                  "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"L\":[{\"N\":\"1e999\"}]},"
                  "\"metadata\":{\"M\":{}}}}]}",
                  "a number beyond a double in data" },
                { "outputs",
                  "{\"L\":[{\"M\":{\"mime_type\":{\"S\":\"a\"},\"data\":{\"M\":{\"k\":{\"X\":\"1\"}}},"
                  "\"metadata\":{\"M\":{}}}}]}",
                  "an unknown type in data" },
        };
        _cleanup_(cJSON_Deletep) cJSON *not_object = parse("[]"), *nb = NULL;

        is_int(ddb_notebook_from_item(not_object, &nb, NULL), -EBADMSG, "malformed: not an object");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(cJSON_Deletep) cJSON *item = parse(GOOD_ITEM), *out = NULL;

                if (streq(bad[i].value, "-"))
                        cJSON_DeleteItemFromObjectCaseSensitive(item, bad[i].attr);
                else if (get(item, bad[i].attr))
                        cJSON_ReplaceItemInObjectCaseSensitive(item, bad[i].attr, parse(bad[i].value));
                else
                        cJSON_AddItemToObject(item, bad[i].attr, parse(bad[i].value));
                is_int(ddb_notebook_from_item(item, &out, NULL), -EBADMSG, "malformed: %s", bad[i].why);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_cell); i++) {
                _cleanup_(cJSON_Deletep) cJSON *item = parse(GOOD_ITEM), *out = NULL;
                cJSON *m = (cJSON *)get(cJSON_GetArrayItem(get(get(item, "cells"), "L"), 0), "M");

                if (streq(bad_cell[i].value, "-"))
                        cJSON_DeleteItemFromObjectCaseSensitive(m, bad_cell[i].attr);
                else
                        cJSON_ReplaceItemInObjectCaseSensitive(m, bad_cell[i].attr,
                                                               parse(bad_cell[i].value));
                is_int(ddb_notebook_from_item(item, &out, NULL), -EBADMSG, "malformed cell: %s",
                       bad_cell[i].why);
        }
}

/* What ddb_item_from_notebook() refuses: not a protocol notebook, or not storable. */
static void test_refused_notebooks(void)
{
        static const struct {
                const char *path, *value; /* a member of the notebook, or "cell.X" of its first cell */
                int error;
                const char *why;
        } cases[] = {
                { "user_id", "\"\"", -EINVAL, "an empty user_id (a key)" },
                { "id", "null", -EINVAL, "no id" },
                { "created_at", "\"\"", -EINVAL, "an empty created_at (an index key)" },
                { "revision", "1.5", -EINVAL, "a fractional revision" },
                { "revision", "-1", -EINVAL, "a negative revision" },
                { "cells", "{}", -EINVAL, "cells not a list" },
                { "name", "7", -EINVAL, "a number for a name" },
                { "ttl", "\"soon\"", -EINVAL, "a string ttl" },
                { "cell.code", "null", -EINVAL, "a cell without code" },
                { "cell.reads", "[1]", -EINVAL, "reads with a number" },
                { "cell.outputs", "[{\"mime_type\":\"a\",\"data\":1,\"metadata\":{}}]", -EINVAL,
                  "data a bare number" },
                { "cell.outputs", "[{\"mime_type\":\"a\",\"data\":[1e300],\"metadata\":{}}]", -ERANGE,
                  "1e300: beyond DynamoDB's 1E126" },
                { "cell.outputs", "[{\"mime_type\":\"a\",\"data\":[1e-200],\"metadata\":{}}]", -ERANGE,
                  "1e-200: below DynamoDB's 1E-130" },
                { "ttl", "1e200", -ERANGE, "a ttl beyond DynamoDB's range" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cJSON_Deletep) cJSON *nb = parse(DEMO), *item = NULL;
                cJSON *target = nb;
                const char *key = cases[i].path;

                if (strncmp(key, "cell.", 5) == 0) {
                        target = cJSON_GetArrayItem(get(nb, "cells"), 0);
                        key += 5;
                }
                cJSON_ReplaceItemInObjectCaseSensitive(target, key, parse(cases[i].value));
                is_int(ddb_item_from_notebook(nb, "s", &item), cases[i].error, "refused: %s", cases[i].why);
                ok(!item, "and no item made");
        }
}

/* DynamoDB nests lists and maps 32 deep. Output data sits at level 5 (cells L 1, cell M 2,
 * outputs L 3, output M 4), so data of k nested arrays reaches level 4 + k. */
static void test_nesting(void)
{
        for (int k = 28; k <= 29; k++) {
                _cleanup_(cJSON_Deletep) cJSON *nb = parse(DEMO), *item = NULL;
                char data[128] = "";
                cJSON *output;

                for (int i = 0; i < k; i++)
                        strcat(data, "[");
                for (int i = 0; i < k; i++)
                        strcat(data, "]");
                output = cJSON_GetArrayItem(get(cJSON_GetArrayItem(get(nb, "cells"), 1), "outputs"), 0);
                cJSON_ReplaceItemInObjectCaseSensitive(output, "data", parse(data));
                is_int(ddb_item_from_notebook(nb, "s", &item), k == 28 ? 0 : -ERANGE,
                       "data %d arrays deep reaches level %d: %s", k, 4 + k, k == 28 ? "stored" : "refused");
        }
}

static size_t size_of(const char *json)
{
        _cleanup_(cJSON_Deletep) cJSON *item = parse(json);

        return ddb_item_size(item);
}

static void test_sizes(void)
{
        static const struct {
                const char *item;
                size_t size;
                const char *why;
        } cases[] = {
                /* S: name bytes + value bytes. */
                { "{\"a\":{\"S\":\"xyz\"}}", 1 + 3, "S: name 1 + 3" },
                { "{\"k\":{\"S\":\"\\u00e9\\u20ac\"}}", 1 + 2 + 3,
                  "S counts UTF-8 bytes: e-acute 2, euro 3" },
                { "{\"\\u00e9\":{\"S\":\"\"}}", 2 + 0, "a name counts UTF-8 bytes too; an empty string 0" },
                { "{\"s\":{\"S\":\"\\ud83d\\ude00\"}}", 1 + 4, "an emoji is 4 bytes, not 1 character" },
                /* N: name + base-100 digit bytes + 1 exponent byte (+ 1 when negative). */
                { "{\"n\":{\"N\":\"12345\"}}", 1 + 3 + 1, "N 12345: 01|23|45, 3 + 1" },
                { "{\"n\":{\"N\":\"0\"}}", 1 + 1, "N 0: 1 byte" },
                { "{\"n\":{\"N\":\"100\"}}", 1 + 1 + 1, "N 100: trailing zeros trimmed: 01, 1 + 1" },
                { "{\"n\":{\"N\":\"1E+2\"}}", 1 + 1 + 1, "N 1E+2 is 100" },
                { "{\"n\":{\"N\":\"1.5\"}}", 1 + 2 + 1,
                  "N 1.5: 01.50, 2 + 1 (the guide's estimate says 1 + 1)" },
                { "{\"n\":{\"N\":\"-0.00120\"}}", 1 + 1 + 1 + 1,
                  "N -0.00120: .00|12, 1 + 1 + 1 for the sign" },
                { "{\"n\":{\"N\":\"0.30000000000000004\"}}", 1 + 9 + 1,
                  "N 0.30000000000000004: 17 digits, 9 + 1" },
                { "{\"n\":{\"N\":\"9007199254740991\"}}", 1 + 8 + 1,
                  "N 9007199254740991: 16 digits, 8 + 1" },
                /* BOOL, NULL: name + 1. */
                { "{\"b\":{\"BOOL\":true},\"z\":{\"NULL\":true}}", (1 + 1) + (1 + 1),
                  "BOOL and NULL: 1 byte each" },
                /* B: raw bytes. */
                { "{\"b\":{\"B\":\"AAEC\"}}", 1 + 3, "B: 3 raw bytes of AAEC" },
                { "{\"b\":{\"B\":\"AAE=\"}}", 1 + 2, "B: padding is not data" },
                /* L, M: name + 3 + per element (1 + [key] + value). */
                { "{\"l\":{\"L\":[]}}", 1 + 3, "an empty list: name + 3" },
                { "{\"m\":{\"M\":{}}}", 1 + 3, "an empty map: name + 3" },
                { "{\"l\":{\"L\":[{\"S\":\"ab\"},{\"N\":\"7\"}]}}", 1 + 3 + (1 + 2) + (1 + 1 + 1),
                  "a list: 3, then 1 + value per element" },
                { "{\"m\":{\"M\":{\"key\":{\"S\":\"v\"}}}}", 1 + 3 + (1 + 3 + 1),
                  "a map: 1 + key + value per element" },
                { "{\"m\":{\"M\":{\"l\":{\"L\":[{\"NULL\":true}]}}}}", 1 + 3 + (1 + 1 + (3 + (1 + 1))),
                  "nesting adds up" },
                /* Sets: the sum of their elements. */
                { "{\"s\":{\"SS\":[\"a\",\"bc\"]},\"t\":{\"NS\":[\"1\",\"22\"]}}", (1 + 1 + 2) + (1 + 2 + 2),
                  "sets: their elements" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t got = size_of(cases[i].item);

                ok(got == cases[i].size, "size: %s", cases[i].why);
                if (got != cases[i].size)
                        printf("#   got %zu, want %zu\n", got, cases[i].size);
        }

        /* 38 digits: 19 base-100 bytes + 1; shifted by one place: 20 + 1; negative too: capped at 21. */
        is_int(ddb_number_size("12345678901234567890123456789012345678"), 19 + 1,
               "number: 38 digits, 20 bytes");
        is_int(ddb_number_size("1.2345678901234567890123456789012345678"), 20 + 1,
               "number: 38 digits off the pair boundary, 21 bytes");
        is_int(ddb_number_size("-1.2345678901234567890123456789012345678"), 21,
               "number: never more than 21");
        is_int(ddb_number_size("0.05"), 1 + 1, "number: .05 is one digit byte");
        is_int(ddb_number_size("-1e-130"), 1 + 1 + 1, "number: -1E-130");
        is_int(ddb_number_size("abc"), 0, "number: not a number, 0");
        is_int(ddb_number_size(""), 0, "number: empty, 0");
        is_int(ddb_number_size("1e"), 0, "number: an exponent without digits, 0");
        is_int(ddb_number_size("."), 0, "number: a lone point, 0");
}

/* A small notebook's item, added up by hand. */
static const char *const SMALL =
        "{\"id\":\"n\",\"user_id\":\"u\",\"name\":null,\"db_conn_string\":null,\"revision\":1,"
        "\"created_at\":\"c\",\"updated_at\":\"d\",\"ttl\":null,\"demo_version\":null,\"cells\":[{\"id\":"
        "\"c\","
        "\"type\":\"sql\",\"code\":\"\",\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[],\"error\":null,"
        "\"reads\":[],\"writes\":[]}]}";

static void test_notebook_size(void)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = parse(SMALL), *item = NULL;

        ddb_item_from_notebook(nb, "s", &item);
        /* user_id 7+1, notebook_id 11+1, name 4+1 (NULL), db_conn_string 14+1, revision 8+(1+1),
         * created_at 10+1, updated_at 10+1, sync_id 7+1 = 80; cells 5+3 = 8 and its one cell:
         * 1 (element) + 3 (map) + id 2+1+1, type 4+3+1, code 4+0+1, stdout 6+0+1, outputs 7+3+1,
         * error 5+1+1, reads 5+3+1, writes 6+3+1 = 1 + 3 + 61 = 65: 80 + 8 + 65 = 153. */
        is_int(ddb_item_size(item), 153, "a one-cell notebook: 153 bytes, added up by hand");
}

/* Builds SMALL with code of n copies of unit (a UTF-8 sequence). */
static cJSON *notebook_with_code(const char *unit, size_t n)
{
        cJSON *nb = parse(SMALL);
        size_t len = strlen(unit);
        _cleanup_free_ char *code = malloc(len * n + 1);

        if (!nb || !code)
                return nb;
        for (size_t i = 0; i < n; i++)
                memcpy(code + len * i, unit, len);
        code[len * n] = 0;
        cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetArrayItem(get(nb, "cells"), 0), "code",
                                               cJSON_CreateString(code));
        return nb;
}

static void test_too_large(void)
{
        /* 150,000 euro signs: 150,153 characters in all, well under 409,600; in bytes 153 +
         * 450,000 = 450,153, well over. A count of characters (dynalite's) would let it through. */
        _cleanup_(cJSON_Deletep) cJSON *big = notebook_with_code("\xe2\x82\xac", 150000), *item = NULL;
        _cleanup_(cJSON_Deletep) cJSON *edge = notebook_with_code("x", DDB_MAX_ITEM_BYTES - 153),
                                       *item2 = NULL;
        _cleanup_(cJSON_Deletep) cJSON *over = notebook_with_code("x", DDB_MAX_ITEM_BYTES - 152),
                                       *item3 = NULL;

        is_int(ddb_item_from_notebook(big, "s", &item), 0, "a notebook of 150,000 euro signs marshals");
        ok(153 + 150000 < DDB_MAX_ITEM_BYTES, "by characters it would fit");
        is_int(ddb_item_size(item), 153 + 3 * 150000, "by bytes it is 450,153");
        ok(ddb_item_size(item) > DDB_MAX_ITEM_BYTES, "over the 400 KB limit");

        ddb_item_from_notebook(edge, "s", &item2);
        is_int(ddb_item_size(item2), DDB_MAX_ITEM_BYTES,
               "409,447 ASCII bytes of code: exactly 400 KB, fits");
        ddb_item_from_notebook(over, "s", &item3);
        is_int(ddb_item_size(item3), DDB_MAX_ITEM_BYTES + 1, "one more byte: over");
}

/* Every #name and :value an expression uses is defined, every one defined is used (DynamoDB
 * refuses unused ones), and no bare attribute name appears in an expression. */
static bool expressions_consistent(const cJSON *body, const char *what)
{
        static const char *const exprs[] = { "ConditionExpression", "KeyConditionExpression",
                                             "ProjectionExpression", "FilterExpression",
                                             "UpdateExpression" };
        static const char *const words[] = { "attribute_not_exists", "attribute_exists", "OR", "AND",
                                             "NOT" };
        const cJSON *names = get(body, "ExpressionAttributeNames"),
                    *values = get(body, "ExpressionAttributeValues");
        _cleanup_(cJSON_Deletep) cJSON *used = cJSON_CreateObject();
        const cJSON *e;
        bool good = true;

        for (size_t i = 0; i < ELEMENTSOF(exprs); i++) {
                const cJSON *ex = get(body, exprs[i]);
                const char *p;

                if (!cJSON_IsString(ex))
                        continue;
                for (p = ex->valuestring; *p;) {
                        char tok[64];
                        size_t n = 0;
                        bool known = false;

                        if (!(*p == '#' || *p == ':' || isalnum((unsigned char)*p) || *p == '_')) {
                                p++;
                                continue;
                        }
                        tok[n++] = *p++;
                        while ((isalnum((unsigned char)*p) || *p == '_') && n < sizeof(tok) - 1)
                                tok[n++] = *p++;
                        tok[n] = 0;
                        if (tok[0] == '#' || tok[0] == ':') {
                                known = get(tok[0] == '#' ? names : values, tok) != NULL;
                                if (!get(used, tok))
                                        cJSON_AddTrueToObject(used, tok);
                        } else
                                for (size_t w = 0; w < ELEMENTSOF(words); w++)
                                        known = known || streq(tok, words[w]);
                        if (!known) {
                                printf("#   %s: %s in %s is not defined\n", what, tok, exprs[i]);
                                good = false;
                        }
                }
        }
        /* Each placeholder defined must occur in some expression. */
        for (int k = 0; k < 2; k++) {
                const cJSON *defined = k == 0 ? names : values;

                cJSON_ArrayForEach(e, defined)
                {
                        if (get(used, e->string))
                                continue;
                        printf("#   %s: %s is defined but not used\n", what, e->string);
                        good = false;
                }
        }
        return good;
}

static const char *str_at(const cJSON *obj, const char *key)
{
        const cJSON *v = get(obj, key);

        return cJSON_IsString(v) ? v->valuestring : "(none)";
}

static void test_bodies(void)
{
        _cleanup_(cJSON_Deletep) cJSON *nb = parse(SMALL), *item = NULL, *put = NULL, *put_new = NULL,
                                       *del = NULL, *del_new = NULL, *getb = NULL, *q = NULL, *q2 = NULL,
                                       *qh = NULL, *ttl = NULL, *desc = NULL,
                                       *start = parse("{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":"
                                                      "\"n\"}}");
        _cleanup_free_ char *names = NULL, *values = NULL, *key = NULL, *ttl_text = NULL;

        ddb_item_from_notebook(nb, "s", &item);
        put = ddb_put_item_body("notebooks", item, 4, "tok-4");
        is_str(str_at(put, "TableName"), "notebooks", "PutItem names the table");
        ok(cJSON_Compare(get(put, "Item"), item, true), "PutItem carries the item");
        is_str(str_at(put, "ConditionExpression"), "#rev = :base AND #sid = :sid",
               "PutItem: still the base version (revision and token); a missing item fails");
        names = print(get(put, "ExpressionAttributeNames"));
        values = print(get(put, "ExpressionAttributeValues"));
        is_str(names, "{\"#rev\":\"revision\",\"#sid\":\"sync_id\"}", "through #placeholders");
        is_str(values, "{\":base\":{\"N\":\"4\"},\":sid\":{\"S\":\"tok-4\"}}",
               ":base is the base revision, a number, :sid its token");
        ok(expressions_consistent(put, "PutItem"), "PutItem: placeholders consistent");

        put_new = ddb_put_item_body("notebooks", item, -1, NULL);
        is_str(str_at(put_new, "ConditionExpression"), "attribute_not_exists(#nid)",
               "a first PutItem must find no item");
        ok(!get(put_new, "ExpressionAttributeValues"), "and has no :base");
        ok(expressions_consistent(put_new, "PutItem new"), "first PutItem: placeholders consistent");

        del = ddb_delete_item_body("notebooks", "u", "n", 7, NULL);
        key = print(get(del, "Key"));
        is_str(key, "{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"}}", "DeleteItem names the key");
        is_str(str_at(del, "ConditionExpression"), "#rev = :base AND attribute_not_exists(#sid)",
               "DeleteItem is conditioned on the base too (here an item written without a token)");
        ok(expressions_consistent(del, "DeleteItem"), "DeleteItem: placeholders consistent");
        del_new = ddb_delete_item_body("notebooks", "u", "n", -1, NULL);
        ok(expressions_consistent(del_new, "DeleteItem new"), "DeleteItem without base: consistent");

        getb = ddb_get_item_body("notebooks", "u", "n");
        ok(cJSON_IsTrue(get(getb, "ConsistentRead")) &&
                   cJSON_Compare(get(getb, "Key"), get(del, "Key"), true),
           "GetItem: the key, strongly consistent");
        ok(!get(getb, "ProjectionExpression"), "GetItem fetches the whole item");

        q = ddb_query_body("notebooks", "u", NULL, 100);
        is_str(str_at(q, "KeyConditionExpression"), "#uid = :uid", "Query by user_id");
        ok(get(q, "Limit") && get(q, "Limit")->valueint == 100, "Query has a Limit");
        ok(!get(q, "ExclusiveStartKey"), "the first page has no start key");
        ok(!get(q, "ProjectionExpression"), "the whole-item Query projects nothing away");
        ok(cJSON_IsTrue(get(q, "ConsistentRead")), "Query is strongly consistent");
        ok(expressions_consistent(q, "Query"), "Query: placeholders consistent");
        q2 = ddb_query_body("notebooks", "u", start, 0);
        ok(cJSON_Compare(get(q2, "ExclusiveStartKey"), start, true),
           "the next page starts at LastEvaluatedKey");
        ok(!get(q2, "Limit"), "limit 0: no Limit");

        qh = ddb_query_heads_body("notebooks", "u", start, 50);
        is_str(str_at(qh, "ProjectionExpression"), "#uid, #nid, #rev, #sid, #upd",
               "the pull Query projects the keys, revision, sync_id, updated_at");
        ok(expressions_consistent(qh, "Query heads"), "pull Query: placeholders consistent");
        ok(cJSON_Compare(get(qh, "ExclusiveStartKey"), start, true) && get(qh, "Limit")->valueint == 50,
           "pull Query pages too");

        ttl = ddb_update_ttl_body("notebooks");
        ttl_text = print(ttl);
        is_str(ttl_text,
               "{\"TableName\":\"notebooks\",\"TimeToLiveSpecification\":{\"Enabled\":true,"
               "\"AttributeName\":"
               "\"ttl\"}}",
               "UpdateTimeToLive on ttl");
        desc = ddb_describe_table_body("notebooks");
        is_str(str_at(desc, "TableName"), "notebooks", "DescribeTable");
}

static void test_item_head(void)
{
        _cleanup_(cJSON_Deletep)
                cJSON *nb = parse(SMALL),
                      *item = NULL,
                      *projected = parse("{\"user_id\":{\"S\":\"u\"},\"notebook_id\":"
                                         "{\"S\":\"n\"},\"revision\":{\"N\":\"12\"}}"),
                      *bad = parse("{\"user_id\":{\"S\":\"u\"},\"notebook_id\":{\"S\":\"n\"},"
                                   "\"revision\":{\"S\":\"12\"}}");
        DdbItemHead h;

        ddb_item_from_notebook(nb, "sid-9", &item);
        is_int(ddb_item_head(item, &h), 0, "head of a whole item");
        ok(streq(h.user_id, "u") && streq(h.notebook_id, "n") && h.revision == 1 &&
                   streq_ptr(h.sync_id, "sid-9") && streq_ptr(h.updated_at, "d"),
           "keys, revision, sync_id, updated_at");
        is_int(ddb_item_head(projected, &h), 0, "head of a projected item without sync_id");
        ok(h.revision == 12 && !h.sync_id && !h.updated_at, "absent ones are NULL");
        is_int(ddb_item_head(bad, &h), -EBADMSG, "a revision of the wrong type is refused");
        int n_attrs = cJSON_GetArraySize(item) + 1;

        is_int(ddb_item_set_parent(item, "sid-8"), 0, "name the version written on");
        is_int(ddb_item_head(item, &h), 0, "head with a parent");
        is_str(h.parent_sync_id, "sid-8", "parent_sync_id read back");
        is_int(ddb_item_set_parent(item, "sid-7"), 0, "named again");
        ddb_item_head(item, &h);
        ok(streq_ptr(h.parent_sync_id, "sid-7") && cJSON_GetArraySize(item) == n_attrs,
           "replaced, not added twice");
        is_int(ddb_item_set_parent(item, NULL), 0, "no parent");
        ddb_item_head(item, &h);
        ok(!h.parent_sync_id && !cJSON_GetObjectItem(item, "parent_sync_id"), "removed");
}

static void test_classify(void)
{
        static const struct {
                long status;
                const char *body;
                DdbErrorClass cls;
                const char *type;
        } cases[] = {
                { 200, "{}", DDB_OK, "" },
                { 400,
                  "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\","
                  "\"message\":\"The conditional request failed\"}",
                  DDB_CONDITIONAL_FAILED, "ConditionalCheckFailedException" },
                { 400,
                  "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\"}",
                  DDB_THROTTLING, "ProvisionedThroughputExceededException" },
                { 400, "{\"__type\":\"com.amazon.coral.availability#ThrottlingException\"}", DDB_THROTTLING,
                  "ThrottlingException" },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#RequestLimitExceeded\"}",
                  DDB_THROTTLING, "RequestLimitExceeded" },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TooManyRequestsException\"}",
                  DDB_THROTTLING, "TooManyRequestsException" },
                { 400, "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"message\":\"bad\"}",
                  DDB_VALIDATION, "ValidationException" },
                { 400, "{\"__type\":\"com.amazon.coral.service#SerializationException\"}", DDB_VALIDATION,
                  "SerializationException" },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException\"}",
                  DDB_VALIDATION, "ResourceNotFoundException" },
                { 400,
                  "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                  "ItemCollectionSizeLimitExceededException\"}",
                  DDB_VALIDATION, "ItemCollectionSizeLimitExceededException" },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ResourceInUseException\"}",
                  DDB_VALIDATION, "ResourceInUseException" },
                { 400, "{\"__type\":\"com.amazon.coral.service#UnrecognizedClientException\"}", DDB_AUTH,
                  "UnrecognizedClientException" },
                { 400, "{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\"}", DDB_AUTH,
                  "InvalidSignatureException" },
                { 400, "{\"__type\":\"com.amazon.coral.service#AccessDeniedException\"}", DDB_AUTH,
                  "AccessDeniedException" },
                { 400, "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\"}", DDB_AUTH,
                  "ExpiredTokenException" },
                { 403, "{\"__type\":\"com.amazon.coral.service#MissingAuthenticationTokenException\"}",
                  DDB_AUTH, "MissingAuthenticationTokenException" },
                { 403, "{\"__type\":\"MissingAuthenticationToken\"}", DDB_AUTH,
                  "MissingAuthenticationToken" },
                { 500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}",
                  DDB_RETRYABLE, "InternalServerError" },
                { 503, "{\"__type\":\"com.amazon.coral.availability#ServiceUnavailable\"}", DDB_RETRYABLE,
                  "ServiceUnavailable" },
                { 400, "{\"__type\":\"com.amazon.coral.service#RequestTimeout\"}", DDB_RETRYABLE,
                  "RequestTimeout" },
                { 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TransactionConflictException\"}",
                  DDB_RETRYABLE, "TransactionConflictException" },
                /* No type, or one not known: the message, then the status. */
                { 503, "<html><body>Service Unavailable</body></html>", DDB_RETRYABLE, "" },
                { 502, "", DDB_RETRYABLE, "" },
                { 504, NULL, DDB_RETRYABLE, "" },
                { 429, "", DDB_THROTTLING, "" },
                { 403, "", DDB_AUTH, "" },
                { 408, "", DDB_RETRYABLE, "" },
                { 404, "Not Found", DDB_VALIDATION, "" },
                { 400, "{\"__type\":\"com.example#SomethingNew\"}", DDB_VALIDATION, "SomethingNew" },
                { 500, "{\"__type\":\"com.example#SomethingNew\"}", DDB_RETRYABLE, "SomethingNew" },
                { 400, "{\"message\":\"Rate exceeded\"}", DDB_THROTTLING, "" },
                { 400, "{\"Message\":\"The security token included in the request is invalid.\"}", DDB_AUTH,
                  "" },
                { 400, "{\"code\":\"ThrottlingException\"}", DDB_THROTTLING, "ThrottlingException" },
                { 400, "{\"__type\":\"ValidationException:http://internal.amazon.com/coral/validate/\"}",
                  DDB_VALIDATION, "ValidationException" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *body = cases[i].body;
                DdbError e;

                ddb_error_parse(cases[i].status, body, body ? strlen(body) : 0, &e);
                ok(e.cls == cases[i].cls && streq(e.type, cases[i].type), "%ld %.70s: %s", cases[i].status,
                   body ? body : "(no body)", ddb_error_class_to_string(cases[i].cls));
                if (e.cls != cases[i].cls || !streq(e.type, cases[i].type))
                        printf("#   got %s, type \"%s\"\n", ddb_error_class_to_string(e.cls), e.type);
                is_int(ddb_error_classify(cases[i].status, body, body ? strlen(body) : 0), cases[i].cls,
                       "ddb_error_classify agrees");
        }
}

static void parse_text(long status, const char *body, DdbError *e)
{
        ddb_error_parse(status, body, strlen(body), e);
}

static void test_error_details(void)
{
        /* The body is a buffer with a length: what follows it is not read. */
        static const char buf[] =
                "{\"__type\":\"x#ConditionalCheckFailedException\",\"message\":\"gone\"}GARBAGE";
        char long_message[600];
        char body[700];
        DdbError e;
        size_t n;

        ddb_error_parse(400, buf, strlen(buf) - strlen("GARBAGE"), &e);
        ok(e.cls == DDB_CONDITIONAL_FAILED && streq(e.message, "gone"),
           "only len bytes of the body are read");
        ddb_error_parse(400, buf, strlen(buf), &e);
        ok(e.cls == DDB_VALIDATION && streq(e.message, "HTTP 400"),
           "trailing garbage: not JSON, the status decides");

        parse_text(
                400,
                "{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\",\"message\":\"Signature "
                "expired: 20260101T000000Z is now earlier than 20260101T000500Z\"}",
                &e);
        ok(e.cls == DDB_AUTH && e.clock_skew, "Signature expired: authentication, clock skew");
        parse_text(400, "{\"__type\":\"x#AccessDeniedException\",\"message\":\"no\"}", &e);
        ok(e.cls == DDB_AUTH && !e.clock_skew && streq(e.message, "no"), "access denied: no clock skew");
        parse_text(500, "", &e);
        is_str(e.message, "HTTP 500", "no message: the status says what happened");
        parse_text(400, "{\"__type\":\"x#ValidationException\"}", &e);
        is_str(e.message, "ValidationException (HTTP 400)", "no message: the type and status");
        parse_text(400, "{\"__type\":\"x#ValidationException\",\"message\":\"a\\nb\\u0007c\"}", &e);
        is_str(e.message, "a b c", "control characters in a message become spaces");
        parse_text(200, "{\"__type\":\"x#ValidationException\"}", &e);
        ok(e.cls == DDB_OK && !e.type[0] && !e.message[0], "a 2xx is a success, whatever its body");

        /* A message longer than the buffer is cut at a character boundary. */
        for (n = 0; n + 2 < sizeof(long_message) - 1; n += 2)
                memcpy(long_message + n, "\xc3\xa9", 2);
        long_message[n] = 0;
        snprintf(body, sizeof(body), "{\"__type\":\"x#ValidationException\",\"message\":\"%s\"}",
                 long_message);
        /* Offset DDB_ERROR_MESSAGE_MAX - 1 = 255 is odd: the 2-byte character there must go whole. */
        ddb_error_parse(400, body, strlen(body), &e);
        is_int(strlen(e.message), DDB_ERROR_MESSAGE_MAX - 2,
               "a long message is cut before a split character");
        ok(((unsigned char)e.message[strlen(e.message) - 1] & 0xc0) == 0x80 &&
                   (unsigned char)e.message[strlen(e.message) - 2] == 0xc3,
           "ending on a whole character");
}

/* A DescribeTable result for the seed's table, as DynamoDB returns it (with the fields it adds). */
static const char *const DESCRIBED =
        "{\"Table\":{\"TableName\":\"notebooks\",\"TableStatus\":\"ACTIVE\",\"ItemCount\":0,"
        "\"AttributeDefinitions\":[{\"AttributeName\":\"created_at\",\"AttributeType\":\"S\"},"
        "{\"AttributeName\":\"notebook_id\",\"AttributeType\":\"S\"},{\"AttributeName\":\"user_id\","
        "\"AttributeType\":"
        "\"S\"}],\"KeySchema\":[{\"AttributeName\":\"user_id\",\"KeyType\":\"HASH\"},{\"AttributeName\":"
        "\"notebook_id\",\"KeyType\":\"RANGE\"}],\"BillingModeSummary\":{\"BillingMode\":\"PAY_PER_"
        "REQUEST\"},"
        "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"NotebooksByUserCreatedIndex\",\"KeySchema\":[{"
        "\"AttributeName\":\"user_id\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"created_at\",\"KeyType\":"
        "\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"updated_at\","
        "\"name\"]},"
        "\"IndexStatus\":\"ACTIVE\"},{\"IndexName\":\"NotebookByIdIndex\",\"KeySchema\":[{\"AttributeName\":"
        "\"notebook_id\",\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"},\"IndexStatus\":"
        "\"ACTIVE\"}]}}";

static cJSON *find_index(cJSON *t, const char *name)
{
        cJSON *g;

        cJSON_ArrayForEach(g, get(t, "GlobalSecondaryIndexes"))
        {
                if (streq(str_at(g, "IndexName"), name))
                        return g;
        }
        return NULL;
}

static void test_create_table(void)
{
        _cleanup_(cJSON_Deletep) cJSON *ct = ddb_create_table_body("notebooks"),
                                       *described = cJSON_CreateObject();
        _cleanup_free_ char *keys = NULL, *defs = NULL, *gsi1 = NULL, *gsi2 = NULL, *report = (char *)1;

        keys = print(get(ct, "KeySchema"));
        is_str(keys,
               "[{\"AttributeName\":\"user_id\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"notebook_id\","
               "\"KeyType\":\"RANGE\"}]",
               "CreateTable: PK user_id, SK notebook_id");
        defs = print(get(ct, "AttributeDefinitions"));
        is_str(defs,
               "[{\"AttributeName\":\"user_id\",\"AttributeType\":\"S\"},{\"AttributeName\":\"notebook_id\","
               "\"AttributeType\":\"S\"},{\"AttributeName\":\"created_at\",\"AttributeType\":\"S\"}]",
               "CreateTable: every key attribute a string");
        gsi1 = print(find_index(ct, "NotebookByIdIndex"));
        is_str(gsi1,
               "{\"IndexName\":\"NotebookByIdIndex\",\"KeySchema\":[{\"AttributeName\":\"notebook_id\","
               "\"KeyType\":"
               "\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}",
               "CreateTable: NotebookByIdIndex by notebook_id, ALL");
        gsi2 = print(find_index(ct, "NotebooksByUserCreatedIndex"));
        is_str(gsi2,
               "{\"IndexName\":\"NotebooksByUserCreatedIndex\",\"KeySchema\":[{\"AttributeName\":\"user_"
               "id\","
               "\"KeyType\":\"HASH\"},{\"AttributeName\":\"created_at\",\"KeyType\":\"RANGE\"}],"
               "\"Projection\":{"
               "\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"name\",\"updated_at\"]}}",
               "CreateTable: NotebooksByUserCreatedIndex by user_id, created_at, INCLUDE name, updated_at");
        is_str(str_at(ct, "BillingMode"), "PAY_PER_REQUEST", "CreateTable: on demand");
        /* What we create passes our own check. */
        cJSON_AddItemToObject(described, "Table", cJSON_Duplicate(ct, true));
        is_int(ddb_table_check(described, &report), 0, "the table CreateTable asks for passes the check");
        ok(report == NULL, "with no report");
        {
                _cleanup_(cJSON_Deletep) cJSON *pt = ddb_create_parts_table_body("notebooks-parts"),
                                               *pd = cJSON_CreateObject();
                _cleanup_free_ char *preport = NULL, *wrong = NULL;

                cJSON_AddItemToObject(pd, "Table", cJSON_Duplicate(pt, true));
                is_int(ddb_parts_table_check(pd, &preport), 0,
                       "the parts table CreateTable asks for passes its check");
                ok(ddb_parts_table_check(described, &wrong) == 4 && wrong &&
                           strstr(wrong, "parts table: the partition (HASH) key is user_id; want owner"),
                   "the notebooks table is no parts table: %s", wrong ? wrong : "");
        }
}

static int check(const char *json, char **report)
{
        _cleanup_(cJSON_Deletep) cJSON *v = parse(json);

        return ddb_table_check(v, report);
}

/* DESCRIBED with one substring replaced. */
static char *described_with(const char *from, const char *to)
{
        const char *at = strstr(DESCRIBED, from);
        char *s;

        if (!at || asprintf(&s, "%.*s%s%s", (int)(at - DESCRIBED), DESCRIBED, to, at + strlen(from)) < 0)
                return NULL;
        return s;
}

static void test_table_check(void)
{
        _cleanup_free_ char *r0 = (char *)1, *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL, *r5 = NULL,
                            *r6 = NULL;
        _cleanup_free_ char *no_gsi = described_with(
                ",{\"IndexName\":\"NotebookByIdIndex\",\"KeySchema\":[{\"AttributeName\":\"notebook_id\","
                "\"KeyType\":"
                "\"HASH\"}],\"Projection\":{\"ProjectionType\":\"ALL\"},\"IndexStatus\":\"ACTIVE\"}",
                "");
        _cleanup_free_ char *wrong_type =
                described_with("{\"AttributeName\":\"user_id\",\"AttributeType\":\"S\"}",
                               "{\"AttributeName\":\"user_id\",\"AttributeType\":\"N\"}");
        _cleanup_free_ char *keys_only = described_with(
                "{\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"updated_at\",\"name\"]}",
                "{\"ProjectionType\":\"KEYS_ONLY\"}");
        _cleanup_free_ char *partial = described_with("[\"updated_at\",\"name\"]", "[\"name\",\"owner\"]");
        _cleanup_free_ char *wider = described_with(
                "{\"ProjectionType\":\"INCLUDE\",\"NonKeyAttributes\":[\"updated_at\",\"name\"]}",
                "{\"ProjectionType\":\"ALL\"}");

        is_int(check(DESCRIBED, &r0), 0, "a DescribeTable of the seed's table fits");
        ok(r0 == NULL, "with nothing to report");

        is_int(check(no_gsi, &r1), 1, "a missing GSI is one mismatch");
        ok(r1 && strstr(r1, "NotebookByIdIndex") && strstr(r1, "missing"), "named in the report: %s",
           r1 ? r1 : "(none)");

        is_int(check(wrong_type, &r2), 1, "a key of the wrong type is one mismatch");
        ok(r2 && strstr(r2, "user_id") && strstr(r2, "type N; want S"), "named in the report: %s",
           r2 ? r2 : "(none)");

        is_int(check(keys_only, &r3), 2, "a KEYS_ONLY index lacks both name and updated_at");
        is_int(check(partial, &r4), 1, "an INCLUDE without updated_at is one mismatch");
        ok(r4 && strstr(r4, "does not project updated_at"), "named: %s", r4 ? r4 : "(none)");
        is_int(check(wider, NULL), 0, "an index projecting ALL serves as well");

        /* Every mismatch is listed: the table's keys, and both indexes gone. */
        is_int(check("{\"Table\":{\"AttributeDefinitions\":[{\"AttributeName\":\"notebook_id\","
                     "\"AttributeType\":\"S\"}],\"KeySchema\":[{\"AttributeName\":\"notebook_id\","
                     "\"KeyType\":\"HASH\"}]}}",
                     &r5),
               5, "no indexes, the wrong table key, no user_id: five mismatches");
        for (const char *line = r5; line && *line;
             line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
                printf("#   %.*s\n", (int)strcspn(line, "\n"), line);
        ok(r5 && strstr(r5, "table: the partition (HASH) key is notebook_id; want user_id\n") &&
                   strstr(r5, "table: no sort (RANGE) key; want notebook_id\n") &&
                   strstr(r5, "index NotebookByIdIndex: missing") &&
                   strstr(r5, "index NotebooksByUserCreatedIndex: missing") &&
                   strstr(r5, "attribute user_id: no definition"),
           "each one on its own line");
        is_int(check("{\"TableDescription\":{}}", &r6), -EBADMSG, "not a table description: refused");
        is_int(check("{\"Table\":{\"TableName\":\"x\"}}", NULL), -EBADMSG, "a table without keys: refused");
}

int main(void)
{
        test_round_trip("demo", DEMO);
        test_round_trip("edge cases", EDGES);
        test_exact_numbers();
        test_shape();
        test_from_item();
        test_malformed();
        test_refused_notebooks();
        test_nesting();
        test_sizes();
        test_notebook_size();
        test_too_large();
        test_bodies();
        test_item_head();
        test_classify();
        test_error_details();
        test_create_table();
        test_table_check();
        return tap_done();
}
