/* SPDX-License-Identifier: MIT */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "tap.h"
#include "util.h"

static inline void cJSON_Deletep(cJSON **p)
{
        if (*p)
                cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

/* Buffer for the compact renderings below; big enough for every small case in this file. */
#define RENDER_MAX 1024

static cJSON *names_new(const char *csv)
{
        cJSON *a = cJSON_CreateArray();
        char buf[RENDER_MAX], *save = NULL, *tok;

        snprintf(buf, sizeof(buf), "%s", csv);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                cJSON_AddItemToArray(a, cJSON_CreateString(tok));
        return a;
}

/* Builds cells from "id|reads|writes;id|reads|writes;...", names comma-separated. */
static cJSON *cells_new(const char *spec)
{
        cJSON *cells = cJSON_CreateArray();
        char buf[RENDER_MAX], *save = NULL, *tok;

        snprintf(buf, sizeof(buf), "%s", spec);
        for (tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
                char *reads = strchr(tok, '|'), *writes;
                cJSON *c = cJSON_CreateObject();

                *reads++ = '\0';
                writes = strchr(reads, '|');
                *writes++ = '\0';
                cJSON_AddStringToObject(c, "id", tok);
                cJSON_AddItemToObject(c, "reads", names_new(reads));
                cJSON_AddItemToObject(c, "writes", names_new(writes));
                cJSON_AddItemToArray(cells, c);
        }
        return cells;
}

static void append(char *buf, const char *fmt, const char *s)
{
        size_t l = strlen(buf);

        snprintf(buf + l, RENDER_MAX - l, fmt, s);
}

/* Renders an array of strings as "a b c"; "!" if it is not one. */
static void render_names(char *buf, const cJSON *a)
{
        const cJSON *v;

        if (!cJSON_IsArray(a)) {
                append(buf, "%s", "!");
                return;
        }
        cJSON_ArrayForEach(v, a)
        {
                if (!cJSON_IsString(v)) {
                        append(buf, "%s", "!");
                        return;
                }
                append(buf, v == a->child ? "%s" : " %s", v->valuestring);
        }
}

/* "a->b[x y] a->c[x]" */
static const char *render_edges(char *buf, const cJSON *g)
{
        const cJSON *edges = cJSON_GetObjectItemCaseSensitive(g, "edges"), *e;

        buf[0] = '\0';
        if (!cJSON_IsArray(edges))
                return "!";
        cJSON_ArrayForEach(e, edges)
        {
                const cJSON *from = cJSON_GetObjectItemCaseSensitive(e, "from");
                const cJSON *to = cJSON_GetObjectItemCaseSensitive(e, "to");

                if (!cJSON_IsString(from) || !cJSON_IsString(to) || cJSON_GetArraySize(e) != 3)
                        return "!";
                append(buf, e == edges->child ? "%s" : " %s", from->valuestring);
                append(buf, "->%s[", to->valuestring);
                render_names(buf, cJSON_GetObjectItemCaseSensitive(e, "vars"));
                append(buf, "%s", "]");
        }
        return buf;
}

static const char *render_order(char *buf, const cJSON *g)
{
        buf[0] = '\0';
        render_names(buf, cJSON_GetObjectItemCaseSensitive(g, "order"));
        return buf;
}

/* "[a b][c d e]" */
static const char *render_cycles(char *buf, const cJSON *g)
{
        const cJSON *cycles = cJSON_GetObjectItemCaseSensitive(g, "cycles"), *c;

        buf[0] = '\0';
        if (!cJSON_IsArray(cycles))
                return "!";
        cJSON_ArrayForEach(c, cycles)
        {
                append(buf, "%s", "[");
                render_names(buf, c);
                append(buf, "%s", "]");
        }
        return buf;
}

/* Runs graph_compute() on spec and checks all three parts of the result. */
static void check(const char *name, const char *spec, const char *edges, const char *order,
                  const char *cycles)
{
        _cleanup_json_ cJSON *cells = cells_new(spec), *g = NULL;
        char buf[RENDER_MAX];
        int r;

        r = graph_compute(cells, &g);
        is_int(r, 0, "%s: graph_compute succeeds", name);
        if (r < 0)
                return;
        is_int(cJSON_GetArraySize(g), 3, "%s: result has edges, order, cycles only", name);
        is_str(render_edges(buf, g), edges, "%s: edges", name);
        is_str(render_order(buf, g), order, "%s: order", name);
        is_str(render_cycles(buf, g), cycles, "%s: cycles", name);
}

static void test_empty(void)
{
        _cleanup_json_ cJSON *cells = cJSON_CreateArray(), *g = NULL;
        _cleanup_free_ char *s = NULL;

        is_int(graph_compute(cells, &g), 0, "empty: graph_compute succeeds");
        s = cJSON_PrintUnformatted(g);
        is_str(s, "{\"edges\":[],\"order\":[],\"cycles\":[]}", "empty: three empty arrays");
}

static void test_shapes(void)
{
        check("single cell", "a||x", "", "a", "");
        check("no reads or writes", "a||;b||", "", "a b", "");
        check("chain", "a||x;b|x|y;c|y|z", "a->b[x] b->c[y]", "a b c", "");
        check("chain against position", "c|y|;b|x|y;a||x", "b->c[y] a->b[x]", "a b c", "");
        check("diamond", "a||x;b|x|y;c|x|z;d|y,z|", "a->b[x] a->c[x] b->d[y] c->d[z]", "a b c d", "");
        check("multiple writers", "a||x;b||x;c|x|", "a->c[x] b->c[x]", "a b c", "");
        check("later writer feeds earlier reader", "a|x|;b||x", "b->a[x]", "b a", "");
        check("unknown read", "a|nowhere|x;b|x|", "a->b[x]", "a b", "");
        check("self-read", "a|x|x;b|x|", "a->b[x]", "a b", "");
        check("self-read only", "a|n|n", "", "a", "");
        check("vars in reader's order", "a||x,y,z;b|z,x,y|", "a->b[z x y]", "a b", "");
        check("duplicate reads and writes count once", "a||x,x,y;b|y,x,y,x|", "a->b[y x]", "a b", "");
        check("edges by writer then reader", "c|x,y|;a||y;b||x;d|y|", "a->c[y] a->d[y] b->c[x]", "a b c d",
              "");
}

static void test_cycles(void)
{
        check("2-cycle", "a|y|x;b|x|y", "a->b[x] b->a[y]", "", "[a b]");
        check("2-cycle with acyclic tail", "h||s;a|y,s|x;b|x|y;t|x|w;u|w|",
              "h->a[s] a->b[x] a->t[x] b->a[y] t->u[w]", "h t u", "[a b]");
        check("3-cycle with acyclic tail", "p||;c1|z|x;c2|x|y;c3|y|z;t|z|",
              "c1->c2[x] c2->c3[y] c3->c1[z] c3->t[z]", "p t", "[c1 c2 c3]");
        check("3-cycle listed in position order", "c3|y|z;c1|z|x;c2|x|y", "c3->c1[z] c1->c2[x] c2->c3[y]",
              "", "[c3 c1 c2]");
        check("interleaved cycles by first position", "a|p|q;b|r|s;c|q|p;d|s|r",
              "a->c[q] b->d[s] c->a[p] d->b[r]", "", "[a c][b d]");
        check("cycle with a chord", "a|z|x;b|x|y;c|y|z,w;d|w|", "a->b[x] b->c[y] c->a[z] c->d[w]", "d",
              "[a b c]");
        check("self-reads inside a cycle", "a|x,y|x;b|y,x|y", "a->b[x] b->a[y]", "", "[a b]");
        check("two cycles joined one way", "a|b1|a1;b|a1|b1;c|a1,d1|c1;d|c1|d1",
              "a->b[a1] a->c[a1] b->a[b1] c->d[c1] d->c[d1]", "", "[a b][c d]");
}

static void test_ties(void)
{
        check("independent cells by position", "d||;c||;b||;a||", "", "d c b a", "");
        check("ready cells by position", "a|x|;b||;c||;d||x", "d->a[x]", "b c d a", "");
        /* Once e1 runs, e0 is ready and comes before e2, which has been ready all along. */
        check("earliest ready cell first", "e0|q|;e1||q;e2||", "e1->e0[q]", "e1 e0 e2", "");
        check("two chains interleave by position", "a1||a;b1||b;a2|a|;b2|b|", "a1->a2[a] b1->b2[b]",
              "a1 b1 a2 b2", "");
}

static void expect_einval(const char *name, cJSON *cells)
{
        _cleanup_json_ cJSON *owned = cells, *g = NULL;

        is_int(graph_compute(owned, &g), -EINVAL, "malformed: %s gives -EINVAL", name);
        ok(!g, "malformed: %s leaves the result unset", name);
}

static cJSON *parse(const char *json)
{
        cJSON *j = cJSON_Parse(json);

        if (!j)
                tap_diag("test JSON does not parse");
        return j;
}

static void test_malformed(void)
{
        _cleanup_json_ cJSON *cells = cells_new("a||x");

        expect_einval("NULL", NULL);
        expect_einval("an object", parse("{\"id\":\"a\",\"reads\":[],\"writes\":[]}"));
        expect_einval("a string", parse("\"cells\""));
        expect_einval("a cell that is not an object", parse("[[]]"));
        expect_einval("a cell that is null", parse("[{\"id\":\"a\",\"reads\":[],\"writes\":[]},null]"));
        expect_einval("a cell without id", parse("[{\"reads\":[],\"writes\":[]}]"));
        expect_einval("a numeric id", parse("[{\"id\":1,\"reads\":[],\"writes\":[]}]"));
        expect_einval("a null id", parse("[{\"id\":null,\"reads\":[],\"writes\":[]}]"));
        expect_einval("missing reads", parse("[{\"id\":\"a\",\"writes\":[]}]"));
        expect_einval("missing writes", parse("[{\"id\":\"a\",\"reads\":[]}]"));
        expect_einval("reads as a string", parse("[{\"id\":\"a\",\"reads\":\"x\",\"writes\":[]}]"));
        expect_einval("reads as an object", parse("[{\"id\":\"a\",\"reads\":{},\"writes\":[]}]"));
        expect_einval("a numeric read", parse("[{\"id\":\"a\",\"reads\":[\"x\",1],\"writes\":[]}]"));
        expect_einval("a null write", parse("[{\"id\":\"a\",\"reads\":[],\"writes\":[null]}]"));
        expect_einval("a nested write", parse("[{\"id\":\"a\",\"reads\":[],\"writes\":[[\"x\"]]}]"));
        expect_einval("duplicate ids", cells_new("a||x;b|x|;a||"));
        expect_einval("duplicate ids far apart", cells_new("z||;b||;c||;d||;z||"));

        is_int(graph_compute(cells, NULL), -EINVAL, "malformed: NULL result pointer gives -EINVAL");
}

static char *name_new(const char *prefix, int i, int k)
{
        char *s = NULL;

        if (asprintf(&s, "%s%d_%d", prefix, i, k) < 0)
                return NULL;
        return s;
}

/* n cells of m names each; kind 0: cell i reads what cell i - 1 writes (a chain), 1: what cell
 * i + 1 writes (a chain against position), 2: what cell i - 1 writes, wrapping (one big cycle). */
static cJSON *large_new(int n, int m, int kind)
{
        cJSON *cells = cJSON_CreateArray();

        for (int i = 0; i < n; i++) {
                cJSON *c = cJSON_CreateObject(), *reads = cJSON_CreateArray(), *writes = cJSON_CreateArray();
                char id[32];
                int src = kind == 0 ? i - 1 : kind == 1 ? i + 1 : (i + n - 1) % n;

                snprintf(id, sizeof(id), "cell-%d", i);
                cJSON_AddStringToObject(c, "id", id);
                for (int k = 0; k < m; k++) {
                        _cleanup_free_ char *w = name_new("v", i, k), *r = NULL;

                        cJSON_AddItemToArray(writes, cJSON_CreateString(w));
                        if (src < 0 || src >= n)
                                continue;
                        r = name_new("v", src, k);
                        cJSON_AddItemToArray(reads, cJSON_CreateString(r));
                }
                cJSON_AddItemToObject(c, "reads", reads);
                cJSON_AddItemToObject(c, "writes", writes);
                cJSON_AddItemToArray(cells, c);
        }
        return cells;
}

static int order_matches(const cJSON *g, int n, bool reversed)
{
        const cJSON *order = cJSON_GetObjectItemCaseSensitive(g, "order"), *v;
        int i = 0;

        if (cJSON_GetArraySize(order) != n)
                return 0;
        cJSON_ArrayForEach(v, order)
        {
                char id[32];

                snprintf(id, sizeof(id), "cell-%d", reversed ? n - 1 - i : i);
                if (!cJSON_IsString(v) || !streq(v->valuestring, id))
                        return 0;
                i++;
        }
        return 1;
}

static void test_large(void)
{
        const int n = 1000, m = 16; /* 15,984 links: under GRAPH_MAX_LINKS */
        _cleanup_json_ cJSON *chain = large_new(n, m, 0), *backwards = large_new(n, 8, 1),
                             *ring = large_new(n, 8, 2), *g = NULL;
        const cJSON *edges, *e, *cycles;
        int good = 1;

        ok(chain && backwards && ring, "large: inputs built");

        is_int(graph_compute(chain, &g), 0, "large: %d cells of %d names each", n, m);
        edges = cJSON_GetObjectItemCaseSensitive(g, "edges");
        is_int(cJSON_GetArraySize(edges), n - 1, "large: one edge per link of the chain");
        cJSON_ArrayForEach(e, edges)
        {
                if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "vars")) != m)
                        good = 0;
        }
        ok(good, "large: every edge carries all %d names", m);
        ok(order_matches(g, n, false), "large: order follows the chain");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "cycles")), 0, "large: no cycles");
        cJSON_Delete(TAKE_PTR(g));

        is_int(graph_compute(backwards, &g), 0, "large: chain against position");
        ok(order_matches(g, n, true), "large: order runs from the last cell to the first");
        cJSON_Delete(TAKE_PTR(g));

        is_int(graph_compute(ring, &g), 0, "large: one cycle through all cells");
        cycles = cJSON_GetObjectItemCaseSensitive(g, "cycles");
        is_int(cJSON_GetArraySize(cycles), 1, "large: a single cycle");
        is_int(cJSON_GetArraySize(cJSON_GetArrayItem(cycles, 0)), n, "large: the cycle holds every cell");
        is_int(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "order")), 0,
               "large: nothing in order");
}

/* n cells that all read and write the first k of a, b, c. */
static cJSON *cells_sharing(int n, int k)
{
        const char *names[] = { "a", "b", "c" };
        cJSON *cells = cJSON_CreateArray();

        for (int i = 0; i < n; i++) {
                cJSON *c = cJSON_CreateObject();
                char id[16];

                snprintf(id, sizeof(id), "c%d", i);
                cJSON_AddStringToObject(c, "id", id);
                cJSON_AddItemToObject(c, "reads", cJSON_CreateStringArray(names, k));
                cJSON_AddItemToObject(c, "writes", cJSON_CreateStringArray(names, k));
                cJSON_AddItemToArray(cells, c);
        }
        return cells;
}

/* 1000 cells that all read and write the same three names: three million links, over the cap;
 * 100 cells that read and write two names (19,800 links) are under it. */
static void test_link_cap(void)
{
        cJSON *cells = cells_sharing(1000, 3), *graph = NULL;

        ok(graph_compute(cells, &graph) == -E2BIG && !graph, "more than GRAPH_MAX_LINKS links is -E2BIG");
        cJSON_Delete(cells);

        cells = cells_sharing(100, 2);
        ok(graph_compute(cells, &graph) == 0 &&
                   cJSON_GetArraySize(cJSON_GetObjectItem(graph, "edges")) == 9900,
           "19,800 links (9,900 edges of two variables) are under the cap");
        cJSON_Delete(graph);
        cJSON_Delete(cells);
}

int main(void)
{
        test_link_cap();
        test_empty();
        test_shapes();
        test_cycles();
        test_ties();
        test_malformed();
        test_large();
        return tap_done();
}
