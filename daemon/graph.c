/* SPDX-License-Identifier: MIT */

/* The dependency graph of a notebook: which cell feeds which, a run order, and the cycles.
 *
 * Variables are joined, not looked up: every (variable, writer) and every (variable, reader) pair
 * is put in one array each and both are sorted by name, so one merge pass finds all edges in
 * O(P log P) for P pairs, however many cells and names there are. The cells then get small
 * integer indices (their positions) and the rest works on those: Tarjan for the strongly
 * connected groups, Kahn with a min-heap of positions for the order. Neither recurses, so a
 * notebook of any size cannot exhaust the stack. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "util.h"

#define NONE SIZE_MAX

static inline void cJSON_Deletep(cJSON **p)
{
        if (*p)
                cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

/* A (variable, cell) pair: a write, or a read with its rank in the cell's reads. */
struct var_ref {
        const char *name;
        size_t cell;
        size_t rank;
};

/* One variable of one edge: cell "from" writes it, cell "to" reads it as its rank-th read. */
struct link {
        size_t from;
        size_t to;
        size_t rank;
        const char *name;
};

struct graph {
        size_t n_cells;
        const char **ids;

        struct var_ref *writes, *reads;
        size_t n_writes, n_reads;

        struct link *links;
        size_t n_links, n_links_allocated;

        /* Distinct edges as adjacency lists: the targets of cell i are
         * targets[target_start[i] .. target_start[i + 1]), in position order. */
        size_t *target_start;
        size_t *targets;
        size_t n_targets;

        /* Strongly connected component of each cell, and each component's size. */
        size_t *component;
        size_t *component_size;
        size_t n_components;
};

static void graph_done(struct graph *g)
{
        free(g->ids);
        free(g->writes);
        free(g->reads);
        free(g->links);
        free(g->target_start);
        free(g->targets);
        free(g->component);
        free(g->component_size);
}

static void *new_array(size_t n, size_t size)
{
        /* calloc checks n * size for overflow; never ask for zero bytes, so NULL always means
         * out of memory. */
        return calloc(n > 0 ? n : 1, size);
}

static int var_ref_compare(const void *a, const void *b)
{
        const struct var_ref *x = a, *y = b;
        int r;

        r = strcmp(x->name, y->name);
        if (r != 0)
                return r;
        if (x->cell != y->cell)
                return x->cell < y->cell ? -1 : 1;
        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        return 0;
}

static int link_compare(const void *a, const void *b)
{
        const struct link *x = a, *y = b;

        if (x->from != y->from)
                return x->from < y->from ? -1 : 1;
        if (x->to != y->to)
                return x->to < y->to ? -1 : 1;
        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        return 0;
}

static int id_compare(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Counts the names in a "reads" or "writes" member; -EINVAL unless it is an array of strings. */
static int var_list_count(const cJSON *list, size_t *ret)
{
        const cJSON *v;
        size_t n = 0;

        if (!cJSON_IsArray(list))
                return -EINVAL;
        cJSON_ArrayForEach(v, list)
        {
                if (!cJSON_IsString(v) || !v->valuestring)
                        return -EINVAL;
                n++;
        }
        *ret = n;
        return 0;
}

static void var_list_collect(const cJSON *list, size_t cell, struct var_ref *refs, size_t *n)
{
        const cJSON *v;
        size_t rank = 0;

        cJSON_ArrayForEach(v, list)
        {
                refs[*n] = (struct var_ref){ .name = v->valuestring, .cell = cell, .rank = rank };
                (*n)++;
                rank++;
        }
}

/* Checks the input and fills ids, writes and reads. The strings stay owned by the input. */
static int graph_load(struct graph *g, const cJSON *cells)
{
        _cleanup_free_ const char **sorted = NULL;
        const cJSON *c;
        size_t n = 0, n_writes = 0, n_reads = 0, i;
        int r;

        if (!cJSON_IsArray(cells))
                return -EINVAL;

        cJSON_ArrayForEach(c, cells)
        {
                const cJSON *id;
                size_t k;

                if (!cJSON_IsObject(c))
                        return -EINVAL;
                id = cJSON_GetObjectItemCaseSensitive(c, "id");
                if (!cJSON_IsString(id) || !id->valuestring)
                        return -EINVAL;
                r = var_list_count(cJSON_GetObjectItemCaseSensitive(c, "writes"), &k);
                if (r < 0)
                        return r;
                if (k > SIZE_MAX - n_writes)
                        return -ENOMEM;
                n_writes += k;
                r = var_list_count(cJSON_GetObjectItemCaseSensitive(c, "reads"), &k);
                if (r < 0)
                        return r;
                if (k > SIZE_MAX - n_reads)
                        return -ENOMEM;
                n_reads += k;
                n++;
        }

        g->n_cells = n;
        g->ids = new_array(n, sizeof(*g->ids));
        g->writes = new_array(n_writes, sizeof(*g->writes));
        g->reads = new_array(n_reads, sizeof(*g->reads));
        sorted = new_array(n, sizeof(*sorted));
        if (!g->ids || !g->writes || !g->reads || !sorted)
                return -ENOMEM;

        i = 0;
        cJSON_ArrayForEach(c, cells)
        {
                g->ids[i] = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
                var_list_collect(cJSON_GetObjectItemCaseSensitive(c, "writes"), i, g->writes, &g->n_writes);
                var_list_collect(cJSON_GetObjectItemCaseSensitive(c, "reads"), i, g->reads, &g->n_reads);
                i++;
        }

        /* Ids name the cells in the result, so they must be unique. */
        if (n > 0)
                memcpy(sorted, g->ids, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), id_compare);
        for (i = 1; i < n; i++)
                if (streq(sorted[i - 1], sorted[i]))
                        return -EINVAL;

        qsort(g->writes, g->n_writes, sizeof(*g->writes), var_ref_compare);
        qsort(g->reads, g->n_reads, sizeof(*g->reads), var_ref_compare);
        return 0;
}

static int graph_add_link(struct graph *g, size_t from, size_t to, size_t rank, const char *name)
{
        /* Each (writer, reader, name) is a link: a notebook within every other limit could ask for
         * a billion of them. */
        if (g->n_links >= GRAPH_MAX_LINKS)
                return -E2BIG;
        if (g->n_links == g->n_links_allocated) {
                size_t m = g->n_links_allocated > 0 ? g->n_links_allocated : 64;
                struct link *l;

                if (m > SIZE_MAX / 2 / sizeof(*l))
                        return -ENOMEM;
                m *= 2;
                l = realloc(g->links, m * sizeof(*l));
                if (!l)
                        return -ENOMEM;
                g->links = l;
                g->n_links_allocated = m;
        }
        g->links[g->n_links++] = (struct link){ .from = from, .to = to, .rank = rank, .name = name };
        return 0;
}

/* Merges the sorted writes and reads: every writer of a name links to every other cell reading
 * it. A name listed twice by one cell counts once (the first read gives the rank, as the
 * sorting puts it first). */
static int graph_join(struct graph *g)
{
        size_t w = 0, r = 0;
        int k;

        while (w < g->n_writes && r < g->n_reads) {
                const char *name = g->writes[w].name;
                size_t w_end, r_end, i, j;

                k = strcmp(name, g->reads[r].name);
                if (k < 0) {
                        w++;
                        continue;
                }
                if (k > 0) {
                        r++;
                        continue;
                }

                for (w_end = w; w_end < g->n_writes && streq(g->writes[w_end].name, name); w_end++)
                        ;
                for (r_end = r; r_end < g->n_reads && streq(g->reads[r_end].name, name); r_end++)
                        ;

                for (i = w; i < w_end; i++) {
                        size_t from = g->writes[i].cell;

                        if (i > w && g->writes[i - 1].cell == from)
                                continue;
                        for (j = r; j < r_end; j++) {
                                size_t to = g->reads[j].cell;

                                if (to == from || (j > r && g->reads[j - 1].cell == to))
                                        continue;
                                k = graph_add_link(g, from, to, g->reads[j].rank, name);
                                if (k < 0)
                                        return k;
                        }
                }

                w = w_end;
                r = r_end;
        }

        /* Edges by writer, then reader position; within one edge, names in the reader's order. */
        if (g->n_links > 0) /* links is NULL until the first one */
                qsort(g->links, g->n_links, sizeof(*g->links), link_compare);
        return 0;
}

static int graph_build_adjacency(struct graph *g)
{
        size_t i, k = 0;

        g->target_start = new_array(g->n_cells + 1, sizeof(*g->target_start));
        g->targets = new_array(g->n_links, sizeof(*g->targets));
        if (!g->target_start || !g->targets)
                return -ENOMEM;

        for (i = 0; i < g->n_links; i++) {
                const struct link *l = &g->links[i];

                if (i > 0 && l->from == g->links[i - 1].from && l->to == g->links[i - 1].to)
                        continue;
                g->targets[k++] = l->to;
                g->target_start[l->from + 1]++;
        }
        g->n_targets = k;
        for (i = 0; i < g->n_cells; i++)
                g->target_start[i + 1] += g->target_start[i];
        return 0;
}

/* Tarjan's algorithm with an explicit call stack: frame[] holds the cells being visited and
 * next[] the position in each one's adjacency list. */
static int graph_find_components(struct graph *g)
{
        _cleanup_free_ size_t *index = NULL, *low = NULL, *stack = NULL, *frame = NULL, *next = NULL;
        _cleanup_free_ bool *on_stack = NULL;
        size_t n = g->n_cells, counter = 0, sp = 0, fp = 0, s;

        index = new_array(n, sizeof(*index));
        low = new_array(n, sizeof(*low));
        stack = new_array(n, sizeof(*stack));
        frame = new_array(n, sizeof(*frame));
        next = new_array(n, sizeof(*next));
        on_stack = new_array(n, sizeof(*on_stack));
        g->component = new_array(n, sizeof(*g->component));
        g->component_size = new_array(n, sizeof(*g->component_size));
        if (!index || !low || !stack || !frame || !next || !on_stack || !g->component || !g->component_size)
                return -ENOMEM;

        for (s = 0; s < n; s++)
                index[s] = NONE;

        for (s = 0; s < n; s++) {
                if (index[s] != NONE)
                        continue;

                index[s] = low[s] = counter++;
                stack[sp++] = s;
                on_stack[s] = true;
                frame[fp] = s;
                next[fp++] = g->target_start[s];

                while (fp > 0) {
                        size_t v = frame[fp - 1];

                        if (next[fp - 1] < g->target_start[v + 1]) {
                                size_t w = g->targets[next[fp - 1]++];

                                if (index[w] == NONE) {
                                        index[w] = low[w] = counter++;
                                        stack[sp++] = w;
                                        on_stack[w] = true;
                                        frame[fp] = w;
                                        next[fp++] = g->target_start[w];
                                } else if (on_stack[w] && index[w] < low[v])
                                        low[v] = index[w];
                                continue;
                        }

                        fp--;
                        if (low[v] == index[v]) {
                                size_t w, c = g->n_components++;

                                do {
                                        w = stack[--sp];
                                        on_stack[w] = false;
                                        g->component[w] = c;
                                        g->component_size[c]++;
                                } while (w != v);
                        }
                        if (fp > 0 && low[v] < low[frame[fp - 1]])
                                low[frame[fp - 1]] = low[v];
                }
        }
        return 0;
}

static bool graph_on_cycle(const struct graph *g, size_t cell)
{
        return g->component_size[g->component[cell]] >= 2;
}

/* A binary min-heap of cell positions: the ready cell that comes first in the notebook runs
 * first. */
static void heap_push(size_t *heap, size_t *n, size_t v)
{
        size_t i = (*n)++;

        while (i > 0 && heap[(i - 1) / 2] > v) {
                heap[i] = heap[(i - 1) / 2];
                i = (i - 1) / 2;
        }
        heap[i] = v;
}

static size_t heap_pop(size_t *heap, size_t *n)
{
        size_t top = heap[0], last = heap[--(*n)], i = 0;

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= *n)
                        break;
                if (c + 1 < *n && heap[c + 1] < heap[c])
                        c++;
                if (heap[c] >= last)
                        break;
                heap[i] = heap[c];
                i = c;
        }
        if (*n > 0)
                heap[i] = last;
        return top;
}

static int json_add_string(cJSON *array, const char *s)
{
        cJSON *item = cJSON_CreateString(s);

        if (!item)
                return -ENOMEM;
        cJSON_AddItemToArray(array, item);
        return 0;
}

/* Moves *item into object; on failure (the key is copied) *item stays with the caller. */
static int json_add_member(cJSON *object, const char *key, cJSON **item)
{
        if (!cJSON_AddItemToObject(object, key, *item))
                return -ENOMEM;
        *item = NULL;
        return 0;
}

static int graph_edges_to_json(const struct graph *g, cJSON **ret)
{
        _cleanup_json_ cJSON *edges = NULL;
        cJSON *edge = NULL, *vars = NULL;
        size_t i;
        int r;

        edges = cJSON_CreateArray();
        if (!edges)
                return -ENOMEM;

        for (i = 0; i < g->n_links; i++) {
                const struct link *l = &g->links[i];

                if (i == 0 || l->from != g->links[i - 1].from || l->to != g->links[i - 1].to) {
                        edge = cJSON_CreateObject();
                        if (!edge)
                                return -ENOMEM;
                        cJSON_AddItemToArray(edges, edge);
                        if (!cJSON_AddStringToObject(edge, "from", g->ids[l->from]) ||
                            !cJSON_AddStringToObject(edge, "to", g->ids[l->to]))
                                return -ENOMEM;
                        vars = cJSON_AddArrayToObject(edge, "vars");
                        if (!vars)
                                return -ENOMEM;
                }
                r = json_add_string(vars, l->name);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(edges);
        return 0;
}

/* Kahn's algorithm on the cells that are not on a cycle. Cells on a cycle are left out, and so
 * are their edges: a cell fed by a cycle still gets a place, after its other inputs. */
static int graph_order_to_json(const struct graph *g, cJSON **ret)
{
        _cleanup_json_ cJSON *order = NULL;
        _cleanup_free_ size_t *in_degree = NULL, *heap = NULL;
        size_t n = g->n_cells, n_heap = 0, i, k;
        int r;

        order = cJSON_CreateArray();
        in_degree = new_array(n, sizeof(*in_degree));
        heap = new_array(n, sizeof(*heap));
        if (!order || !in_degree || !heap)
                return -ENOMEM;

        for (i = 0; i < n; i++) {
                if (graph_on_cycle(g, i))
                        continue;
                for (k = g->target_start[i]; k < g->target_start[i + 1]; k++)
                        in_degree[g->targets[k]]++;
        }
        for (i = 0; i < n; i++)
                if (!graph_on_cycle(g, i) && in_degree[i] == 0)
                        heap_push(heap, &n_heap, i);

        while (n_heap > 0) {
                size_t v = heap_pop(heap, &n_heap);

                r = json_add_string(order, g->ids[v]);
                if (r < 0)
                        return r;
                for (k = g->target_start[v]; k < g->target_start[v + 1]; k++) {
                        size_t w = g->targets[k];

                        if (!graph_on_cycle(g, w) && --in_degree[w] == 0)
                                heap_push(heap, &n_heap, w);
                }
        }

        *ret = TAKE_PTR(order);
        return 0;
}

static int graph_cycles_to_json(const struct graph *g, cJSON **ret)
{
        _cleanup_json_ cJSON *cycles = NULL;
        _cleanup_free_ cJSON **group = NULL;
        size_t i;
        int r;

        /* Walking the cells in position order opens each group at its first cell and fills every
         * group in position order. */
        cycles = cJSON_CreateArray();
        group = new_array(g->n_components, sizeof(*group));
        if (!cycles || !group)
                return -ENOMEM;

        for (i = 0; i < g->n_cells; i++) {
                size_t c = g->component[i];

                if (!graph_on_cycle(g, i))
                        continue;
                if (!group[c]) {
                        group[c] = cJSON_CreateArray();
                        if (!group[c])
                                return -ENOMEM;
                        cJSON_AddItemToArray(cycles, group[c]);
                }
                r = json_add_string(group[c], g->ids[i]);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(cycles);
        return 0;
}

int graph_compute(const cJSON *cells, cJSON **ret)
{
        _cleanup_(graph_done) struct graph g = {};
        _cleanup_json_ cJSON *result = NULL, *edges = NULL, *order = NULL, *cycles = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        r = graph_load(&g, cells);
        if (r < 0)
                return r;
        r = graph_join(&g);
        if (r < 0)
                return r;
        r = graph_build_adjacency(&g);
        if (r < 0)
                return r;
        r = graph_find_components(&g);
        if (r < 0)
                return r;

        r = graph_edges_to_json(&g, &edges);
        if (r < 0)
                return r;
        r = graph_order_to_json(&g, &order);
        if (r < 0)
                return r;
        r = graph_cycles_to_json(&g, &cycles);
        if (r < 0)
                return r;

        result = cJSON_CreateObject();
        if (!result)
                return -ENOMEM;
        r = json_add_member(result, "edges", &edges);
        if (r < 0)
                return r;
        r = json_add_member(result, "order", &order);
        if (r < 0)
                return r;
        r = json_add_member(result, "cycles", &cycles);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(result);
        return 0;
}
