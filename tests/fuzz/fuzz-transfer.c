/* SPDX-License-Identifier: MIT */
/* notebookctl import's file parsers (the app's JSON and nbformat 4) and export against them:
 * whatever a file holds, parsing it gives either a reason or a notebook whose cells have every
 * field with its type; and such a notebook, exported in either format and parsed again, comes back
 * the same (its ttl through .ipynb only: the app's format has none). */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fuzz.h"
#include "nb-limits.h"
#include "transfer.h"
#include "util.h"

/* notebookctl.c's; transfer.c reports only out-of-memory and file errors with it. */
int local_error(const char *fmt, ...)
{
        (void)fmt;
        return EXIT_DAEMON;
}

static bool is_string_or_null(const cJSON *v)
{
        return cJSON_IsString(v) || cJSON_IsNull(v);
}

static bool is_list_of_strings(const cJSON *v)
{
        const cJSON *s;

        if (!cJSON_IsArray(v))
                return false;
        cJSON_ArrayForEach(s, v) if (!cJSON_IsString(s)) return false;
        return true;
}

static void check_cell(const cJSON *c)
{
        static const char *const keys[] = { "id",      "type",  "code",  "status", "stdout",
                                            "outputs", "error", "reads", "writes" };
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(c, "status"), *o;

        fuzz_check(cJSON_IsObject(c) && cJSON_GetArraySize(c) == (int)ELEMENTSOF(keys));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                fuzz_check(cJSON_GetObjectItemCaseSensitive(c, keys[i]));
        fuzz_check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "id")));
        fuzz_check(cJSON_IsString(type) &&
                   (streq(type->valuestring, "python") || streq(type->valuestring, "sql")));
        fuzz_check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "code")));
        fuzz_check(cJSON_IsString(status));
        fuzz_check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "stdout")));
        fuzz_check(is_string_or_null(cJSON_GetObjectItemCaseSensitive(c, "error")));
        fuzz_check(is_list_of_strings(cJSON_GetObjectItemCaseSensitive(c, "reads")));
        fuzz_check(is_list_of_strings(cJSON_GetObjectItemCaseSensitive(c, "writes")));
        fuzz_check(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "outputs")));
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(c, "outputs"))
        {
                const cJSON *mime = cJSON_GetObjectItemCaseSensitive(o, "mime_type");
                const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");

                fuzz_check(cJSON_IsObject(o) && cJSON_GetArraySize(o) == 3);
                fuzz_check(cJSON_IsString(mime) && *mime->valuestring);
                fuzz_check(cJSON_IsString(data) || cJSON_IsObject(data) || cJSON_IsArray(data));
                fuzz_check(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "metadata")));
        }
}

static int depth(const cJSON *v)
{
        int d = 0;

        for (const cJSON *c = v->child; c; c = c->next)
                d = MAX(d, depth(c));
        return d + 1;
}

/* The notebook as notebook.get would give it back after the create. */
static cJSON *as_notebook(const cJSON *p)
{
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(p, "user_id");
        const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(p, "ttl");
        cJSON *nb = cJSON_CreateObject();

        if (!nb)
                return NULL;
        cJSON_AddItemToObject(nb, "id",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "notebook_id"), true));
        cJSON_AddItemToObject(nb, "user_id", uid ? cJSON_Duplicate(uid, true) : cJSON_CreateString("u"));
        cJSON_AddItemToObject(nb, "name",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "name"), true));
        cJSON_AddItemToObject(nb, "db_conn_string",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "db_conn_string"), true));
        cJSON_AddItemToObject(nb, "ttl", ttl ? cJSON_Duplicate(ttl, true) : cJSON_CreateNull());
        cJSON_AddNumberToObject(nb, "revision", 1);
        cJSON_AddItemToObject(nb, "cells",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "cells"), true));
        return nb;
}

static bool same(const cJSON *a, const cJSON *b, const char *key)
{
        return cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, key),
                             cJSON_GetObjectItemCaseSensitive(b, key), true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cJSON *p = NULL, *nb, *cells;
        const cJSON *c;
        char *reason = NULL;
        int r;

        r = transfer_parse((const char *)data, size, "dir/fuzz input.ipynb", size % 2 ? "someone" : NULL, &p,
                           NULL, &reason);
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                fuzz_check(r == -EINVAL && reason && *reason);
                free(reason);
                return 0;
        }
        fuzz_check(p && !reason);
        fuzz_check(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "notebook_id")));
        fuzz_check(is_string_or_null(cJSON_GetObjectItemCaseSensitive(p, "name")));
        fuzz_check(is_string_or_null(cJSON_GetObjectItemCaseSensitive(p, "db_conn_string")));
        cells = cJSON_GetObjectItemCaseSensitive(p, "cells");
        fuzz_check(cJSON_IsArray(cells));
        cJSON_ArrayForEach(c, cells) check_cell(c);

        /* The daemon takes no deeper request than MAX_JSON_DEPTH, so no stored notebook is deeper;
         * the formats nest a notebook's values a few levels further. */
        nb = depth(p) + 8 < MAX_JSON_DEPTH ? as_notebook(p) : NULL;
        for (int f = 0; nb && f < 2; f++) {
                ExportFormat format = f ? EXPORT_IPYNB : EXPORT_JSON;
                _cleanup_free_ char *text = transfer_export_text(nb, format);
                cJSON *back = NULL;

                if (!text)
                        break;
                r = transfer_parse(text, strlen(text), "exported", NULL, &back, NULL, &reason);
                if (r == -ENOMEM)
                        break;
                if (r < 0)
                        fuzz_fail(__FILE__, __LINE__, reason);
                fuzz_check(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "notebook_id"),
                                         cJSON_GetObjectItemCaseSensitive(nb, "id"), true));
                fuzz_check(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "user_id"),
                                         cJSON_GetObjectItemCaseSensitive(nb, "user_id"), true));
                fuzz_check(same(back, p, "name") && same(back, p, "db_conn_string"));
                fuzz_check(same(back, p, "cells"));
                if (format == EXPORT_IPYNB)
                        fuzz_check(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(back, "ttl"),
                                                 cJSON_GetObjectItemCaseSensitive(nb, "ttl"), true));
                cJSON_Delete(back);
        }
        cJSON_Delete(nb);
        cJSON_Delete(p);
        return 0;
}
