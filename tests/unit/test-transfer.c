/* SPDX-License-Identifier: MIT */
/* transfer: the files notebookctl import reads and export writes (doc/formats.md), case by case:
 * the app's layout, nbformat's cell ids, SQL cells, outputs by MIME type, errors, what a bad file
 * is told, and round trips. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl.h"
#include "tap.h"
#include "transfer.h"
#include "util.h"

/* notebookctl.c's; transfer.c uses it for out-of-memory and file errors only. */
int local_error(const char *fmt, ...)
{
        (void)fmt;
        return EXIT_DAEMON;
}

static inline void cjson_deletep(cJSON **p)
{
        cJSON_Delete(*p);
}

static cJSON *parse_ok(const char *text, const char *path, const char *user, unsigned *text_cells)
{
        cJSON *p = NULL;
        char *reason = NULL;
        int r = transfer_parse(text, strlen(text), path, user, &p, text_cells, &reason);

        if (r < 0) {
                printf("# parse failed: %s\n", reason ? reason : "(no reason)");
                free(reason);
                return NULL;
        }
        return p;
}

/* The reason a bad file gets, or NULL when it parses. */
static char *parse_reason(const char *text, size_t len)
{
        cJSON *p = NULL;
        char *reason = NULL;

        if (transfer_parse(text, len, "bad.json", NULL, &p, NULL, &reason) == 0) {
                cJSON_Delete(p);
                return NULL;
        }
        return reason;
}

static void reason_has(const char *text, const char *needle, const char *desc)
{
        _cleanup_free_ char *r = parse_reason(text, strlen(text));

        ok(r && strstr(r, needle), "bad file, %s: \"%s\"", desc, r ? r : "(parsed)");
}

static const cJSON *cell_at(const cJSON *p, int i)
{
        return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "cells"), i);
}

static const char *str_of(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *notebook(const char *cells_json)
{
        _cleanup_free_ char *text = NULL;

        if (asprintf(&text,
                     "{\"id\":\"nb\",\"user_id\":\"u\",\"name\":\"N\",\"db_conn_string\":null,\"ttl\":7,"
                     "\"revision\":3,\"demo_version\":null,\"cells\":%s}",
                     cells_json) < 0)
                return NULL;
        return cJSON_Parse(text);
}

#define CELL(id, type, code, extra)                                 \
        "{\"id\":\"" id "\",\"type\":\"" type "\",\"code\":\"" code \
        "\",\"status\":\"idle\",\"stdout\":\"\","                   \
        "\"outputs\":[],\"error\":null,\"reads\":[],\"writes\":[]" extra "}"

static void test_app_layout(void)
{
        _cleanup_(cjson_deletep) cJSON *nb = notebook("[]");
        _cleanup_free_ char *text = transfer_export_text(nb, EXPORT_JSON);

        is_str(text,
               "{\n  \"id\": \"nb\",\n  \"user_id\": \"u\",\n  \"name\": \"N\",\n  \"db_conn_string\": "
               "null,\n"
               "  \"cells\": [],\n  \"revision\": 3\n}\n",
               "app JSON: storage.py's fields only, in its order, json.dump(indent=2)'s layout");
}

static void test_ipynb_cells(void)
{
        _cleanup_(cjson_deletep) cJSON *nb = notebook(
                "[" CELL("ok_id-1", "sql", "SELECT 1", "") "," CELL("bad id", "python", "x", "") "," CELL(
                        "ok_id-1", "python", "y", "") "," CELL("cell-4", "python", "z", "") "]");
        _cleanup_free_ char *text = transfer_export_text(nb, EXPORT_IPYNB);
        _cleanup_(cjson_deletep) cJSON *j = text ? cJSON_Parse(text) : NULL;
        const cJSON *cells = cJSON_GetObjectItemCaseSensitive(j, "cells");

        is_int(cJSON_GetObjectItemCaseSensitive(j, "nbformat")->valueint, 4, "ipynb: nbformat 4");
        is_int(cJSON_GetObjectItemCaseSensitive(j, "nbformat_minor")->valueint, 5, "ipynb: minor 5");
        is_str(str_of(cJSON_GetArrayItem(cells, 0), "id"), "ok_id-1", "ipynb: a valid id is kept");
        is_str(str_of(cJSON_GetArrayItem(cells, 1), "id"), "cell-2", "ipynb: an invalid id becomes cell-N");
        is_str(str_of(cJSON_GetArrayItem(cells, 2), "id"), "cell-3", "ipynb: a repeated id becomes cell-N");
        is_str(str_of(cJSON_GetArrayItem(cells, 3), "id"), "cell-4", "ipynb: cell-4 is its own");
        is_str(str_of(cJSON_GetArrayItem(cells, 0), "source"), "%%sql\nSELECT 1",
               "ipynb: SQL as a %%sql cell");
        is_str(str_of(cJSON_GetArrayItem(cells, 1), "cell_type"), "code", "ipynb: code cells");
        is_str(str_of(cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cells, 1), "metadata"),
                              "notebookd"),
                      "id"),
               "bad id", "ipynb: the id itself in metadata notebookd");
}

static void test_ipynb_outputs(void)
{
        _cleanup_(cjson_deletep) cJSON *nb = notebook(
                "[{\"id\":\"c\",\"type\":\"python\",\"code\":\"\",\"status\":\"error\",\"stdout\":"
                "\"out\\n\","
                "\"outputs\":[{\"mime_type\":\"text/plain\",\"data\":{\"a\":1},\"metadata\":{}},"
                "{\"mime_type\":\"application/vnd.x+json\",\"data\":{\"b\":2},\"metadata\":{\"m\":1}},"
                "{\"mime_type\":\"image/png\",\"data\":\"iVBO\",\"metadata\":{}}],"
                "\"error\":\"Traceback (most recent call last):\\nKeyError: "
                "'x'\",\"reads\":[],\"writes\":[]},"
                "{\"id\":\"d\",\"type\":\"python\",\"code\":\"\",\"status\":\"error\",\"stdout\":\"\","
                "\"outputs\":[],\"error\":\"it broke\",\"reads\":[],\"writes\":[]}]");
        _cleanup_free_ char *text = transfer_export_text(nb, EXPORT_IPYNB);
        _cleanup_(cjson_deletep) cJSON *j = text ? cJSON_Parse(text) : NULL, *back = NULL;
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cells"), 0);
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(c0, "outputs");
        const cJSON *err1 = cJSON_GetArrayItem(
                cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cells"), 1), "outputs"),
                0);
        _cleanup_free_ char *plain = NULL;

        is_int(cJSON_GetArraySize(outs), 5, "outputs: stream, three display_data, error");
        is_str(str_of(cJSON_GetArrayItem(outs, 0), "output_type"), "stream", "stdout: a stream first");
        is_str(str_of(cJSON_GetArrayItem(outs, 0), "text"), "out\n", "stdout: its text");
        plain = cJSON_PrintUnformatted(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outs, 1), "data"));
        is_str(plain, "{\"text/plain\":\"{\\\"a\\\":1}\"}", "structured data under a text type: JSON text");
        ok(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outs, 2), "data"),
                   "application/vnd.x+json")),
           "a +json type: a JSON value");
        is_str(str_of(cJSON_GetArrayItem(outs, 4), "ename"), "KeyError", "error: ename from the last line");
        is_str(str_of(cJSON_GetArrayItem(outs, 4), "evalue"), "'x'", "error: evalue from the last line");
        is_str(str_of(err1, "ename"), "Error", "error without a name: Error");
        is_str(str_of(err1, "evalue"), "it broke", "error without a name: the line as evalue");

        back = text ? parse_ok(text, "x.ipynb", NULL, NULL) : NULL;
        ok(back && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "cells"),
                                 cJSON_GetObjectItemCaseSensitive(nb, "cells"), true),
           "ipynb: cells parse back exactly");
        ok(back && cJSON_GetObjectItemCaseSensitive(back, "ttl")->valueint == 7, "ipynb: ttl back");
        is_str(back ? str_of(back, "user_id") : NULL, "u", "ipynb: user_id back");
}

static void test_app_parse(void)
{
        _cleanup_(cjson_deletep) cJSON *p =
                parse_ok("{\"id\":\"legacy\",\"cells\":[{\"id\":\"a\",\"type\":\"sql\",\"code\":\"q\","
                         "\"reads\":[\"x\",\"y\",\"x\"],\"outputs\":[{\"mime_type\":\"text/"
                         "plain\",\"data\":\"1\"}]}]}",
                         "legacy.json", "bob", NULL);
        _cleanup_(cjson_deletep) cJSON *q = parse_ok("{\"id\":\"legacy\"}", "legacy.json", NULL, NULL);
        _cleanup_(cjson_deletep) cJSON *own =
                parse_ok("{\"id\":\"o\",\"user_id\":\"carol\"}", "o.json", "bob", NULL);
        const cJSON *c = p ? cell_at(p, 0) : NULL;
        _cleanup_free_ char *reads =
                c ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "reads")) : NULL;
        _cleanup_free_ char *outs =
                c ? cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "outputs")) : NULL;

        is_str(p ? str_of(p, "user_id") : NULL, "bob", "legacy file: --user");
        ok(q && !cJSON_GetObjectItemCaseSensitive(q, "user_id"),
           "legacy file, no --user: the daemon's default");
        is_str(own ? str_of(own, "user_id") : NULL, "carol", "a file's own user_id wins over --user");
        is_str(c ? str_of(c, "status") : NULL, "idle", "status defaults to idle");
        is_str(c ? str_of(c, "stdout") : NULL, "", "stdout defaults to \"\"");
        ok(c && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "error")), "error defaults to null");
        is_str(reads, "[\"x\",\"y\"]", "reads: repeated names dropped, first kept");
        is_str(outs, "[{\"mime_type\":\"text/plain\",\"data\":\"1\",\"metadata\":{}}]",
               "output metadata: {}");
        ok(p && !cJSON_GetObjectItemCaseSensitive(p, "ttl"), "the app's format has no ttl");
}

static void test_bad_files(void)
{
        static const char nul[] = "{\"id\":\"a\"}\0x";
        _cleanup_free_ char *r = parse_reason(nul, sizeof(nul) - 1);

        ok(r && strstr(r, "NUL"), "bad file, a NUL byte: \"%s\"", r ? r : "(parsed)");
        reason_has("{\"id\":", "not JSON", "truncated");
        reason_has("{\"id\":\"a\"} x", "text after the value", "trailing text");
        reason_has("[]", "not an object", "an array");
        reason_has("{\"cells\":[]}", "\"id\" is missing", "no id");
        reason_has("{\"id\":\"a\",\"id\":\"b\"}", "\"id\" is repeated", "a repeated key");
        reason_has("{\"id\":\"a\",\"cells\":[{\"id\":\"c\",\"type\":\"markdown\",\"code\":\"\"}]}",
                   "cells[0]: \"type\" is \"markdown\", not python or sql",
                   "a markdown cell in the app's format");
        reason_has("{\"id\":\"a\",\"cells\":[{\"id\":\"c\",\"type\":\"python\",\"code\":\"\"},"
                   "{\"id\":\"d\",\"type\":\"python\",\"code\":1}]}",
                   "cells[1]: \"code\" is not a string", "code not a string");
        reason_has("{\"id\":\"a\",\"cells\":[{\"id\":\"c\",\"type\":\"python\",\"code\":\"\",\"outputs\":[{"
                   "\"mime_type\":\"text/plain\",\"data\":1}]}]}",
                   "\"data\" is not a string, an object or a list", "output data a number");
        reason_has("{\"nbformat\":3,\"cells\":[]}", "only nbformat 4", "nbformat 3");
        reason_has("{\"nbformat\":4,\"cells\":[{\"cell_type\":\"heading\",\"source\":\"\"}]}",
                   "not code, markdown or raw", "an unknown cell type");
}

static void test_jupyter_parse(void)
{
        unsigned text_cells = 0;
        _cleanup_(cjson_deletep) cJSON *p = parse_ok(
                "{\"nbformat\":4,\"nbformat_minor\":2,\"metadata\":{},\"cells\":["
                "{\"cell_type\":\"markdown\",\"metadata\":{},\"source\":[\"# T\\n\",\"\\n\",\"x\"]},"
                "{\"cell_type\":\"code\",\"metadata\":{},\"execution_count\":1,\"source\":\"%%sql\\nSELECT "
                "2\","
                "\"outputs\":[]},"
                "{\"cell_type\":\"code\",\"metadata\":{},\"execution_count\":null,\"source\":\"%%sql "
                "x\\ny\","
                "\"outputs\":[]}]}",
                "dir/My Nb.ipynb", NULL, &text_cells);
        const cJSON *c0 = p ? cell_at(p, 0) : NULL, *c1 = p ? cell_at(p, 1) : NULL,
                    *c2 = p ? cell_at(p, 2) : NULL;

        is_str(p ? str_of(p, "notebook_id") : NULL, "My Nb",
               "no notebookd metadata: the id from the file name");
        is_str(p ? str_of(p, "name") : NULL, "My Nb", "and the name");
        is_int(text_cells, 1, "one text cell counted");
        is_str(c0 ? str_of(c0, "code") : NULL, "# # T\n#\n# x", "markdown: a comment cell");
        is_str(c0 ? str_of(c0, "id") : NULL, "cell-1", "no nbformat id: cell-N");
        is_str(c1 ? str_of(c1, "type") : NULL, "sql", "%%sql first line: a SQL cell");
        is_str(c1 ? str_of(c1, "code") : NULL, "SELECT 2", "without the magic line");
        is_str(c1 ? str_of(c1, "status") : NULL, "success", "executed: success");
        is_str(c2 ? str_of(c2, "type") : NULL, "python", "%%sql with arguments: left a Python cell");
        is_str(c2 ? str_of(c2, "code") : NULL, "%%sql x\ny", "with its code whole");
}

int main(void)
{
        test_app_layout();
        test_ipynb_cells();
        test_ipynb_outputs();
        test_app_parse();
        test_bad_files();
        test_jupyter_parse();
        return tap_done();
}
