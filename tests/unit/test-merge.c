/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "model.h"
#include "nb-limits.h"
#include "tap.h"
#include "util.h"

/* Notebooks are written compactly: "FIELDS | CELLS", the fields part optional.
 *
 *   FIELDS  name=A db=pg ttl=1 demo=1   (name, db_conn_string, ttl, demo_version; absent: null)
 *   CELLS   a b:sql c=x d=x/out          id[:sql][=code][/stdout]
 *
 * A cell's code is its id unless given; one with a stdout has run (status success, the stdout as
 * a text/plain output too), one without is idle. Results render the same way, so a case reads as
 * three notebooks and the one expected. */

static const char *const FIELDS[] = { "name", "db_conn_string", "ttl", "demo_version" };
static const char *const FIELD_SHORT[] = { "name", "db", "ttl", "demo" };

static const cJSON *get(const cJSON *obj, const char *key)
{
        return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *get_str(const cJSON *obj, const char *key)
{
        const cJSON *v = get(obj, key);

        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void set(cJSON *obj, const char *key, cJSON *v)
{
        if (get(obj, key))
                cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
        else
                cJSON_AddItemToObject(obj, key, v);
}

static void cell_set_result(cJSON *c, const char *out)
{
        cJSON *outputs = cJSON_CreateArray();

        if (out && *out) {
                cJSON *o = cJSON_CreateObject();

                cJSON_AddStringToObject(o, "mime_type", "text/plain");
                cJSON_AddStringToObject(o, "data", out);
                cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
                cJSON_AddItemToArray(outputs, o);
        }
        set(c, "status", cJSON_CreateString(out && *out ? "success" : "idle"));
        set(c, "stdout", cJSON_CreateString(out ? out : ""));
        set(c, "outputs", outputs);
}

static cJSON *cell_new(const char *id, const char *type, const char *code, const char *out)
{
        cJSON *c = cJSON_CreateObject();

        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", type);
        cJSON_AddStringToObject(c, "code", code);
        cell_set_result(c, out);
        cJSON_AddNullToObject(c, "error");
        cJSON_AddItemToObject(c, "reads", cJSON_CreateArray());
        cJSON_AddItemToObject(c, "writes", cJSON_CreateArray());
        return c;
}

/* A notebook with no cells; revision tells the versions apart (base 1, local 2, remote 3), and
 * with it updated_at, so that a test sees which side those came from. */
static cJSON *nb_new(int revision)
{
        cJSON *nb = cJSON_CreateObject();
        char updated[64];

        snprintf(updated, sizeof(updated), "2026-01-01T00:00:0%d.000Z", revision);
        cJSON_AddStringToObject(nb, "id", "nb-1");
        cJSON_AddStringToObject(nb, "user_id", "alice");
        cJSON_AddNullToObject(nb, "name");
        cJSON_AddNullToObject(nb, "db_conn_string");
        cJSON_AddNumberToObject(nb, "revision", revision);
        cJSON_AddStringToObject(nb, "created_at", "2026-01-01T00:00:00.000Z");
        cJSON_AddStringToObject(nb, "updated_at", updated);
        cJSON_AddNullToObject(nb, "ttl");
        cJSON_AddNullToObject(nb, "demo_version");
        cJSON_AddItemToObject(nb, "cells", cJSON_CreateArray());
        return nb;
}

static cJSON *cells_of(const cJSON *nb)
{
        return cJSON_GetObjectItemCaseSensitive(nb, "cells");
}

static cJSON *nb_parse(const char *spec, int revision)
{
        cJSON *nb = nb_new(revision);
        _cleanup_free_ char *buf = strdup(spec);
        char *save = NULL, *cells = buf, *bar = strchr(buf, '|');

        if (bar) {
                *bar = '\0';
                cells = bar + 1;
                for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                        char *v = strchr(t, '=');

                        *v++ = '\0';
                        for (size_t f = 0; f < ELEMENTSOF(FIELDS); f++)
                                if (streq(t, FIELD_SHORT[f]))
                                        set(nb, FIELDS[f],
                                            f < 2 ? cJSON_CreateString(v) : cJSON_CreateNumber(atoi(v)));
                }
        }
        for (char *t = strtok_r(cells, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                char *out = strchr(t, '/'), *code, *type;

                if (out)
                        *out++ = '\0';
                code = strchr(t, '=');
                if (code)
                        *code++ = '\0';
                type = strchr(t, ':');
                if (type)
                        *type++ = '\0';
                cJSON_AddItemToArray(cells_of(nb),
                                     cell_new(t, type ? type : "python", code ? code : t, out));
        }
        return nb;
}

static char *buf_take(Buf *b)
{
        char *s = strdup(buf_str(b) ?: "(out of memory)");

        buf_done(b);
        return s;
}

static void render_cell(Buf *b, const cJSON *c)
{
        const char *id = get_str(c, "id"), *type = get_str(c, "type"), *code = get_str(c, "code"),
                   *out = get_str(c, "stdout");

        buf_puts(b, id);
        if (!streq_ptr(type, "python")) {
                buf_putc(b, ':');
                buf_puts(b, type ? type : "?");
        }
        if (!streq_ptr(code, id)) {
                buf_putc(b, '=');
                buf_puts(b, code ? code : "?");
        }
        if (out && *out) {
                buf_putc(b, '/');
                buf_puts(b, out);
        }
}

/* Back to the compact form: the merge's result as a case expects it. */
static char *nb_render(const cJSON *nb)
{
        Buf b = {};
        const cJSON *c;
        bool fields = false;

        for (size_t f = 0; f < ELEMENTSOF(FIELDS); f++) {
                const cJSON *v = get(nb, FIELDS[f]);
                _cleanup_free_ char *s = NULL;

                if (!v || cJSON_IsNull(v))
                        continue;
                s = cJSON_IsString(v) ? strdup(v->valuestring) : cJSON_PrintUnformatted(v);
                if (fields)
                        buf_putc(&b, ' ');
                buf_puts(&b, FIELD_SHORT[f]);
                buf_putc(&b, '=');
                buf_puts(&b, s);
                fields = true;
        }
        if (fields)
                buf_puts(&b, " |");
        cJSON_ArrayForEach(c, cells_of(nb))
        {
                if (b.len > 0)
                        buf_putc(&b, ' ');
                render_cell(&b, c);
        }
        return buf_take(&b);
}

/* Conflicts as "CELL>COPY" and "FIELD:LOCAL-JSON", space-separated. */
static char *conflicts_render(const cJSON *conflicts)
{
        Buf b = {};
        const cJSON *c;

        cJSON_ArrayForEach(c, conflicts)
        {
                if (b.len > 0)
                        buf_putc(&b, ' ');
                if (get_str(c, "cell_id")) {
                        buf_puts(&b, get_str(c, "cell_id"));
                        buf_putc(&b, '>');
                        buf_puts(&b, get_str(c, "copy_id") ?: "?");
                } else {
                        _cleanup_free_ char *v = model_json_print(get(c, "local"), false);

                        buf_puts(&b, get_str(c, "field") ?: "?");
                        buf_putc(&b, ':');
                        buf_puts(&b, v ?: "?");
                }
        }
        return buf_take(&b);
}

/* ---- the table ---------------------------------------------------------------------------- */

typedef struct Case {
        const char *title;
        const char *base; /* NULL: no common ancestor */
        const char *local, *remote;
        const char *want, *want_conflicts;
} Case;

/* { title, base, local, remote, the merge, its conflicts } */
static const Case CASES[] = {
        /* Notebook fields (rule 1). */
        { "field changed locally only: local's", "name=A | a", "name=B | a", "name=A | a", "name=B | a",
          "" },
        { "field changed remotely only: remote's", "ttl=1 | a", "ttl=1 | a", "ttl=2 | a", "ttl=2 | a", "" },
        { "field changed alike on both sides: no conflict", "name=A | a", "name=B | a", "name=B | a",
          "name=B | a", "" },
        { "field changed differently: remote's stands, local's recorded", "name=A db=pg | a",
          "name=L db=pg | a", "name=R db=pg | a", "name=R db=pg | a", "name:\"L\"" },
        { "field cleared locally, changed remotely: a conflict with a null", "ttl=1 | a", "a", "ttl=2 | a",
          "ttl=2 | a", "ttl:null" },
        { "field cleared locally only: cleared", "db=pg | a", "a", "db=pg | a", "a", "" },
        { "each side changed another field: both", "name=A ttl=1 | a", "name=B ttl=1 | a",
          "name=A ttl=1 demo=1 | a", "name=B ttl=1 demo=1 | a", "" },

        /* A cell on all three sides (rule 2). */
        { "cell edited locally only", "a b c", "a b=x c", "a b c", "a b=x c", "" },
        { "cell edited remotely only", "a b c", "a b c", "a b=y c", "a b=y c", "" },
        { "same edit on both sides: once, no conflict", "a b c", "a b=x c", "a b=x c", "a b=x c", "" },
        { "both sides edited different cells: both edits", "a b c", "a=x b c", "a b c=y", "a=x b c=y", "" },
        { "both ran the same code, different results: remote's, no conflict", "a b", "a b/1", "a b/2",
          "a b/2", "" },
        { "both made the same new code, different results: remote's", "a b", "a b=x/1", "a b=x", "a b=x",
          "" },
        { "local changed the code, remote only ran it: local's whole cell", "a b", "a b=x", "a b/2", "a b=x",
          "" },
        { "remote changed the code, local only ran it: remote's whole cell", "a b", "a b/1", "a b=y",
          "a b=y", "" },
        { "local changed the code of a run cell, remote ran it again", "a b/0", "a b=x", "a b/2", "a b=x",
          "" },
        { "both changed the code differently: remote's, local's copy after it", "a b c", "a b=x c",
          "a b=y c", "a b=y b~conflict=x c", "b>b~conflict" },
        { "type changed on one side, code on the other: both are source", "a b", "a b:sql", "a b=y",
          "a b=y b~conflict:sql=b", "b>b~conflict" },

        /* Deleted on one side (rule 3), nbdime's "deleted and edited". */
        { "deleted locally, untouched remotely: gone", "a b c", "a c", "a b c", "a c", "" },
        { "deleted remotely, untouched locally: gone", "a b c", "a b c", "a c", "a c", "" },
        { "deleted locally, edited remotely: the edit survives", "a b c", "a c", "a b=y c", "a b=y c", "" },
        { "deleted locally, run remotely: the run survives", "a b c", "a c", "a b/1 c", "a b/1 c", "" },
        { "deleted remotely, edited locally: kept where local has it", "a b c", "a b=x c", "a c", "a b=x c",
          "" },
        { "deleted remotely with its neighbour, edited locally: first", "a b c", "b=x c", "c", "b=x c", "" },
        { "deleted on both sides: gone", "a b c", "a c", "a c", "a c", "" },
        { "everything deleted on one side, untouched on the other", "a b", "", "a b", "", "" },

        /* Added (rule 4), nbdime's "both inserted at the same place". */
        { "added locally: after its predecessor", "a b", "a x b", "a b", "a x b", "" },
        { "added remotely", "a b", "a b", "a b y", "a b y", "" },
        { "both inserted at the same place: local's first", "a b", "a x b", "a y b", "a x y b", "" },
        { "both inserted at the top", "a b", "x a b", "y a b", "x y a b", "" },
        { "both inserted runs at the same place: not interleaved", "a b", "a x1 x2 b", "a y1 y2 b",
          "a x1 x2 y1 y2 b", "" },
        { "same cell added on both sides: once", "a", "a n=x", "a n=x", "a n=x", "" },
        { "same id added with the same code, different results: remote's", "a", "a n=x/1", "a n=x/2",
          "a n=x/2", "" },
        { "same id added differently on both sides: a conflict", "a", "a n=x", "a n=y", "a n=y n~conflict=x",
          "n>n~conflict" },
        { "both added to an empty notebook", "", "x", "y", "x y", "" },

        /* Order (rule 5), nbdime's "moved differently on both sides". */
        { "local moved a cell", "a b c d", "b c a d", "a b c d", "b c a d", "" },
        { "remote moved a cell", "a b c d", "a b c d", "b c a d", "b c a d", "" },
        { "local moved a cell down, remote inserted beside it", "a b c d", "a c d b", "a r b c d",
          "a r c d b", "" },
        { "same cell moved differently on both sides: remote's place", "a b c d", "b c a d", "b c d a",
          "b c d a", "" },
        { "each side moved another cell: both moves", "a b c d", "b c a d", "d a b c", "d b c a", "" },
        { "local swapped two blocks", "a b c d", "c d a b", "a b c d", "c d a b", "" },
        { "local moved a cell, remote edited it: the edit at local's place", "a b c", "b c a", "a=x b c",
          "b c a=x", "" },
        { "remote moved a cell, local edited it", "a b c", "a=x b c", "b c a", "b c a=x", "" },
        { "local moved a cell after one remote deleted: after the one before", "a b c d", "b c d a", "a b c",
          "b c a", "" },
        { "a conflicting cell local moved takes its copy along", "a b c", "b c a=x", "a=y b c",
          "b c a=y a~conflict=x", "a>a~conflict" },
        { "local inserted after a cell remote moved: follows it", "a b c", "a x b c", "b c a", "b c a x",
          "" },
        { "local moved a cell and inserted after it", "a b c", "b c a x", "a b c", "b c a x", "" },

        /* Naming copies. */
        { "copy id taken by a cell: ~conflict2", "a b", "a b=x b~conflict", "a b=y",
          "a b=y b~conflict2=x b~conflict", "b>b~conflict2" },
        { "copies of two conflicts do not collide", "b b~conflict", "b=x b~conflict=x", "b=y b~conflict=y",
          "b=y b~conflict2=x b~conflict=y b~conflict~conflict=x",
          "b>b~conflict2 b~conflict>b~conflict~conflict" },
        { "~conflict and ~conflict2 taken: ~conflict3", "b", "b=x", "b=y b~conflict b~conflict2",
          "b=y b~conflict3=x b~conflict b~conflict2", "b>b~conflict3" },
        { "a copy may take the id of a cell the merge deleted", "b b~conflict", "b=x", "b=y",
          "b=y b~conflict=x", "b>b~conflict" },

        /* No common ancestor. */
        { "no ancestor, same notebook: no conflict", NULL, "name=A | a b", "name=A | a b", "name=A | a b",
          "" },
        { "no ancestor: differences conflict, the rest is kept", NULL, "name=L | a b=x c",
          "name=R | a b=y d", "name=R | a b=y b~conflict=x c d", "name:\"L\" b>b~conflict" },
        { "no ancestor: a null against a value is a conflict", NULL, "a", "ttl=5 | a", "ttl=5 | a",
          "ttl:null" },
        { "no ancestor: a value against a null is a conflict", NULL, "ttl=5 | a", "a", "a", "ttl:5" },
        { "no ancestor: one side empty", NULL, "", "a b", "a b", "" },
        { "no ancestor: same code, one side ran it: remote's, no conflict", NULL, "a/1 b", "a b/2", "a b/2",
          "" },
};

static void test_table(void)
{
        for (size_t i = 0; i < ELEMENTSOF(CASES); i++) {
                const Case *t = &CASES[i];
                _cleanup_(cJSON_Deletep) cJSON *b = t->base ? nb_parse(t->base, 1) : NULL,
                                               *l = nb_parse(t->local, 2), *r = nb_parse(t->remote, 3),
                                               *m = NULL, *conflicts = NULL;
                _cleanup_free_ char *got = NULL, *got_conflicts = NULL;
                int ret;

                ret = merge_notebooks(b, l, r, MAX_CELLS, 0, &m, &conflicts);
                if (ret < 0)
                        printf("# merge_notebooks() failed: %s\n", strerror(-ret));
                got = m ? nb_render(m) : NULL;
                got_conflicts = conflicts ? conflicts_render(conflicts) : NULL;
                is_str(got, t->want, "%s: %s", t->title, t->want);
                is_str(got_conflicts, t->want_conflicts, "%s: conflicts \"%s\"", t->title,
                       t->want_conflicts);
        }
}

/* What the result takes from remote as it is, and that it is a new notebook. */
static void test_copied(void)
{
        _cleanup_(cJSON_Deletep) cJSON *b = nb_parse("a", 1), *l = nb_parse("a=x", 2), *r = nb_parse("a", 3),
                                       *m = NULL;
        const char *keys[] = { "id", "user_id", "created_at", "revision", "updated_at" };
        _cleanup_free_ char *text = NULL;

        set(r, "id", cJSON_CreateString("nb-remote"));
        set(r, "user_id", cJSON_CreateString("bob"));
        set(r, "created_at", cJSON_CreateString("2026-02-02T00:00:00.000Z"));
        is_int(merge_notebooks(b, l, r, MAX_CELLS, 0, &m, NULL), 0, "conflicts are optional");
        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                ok(cJSON_Compare(get(m, keys[k]), get(r, keys[k]), true), "%s is remote's", keys[k]);
        text = model_json_print(m, false);
        is_str(text,
               "{\"id\":\"nb-remote\",\"user_id\":\"bob\",\"name\":null,\"db_conn_string\":null,"
               "\"revision\":3,"
               "\"created_at\":\"2026-02-02T00:00:00.000Z\",\"updated_at\":\"2026-01-01T00:00:03.000Z\","
               "\"ttl\":null,\"demo_version\":null,\"cells\":[{\"id\":\"a\",\"type\":\"python\",\"code\":"
               "\"x\","
               "\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[],\"error\":null,\"reads\":[],\"writes\":[]"
               "}]}",
               "the result has the protocol's members in the protocol's order");
        ok(get(m, "cells") != get(l, "cells") &&
                   cJSON_GetArrayItem(get(m, "cells"), 0) != cJSON_GetArrayItem(get(l, "cells"), 0),
           "the result shares nothing with its inputs");
}

/* Ids at MAX_ID_BYTES: the copy's id is cut short before the suffix, on a character boundary. */
static void test_long_ids(void)
{
        static const struct {
                const char *title;
                const char *head;  /* repeated 'a' fill the id up to 128 bytes before this tail */
                const char *taken; /* a remote cell already named like the first copy, or NULL */
                size_t want_len;
                const char *want_tail;
        } cases[] = {
                { "128 ASCII bytes: 119 kept, then ~conflict", "", NULL, 128, "aaa~conflict" },
                { "a 2-byte character across the cut: dropped whole",
                  "\xc3\xa9"
                  "bbbbbbbb",
                  NULL, 127, "aaa~conflict" },
                { "a 4-byte character across the cut: dropped whole",
                  "\xf0\x9f\x98\x80"
                  "bbbbbbb",
                  NULL, 126, "aaa~conflict" },
                { "a 2-byte character just before the cut: kept",
                  "\xc3\xa9"
                  "bbbbbbbbb",
                  NULL, 128, "a\xc3\xa9~conflict" },
                { "~conflict taken: ~conflict2, one byte shorter", "", "x", 128, "aaa~conflict2" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(cJSON_Deletep) cJSON *b = nb_new(1), *l = nb_new(2), *r = nb_new(3), *m = NULL,
                                               *conflicts = NULL;
                char id[MAX_ID_BYTES + 1];
                size_t tail = strlen(cases[i].head);
                const char *copy;
                size_t n;

                memset(id, 'a', MAX_ID_BYTES - tail);
                memcpy(id + MAX_ID_BYTES - tail, cases[i].head, tail + 1);
                cJSON_AddItemToArray(cells_of(b), cell_new(id, "python", "", NULL));
                cJSON_AddItemToArray(cells_of(l), cell_new(id, "python", "x", NULL));
                cJSON_AddItemToArray(cells_of(r), cell_new(id, "python", "y", NULL));
                if (cases[i].taken) {
                        char first[MAX_ID_BYTES + 1];

                        snprintf(first, sizeof(first), "%.*s%s", MAX_ID_BYTES - 9, id,
                                 MERGE_CONFLICT_SUFFIX);
                        cJSON_AddItemToArray(cells_of(r), cell_new(first, "python", "", NULL));
                }

                if (!is_int(merge_notebooks(b, l, r, MAX_CELLS, 0, &m, &conflicts), 0, "%s: merges",
                            cases[i].title))
                        continue;
                copy = get_str(cJSON_GetArrayItem(cells_of(m), 1), "id");
                n = copy ? strlen(copy) : 0;
                ok(copy && n == cases[i].want_len && n >= strlen(cases[i].want_tail) &&
                           streq(copy + n - strlen(cases[i].want_tail), cases[i].want_tail) &&
                           strncmp(copy, id, n - strlen(cases[i].want_tail)) == 0,
                   "%s: %zu bytes", cases[i].title, cases[i].want_len);
                ok(copy && utf8_is_valid(copy, n) && model_id_valid(copy, MAX_ID_BYTES), "%s: a valid id",
                   cases[i].title);
                is_str(get_str(cJSON_GetArrayItem(conflicts, 0), "copy_id"), copy, "%s: reported",
                       cases[i].title);
        }
}

static void test_refused(void)
{
        static const struct {
                const char *title, *local_json;
        } bad[] = {
                { "not an object", "[]" },
                { "no cells", "{\"id\":\"n\"}" },
                { "cells not an array", "{\"cells\":{}}" },
                { "a cell not an object", "{\"cells\":[\"a\"]}" },
                { "a cell without an id", "{\"cells\":[{\"code\":\"\"}]}" },
                { "an id not a string", "{\"cells\":[{\"id\":1}]}" },
                { "an empty id", "{\"cells\":[{\"id\":\"\"}]}" },
                { "an id with a control character", "{\"cells\":[{\"id\":\"a\\nb\"}]}" },
                { "an id twice", "{\"cells\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"a\"}]}" },
        };
        _cleanup_(cJSON_Deletep) cJSON *good = nb_parse("a b", 1), *big = nb_new(1);
        cJSON *none = NULL;
        char id[MAX_ID_BYTES + 2];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(cJSON_Deletep) cJSON *v = cJSON_Parse(bad[i].local_json);
                cJSON *m = NULL, *conflicts = NULL;

                is_int(merge_notebooks(good, v, good, MAX_CELLS, 0, &m, &conflicts), -EINVAL,
                       "%s as local: -EINVAL", bad[i].title);
                is_int(merge_notebooks(good, good, v, MAX_CELLS, 0, &m, &conflicts), -EINVAL,
                       "%s as remote: -EINVAL", bad[i].title);
                is_int(merge_notebooks(v, good, good, MAX_CELLS, 0, &m, &conflicts), -EINVAL,
                       "%s as base: -EINVAL", bad[i].title);
                ok(!m && !conflicts, "%s: nothing returned", bad[i].title);
        }

        memset(id, 'a', MAX_ID_BYTES + 1);
        id[MAX_ID_BYTES + 1] = '\0';
        cJSON_AddItemToArray(cells_of(big), cell_new(id, "python", "", NULL));
        is_int(merge_notebooks(NULL, big, good, MAX_CELLS, 0, &none, NULL), -EINVAL,
               "an id of MAX_ID_BYTES + 1: -EINVAL");
}

static void test_max_cells(void)
{
        _cleanup_(cJSON_Deletep) cJSON *b = nb_parse("a b", 1), *l = nb_parse("a b=x c", 2),
                                       *r = nb_parse("a b=y d", 3), *m = NULL;
        cJSON *none = NULL;

        /* a, b, b's copy, c, d */
        is_int(merge_notebooks(b, l, r, 4, 0, &none, NULL), -E2BIG, "one over max_cells: -E2BIG");
        ok(!none, "nothing merged");
        is_int(merge_notebooks(b, l, r, 5, 0, &m, NULL), 0, "at max_cells: merged");
        is_int(cJSON_GetArraySize(cells_of(m)), 5, "the conflict copy counts");
        is_int(merge_notebooks(b, b, b, 1, 0, &none, NULL), -E2BIG, "even with nothing changed");
}

/* ---- random edits ------------------------------------------------------------------------- */

#define RANDOM_ITERATIONS 2000
#define RANDOM_SEED       UINT64_C(20260101)

/* splitmix64: the same sequence on every libc, so a seed reproduces a failure anywhere. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
        uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static unsigned rnd(unsigned n)
{
        return (unsigned)(rng_next() % n);
}

/* Few ids and values, so that both sides often pick the same ones: the same id added on both,
 * the same edit made twice, a copy id ("a~conflict") that is also a cell's. */
static const char *const IDS[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "a~conflict" };
static const char *const CODES[] = { "x", "y", "z" };
static const char *const OUTS[] = { "", "1", "2" };

static cJSON *random_value(size_t field)
{
        static const char *const STRINGS[][3] = { { "A", "B", "C" }, { "pg1", "pg2", "pg3" } };
        unsigned k = rnd(4);

        if (k == 3)
                return cJSON_CreateNull();
        return field < 2 ? cJSON_CreateString(STRINGS[field][k]) : cJSON_CreateNumber(k + 1);
}

static const cJSON *cell_by_id(const cJSON *nb, const char *id)
{
        const cJSON *c;

        if (!nb)
                return NULL;
        cJSON_ArrayForEach(c, cells_of(nb))
        {
                if (streq(get_str(c, "id"), id))
                        return c;
        }
        return NULL;
}

static cJSON *random_cell(const char *id)
{
        return cell_new(id, rnd(5) == 0 ? "sql" : "python", rnd(2) ? id : CODES[rnd(3)], OUTS[rnd(3)]);
}

/* Not cJSON_InsertItemInArray(): Debian's libcjson 1.7.15 drops an item inserted anywhere but at
 * the front. The cells after pos are taken off and put back behind c. */
static void insert_at(cJSON *cells, unsigned pos, cJSON *c)
{
        cJSON *rest[ELEMENTSOF(IDS) + 1];
        size_t n = 0;

        while (cJSON_GetArraySize(cells) > (int)pos)
                rest[n++] = cJSON_DetachItemFromArray(cells, (int)pos);
        cJSON_AddItemToArray(cells, c);
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(cells, rest[i]);
}

static cJSON *random_base(void)
{
        cJSON *nb = nb_new(1);
        unsigned n = rnd(9), start = rnd(ELEMENTSOF(IDS));

        for (size_t f = 0; f < ELEMENTSOF(FIELDS); f++)
                set(nb, FIELDS[f], random_value(f));
        for (unsigned i = 0; i < n; i++)
                insert_at(cells_of(nb), rnd(i + 1), random_cell(IDS[(start + i) % ELEMENTSOF(IDS)]));
        return nb;
}

/* One side's work: up to six edits of any kind. */
static cJSON *random_edit(const cJSON *base, int revision)
{
        cJSON *nb = cJSON_Duplicate(base, true), *cells = cells_of(nb);
        unsigned n_ops = rnd(7);

        set(nb, "revision", cJSON_CreateNumber(revision));
        for (unsigned k = 0; k < n_ops; k++) {
                unsigned n = (unsigned)cJSON_GetArraySize(cells), op = rnd(8);
                cJSON *c = n > 0 ? cJSON_GetArrayItem(cells, (int)rnd(n)) : NULL;

                switch (op) {
                case 0: /* edit the code */
                        if (c)
                                set(c, "code", cJSON_CreateString(CODES[rnd(3)]));
                        break;
                case 1: /* run it */
                        if (c)
                                cell_set_result(c, OUTS[rnd(3)]);
                        break;
                case 2: /* change its type */
                        if (c)
                                set(c, "type", cJSON_CreateString(rnd(2) ? "sql" : "python"));
                        break;
                case 3: { /* insert */
                        unsigned start = rnd(ELEMENTSOF(IDS));

                        for (size_t i = 0; i < ELEMENTSOF(IDS); i++) {
                                const char *id = IDS[(start + i) % ELEMENTSOF(IDS)];

                                if (!cell_by_id(nb, id)) {
                                        insert_at(cells, rnd(n + 1), random_cell(id));
                                        break;
                                }
                        }
                        break;
                }
                case 4: /* delete */
                        if (n > 0)
                                cJSON_DeleteItemFromArray(cells, (int)rnd(n));
                        break;
                case 5: /* move, twice as likely: the order rules need it */
                case 7:
                        if (n > 0) {
                                cJSON *moved = cJSON_DetachItemFromArray(cells, (int)rnd(n));

                                insert_at(cells, rnd(n), moved);
                        }
                        break;
                default: {
                        size_t f = rnd(ELEMENTSOF(FIELDS));

                        set(nb, FIELDS[f], random_value(f));
                        break;
                }
                }
        }
        return nb;
}

static bool value_equal(const cJSON *a, const cJSON *b)
{
        if (!a || cJSON_IsNull(a))
                return !b || cJSON_IsNull(b);
        return b && cJSON_Compare(a, b, true);
}

static bool source_equal(const cJSON *a, const cJSON *b)
{
        return value_equal(get(a, "type"), get(b, "type")) && value_equal(get(a, "code"), get(b, "code"));
}

/* Equal but for the id. */
static bool copy_equal(const cJSON *copy, const cJSON *orig)
{
        _cleanup_(cJSON_Deletep) cJSON *c = cJSON_Duplicate(copy, true);

        set(c, "id", cJSON_CreateString(get_str(orig, "id")));
        return cJSON_Compare(c, orig, true);
}

static bool print_equal(const cJSON *a, const cJSON *b)
{
        _cleanup_free_ char *x = model_json_print(a, false), *y = model_json_print(b, false);

        return x && y && streq(x, y);
}

/* The merge's fields and cells are x's, byte for byte. */
static bool same_content(const cJSON *m, const cJSON *x)
{
        for (size_t f = 0; f < ELEMENTSOF(FIELDS); f++)
                if (!print_equal(get(m, FIELDS[f]), get(x, FIELDS[f])))
                        return false;
        return print_equal(cells_of(m), cells_of(x));
}

static bool same_copied(const cJSON *m, const cJSON *x)
{
        static const char *const keys[] = { "id", "user_id", "created_at", "revision", "updated_at" };

        for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                if (!print_equal(get(m, keys[k]), get(x, keys[k])))
                        return false;
        return true;
}

/* The conflict reported with key equal to id, NULL if none. */
static const cJSON *conflict_by(const cJSON *conflicts, const char *key, const char *id)
{
        const cJSON *c;

        cJSON_ArrayForEach(c, conflicts)
        {
                if (streq_ptr(get_str(c, key), id))
                        return c;
        }
        return NULL;
}

/* The copy of a conflicting cell id, NULL if none. */
static const char *copy_of(const cJSON *conflicts, const char *id)
{
        return get_str(conflict_by(conflicts, "cell_id", id), "copy_id");
}

/* The cell of m under id, unless that id names a conflict copy: a copy may take the id of a cell
 * the merge deleted. */
static const cJSON *kept_cell(const cJSON *m, const cJSON *conflicts, const char *id)
{
        return conflict_by(conflicts, "copy_id", id) ? NULL : cell_by_id(m, id);
}

/* The base cells of nb, as base's positions, are in increasing order: nb moved none of them. */
static bool kept_base_order(const cJSON *base, const cJSON *nb)
{
        const cJSON *c;
        int last = -1;

        cJSON_ArrayForEach(c, cells_of(nb))
        {
                const cJSON *bc;
                int pos = 0;

                cJSON_ArrayForEach(bc, cells_of(base))
                {
                        if (streq(get_str(bc, "id"), get_str(c, "id")))
                                break;
                        pos++;
                }
                if (!bc)
                        continue;
                if (pos < last)
                        return false;
                last = pos;
        }
        return true;
}

/* The cells of m that x also has (copies aside) are in x's order. */
static bool in_order_of(const cJSON *m, const cJSON *conflicts, const cJSON *x)
{
        const cJSON *c, *xc = cells_of(x)->child;

        cJSON_ArrayForEach(c, cells_of(m))
        {
                if (!cell_by_id(x, get_str(c, "id")) || !kept_cell(m, conflicts, get_str(c, "id")))
                        continue;
                while (xc && !streq(get_str(xc, "id"), get_str(c, "id")))
                        xc = xc->next;
                if (!xc)
                        return false;
        }
        return true;
}

enum {
        P_SAME_EDITS,  /* merge(b, x, x) == x */
        P_REMOTE_ONLY, /* merge(b, b, r) == r */
        P_LOCAL_ONLY,  /* merge(b, l, b) == l but for what comes from remote */
        P_SOURCES,     /* cells come from local or remote, ids unique and valid, copies after theirs */
        P_EDITS_KEPT,  /* every edited cell survives, every new source is in the result */
        P_DELETES,     /* untouched cells stay, deleted ones go unless edited */
        P_CONFLICTS,   /* conflicts only where both changed */
        P_ORDER,       /* a side that moved nothing does not reorder the other's cells */
        P_DETERMINISTIC,
        P_NO_BASE, /* without a base every cell of both sides is in the result, as it was */
        _P_MAX,
};
static const char *const P_NAME[_P_MAX] = {
        [P_SAME_EDITS] = "merge(b, x, x) == x, without conflicts",
        [P_REMOTE_ONLY] = "merge(b, b, r) == r, without conflicts",
        [P_LOCAL_ONLY] = "merge(b, l, b) == l but for id, user_id, created_at, revision, updated_at",
        [P_SOURCES] = "every result cell is local's or remote's or a copy right after its cell; ids unique",
        [P_EDITS_KEPT] = "every edited cell of either side is in the result, every new source too",
        [P_DELETES] = "cells untouched on both sides stay, deletions of untouched cells hold",
        [P_CONFLICTS] = "a conflict only where both sides changed the source or field differently",
        [P_ORDER] = "a side that moved nothing keeps the other side's order",
        [P_DETERMINISTIC] = "the same inputs merge to the same bytes",
        [P_NO_BASE] = "with no ancestor, every cell of both sides is in the result (or its source is)",
};

static unsigned failures[_P_MAX];

/* How often the random merges met each situation: the properties mean little if they never do. */
static struct {
        unsigned cell_conflicts, field_conflicts, renamed_copies, edits_over_deletes, both_moved;
} seen;

static void fail(unsigned p, unsigned iteration, const cJSON *b, const cJSON *l, const cJSON *r,
                 const char *why)
{
        if (failures[p]++ > 0)
                return;
        _cleanup_free_ char *bs = b ? nb_render(b) : strdup("(none)"), *ls = nb_render(l),
                            *rs = nb_render(r);
        printf("# %s: iteration %u: %s\n#   base   %s\n#   local  %s\n#   remote %s\n", P_NAME[p], iteration,
               why, bs, ls, rs);
}

static bool merge_ok(const cJSON *b, const cJSON *l, const cJSON *r, cJSON **m, cJSON **conflicts)
{
        return merge_notebooks(b, l, r, MAX_CELLS, 0, m, conflicts) == 0;
}

static void check_identities(unsigned it, const cJSON *b, const cJSON *l, const cJSON *r)
{
        _cleanup_(cJSON_Deletep) cJSON *m1 = NULL, *c1 = NULL, *m2 = NULL, *c2 = NULL, *m3 = NULL,
                                       *c3 = NULL;

        if (!merge_ok(b, l, l, &m1, &c1) || !same_content(m1, l) || cJSON_GetArraySize(c1) != 0)
                fail(P_SAME_EDITS, it, b, l, l, "local's edits on both sides");
        if (!merge_ok(b, b, r, &m2, &c2) || !same_content(m2, r) || !same_copied(m2, r) ||
            cJSON_GetArraySize(c2) != 0)
                fail(P_REMOTE_ONLY, it, b, b, r, "remote changed alone");
        if (!merge_ok(b, l, b, &m3, &c3) || !same_content(m3, l) || !same_copied(m3, b) ||
            cJSON_GetArraySize(c3) != 0)
                fail(P_LOCAL_ONLY, it, b, l, b, "local changed alone");
}

/* Every cell of the result is local's or remote's, or local's copy right after remote's version
 * of its cell; ids are valid and unique; every copy reported is there. NULL, or what is wrong. */
static const char *check_sources(const cJSON *m, const cJSON *conflicts, const cJSON *l, const cJSON *r)
{
        const cJSON *c, *k;

        cJSON_ArrayForEach(c, cells_of(m))
        {
                const char *id = get_str(c, "id"), *orig;

                if (!id || !model_id_valid(id, MAX_ID_BYTES))
                        return "an invalid id";
                for (const cJSON *other = c->next; other; other = other->next)
                        if (streq(get_str(other, "id"), id))
                                return "an id twice";
                if (cJSON_Compare(c, cell_by_id(l, id), true) || cJSON_Compare(c, cell_by_id(r, id), true))
                        continue;
                k = conflict_by(conflicts, "copy_id", id);
                if (!k)
                        return "a cell from nowhere";
                orig = get_str(k, "cell_id");
                /* cJSON links the first element's prev to the last. */
                if (c == cells_of(m)->child || !streq_ptr(get_str(c->prev, "id"), orig))
                        return "a copy not right after its cell";
                if (!copy_equal(c, cell_by_id(l, orig)) ||
                    !cJSON_Compare(c->prev, cell_by_id(r, orig), true))
                        return "a copy not local's, or its cell not remote's";
        }
        cJSON_ArrayForEach(k, conflicts)
        {
                if (get_str(k, "copy_id") && !cell_by_id(m, get_str(k, "copy_id")))
                        return "a reported copy missing";
        }
        return NULL;
}

static void check_merge(unsigned it, const cJSON *b, const cJSON *l, const cJSON *r)
{
        _cleanup_(cJSON_Deletep) cJSON *m = NULL, *conflicts = NULL, *m2 = NULL, *conflicts2 = NULL;
        const char *why = NULL;
        const cJSON *sides[] = { l, r }, *c;

        if (!merge_ok(b, l, r, &m, &conflicts)) {
                fail(P_SOURCES, it, b, l, r, "merge failed");
                return;
        }

        if (!merge_ok(b, l, r, &m2, &conflicts2) || !print_equal(m, m2) ||
            !print_equal(conflicts, conflicts2))
                fail(P_DETERMINISTIC, it, b, l, r, "two runs differ");

        why = check_sources(m, conflicts, l, r);
        if (why)
                fail(P_SOURCES, it, b, l, r, why);

        cJSON_ArrayForEach(c, conflicts)
        {
                const char *id = get_str(c, "cell_id");
                char plain[MAX_ID_BYTES + 1];

                if (!id) {
                        seen.field_conflicts++;
                        continue;
                }
                seen.cell_conflicts++;
                snprintf(plain, sizeof(plain), "%s%s", id, MERGE_CONFLICT_SUFFIX);
                seen.renamed_copies += !streq_ptr(get_str(c, "copy_id"), plain);
        }
        seen.both_moved += !kept_base_order(b, l) && !kept_base_order(b, r);

        for (size_t s = 0; s < ELEMENTSOF(sides); s++)
                cJSON_ArrayForEach(c, cells_of(sides[s]))
                {
                        const char *id = get_str(c, "id"), *copy = s == 0 ? copy_of(conflicts, id) : NULL;
                        const cJSON *bc = cell_by_id(b, id), *mc = kept_cell(m, conflicts, id);

                        if (bc && cJSON_Compare(c, bc, true))
                                continue;
                        if (!mc)
                                fail(P_EDITS_KEPT, it, b, l, r,
                                     s == 0 ? "a local edit lost" : "a remote edit lost");
                        else if ((!bc || !source_equal(c, bc)) && !source_equal(mc, c) &&
                                 !(copy && source_equal(cell_by_id(m, copy), c)))
                                fail(P_EDITS_KEPT, it, b, l, r, "a new source lost");
                }

        cJSON_ArrayForEach(c, cells_of(b))
        {
                const char *id = get_str(c, "id");
                const cJSON *lc = cell_by_id(l, id), *rc = cell_by_id(r, id),
                            *mc = kept_cell(m, conflicts, id);

                if (lc && rc && cJSON_Compare(lc, c, true) && cJSON_Compare(rc, c, true) &&
                    !cJSON_Compare(mc, c, true))
                        fail(P_DELETES, it, b, l, r, "an untouched cell changed");
                seen.edits_over_deletes += mc && (!lc || !rc);
                if (mc && ((!lc && (!rc || cJSON_Compare(rc, c, true))) ||
                           (!rc && (!lc || cJSON_Compare(lc, c, true)))))
                        fail(P_DELETES, it, b, l, r, "a deletion undone");
        }

        cJSON_ArrayForEach(c, conflicts)
        {
                const char *id = get_str(c, "cell_id"), *field = get_str(c, "field");

                if (id) {
                        const cJSON *lc = cell_by_id(l, id), *rc = cell_by_id(r, id),
                                    *bc = cell_by_id(b, id);

                        if (!lc || !rc || source_equal(lc, rc) ||
                            (bc && (source_equal(lc, bc) || source_equal(rc, bc))))
                                fail(P_CONFLICTS, it, b, l, r, "a cell conflict without two source changes");
                } else if (!field || value_equal(get(l, field), get(r, field)) ||
                           value_equal(get(l, field), get(b, field)) ||
                           value_equal(get(r, field), get(b, field)) ||
                           !value_equal(get(m, field), get(r, field)) ||
                           !value_equal(get(c, "local"), get(l, field)))
                        fail(P_CONFLICTS, it, b, l, r, "a field conflict without two changes");
        }

        /* Local moved nothing: remote's cells keep remote's order. Remote moved nothing and no id
         * was added on both sides (remote's place would win): local's cells keep local's order. */
        if (kept_base_order(b, l) && !in_order_of(m, conflicts, r))
                fail(P_ORDER, it, b, l, r, "remote's order broken though local moved nothing");
        if (kept_base_order(b, r)) {
                bool added_twice = false;

                cJSON_ArrayForEach(c, cells_of(l))
                {
                        if (!cell_by_id(b, get_str(c, "id")) && cell_by_id(r, get_str(c, "id")))
                                added_twice = true;
                }
                if (!added_twice && !in_order_of(m, conflicts, l))
                        fail(P_ORDER, it, b, l, r, "local's order broken though remote moved nothing");
        }
}

/* No ancestor: a cell on one side only is kept, one on both is kept once if it has the same
 * source on both (remote's), else both stand (remote's and local's copy). */
static void check_no_base(unsigned it, const cJSON *l, const cJSON *r)
{
        _cleanup_(cJSON_Deletep) cJSON *m = NULL, *conflicts = NULL, *m2 = NULL, *conflicts2 = NULL;
        const char *why = NULL;
        const cJSON *c;

        if (!merge_ok(NULL, l, r, &m, &conflicts)) {
                fail(P_NO_BASE, it, NULL, l, r, "merge failed");
                return;
        }
        why = check_sources(m, conflicts, l, r);
        if (why)
                fail(P_NO_BASE, it, NULL, l, r, why);
        cJSON_ArrayForEach(c, cells_of(r))
        {
                if (!cJSON_Compare(kept_cell(m, conflicts, get_str(c, "id")), c, true))
                        fail(P_NO_BASE, it, NULL, l, r, "a remote cell changed");
        }
        cJSON_ArrayForEach(c, cells_of(l))
        {
                const char *id = get_str(c, "id"), *copy = copy_of(conflicts, id);
                const cJSON *mc = kept_cell(m, conflicts, id);

                if (!cJSON_Compare(mc, c, true) && !(copy && copy_equal(cell_by_id(m, copy), c)) &&
                    !(!copy && source_equal(mc, c)))
                        fail(P_NO_BASE, it, NULL, l, r, "a local cell lost");
        }
        if (!merge_ok(NULL, l, l, &m2, &conflicts2) || !same_content(m2, l) ||
            cJSON_GetArraySize(conflicts2) != 0)
                fail(P_NO_BASE, it, NULL, l, l, "merge(NULL, x, x) != x");
}

static void test_random(void)
{
        const char *env = getenv("TEST_MERGE_SEED");
        uint64_t seed = env ? strtoull(env, NULL, 0) : RANDOM_SEED;

        printf("# random: seed %" PRIu64 " (set TEST_MERGE_SEED to change), %u iterations\n", seed,
               RANDOM_ITERATIONS);
        rng_state = seed;
        for (unsigned it = 0; it < RANDOM_ITERATIONS; it++) {
                _cleanup_(cJSON_Deletep) cJSON *b = random_base(), *l = random_edit(b, 2),
                                               *r = random_edit(b, 3);

                check_identities(it, b, l, r);
                check_merge(it, b, l, r);
                check_no_base(it, l, r);
        }
        printf("# random: %u cell conflicts, %u field conflicts, %u copies named past a taken id, %u edits "
               "kept over a deletion, %u merges with moves on both sides\n",
               seen.cell_conflicts, seen.field_conflicts, seen.renamed_copies, seen.edits_over_deletes,
               seen.both_moved);
        for (unsigned p = 0; p < _P_MAX; p++)
                ok(failures[p] == 0, "random: %s (%u failures)", P_NAME[p], failures[p]);
}

/* One cell c1, its code given. */
static cJSON *one_cell(const char *code)
{
        char text[512];

        snprintf(text, sizeof(text),
                 "{\"id\":\"n\",\"user_id\":\"u\",\"name\":null,\"db_conn_string\":null,\"ttl\":null,"
                 "\"demo_version\":null,\"cells\":[{\"id\":\"c1\",\"type\":\"python\",\"code\":\"%s\","
                 "\"status\":\"idle\",\"stdout\":\"\",\"outputs\":[],\"error\":null,\"reads\":[],"
                 "\"writes\":[]}]}",
                 code);
        return cJSON_Parse(text);
}

/* The id of the copy a content-named merge makes of local's c1, or "" if none. */
static const char *copy_by_content(const char *local_code, const char *remote_code, char *buf, size_t size)
{
        _cleanup_(cJSON_Deletep) cJSON *b = one_cell("x"), *l = one_cell(local_code),
                                       *r = one_cell(remote_code), *m = NULL, *conflicts = NULL;
        const cJSON *copy;

        buf[0] = '\0';
        if (merge_notebooks(b, l, r, MAX_CELLS, MERGE_COPY_ID_BY_CONTENT, &m, &conflicts) == 0 &&
            (copy = cJSON_GetObjectItem(cJSON_GetArrayItem(conflicts, 0), "copy_id")))
                snprintf(buf, size, "%s", copy->valuestring);
        return buf;
}

static void test_copy_by_content(void)
{
        char a[200], b[200], c[200];

        copy_by_content("x = 'B'", "x = 'A'", a, sizeof(a));
        copy_by_content("x = 'C'", "x = 'A'", b, sizeof(b));
        copy_by_content("x = 'B'", "x = 'Z'", c, sizeof(c));
        ok(startswith(a, "c1~conflict-") && strlen(a) == strlen("c1~conflict-") + 8,
           "named after content: %s", a);
        ok(!streq(a, b), "two devices' versions get two ids (%s, %s)", a, b);
        is_str(c, a, "the same version gets the same id, whatever the other side");
}

int main(void)
{
        test_copy_by_content();
        test_table();
        test_copied();
        test_long_ids();
        test_refused();
        test_max_cells();
        test_random();
        return tap_done();
}
