/* SPDX-License-Identifier: MIT */

#include <stdio.h>
#include <string.h>

#include "demo.h"
#include "graph.h"
#include "tap.h"
#include "util.h"

static inline void cJSON_Deletep(cJSON **p)
{
        if (*p)
                cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

static const char *string_of(const cJSON *cell, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cell, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_name_list(const cJSON *a)
{
        const cJSON *v, *w;

        if (!cJSON_IsArray(a))
                return false;
        cJSON_ArrayForEach(v, a)
        {
                if (!cJSON_IsString(v) || !v->valuestring[0])
                        return false;
                /* The protocol promises distinct names. */
                for (w = a->child; w != v; w = w->next)
                        if (streq(w->valuestring, v->valuestring))
                                return false;
        }
        return true;
}

static bool list_has(const cJSON *a, const char *name)
{
        const cJSON *v;

        cJSON_ArrayForEach(v, a)
        {
                if (cJSON_IsString(v) && streq(v->valuestring, name))
                        return true;
        }
        return false;
}

/* Checks that a cell has exactly the fields of a Cell, with the right types and fresh state. */
static void check_cell_fields(const cJSON *c, const char *what)
{
        const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(c, "outputs");

        ok(cJSON_IsObject(c), "%s: is an object", what);
        is_int(cJSON_GetArraySize(c), 9, "%s: has exactly nine fields", what);
        ok(string_of(c, "id") != NULL, "%s: id is a string", what);
        is_str(string_of(c, "type"), "python", "%s: type is python", what);
        ok(string_of(c, "code") != NULL, "%s: code is a string", what);
        is_str(string_of(c, "status"), "idle", "%s: status is idle", what);
        is_str(string_of(c, "stdout"), "", "%s: stdout is empty", what);
        ok(cJSON_IsArray(outputs) && cJSON_GetArraySize(outputs) == 0, "%s: outputs is an empty array",
           what);
        ok(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c, "error")), "%s: error is null", what);
        ok(is_name_list(cJSON_GetObjectItemCaseSensitive(c, "reads")), "%s: reads are distinct names", what);
        ok(is_name_list(cJSON_GetObjectItemCaseSensitive(c, "writes")), "%s: writes are distinct names",
           what);
}

static void test_demo_cells(void)
{
        /* What each cell must contain, and one name it must bind. */
        static const struct {
                const char *code;
                const char *writes;
        } expect[] = {
                { "x = 10", "x" },         { "y = x + 5", "y" },       { "matplotlib", "plt" },
                { "pd.DataFrame(", "df" }, { "plotly.express", "px" }, { "altair", "alt" },
        };
        _cleanup_json_ cJSON *cells = NULL, *again = NULL;
        const cJSON *c;
        int i = 0;

        is_int(demo_cells_new(&cells), 0, "demo: demo_cells_new succeeds");
        ok(cJSON_IsArray(cells), "demo: cells are an array");
        is_int(cJSON_GetArraySize(cells), 6, "demo: six cells");

        cJSON_ArrayForEach(c, cells)
        {
                const cJSON *d;
                char what[32], id[32];

                snprintf(what, sizeof(what), "demo cell %d", i + 1);
                snprintf(id, sizeof(id), "demo-cell-%d", i + 1);
                check_cell_fields(c, what);
                is_str(string_of(c, "id"), id, "%s: fixed id", what);
                for (d = cells->child; d != c; d = d->next)
                        if (streq_ptr(string_of(d, "id"), string_of(c, "id")))
                                break;
                ok(d == c, "%s: id is unique", what);
                if (i < (int)ELEMENTSOF(expect)) {
                        const char *code = string_of(c, "code");

                        ok(code && strstr(code, expect[i].code), "%s: code contains \"%s\"", what,
                           expect[i].code);
                        ok(list_has(cJSON_GetObjectItemCaseSensitive(c, "writes"), expect[i].writes),
                           "%s: writes %s", what, expect[i].writes);
                }
                i++;
        }
        is_str(string_of(cJSON_GetArrayItem(cells, 0), "code"), "x = 10",
               "demo: first cell is exactly x = 10");
        is_str(string_of(cJSON_GetArrayItem(cells, 1), "code"), "y = x + 5",
               "demo: second cell is exactly y = x + 5");

        is_int(demo_cells_new(&again), 0, "demo: second call succeeds");
        ok(cJSON_Compare(cells, again, true), "demo: content is the same on every call");
}

/* Every name a demo cell reads is bound by an earlier cell: run top to bottom, nothing fails. */
static void test_demo_reads_satisfied(void)
{
        _cleanup_json_ cJSON *cells = NULL;
        const cJSON *c, *v, *d;
        int good = 1;

        if (demo_cells_new(&cells) < 0)
                return (void)ok(0, "demo: demo_cells_new succeeds");
        cJSON_ArrayForEach(c, cells)
        {
                cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, "reads"))
                {
                        for (d = cells->child; d != c; d = d->next)
                                if (list_has(cJSON_GetObjectItemCaseSensitive(d, "writes"), v->valuestring))
                                        break;
                        if (d == c) {
                                good = 0;
                                printf("# %s reads %s, which no earlier cell writes\n", string_of(c, "id"),
                                       v->valuestring);
                        }
                }
        }
        ok(good, "demo: every read is written by an earlier cell");
}

static void test_demo_graph(void)
{
        _cleanup_json_ cJSON *cells = NULL, *g = NULL, *want = NULL;

        if (demo_cells_new(&cells) < 0)
                return (void)ok(0, "demo: demo_cells_new succeeds");
        is_int(graph_compute(cells, &g), 0, "demo graph: graph_compute succeeds");

        want = cJSON_Parse("{\"edges\":["
                           "{\"from\":\"demo-cell-1\",\"to\":\"demo-cell-2\",\"vars\":[\"x\"]},"
                           "{\"from\":\"demo-cell-1\",\"to\":\"demo-cell-3\",\"vars\":[\"x\"]},"
                           "{\"from\":\"demo-cell-1\",\"to\":\"demo-cell-4\",\"vars\":[\"x\"]},"
                           "{\"from\":\"demo-cell-2\",\"to\":\"demo-cell-3\",\"vars\":[\"y\"]},"
                           "{\"from\":\"demo-cell-2\",\"to\":\"demo-cell-4\",\"vars\":[\"y\"]},"
                           "{\"from\":\"demo-cell-4\",\"to\":\"demo-cell-5\",\"vars\":[\"df\"]},"
                           "{\"from\":\"demo-cell-4\",\"to\":\"demo-cell-6\",\"vars\":[\"df\"]}],"
                           "\"order\":[\"demo-cell-1\",\"demo-cell-2\",\"demo-cell-3\",\"demo-cell-4\","
                           "\"demo-cell-5\",\"demo-cell-6\"],"
                           "\"cycles\":[]}");
        ok(want != NULL, "demo graph: expected graph parses");
        ok(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(g, "cycles")) &&
                   cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "cycles")) == 0,
           "demo graph: acyclic");
        ok(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(g, "edges"),
                         cJSON_GetObjectItemCaseSensitive(want, "edges"), true),
           "demo graph: edges x->y, x,y->plot, x,y->DataFrame, df->Plotly, df->Altair");
        ok(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(g, "order"),
                         cJSON_GetObjectItemCaseSensitive(want, "order"), true),
           "demo graph: order is notebook order");
        if (!cJSON_Compare(g, want, true)) {
                _cleanup_free_ char *s = cJSON_PrintUnformatted(g);

                printf("# got %s\n", s ? s : "(null)");
        }
}

static void test_blank_cells(void)
{
        _cleanup_json_ cJSON *cells = NULL;
        const cJSON *c;

        is_int(blank_cells_new(&cells), 0, "blank: blank_cells_new succeeds");
        ok(cJSON_IsArray(cells), "blank: cells are an array");
        is_int(cJSON_GetArraySize(cells), 1, "blank: one cell");
        c = cJSON_GetArrayItem(cells, 0);
        check_cell_fields(c, "blank cell");
        is_str(string_of(c, "id"), "blank-cell-1", "blank cell: fixed id");
        is_str(string_of(c, "code"), "", "blank cell: code is empty");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "reads")), 0,
               "blank cell: reads nothing");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "writes")), 0,
               "blank cell: writes nothing");
}

int main(void)
{
        test_demo_cells();
        test_demo_reads_satisfied();
        test_demo_graph();
        test_blank_cells();
        return tap_done();
}
