/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdio.h>
#include <zlib.h>

#include "ddb.h"
#include "parts.h"
#include "sigv4.h"
#include "util.h"

/* The cell attributes that may move, in the order they are considered: outputs (images, HTML,
 * tables) before the code the user writes. */
static const char *const movable[] = { "outputs", "code", "stdout", "error" };

/* Compression is kept only when it saves at least a tenth: base64 images barely shrink. A large
 * value is first tried on three samples (start, middle, end), so that an image is not compressed
 * whole for nothing. */
#define COMPRESS_KEEP_RATIO   0.9
#define COMPRESS_SAMPLE_BYTES (16u * 1024)

/* Whether compressing len bytes at p would pay, judged on samples; true for small values. */
static bool worth_compressing(const unsigned char *p, size_t len)
{
        unsigned char z[COMPRESS_SAMPLE_BYTES + 1024];
        size_t in = 0, out = 0;

        if (len < 8 * COMPRESS_SAMPLE_BYTES)
                return true;
        for (size_t k = 0; k < 3; k++) {
                size_t off = k * (len - COMPRESS_SAMPLE_BYTES) / 2;
                uLongf zlen = sizeof(z);

                if (compress2(z, &zlen, p + off, COMPRESS_SAMPLE_BYTES, 1) != Z_OK)
                        return true;
                in += COMPRESS_SAMPLE_BYTES;
                out += zlen;
        }
        return out < COMPRESS_KEEP_RATIO * (double)in;
}

static inline void cJSON_Deletep(cJSON **p)
{
        cJSON_Delete(*p);
}

void parts_done(Parts *p)
{
        for (size_t i = 0; i < p->n; i++)
                free(p->v[i].data);
        free(p->v);
        *p = (Parts){ 0 };
}

const Part *parts_find(const Parts *p, const char *hash)
{
        for (size_t i = 0; i < p->n; i++)
                if (streq(p->v[i].hash, hash))
                        return &p->v[i];
        return NULL;
}

static int parts_add_hashed(Parts *p, const char *hash, const void *data, size_t size)
{
        Part *v;

        if (parts_find(p, hash))
                return 0;
        v = reallocarray(p->v, p->n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        p->v = v;
        v = &p->v[p->n];
        *v = (Part){ .size = size };
        strcpy(v->hash, hash);
        v->data = malloc(size ? size : 1);
        if (!v->data)
                return -ENOMEM;
        memcpy(v->data, data, size);
        p->n++;
        return 0;
}

int parts_add(Parts *p, const void *data, size_t size)
{
        char hash[65];
        int r = sigv4_sha256_hex(data, size, hash);

        return r < 0 ? r : parts_add_hashed(p, hash, data, size);
}

/* The size an attribute adds to an item, by ddb_item_size(). */
static size_t attr_size(const char *name, cJSON *av)
{
        cJSON *wrap = cJSON_CreateObject();
        size_t n = 0;

        if (wrap && cJSON_AddItemReferenceToObject(wrap, name, av))
                n = ddb_item_size(wrap);
        cJSON_Delete(wrap);
        return n;
}

/* The cells' maps: item.cells.L[i].M. */
static cJSON *cell_map(cJSON *cell_av)
{
        cJSON *m = cJSON_GetObjectItemCaseSensitive(cell_av, "M");

        return cJSON_IsObject(m) ? m : NULL;
}

static cJSON *item_cells(const cJSON *item)
{
        cJSON *l = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "cells"), "L");

        return cJSON_IsArray(l) ? l : NULL;
}

/* Encodes text (zlib if that pays), cuts it into parts added to out, and returns the reference. */
static int make_ref(const char *text, size_t len, Parts *out, cJSON **ret)
{
        _cleanup_free_ unsigned char *z = NULL;
        _cleanup_(cJSON_Deletep) cJSON *ref = NULL, *names = NULL;
        const unsigned char *bytes = (const unsigned char *)text;
        uLongf zlen = compressBound(len);
        size_t size = len;
        bool zlib = false;
        char num[32];
        int r;

        z = malloc(zlen);
        if (!z)
                return -ENOMEM;
        /* Level 1: most of the gain on text for a fraction of the time (this runs on the loop). */
        r = worth_compressing(bytes, len) ? compress2(z, &zlen, bytes, len, 1) : Z_DATA_ERROR;
        if (r == Z_MEM_ERROR)
                return -ENOMEM;
        if (r == Z_OK && zlen < COMPRESS_KEEP_RATIO * (double)len) {
                bytes = z;
                size = zlen;
                zlib = true;
        }

        names = cJSON_CreateArray();
        if (!names)
                return -ENOMEM;
        for (size_t off = 0; off < size || off == 0; off += PARTS_CHUNK_BYTES) {
                size_t n = MIN((size_t)PARTS_CHUNK_BYTES, size - off);
                char hash[65];
                cJSON *s;

                r = sigv4_sha256_hex(bytes + off, n, hash);
                if (r >= 0)
                        r = parts_add_hashed(out, hash, bytes + off, n);
                if (r < 0)
                        return r;
                s = cJSON_CreateObject();
                if (!s || !cJSON_AddStringToObject(s, "S", hash) || !cJSON_AddItemToArray(names, s)) {
                        cJSON_Delete(s);
                        return -ENOMEM;
                }
                if (size == 0)
                        break;
        }
        snprintf(num, sizeof(num), "%zu", len);
        ref = cJSON_CreateObject();
        if (!ref)
                return -ENOMEM;
        {
                cJSON *m = cJSON_AddObjectToObject(ref, "M"), *enc, *b, *p;

                if (!m || !(enc = cJSON_AddObjectToObject(m, "enc")) ||
                    !cJSON_AddStringToObject(enc, "S", zlib ? "zlib" : "raw") ||
                    !(b = cJSON_AddObjectToObject(m, "bytes")) || !cJSON_AddStringToObject(b, "N", num) ||
                    !(p = cJSON_AddObjectToObject(m, "parts")) || !cJSON_AddItemToObject(p, "L", names))
                        return -ENOMEM;
                names = NULL;
        }
        *ret = TAKE_PTR(ref);
        return 0;
}

/* Puts v in old's place in m, under name: a value and its reference take each other's place, so
 * that a split and a join give back the item member for member, in order. */
static int replace_renamed(cJSON *m, cJSON *old, const char *name, cJSON *v)
{
        /* v may be a copy of a member, with a name of its own. */
        if (!(v->type & cJSON_StringIsConst))
                free(v->string);
        v->string = strdup(name);
        if (!v->string) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        v->type &= ~cJSON_StringIsConst;
        if (!cJSON_ReplaceItemViaPointer(m, old, v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        return 0;
}

/* Moves attribute name of cell m into parts: by its reference in known if there is one (keyed by
 * the SHA-256 of the value's text), else encoded anew; learned gets it. */
static int move_value(cJSON *m, const char *name, const cJSON *known, cJSON *learned, Parts *out)
{
        _cleanup_free_ char *text = NULL, *ref_name = NULL;
        cJSON *av = cJSON_GetObjectItemCaseSensitive(m, name), *ref = NULL;
        const cJSON *k;
        char sha[65] = "";
        int r;

        text = cJSON_PrintUnformatted(av);
        if (!text || asprintf(&ref_name, "%s_ref", name) < 0) {
                ref_name = NULL;
                return -ENOMEM;
        }
        if ((known || learned) && sigv4_sha256_hex(text, strlen(text), sha) < 0)
                return -EIO;
        k = known ? cJSON_GetObjectItemCaseSensitive(known, sha) : NULL;
        if (k) {
                ref = cJSON_Duplicate(k, true);
                r = ref ? 0 : -ENOMEM;
        } else
                r = make_ref(text, strlen(text), out, &ref);
        if (r < 0)
                return r;
        if (learned && !cJSON_GetObjectItemCaseSensitive(learned, sha)) {
                cJSON *dup = cJSON_Duplicate(ref, true);

                if (!dup || !cJSON_AddItemToObject(learned, sha, dup)) {
                        cJSON_Delete(dup);
                        cJSON_Delete(ref);
                        return -ENOMEM;
                }
        }
        return replace_renamed(m, av, ref_name, ref);
}

int parts_split(cJSON *item, size_t target, Parts *out)
{
        return parts_split_known(item, target, NULL, NULL, out);
}

int parts_split_known(cJSON *item, size_t target, const cJSON *known, cJSON *learned, Parts *out)
{
        cJSON *cells = item_cells(item);

        while (ddb_item_size(item) > target) {
                cJSON *best_map = NULL, *c;
                const char *best_name = NULL;
                size_t best = 0;
                int r;

                /* The largest value of the earliest kind that has one worth moving. */
                for (size_t k = 0; k < ELEMENTSOF(movable) && !best_map; k++)
                        cJSON_ArrayForEach(c, cells)
                        {
                                cJSON *m = cell_map(c),
                                      *av = m ? cJSON_GetObjectItemCaseSensitive(m, movable[k]) : NULL;
                                size_t n;

                                /* Only AttributeValues move ({"L": ...}: one member), and no NULL. */
                                if (!cJSON_IsObject(av) || !av->child || av->child->next ||
                                    cJSON_GetObjectItemCaseSensitive(av, "NULL"))
                                        continue;
                                n = attr_size(movable[k], av);
                                if (n >= PARTS_MIN_VALUE_BYTES && n > best) {
                                        best = n;
                                        best_map = m;
                                        best_name = movable[k];
                                }
                        }
                if (!best_map)
                        return -E2BIG;
                r = move_value(best_map, best_name, known, learned, out);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A reference's fields; -EBADMSG if it is not one. */
static int ref_read(const cJSON *ref, const char **ret_enc, size_t *ret_bytes, const cJSON **ret_names)
{
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(ref, "M");
        const cJSON *enc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "enc"), "S");
        const cJSON *bytes =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "bytes"), "N");
        const cJSON *names =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "parts"), "L");
        uint64_t n;

        if (!cJSON_IsString(enc) || (!streq(enc->valuestring, "zlib") && !streq(enc->valuestring, "raw")) ||
            !cJSON_IsString(bytes) || parse_uint64(bytes->valuestring, &n) < 0 ||
            n > PARTS_MAX_VALUE_BYTES || !cJSON_IsArray(names) || cJSON_GetArraySize(names) == 0)
                return -EBADMSG;
        *ret_enc = enc->valuestring;
        *ret_bytes = (size_t)n;
        *ret_names = names;
        return 0;
}

static const char *name_of(const cJSON *s)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "S");

        return cJSON_IsString(v) && strlen(v->valuestring) == 64 ? v->valuestring : NULL;
}

/* Whether a cell attribute's name is a reference: one of movable[] followed by "_ref". */
static bool is_ref_name(const char *name)
{
        for (size_t k = 0; k < ELEMENTSOF(movable); k++) {
                size_t n = strlen(movable[k]);

                if (strncmp(name, movable[k], n) == 0 && streq(name + n, "_ref"))
                        return true;
        }
        return false;
}

int parts_foreach_name(const cJSON *item, int (*fn)(const char *hash, void *userdata), void *userdata)
{
        const cJSON *c, *a, *s;

        cJSON_ArrayForEach(c, item_cells(item))
        {
                cJSON_ArrayForEach(a, cell_map((cJSON *)c))
                {
                        const cJSON *names;
                        const char *enc;
                        size_t bytes;
                        int r;

                        if (!is_ref_name(a->string))
                                continue;
                        if (ref_read(a, &enc, &bytes, &names) < 0)
                                return -EBADMSG;
                        cJSON_ArrayForEach(s, names)
                        {
                                const char *h = name_of(s);

                                if (!h)
                                        return -EBADMSG;
                                if (fn && (r = fn(h, userdata)) < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

/* The value a reference stands for, checked against every name and length it carries. */
static int ref_resolve(const cJSON *ref, const Parts *have, cJSON **ret)
{
        _cleanup_free_ unsigned char *joined = NULL;
        _cleanup_free_ char *text = NULL;
        const cJSON *names, *s;
        const char *enc;
        size_t bytes, len = 0;
        cJSON *v;
        int r = ref_read(ref, &enc, &bytes, &names);

        if (r < 0)
                return r;
        cJSON_ArrayForEach(s, names)
        {
                const char *h = name_of(s);
                const Part *p = h ? parts_find(have, h) : NULL;
                char check[65];
                unsigned char *grown;

                if (!h)
                        return -EBADMSG;
                if (!p)
                        return -ENOENT;
                /* Never more than the value can take, however often a part is named. */
                if (p->size > (streq(enc, "raw") ? bytes : compressBound(bytes)) - len)
                        return -EBADMSG;
                if (sigv4_sha256_hex(p->data, p->size, check) < 0 || !streq(check, h))
                        return -EBADMSG;
                grown = realloc(joined, len + p->size + 1);
                if (!grown)
                        return -ENOMEM;
                joined = grown;
                memcpy(joined + len, p->data, p->size);
                len += p->size;
        }
        if (streq(enc, "raw")) {
                if (len != bytes)
                        return -EBADMSG;
                joined[len] = 0;
                text = (char *)TAKE_PTR(joined);
        } else {
                uLongf out = bytes;

                text = malloc(bytes + 1);
                if (!text)
                        return -ENOMEM;
                r = uncompress((unsigned char *)text, &out, joined, len);
                if (r == Z_MEM_ERROR)
                        return -ENOMEM;
                if (r != Z_OK || out != bytes)
                        return -EBADMSG;
                text[bytes] = 0;
        }
        if (strlen(text) != bytes)
                return -EBADMSG;
        v = cJSON_Parse(text);
        if (!cJSON_IsObject(v) || !v->child || v->child->next) {
                cJSON_Delete(v);
                return -EBADMSG;
        }
        *ret = v;
        return 0;
}

static int add_claim(const cJSON *a, void *userdata)
{
        const cJSON *names;
        const char *enc;
        size_t bytes, *total = userdata;
        int r = ref_read(a, &enc, &bytes, &names);

        if (r < 0)
                return r;
        *total += bytes;
        return *total > PARTS_MAX_JOINED_BYTES ? -EFBIG : 0;
}

int parts_check(const cJSON *item)
{
        const cJSON *c, *a;
        size_t total = 0;
        int r;

        cJSON_ArrayForEach(c, item_cells(item))
        {
                cJSON_ArrayForEach(a, cell_map((cJSON *)c))
                {
                        if (is_ref_name(a->string) && (r = add_claim(a, &total)) < 0)
                                return r;
                }
        }
        return parts_foreach_name(item, NULL, NULL);
}

int parts_join(cJSON *item, const Parts *have)
{
        _cleanup_(cJSON_Deletep) cJSON *copy = NULL;
        cJSON *c, *a, *next;
        int k = parts_check(item);

        if (k < 0)
                return k;
        copy = cJSON_Duplicate(item, true);
        if (!copy)
                return -ENOMEM;
        /* Worked on a copy, so that a failure leaves the item as it was. */
        cJSON_ArrayForEach(c, item_cells(copy))
        {
                cJSON *m = cell_map(c);

                for (a = m ? m->child : NULL; a; a = next) {
                        _cleanup_free_ char *name = NULL;
                        cJSON *v = NULL;
                        int r;

                        next = a->next;
                        if (!is_ref_name(a->string))
                                continue;
                        r = ref_resolve(a, have, &v);
                        if (r < 0)
                                return r;
                        name = strndup(a->string, strlen(a->string) - strlen("_ref"));
                        if (!name || cJSON_GetObjectItemCaseSensitive(m, name)) {
                                cJSON_Delete(v);
                                return name ? -EBADMSG : -ENOMEM;
                        }
                        r = replace_renamed(m, a, name, v);
                        if (r < 0)
                                return r;
                }
        }
        /* Swap the joined copy into item. */
        {
                cJSON tmp = *item;

                item->child = copy->child;
                copy->child = tmp.child;
        }
        return 0;
}

cJSON *parts_refs(const cJSON *item)
{
        _cleanup_(cJSON_Deletep) cJSON *refs = cJSON_CreateArray();
        const cJSON *c, *a;
        int i = 0;

        if (!refs)
                return NULL;
        cJSON_ArrayForEach(c, item_cells(item))
        {
                cJSON_ArrayForEach(a, cell_map((cJSON *)c))
                {
                        cJSON *e;

                        if (!is_ref_name(a->string))
                                continue;
                        e = cJSON_CreateArray();
                        if (!e || !cJSON_AddItemToArray(refs, e) ||
                            !cJSON_AddItemToArray(e, cJSON_CreateNumber(i)) ||
                            !cJSON_AddItemToArray(e, cJSON_CreateString(a->string)) ||
                            !cJSON_AddItemToArray(e, cJSON_Duplicate(a, true)))
                                return NULL;
                }
                i++;
        }
        return TAKE_PTR(refs);
}

/* An entry of parts_refs(): its cell index, attribute name and reference; false if malformed. */
static bool refs_entry(const cJSON *e, int *ret_cell, const char **ret_name, const cJSON **ret_ref)
{
        const cJSON *i = cJSON_GetArrayItem(e, 0), *n = cJSON_GetArrayItem(e, 1),
                    *ref = cJSON_GetArrayItem(e, 2);

        if (!cJSON_IsNumber(i) || i->valuedouble < 0 || i->valuedouble > INT_MAX || !cJSON_IsString(n) ||
            !is_ref_name(n->valuestring) || !cJSON_IsObject(ref))
                return false;
        *ret_cell = (int)i->valuedouble;
        *ret_name = n->valuestring;
        *ret_ref = ref;
        return true;
}

bool parts_refs_name(const cJSON *refs, const char *hash)
{
        const cJSON *e, *s;

        cJSON_ArrayForEach(e, refs)
        {
                const cJSON *ref, *names;
                const char *name, *enc;
                size_t bytes;
                int cell;

                if (!refs_entry(e, &cell, &name, &ref) || ref_read(ref, &enc, &bytes, &names) < 0)
                        continue;
                cJSON_ArrayForEach(s, names)
                {
                        const char *h = name_of(s);

                        if (h && streq(h, hash))
                                return true;
                }
        }
        return false;
}

int parts_join_known(cJSON *item, const cJSON *refs, const cJSON *full)
{
        cJSON *c, *a, *next;

        cJSON_ArrayForEach(c, item_cells(item))
        {
                cJSON *m = cell_map(c);

                for (a = m ? m->child : NULL; a; a = next) {
                        const cJSON *e;

                        next = a->next;
                        if (!is_ref_name(a->string))
                                continue;
                        cJSON_ArrayForEach(e, refs)
                        {
                                _cleanup_free_ char *name = NULL;
                                const cJSON *ref, *kc, *v;
                                const char *kname;
                                cJSON *dup;
                                int cell, r;

                                if (!refs_entry(e, &cell, &kname, &ref) || !streq(kname, a->string) ||
                                    !cJSON_Compare(ref, a, true))
                                        continue;
                                name = strndup(a->string, strlen(a->string) - strlen("_ref"));
                                if (!name)
                                        return -ENOMEM;
                                kc = cell_map(cJSON_GetArrayItem(item_cells(full), cell));
                                v = cJSON_GetObjectItemCaseSensitive(kc, name);
                                if (!v || cJSON_GetObjectItemCaseSensitive(m, name))
                                        continue;
                                dup = cJSON_Duplicate(v, true);
                                if (!dup)
                                        return -ENOMEM;
                                r = replace_renamed(m, a, name, dup);
                                if (r < 0)
                                        return r;
                                break;
                        }
                }
        }
        return 0;
}

bool parts_named(const cJSON *item)
{
        const cJSON *c, *a;

        cJSON_ArrayForEach(c, item_cells(item))
        {
                cJSON_ArrayForEach(a, cell_map((cJSON *)c))
                {
                        if (is_ref_name(a->string))
                                return true;
                }
        }
        return false;
}

bool parts_ref_within(const cJSON *ref, const cJSON *refs)
{
        const cJSON *names, *n;
        const char *enc;
        size_t bytes;

        if (ref_read(ref, &enc, &bytes, &names) < 0)
                return false;
        cJSON_ArrayForEach(n, names)
        {
                const char *h = name_of(n);

                if (!h || !parts_refs_name(refs, h))
                        return false;
        }
        return true;
}
