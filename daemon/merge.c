/* SPDX-License-Identifier: MIT */

/* Three-way merge of notebooks, decisions before output (as nbdime's merging/decisions.py): every
 * cell id of base, local and remote first gets a decision from its three versions alone
 * (cell_decide(), the whole cell policy in one function); then the cells kept are laid out,
 * remote's order as the backbone, with local's insertions and moves replayed into it.
 *
 * A side moved a cell when the cell left base's relative order. The cells a side kept from base
 * that did not move are the longest run of them still in base's order: the longest increasing
 * subsequence of their base positions, read in the side's order, as diff finds unchanged lines.
 * Comparing each cell's predecessor instead would flag the neighbours of every insertion,
 * deletion and move as moved too, and two swapped blocks would come back in the wrong order
 * (merge(b, l, b) != l). Ids are unique, so patience sorting finds the subsequence in
 * O(n log n).
 *
 * Every id is looked up once, in one array of entries sorted by id, so a merge is O(n log n) in
 * the number of cells whatever their ids. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "model.h"
#include "nb-limits.h"
#include "util.h"

#define NONE SIZE_MAX

enum { BASE, LOCAL, REMOTE, _SIDE_MAX };

typedef enum CellAction {
        CELL_DROP,     /* not in the merge */
        CELL_LOCAL,    /* local's version */
        CELL_REMOTE,   /* remote's version */
        CELL_CONFLICT, /* remote's version under the id, local's as a copy right after it */
} CellAction;

/* Where one side has one cell. */
typedef struct CellRef {
        const char *id;
        const cJSON *cell;
        unsigned side;
        size_t pos;
} CellRef;

/* Everything about one cell id. */
typedef struct Entry {
        const char *id;
        const cJSON *cell[_SIDE_MAX]; /* NULL where the side does not have it */
        size_t pos[_SIDE_MAX];
        bool moved[_SIDE_MAX]; /* LOCAL, REMOTE: the side took it out of base's order */
        CellAction action;
        bool placed_by_local; /* laid out after its predecessor in local, not where remote has it */
        char *copy_id;        /* CELL_CONFLICT: the id of local's copy */
        size_t next;          /* the merged order: a list through the entries */
} Entry;

typedef struct Merge {
        Entry *entries; /* sorted by id */
        size_t n_entries;
        size_t *order[_SIDE_MAX]; /* each side's cells as indices of entries, in the side's order */
        size_t n[_SIDE_MAX];
        size_t head;
        /* Ids of the merge, sorted, for naming copies: the cells kept, then the copies named. */
        const char **taken;
        size_t n_taken;
        unsigned flags;
} Merge;

static void merge_done(Merge *m)
{
        if (m->entries)
                for (size_t i = 0; i < m->n_entries; i++)
                        free(m->entries[i].copy_id);
        free(m->entries);
        for (unsigned s = 0; s < _SIDE_MAX; s++)
                free(m->order[s]);
        free(m->taken);
}

static void *new_array(size_t n, size_t size)
{
        /* calloc checks n * size for overflow; never ask for zero bytes, so NULL always means
         * out of memory. */
        return calloc(n > 0 ? n : 1, size);
}

/* Structural equality where a missing member counts as null: the protocol writes every field,
 * but a null and an absent value mean the same to a merge. */
static bool json_equal(const cJSON *a, const cJSON *b)
{
        if (!a || cJSON_IsNull(a))
                return !b || cJSON_IsNull(b);
        return b && cJSON_Compare(a, b, true);
}

static const cJSON *member(const cJSON *obj, const char *key)
{
        return obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* A cell's source is what a user writes; everything else (status, stdout, outputs, error, reads,
 * writes) is the result of running it and belongs to that source. */
static bool source_equal(const cJSON *a, const cJSON *b)
{
        return json_equal(member(a, "type"), member(b, "type")) &&
               json_equal(member(a, "code"), member(b, "code"));
}

/* The cell policy (merge.h; doc/sync.md, "Merging"): the versions of one cell id in base, local
 * and remote (NULL: absent) to what the merge keeps. Placement is decided apart, in
 * merge_layout(). */
static CellAction cell_decide(const cJSON *b, const cJSON *l, const cJSON *r)
{
        if (!l && !r)
                return CELL_DROP;
        if (!b) {
                /* Added on one side, or on both under the same id: then as if both had changed
                 * it, from nothing (two devices that provisioned the same demo notebook, and ran
                 * it on one of them, are not in conflict). */
                if (!l)
                        return CELL_REMOTE;
                if (!r)
                        return CELL_LOCAL;
                return json_equal(l, r) || source_equal(l, r) ? CELL_REMOTE : CELL_CONFLICT;
        }
        /* Deleted on one side: gone unless the other side edited it. The edit was made without
         * knowing of the deletion and says the cell is still wanted; dropping it would lose work,
         * keeping it costs one more deletion. */
        if (!l)
                return json_equal(r, b) ? CELL_DROP : CELL_REMOTE;
        if (!r)
                return json_equal(l, b) ? CELL_DROP : CELL_LOCAL;
        if (json_equal(l, b) || json_equal(l, r))
                return CELL_REMOTE;
        if (json_equal(r, b))
                return CELL_LOCAL;
        /* Both changed it, differently. Results follow the code they came from, so a side that
         * only ran the cell loses to one that changed its source, and when both have the same
         * source the results differ only by a run: recomputable, no conflict, remote's stand. */
        if (source_equal(l, r))
                return CELL_REMOTE;
        if (source_equal(r, b))
                return CELL_LOCAL;
        if (source_equal(l, b))
                return CELL_REMOTE;
        return CELL_CONFLICT;
}

/* Rule for one notebook field (b NULL and !have_base: no common ancestor, then any difference is
 * a conflict: a null on one side is a value chosen there as much as the other side's). Returns
 * the value that stands (NULL: null). */
static const cJSON *merge_field(const cJSON *b, const cJSON *l, const cJSON *r, bool have_base,
                                bool *ret_conflict)
{
        *ret_conflict = false;
        if (json_equal(l, r))
                return r;
        if (have_base && json_equal(l, b))
                return r;
        if (have_base && json_equal(r, b))
                return l;
        *ret_conflict = true;
        return r;
}

static int cell_ref_compare(const void *a, const void *b)
{
        const CellRef *x = a, *y = b;
        int r;

        r = strcmp(x->id, y->id);
        if (r != 0)
                return r;
        return x->side < y->side ? -1 : x->side > y->side;
}

static const cJSON *notebook_cells(const cJSON *nb)
{
        const cJSON *cells;

        if (!cJSON_IsObject(nb))
                return NULL;
        cells = cJSON_GetObjectItemCaseSensitive(nb, "cells");
        return cJSON_IsArray(cells) ? cells : NULL;
}

/* Indexes the cells of all three versions by id. -EINVAL for a cell without a valid id, or an id
 * twice in one version: the rest of the merge relies on ids being unique. */
static int merge_index(Merge *m, const cJSON *const cells[_SIDE_MAX])
{
        _cleanup_free_ CellRef *refs = NULL;
        size_t n_refs = 0, total = 0;
        const cJSON *c;

        for (unsigned s = 0; s < _SIDE_MAX; s++) {
                m->n[s] = cells[s] ? (size_t)cJSON_GetArraySize(cells[s]) : 0;
                total += m->n[s];
                m->order[s] = new_array(m->n[s], sizeof(size_t));
                if (!m->order[s])
                        return -ENOMEM;
        }
        refs = new_array(total, sizeof(CellRef));
        m->entries = new_array(total, sizeof(Entry));
        if (!refs || !m->entries)
                return -ENOMEM;

        for (unsigned s = 0; s < _SIDE_MAX; s++) {
                size_t pos = 0;

                if (!cells[s])
                        continue;
                cJSON_ArrayForEach(c, cells[s])
                {
                        const cJSON *id = member(c, "id");

                        if (!cJSON_IsObject(c) || !cJSON_IsString(id) ||
                            !model_id_valid(id->valuestring, MAX_ID_BYTES))
                                return -EINVAL;
                        refs[n_refs++] = (CellRef){ id->valuestring, c, s, pos++ };
                }
        }
        qsort(refs, n_refs, sizeof(CellRef), cell_ref_compare);

        for (size_t i = 0; i < n_refs; i++) {
                Entry *e;

                if (i == 0 || !streq(refs[i].id, refs[i - 1].id))
                        m->entries[m->n_entries++] = (Entry){ .id = refs[i].id, .next = NONE };
                else if (refs[i].side == refs[i - 1].side)
                        return -EINVAL;
                e = &m->entries[m->n_entries - 1];
                e->cell[refs[i].side] = refs[i].cell;
                e->pos[refs[i].side] = refs[i].pos;
                m->order[refs[i].side][refs[i].pos] = m->n_entries - 1;
        }
        return 0;
}

/* Sets moved[side] on the cells side kept from base but took out of base's relative order: all
 * those it kept, but for a longest run still in base's order. Patience sorting: tails[k] is the
 * index in seq of the smallest last element of a run of k + 1, prev links each element to the one
 * before it in its run. Always the same run for the same input: the merge is deterministic. */
static int merge_find_moves(Merge *m, unsigned side)
{
        _cleanup_free_ size_t *seq = NULL, *tails = NULL, *prev = NULL;
        size_t n = 0, len = 0;

        seq = new_array(m->n[side], sizeof(size_t));
        tails = new_array(m->n[side], sizeof(size_t));
        prev = new_array(m->n[side], sizeof(size_t));
        if (!seq || !tails || !prev)
                return -ENOMEM;

        for (size_t i = 0; i < m->n[side]; i++) {
                Entry *e = &m->entries[m->order[side][i]];

                if (!e->cell[BASE])
                        continue;
                e->moved[side] = true;
                seq[n++] = m->order[side][i];
        }
        for (size_t i = 0; i < n; i++) {
                size_t lo = 0, hi = len, p = m->entries[seq[i]].pos[BASE];

                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;

                        if (m->entries[seq[tails[mid]]].pos[BASE] < p)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                prev[i] = lo > 0 ? tails[lo - 1] : NONE;
                tails[lo] = i;
                if (lo == len)
                        len++;
        }
        for (size_t i = len > 0 ? tails[len - 1] : NONE; i != NONE; i = prev[i])
                m->entries[seq[i]].moved[side] = false;
        return 0;
}

static void merge_insert_after(Merge *m, size_t anchor, size_t i)
{
        size_t *link = anchor == NONE ? &m->head : &m->entries[anchor].next;

        m->entries[i].next = *link;
        *link = i;
}

/* Lays out the cells kept as a list from m->head. Remote's order is the backbone; then, in
 * local's order, each cell local placed goes right after the nearest cell before it in local that
 * is in the merge (first if none). Walking local's order front to back makes that cell already
 * laid out, so each cell is laid out exactly once; two sides inserting at the same place give
 * local's cells first, then remote's. A conflict copy is not an entry: it travels with its
 * cell. */
static void merge_layout(Merge *m)
{
        size_t tail = NONE, anchor = NONE;

        m->head = NONE;
        for (size_t k = 0; k < m->n[REMOTE]; k++) {
                size_t i = m->order[REMOTE][k];
                Entry *e = &m->entries[i];

                if (e->action == CELL_DROP || e->placed_by_local)
                        continue;
                merge_insert_after(m, tail, i);
                tail = i;
        }
        for (size_t k = 0; k < m->n[LOCAL]; k++) {
                size_t i = m->order[LOCAL][k];
                Entry *e = &m->entries[i];

                if (e->action == CELL_DROP)
                        continue;
                if (e->placed_by_local)
                        merge_insert_after(m, anchor, i);
                anchor = i;
        }
}

static bool merge_taken(const Merge *m, const char *id, size_t *ret_at)
{
        size_t lo = 0, hi = m->n_taken;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int r = strcmp(m->taken[mid], id);

                if (r == 0)
                        return true;
                if (r < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_at = lo;
        return false;
}

/* Names local's copy of a conflicting cell: ID~conflict, else ID~conflict2, ~conflict3, ... the
 * first not taken in the merge, with ID cut short (never inside a UTF-8 character) where the
 * whole would pass MAX_ID_BYTES. Every candidate differs from the others (the suffix is the last
 * "~conflict" in it, and its number tells them apart), so one of the first n_taken + 1 is free. */
/* FNV-1a over a cell's type and code: the content a copy is named after. */
static uint32_t cell_source_hash(const cJSON *cell)
{
        static const char *const keys[] = { "type", "code" };
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const cJSON *v = member(cell, keys[i]);
                const char *p = cJSON_IsString(v) ? v->valuestring : "";

                for (; *p; p++)
                        h = (h ^ (unsigned char)*p) * 16777619u;
                h = (h ^ 0xffu) * 16777619u; /* a separator no UTF-8 text holds */
        }
        return h;
}

static int merge_name_copy(Merge *m, Entry *e)
{
        size_t n = strlen(e->id);
        uint32_t tag = (m->flags & MERGE_COPY_ID_BY_CONTENT) ? cell_source_hash(e->cell[LOCAL]) : 0;

        for (size_t k = 1; k <= m->n_taken + 1; k++) {
                char suffix[sizeof(MERGE_CONFLICT_SUFFIX) + 40], id[MAX_ID_BYTES + 1];
                size_t keep, len, at = 0;

                if (m->flags & MERGE_COPY_ID_BY_CONTENT)
                        len = k == 1 ? (size_t)snprintf(suffix, sizeof(suffix), "%s-%08x",
                                                        MERGE_CONFLICT_SUFFIX, tag)
                                     : (size_t)snprintf(suffix, sizeof(suffix), "%s-%08x-%zu",
                                                        MERGE_CONFLICT_SUFFIX, tag, k);
                else if (k == 1)
                        len = (size_t)snprintf(suffix, sizeof(suffix), "%s", MERGE_CONFLICT_SUFFIX);
                else
                        len = (size_t)snprintf(suffix, sizeof(suffix), "%s%zu", MERGE_CONFLICT_SUFFIX, k);
                keep = MIN(n, MAX_ID_BYTES - len);
                while (keep > 0 && keep < n && ((unsigned char)e->id[keep] & 0xc0) == 0x80)
                        keep--;
                memcpy(id, e->id, keep);
                memcpy(id + keep, suffix, len + 1);

                if (merge_taken(m, id, &at))
                        continue;
                e->copy_id = strdup(id);
                if (!e->copy_id)
                        return -ENOMEM;
                memmove(m->taken + at + 1, m->taken + at, (m->n_taken - at) * sizeof(char *));
                m->taken[at] = e->copy_id;
                m->n_taken++;
                return 0;
        }
        return -EINVAL; /* cannot happen, see above */
}

/* Adds item (NULL: allocation failed) to an object, or to an array when key is NULL; consumes
 * it either way. */
static int json_add(cJSON *to, const char *key, cJSON *item)
{
        if (!item)
                return -ENOMEM;
        if (!(key ? cJSON_AddItemToObject(to, key, item) : cJSON_AddItemToArray(to, item))) {
                cJSON_Delete(item);
                return -ENOMEM;
        }
        return 0;
}

static cJSON *json_duplicate(const cJSON *v)
{
        return v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
}

static int conflict_add_cell(cJSON *conflicts, const char *id, const char *copy_id)
{
        _cleanup_(cJSON_Deletep) cJSON *c = cJSON_CreateObject();
        int r;

        if (!c)
                return -ENOMEM;
        r = json_add(c, "cell_id", cJSON_CreateString(id));
        if (r < 0)
                return r;
        r = json_add(c, "copy_id", cJSON_CreateString(copy_id));
        if (r < 0)
                return r;
        return json_add(conflicts, NULL, TAKE_PTR(c));
}

static int conflict_add_field(cJSON *conflicts, const char *field, const cJSON *local)
{
        _cleanup_(cJSON_Deletep) cJSON *c = cJSON_CreateObject();
        int r;

        if (!c)
                return -ENOMEM;
        r = json_add(c, "field", cJSON_CreateString(field));
        if (r < 0)
                return r;
        r = json_add(c, "local", json_duplicate(local));
        if (r < 0)
                return r;
        return json_add(conflicts, NULL, TAKE_PTR(c));
}

static int merge_cells_build(const Merge *m, cJSON *cells, cJSON *conflicts)
{
        for (size_t i = m->head; i != NONE; i = m->entries[i].next) {
                const Entry *e = &m->entries[i];
                _cleanup_(cJSON_Deletep) cJSON *copy = NULL;
                int r;

                r = json_add(cells, NULL,
                             cJSON_Duplicate(e->cell[e->action == CELL_LOCAL ? LOCAL : REMOTE], true));
                if (r < 0)
                        return r;
                if (e->action != CELL_CONFLICT)
                        continue;

                copy = cJSON_Duplicate(e->cell[LOCAL], true);
                if (!copy)
                        return -ENOMEM;
                /* Replacing keeps the member where it was: the copy prints like the original. */
                if (!cJSON_ReplaceItemInObjectCaseSensitive(copy, "id", cJSON_CreateString(e->copy_id)))
                        return -ENOMEM;
                r = json_add(cells, NULL, TAKE_PTR(copy));
                if (r < 0)
                        return r;
                r = conflict_add_cell(conflicts, e->id, e->copy_id);
                if (r < 0)
                        return r;
        }
        return 0;
}

int merge_notebooks(const cJSON *base, const cJSON *local, const cJSON *remote, unsigned max_cells,
                    unsigned flags, cJSON **ret_merged, cJSON **ret_conflicts)
{
        /* The members of the result, in the protocol's order: the notebook fields merged, the
         * rest remote's as they are (left out when remote has none). */
        static const struct {
                const char *key;
                bool merged;
        } KEYS[] = {
                { "id", false },          { "user_id", false },
                { "name", true },         { "db_conn_string", true },
                { "revision", false },    { "created_at", false },
                { "updated_at", false },  { "ttl", true },
                { "demo_version", true },
        };
        _cleanup_(merge_done) Merge m = { .head = NONE, .flags = flags };
        _cleanup_(cJSON_Deletep) cJSON *merged = NULL, *conflicts = NULL, *cells = NULL;
        const cJSON *side_cells[_SIDE_MAX];
        size_t n_out = 0;
        int r;

        side_cells[BASE] = base ? notebook_cells(base) : NULL;
        side_cells[LOCAL] = notebook_cells(local);
        side_cells[REMOTE] = notebook_cells(remote);
        if ((base && !side_cells[BASE]) || !side_cells[LOCAL] || !side_cells[REMOTE])
                return -EINVAL;

        r = merge_index(&m, side_cells);
        if (r < 0)
                return r;
        r = merge_find_moves(&m, LOCAL);
        if (r < 0)
                return r;
        r = merge_find_moves(&m, REMOTE);
        if (r < 0)
                return r;

        for (size_t i = 0; i < m.n_entries; i++) {
                Entry *e = &m.entries[i];

                e->action = cell_decide(e->cell[BASE], e->cell[LOCAL], e->cell[REMOTE]);
                if (e->action == CELL_DROP)
                        continue;
                /* Local places what remote does not have, and what only local moved; a cell both
                 * moved stays where remote put it. */
                e->placed_by_local =
                        e->cell[LOCAL] && (!e->cell[REMOTE] || (e->moved[LOCAL] && !e->moved[REMOTE]));
                n_out += e->action == CELL_CONFLICT ? 2 : 1;
        }
        if (n_out > max_cells)
                return -E2BIG;

        /* Entries are sorted by id, so the ids kept start out sorted. */
        m.taken = new_array(n_out, sizeof(char *));
        if (!m.taken)
                return -ENOMEM;
        for (size_t i = 0; i < m.n_entries; i++)
                if (m.entries[i].action != CELL_DROP)
                        m.taken[m.n_taken++] = m.entries[i].id;

        merge_layout(&m);
        /* Copies are named in the merged order: where two compete for a name (long ids cut to
         * the same prefix), the one higher in the notebook gets the lower number. */
        for (size_t i = m.head; i != NONE; i = m.entries[i].next)
                if (m.entries[i].action == CELL_CONFLICT) {
                        r = merge_name_copy(&m, &m.entries[i]);
                        if (r < 0)
                                return r;
                }

        merged = cJSON_CreateObject();
        conflicts = cJSON_CreateArray();
        cells = cJSON_CreateArray();
        if (!merged || !conflicts || !cells)
                return -ENOMEM;

        for (size_t k = 0; k < ELEMENTSOF(KEYS); k++) {
                const cJSON *v;
                bool conflict;

                if (!KEYS[k].merged) {
                        v = member(remote, KEYS[k].key);
                        if (!v)
                                continue;
                        r = json_add(merged, KEYS[k].key, cJSON_Duplicate(v, true));
                        if (r < 0)
                                return r;
                        continue;
                }
                v = merge_field(member(base, KEYS[k].key), member(local, KEYS[k].key),
                                member(remote, KEYS[k].key), base != NULL, &conflict);
                r = json_add(merged, KEYS[k].key, json_duplicate(v));
                if (r < 0)
                        return r;
                if (conflict) {
                        r = conflict_add_field(conflicts, KEYS[k].key, member(local, KEYS[k].key));
                        if (r < 0)
                                return r;
                }
        }

        r = merge_cells_build(&m, cells, conflicts);
        if (r < 0)
                return r;
        r = json_add(merged, "cells", TAKE_PTR(cells));
        if (r < 0)
                return r;

        if (ret_merged)
                *ret_merged = TAKE_PTR(merged);
        if (ret_conflicts)
                *ret_conflicts = TAKE_PTR(conflicts);
        return 0;
}
