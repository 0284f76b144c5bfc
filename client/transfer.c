/* SPDX-License-Identifier: MIT */

/* notebookctl import and export (transfer.h). doc/formats.md is the reference for the two file
 * formats and how each field maps; keep it in step with this file.
 *
 * Import is pipelined: up to a window of notebooks are in flight on the one connection, each a
 * small state machine (create; on "already exists" get and compare; with --replace update). Files
 * are read and checked as the window has room, so memory holds at most a window of notebooks
 * besides the per-file results. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json-print.h"
#include "ctl.h"
#include "display.h"
#include "transfer.h"
#include "util.h"

/* A file larger than this is "too large" from its size alone, and reading stops here in any
 * case. The daemon takes a notebook of at most 16 MiB of content in a request line of at most
 * 16 MiB (by default); a file in either format spends some of its bytes on indentation and keys,
 * so the bound is twice that. What passes it, the daemon judges (line and notebook limits). */
#define IMPORT_MAX_FILE_BYTES ((size_t)32 * 1024 * 1024)
#define IMPORT_MAX_WINDOW     64 /* the daemon reads at most 64 unanswered requests per connection */
#define PROGRESS_USEC         (100 * USEC_PER_MSEC)
/* nbformat 4.5's cell ids: 1-64 of [a-zA-Z0-9-_]. */
#define IPYNB_CELL_ID_MAX 64

static inline void cjson_deletep(cJSON **p)
{
        cJSON_Delete(*p);
}

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------------------------------
 * Output helpers */

static void buf_indent(Buf *b, unsigned level)
{
        buf_putc(b, '\n');
        for (unsigned i = 0; i < level; i++)
                buf_put(b, "  ", 2);
}

/* JSON as Python's json.dump(indent=2) lays it out (the app writes its files so): one member or
 * element a line, two spaces a level, empty containers as [] and {}; UTF-8 kept as it is. */
static void json_put(Buf *b, const cJSON *v, unsigned level)
{
        const cJSON *c;

        if ((cJSON_IsArray(v) || cJSON_IsObject(v)) && v->child) {
                bool obj = cJSON_IsObject(v);

                buf_puts(b, obj ? "{" : "[");
                for (c = v->child; c; c = c->next) {
                        buf_indent(b, level + 1);
                        if (obj) {
                                _cleanup_free_ char *k = NULL;
                                cJSON *key = cJSON_CreateString(c->string);

                                k = key ? json_print(key, false) : NULL;
                                cJSON_Delete(key);
                                if (!k) {
                                        b->oom = true;
                                        return;
                                }
                                buf_puts(b, k);
                                buf_puts(b, ": ");
                        }
                        json_put(b, c, level + 1);
                        if (c->next)
                                buf_puts(b, ",");
                }
                buf_indent(b, level);
                buf_puts(b, obj ? "}" : "]");
        } else {
                _cleanup_free_ char *t = json_print(v, false);

                if (!t) {
                        b->oom = true;
                        return;
                }
                buf_puts(b, t);
        }
}

static char *json_print_python(const cJSON *v)
{
        Buf b = { 0 };

        json_put(&b, v, 0);
        buf_putc(&b, '\n');
        if (!buf_str(&b)) {
                buf_done(&b);
                return NULL;
        }
        return b.p;
}

int transfer_write_file(const char *path, const char *text)
{
        _cleanup_free_ char *tmp = NULL, *dircopy = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        size_t len = strlen(text), off = 0;

        if (!path || streq(path, "-")) {
                /* Standard output may be a terminal: the characters that could drive it go as
                 * \u escapes, which JSON reads as the same string (the daemon keeps only valid
                 * UTF-8, so display_json() changes no value). */
                _cleanup_free_ char *safe = display_json(text);

                if (!safe)
                        return local_error("out of memory");
                if (fputs(safe, stdout) == EOF)
                        return local_error("cannot write output: %s", strerror(errno));
                return EXIT_OK;
        }
        /* The temporary file sits beside the target so that rename() replaces it in one step: a
         * reader sees the old file or the new one, never a part. */
        if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return local_error("out of memory");
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return local_error("cannot create a file beside %s: %s", path, strerror(errno));
        while (off < len) {
                ssize_t n = write(fd, text + off, len - off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;

                        unlink(tmp);
                        return local_error("cannot write %s: %s", tmp, strerror(e));
                }
                off += (size_t)n;
        }
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
                int e = errno;

                unlink(tmp);
                return local_error("cannot write %s: %s", tmp, strerror(e));
        }
        if (rename(tmp, path) < 0) {
                int e = errno;

                unlink(tmp);
                return local_error("cannot rename %s to %s: %s", tmp, path, strerror(e));
        }
        /* The rename is durable once the directory is synced; failing that is not worth an error. */
        dircopy = strdup(path);
        if (dircopy) {
                dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void)fsync(dfd);
        }
        return EXIT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Export */

static bool add_copy(cJSON *to, const char *key, const cJSON *from, const char *from_key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, from_key ? from_key : key);
        cJSON *c = v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();

        if (!c)
                return false;
        if (!cJSON_AddItemToObject(to, key, c)) {
                cJSON_Delete(c);
                return false;
        }
        return true;
}

/* The app's file: exactly the fields backend/storage.py writes, in its order. */
static cJSON *export_app_json(const cJSON *nb)
{
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        const cJSON *cell, *cells = cJSON_GetObjectItemCaseSensitive(nb, "cells");
        cJSON *out_cells;

        if (!o || !add_copy(o, "id", nb, NULL) || !add_copy(o, "user_id", nb, NULL) ||
            !add_copy(o, "name", nb, NULL) || !add_copy(o, "db_conn_string", nb, NULL))
                return NULL;
        out_cells = cJSON_AddArrayToObject(o, "cells");
        if (!out_cells)
                return NULL;
        cJSON_ArrayForEach(cell, cells)
        {
                static const char *const keys[] = { "id",      "type",  "code",  "status", "stdout",
                                                    "outputs", "error", "reads", "writes" };
                cJSON *c = cJSON_CreateObject();

                if (!c || !cJSON_AddItemToArray(out_cells, c)) {
                        cJSON_Delete(c);
                        return NULL;
                }
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (!add_copy(c, keys[i], cell, NULL))
                                return NULL;
        }
        if (!add_copy(o, "revision", nb, NULL))
                return NULL;
        return TAKE_PTR(o);
}

/* nbformat's mimebundle: values of these types are any JSON; all others are text. */
static bool mime_is_json(const char *mime)
{
        size_t n = strlen(mime);

        if (!startswith(mime, "application/") || n < 4 || !streq(mime + n - 4, "json"))
                return false;
        /* "application/json" or "application/...+json" */
        return streq(mime, "application/json") || (n > 5 && mime[n - 5] == '+');
}

static bool ipynb_cell_id_valid(const char *s)
{
        size_t n = strlen(s);

        if (n < 1 || n > IPYNB_CELL_ID_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_'))
                        return false;
        return true;
}

static bool id_taken(const cJSON *cells, const char *id)
{
        const cJSON *c;

        cJSON_ArrayForEach(c, cells)
        {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "id");

                if (cJSON_IsString(v) && streq(v->valuestring, id))
                        return true;
        }
        return false;
}

/* The Jupyter cell id: the cell's own where nbformat allows it, else cell-N; unique in the file. */
static char *ipynb_cell_id(const cJSON *done_cells, const char *id, size_t index)
{
        char buf[IPYNB_CELL_ID_MAX + 1];

        if (ipynb_cell_id_valid(id) && !id_taken(done_cells, id))
                return strdup(id);
        snprintf(buf, sizeof(buf), "cell-%zu", index + 1);
        for (unsigned k = 2; id_taken(done_cells, buf); k++)
                snprintf(buf, sizeof(buf), "cell-%zu-%u", index + 1, k);
        return strdup(buf);
}

/* An error output for the app's error text: the traceback is its lines; ename and evalue come
 * from a last line "Name: value" as Python prints an exception, else "Error" and that line. */
static cJSON *ipynb_error_output(const char *error)
{
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        _cleanup_free_ char *last = NULL;
        cJSON *tb;
        const char *p = error, *ename = "Error", *evalue;
        char *colon;

        if (!o || !cJSON_AddStringToObject(o, "output_type", "error"))
                return NULL;
        tb = cJSON_CreateArray();
        if (!tb || !cJSON_AddItemToObject(o, "traceback", tb)) {
                cJSON_Delete(tb);
                return NULL;
        }
        for (;;) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                _cleanup_free_ char *line = strndup(p, n);

                if (!line || !cJSON_AddItemToArray(tb, cJSON_CreateString(line)))
                        return NULL;
                if (n > 0) {
                        free(last);
                        last = TAKE_PTR(line);
                }
                if (!e)
                        break;
                p = e + 1;
        }
        evalue = last ? last : "";
        if (last && (colon = strstr(last, ": ")) && colon > last) {
                bool ident = true;

                for (char *q = last; q < colon; q++)
                        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
                              (*q >= '0' && *q <= '9') || *q == '_' || *q == '.'))
                                ident = false;
                if (ident) {
                        *colon = 0;
                        ename = last;
                        evalue = colon + 2;
                }
        }
        if (!cJSON_AddStringToObject(o, "ename", ename) || !cJSON_AddStringToObject(o, "evalue", evalue))
                return NULL;
        return TAKE_PTR(o);
}

static cJSON *export_ipynb_cell(const cJSON *cell, const cJSON *done_cells, size_t index)
{
        _cleanup_(cjson_deletep) cJSON *c = cJSON_CreateObject();
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cell, "id");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(cell, "type");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(cell, "code");
        const cJSON *stdout_ = cJSON_GetObjectItemCaseSensitive(cell, "stdout");
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(cell, "error");
        const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(cell, "outputs"), *out;
        _cleanup_free_ char *jid = NULL, *source = NULL;
        cJSON *meta, *nbd, *outs, *json_data = NULL;
        bool sql = cJSON_IsString(type) && streq(type->valuestring, "sql");
        int i = 0;

        if (!c || !cJSON_IsString(id) || !cJSON_IsString(code))
                return NULL;
        jid = ipynb_cell_id(done_cells, id->valuestring, index);
        /* SQL cells carry jupysql's (and ipython-sql's) cell magic, which Jupyter users know. */
        if (!jid || asprintf(&source, "%s%s", sql ? "%%sql\n" : "", code->valuestring) < 0)
                return NULL;
        if (!cJSON_AddStringToObject(c, "cell_type", "code") || !cJSON_AddStringToObject(c, "id", jid) ||
            !(meta = cJSON_AddObjectToObject(c, "metadata")) ||
            !(nbd = cJSON_AddObjectToObject(meta, "notebookd")) || !add_copy(nbd, "id", cell, NULL) ||
            !add_copy(nbd, "type", cell, NULL) || !add_copy(nbd, "status", cell, NULL) ||
            !add_copy(nbd, "error", cell, NULL) || !add_copy(nbd, "reads", cell, NULL) ||
            !add_copy(nbd, "writes", cell, NULL) || !cJSON_AddNullToObject(c, "execution_count") ||
            !cJSON_AddStringToObject(c, "source", source) || !(outs = cJSON_AddArrayToObject(c, "outputs")))
                return NULL;

        if (cJSON_IsString(stdout_) && *stdout_->valuestring) {
                cJSON *s = cJSON_CreateObject();

                if (!s || !cJSON_AddItemToArray(outs, s) ||
                    !cJSON_AddStringToObject(s, "output_type", "stream") ||
                    !cJSON_AddStringToObject(s, "name", "stdout") ||
                    !cJSON_AddStringToObject(s, "text", stdout_->valuestring))
                        return NULL;
        }
        cJSON_ArrayForEach(out, outputs)
        {
                const cJSON *mime = cJSON_GetObjectItemCaseSensitive(out, "mime_type");
                const cJSON *data = cJSON_GetObjectItemCaseSensitive(out, "data");
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(out, "metadata");
                cJSON *d = cJSON_CreateObject(), *bundle, *value;

                if (!d || !cJSON_AddItemToArray(outs, d) || !cJSON_IsString(mime) || !data)
                        return NULL;
                if (!cJSON_AddStringToObject(d, "output_type", "display_data") ||
                    !(bundle = cJSON_AddObjectToObject(d, "data")))
                        return NULL;
                if (mime_is_json(mime->valuestring) || cJSON_IsString(data))
                        value = cJSON_Duplicate(data, true);
                else {
                        /* Structured data under a text type: nbformat wants a string there, so it
                         * goes as JSON text, and the cell's metadata says which outputs to parse
                         * back. */
                        _cleanup_free_ char *text = json_print(data, false);

                        value = text ? cJSON_CreateString(text) : NULL;
                        if (!json_data && !(json_data = cJSON_AddArrayToObject(nbd, "json_data")))
                                return NULL;
                        if (!cJSON_AddItemToArray(json_data, cJSON_CreateNumber(i)))
                                return NULL;
                }
                if (!value || !cJSON_AddItemToObject(bundle, mime->valuestring, value)) {
                        cJSON_Delete(value);
                        return NULL;
                }
                value = cJSON_IsObject(md) ? cJSON_Duplicate(md, true) : cJSON_CreateObject();
                if (!value || !cJSON_AddItemToObject(d, "metadata", value)) {
                        cJSON_Delete(value);
                        return NULL;
                }
                i++;
        }
        if (cJSON_IsString(error)) {
                cJSON *e = ipynb_error_output(error->valuestring);

                if (!e || !cJSON_AddItemToArray(outs, e)) {
                        cJSON_Delete(e);
                        return NULL;
                }
        }
        return TAKE_PTR(c);
}

static cJSON *export_ipynb(const cJSON *nb)
{
        static const char *const nb_keys[] = { "id",        "user_id",  "name",         "db_conn_string",
                                               "ttl",       "revision", "demo_version", "created_at",
                                               "updated_at" };
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        const cJSON *cell, *cells = cJSON_GetObjectItemCaseSensitive(nb, "cells");
        cJSON *meta, *ks, *li, *nbd, *out_cells;
        size_t index = 0;

        if (!o || !(meta = cJSON_AddObjectToObject(o, "metadata")) ||
            !(ks = cJSON_AddObjectToObject(meta, "kernelspec")) ||
            !cJSON_AddStringToObject(ks, "name", "python3") ||
            !cJSON_AddStringToObject(ks, "display_name", "Python 3") ||
            !cJSON_AddStringToObject(ks, "language", "python") ||
            !(li = cJSON_AddObjectToObject(meta, "language_info")) ||
            !cJSON_AddStringToObject(li, "name", "python") ||
            !(nbd = cJSON_AddObjectToObject(meta, "notebookd")))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(nb_keys); i++)
                if (cJSON_GetObjectItemCaseSensitive(nb, nb_keys[i]) && !add_copy(nbd, nb_keys[i], nb, NULL))
                        return NULL;
        if (!cJSON_AddNumberToObject(o, "nbformat", 4) || !cJSON_AddNumberToObject(o, "nbformat_minor", 5) ||
            !(out_cells = cJSON_AddArrayToObject(o, "cells")))
                return NULL;
        cJSON_ArrayForEach(cell, cells)
        {
                cJSON *c = export_ipynb_cell(cell, out_cells, index++);

                if (!c || !cJSON_AddItemToArray(out_cells, c)) {
                        cJSON_Delete(c);
                        return NULL;
                }
        }
        return TAKE_PTR(o);
}

char *transfer_export_text(const cJSON *nb, ExportFormat format)
{
        _cleanup_(cjson_deletep) cJSON *o = format == EXPORT_IPYNB ? export_ipynb(nb) : export_app_json(nb);

        return o ? json_print_python(o) : NULL;
}

/* A notebook id as a file name: '%' and '/' as %25 and %2F, a leading '.' as %2E (the app's own
 * ids, UUIDs and blank-/demo- names, stay as they are). NULL on OOM. */
static char *id_file_name(const char *id, const char *ext)
{
        Buf b = { 0 };

        for (const char *p = id; *p; p++) {
                if (*p == '%' || *p == '/' || (p == id && *p == '.')) {
                        char esc[4];

                        snprintf(esc, sizeof(esc), "%%%02X", (unsigned char)*p);
                        buf_puts(&b, esc);
                } else
                        buf_putc(&b, *p);
        }
        buf_puts(&b, ext);
        if (!buf_str(&b)) {
                buf_done(&b);
                return NULL;
        }
        return b.p;
}

static int transport_failed(const char *what, int r)
{
        fprintf(stderr, "notebookctl: %s: %s\n", what,
                r == -EPROTO       ? "invalid reply from the daemon"
                : r == -EMSGSIZE   ? "reply from the daemon too long"
                : r == -ECONNRESET ? "the daemon closed the connection"
                                   : strerror(-r));
        return EXIT_TRANSPORT;
}

static int daemon_failed(const char *what, const NbError *e)
{
        fprintf(stderr, "notebookctl: %s: ", what);
        display_put(stderr, e->message, DISPLAY_LINE);
        fprintf(stderr, " (error %d)\n", e->code);
        return e->code == NB_ERROR_NOT_FOUND       ? EXIT_NOT_FOUND
               : e->code == NB_ERROR_ACCESS_DENIED ? EXIT_DENIED
                                                   : EXIT_DAEMON;
}

/* The ids of all the user's notebooks, page by page. */
static int list_ids(NbClient *client, const char *user, cJSON *ids)
{
        _cleanup_free_ char *cursor = NULL;

        for (;;) {
                _cleanup_(cjson_deletep) cJSON *res = NULL;
                NbError e = NB_ERROR_INIT;
                cJSON *p = cJSON_CreateObject();
                const cJSON *nb, *next;
                int r;

                if (!p || (user && !cJSON_AddStringToObject(p, "user_id", user)) ||
                    (cursor && !cJSON_AddStringToObject(p, "cursor", cursor))) {
                        cJSON_Delete(p);
                        return local_error("out of memory");
                }
                r = nb_client_call(client, "notebook.list", p, &res, &e);
                if (r == NB_CLIENT_EREMOTE) {
                        r = daemon_failed("notebook.list", &e);
                        nb_error_done(&e);
                        return r;
                }
                if (r < 0)
                        return transport_failed("notebook.list", r);
                cJSON_ArrayForEach(nb, cJSON_GetObjectItemCaseSensitive(res, "notebooks"))
                {
                        const cJSON *id = cJSON_GetObjectItemCaseSensitive(nb, "id");

                        if (cJSON_IsString(id) &&
                            !cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring)))
                                return local_error("out of memory");
                }
                next = cJSON_GetObjectItemCaseSensitive(res, "next_cursor");
                if (!cJSON_IsString(next))
                        return EXIT_OK;
                free(cursor);
                cursor = strdup(next->valuestring);
                if (!cursor)
                        return local_error("out of memory");
        }
}

int transfer_export_all(NbClient *client, const char *user, const char *dir, ExportFormat format, bool json)
{
        _cleanup_(cjson_deletep) cJSON *ids = cJSON_CreateArray(), *report = cJSON_CreateArray();
        const char *ext = format == EXPORT_IPYNB ? ".ipynb" : ".json";
        const cJSON *next;
        unsigned in_flight = 0, written = 0, failed = 0;
        uint64_t start = now_usec(), first_request = 0, sent = 0, received = 0;
        int r;

        if (!ids || !report)
                return local_error("out of memory");
        r = mkdir_parents(dir, 0755);
        if (r < 0 && r != -EEXIST)
                return local_error("cannot make %s: %s", dir, strerror(-r));
        r = list_ids(client, user, ids);
        if (r != EXIT_OK)
                return r;

        /* Replies come in request order, so the n-th reply is the n-th id sent. */
        next = ids->child;
        for (const cJSON *id = ids->child; id; id = id->next) {
                _cleanup_(cjson_deletep) cJSON *res = NULL;
                _cleanup_free_ char *name = NULL, *path = NULL, *text = NULL;
                NbError e = NB_ERROR_INIT;
                const char *why_not = NULL;
                uint64_t answered = 0;
                cJSON *entry;

                while (next && in_flight < IMPORT_MAX_WINDOW) {
                        cJSON *p = cJSON_CreateObject();
                        uint64_t request;

                        if (!p || (user && !cJSON_AddStringToObject(p, "user_id", user)) ||
                            !cJSON_AddStringToObject(p, "notebook_id", next->valuestring)) {
                                cJSON_Delete(p);
                                return local_error("out of memory");
                        }
                        r = nb_client_send(client, "notebook.get", p, &request);
                        if (r < 0)
                                return transport_failed("notebook.get", r);
                        if (sent++ == 0)
                                first_request = request;
                        in_flight++;
                        next = next->next;
                }
                r = nb_client_recv(client, &answered, &res, &e);
                in_flight--;
                if (r < 0 && r != NB_CLIENT_EREMOTE)
                        return transport_failed("notebook.get", r);
                /* Requests have consecutive ids and the daemon answers in order: this reply is
                 * for this id. */
                if (answered != first_request + received++) {
                        nb_error_done(&e);
                        return transport_failed("notebook.get", -EPROTO);
                }
                name = id_file_name(id->valuestring, ext);
                if (!name || asprintf(&path, "%s/%s", dir, name) < 0)
                        return local_error("out of memory");
                if (r == NB_CLIENT_EREMOTE)
                        why_not = e.message; /* deleted since the list, most likely */
                else {
                        text = transfer_export_text(cJSON_GetObjectItemCaseSensitive(res, "notebook"),
                                                    format);
                        if (!text)
                                return local_error("out of memory");
                        if (transfer_write_file(path, text) != EXIT_OK)
                                why_not = "cannot write the file";
                }
                entry = cJSON_CreateObject();
                if (!entry || !cJSON_AddItemToArray(report, entry) ||
                    !cJSON_AddStringToObject(entry, "notebook_id", id->valuestring) ||
                    !cJSON_AddStringToObject(entry, "path", path) ||
                    !cJSON_AddStringToObject(entry, "result", why_not ? "skipped" : "exported") ||
                    (why_not && !cJSON_AddStringToObject(entry, "reason", why_not))) {
                        nb_error_done(&e);
                        return local_error("out of memory");
                }
                if (why_not)
                        failed++;
                else
                        written++;
                nb_error_done(&e);
        }

        if (json) {
                _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
                _cleanup_free_ char *t = NULL, *safe = NULL;

                if (!o || !cJSON_AddNumberToObject(o, "exported", written) ||
                    !cJSON_AddNumberToObject(o, "skipped", failed) ||
                    !cJSON_AddStringToObject(o, "directory", dir) ||
                    !cJSON_AddItemReferenceToObject(o, "results", report))
                        return local_error("out of memory");
                t = json_print_indented(o);
                safe = t ? display_json(t) : NULL;
                if (!safe)
                        return local_error("out of memory");
                puts(safe);
        } else {
                const cJSON *entry;

                printf("%u notebook%s exported to ", written, written == 1 ? "" : "s");
                display_put(stdout, dir, DISPLAY_LINE);
                printf(", %u skipped, %.2f s\n", failed, (double)(now_usec() - start) / 1e6);
                cJSON_ArrayForEach(entry, report)
                {
                        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(entry, "reason");

                        if (!cJSON_IsString(reason))
                                continue;
                        fputs("skipped ", stdout);
                        display_put(stdout,
                                    cJSON_GetObjectItemCaseSensitive(entry, "notebook_id")->valuestring,
                                    DISPLAY_LINE);
                        fputs(": ", stdout);
                        display_put(stdout, reason->valuestring, DISPLAY_LINE);
                        fputc('\n', stdout);
                }
        }
        return failed ? EXIT_DAEMON : EXIT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Import: reading a file into the notebook to store */

/* What a file asks for: the parameters of notebook.create, and the content to compare with a
 * notebook that exists already. */
typedef struct Wanted {
        char *notebook_id;
        char *user_id; /* the file's own, else --user, else NULL (the daemon's default) */
        cJSON *name;   /* string or null */
        cJSON *db_conn_string;
        cJSON *ttl;          /* NULL: the file says nothing about it (not compared) */
        cJSON *cells;        /* normalised: every field, as the daemon stores it */
        unsigned text_cells; /* markdown and raw cells of a Jupyter notebook, kept as comments */
} Wanted;

static void wanted_done(Wanted *w)
{
        free(w->notebook_id);
        free(w->user_id);
        cJSON_Delete(w->name);
        cJSON_Delete(w->db_conn_string);
        cJSON_Delete(w->ttl);
        cJSON_Delete(w->cells);
        *w = (Wanted){ 0 };
}

/* Why a file is not imported; returns -EINVAL for the caller to pass on. */
static int why(char **reason, const char *fmt, ...) _printf_(2, 3);
static int why(char **reason, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        free(*reason);
        if (vasprintf(reason, fmt, ap) < 0)
                *reason = NULL;
        va_end(ap);
        return -EINVAL;
}

static const char *const cell_statuses[] = { "idle", "running", "success", "error", NULL };

static bool string_in(const char *s, const char *const *list)
{
        for (; *list; list++)
                if (streq(s, *list))
                        return true;
        return false;
}

/* A string or null member, copied to *ret; an absent one is null unless required. */
static int get_string_or_null(const cJSON *o, const char *key, const char *where, bool required, cJSON **ret,
                              char **reason)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        if (!v) {
                if (required)
                        return why(reason, "%s\"%s\" is missing", where, key);
                *ret = cJSON_CreateNull();
        } else if (cJSON_IsString(v) || cJSON_IsNull(v))
                *ret = cJSON_Duplicate(v, false);
        else
                return why(reason, "%s\"%s\" is not a string or null", where, key);
        return *ret ? 0 : -ENOMEM;
}

/* A variable list as the daemon keeps it: distinct names, first occurrence kept. */
static int vars_normalise(const cJSON *v, const char *where, const char *key, cJSON **ret, char **reason)
{
        _cleanup_(cjson_deletep) cJSON *out = cJSON_CreateArray();
        const cJSON *item;

        if (!out)
                return -ENOMEM;
        if (!v) {
                *ret = TAKE_PTR(out);
                return 0;
        }
        if (!cJSON_IsArray(v))
                return why(reason, "%s\"%s\" is not a list of names", where, key);
        cJSON_ArrayForEach(item, v)
        {
                const cJSON *seen;
                bool dup = false;

                if (!cJSON_IsString(item))
                        return why(reason, "%s\"%s\" holds something other than a name", where, key);
                /* Quadratic, but a cell has few names, and the daemon bounds them at 1024. */
                cJSON_ArrayForEach(seen, out) if (streq(seen->valuestring, item->valuestring))
                {
                        dup = true;
                        break;
                }
                if (!dup && !cJSON_AddItemToArray(out, cJSON_CreateString(item->valuestring)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int add_or_fail(cJSON *o, const char *key, cJSON *v)
{
        if (!v || !cJSON_AddItemToObject(o, key, v)) {
                cJSON_Delete(v);
                return -ENOMEM;
        }
        return 0;
}

/* A cell's "reads" and "writes", from those of from (either may be absent), normalised into c. */
static int add_vars(cJSON *c, const cJSON *from, const char *where, char **reason)
{
        for (const char *const *key = (const char *const[]){ "reads", "writes", NULL }; *key; key++) {
                cJSON *v = NULL;
                int r = vars_normalise(cJSON_GetObjectItemCaseSensitive(from, *key), where, *key, &v,
                                       reason);

                if (r < 0)
                        return r;
                if (add_or_fail(c, *key, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* One cell of the app's file, normalised to every field (the defaults of the app's Cell). */
static int app_cell(const cJSON *in, size_t index, cJSON **ret, char **reason)
{
        _cleanup_(cjson_deletep) cJSON *c = cJSON_CreateObject(), *outputs = NULL;
        const cJSON *id, *type, *code, *status, *out, *v;
        char where[64];
        cJSON *tmp = NULL;
        size_t j = 0;
        int r;

        snprintf(where, sizeof(where), "cells[%zu]: ", index);
        if (!c)
                return -ENOMEM;
        if (!cJSON_IsObject(in))
                return why(reason, "cells[%zu] is not an object", index);
        id = cJSON_GetObjectItemCaseSensitive(in, "id");
        type = cJSON_GetObjectItemCaseSensitive(in, "type");
        code = cJSON_GetObjectItemCaseSensitive(in, "code");
        status = cJSON_GetObjectItemCaseSensitive(in, "status");
        if (!cJSON_IsString(id))
                return why(reason, "%s\"id\" is %s", where, id ? "not a string" : "missing");
        if (!cJSON_IsString(type))
                return why(reason, "%s\"type\" is %s", where, type ? "not a string" : "missing");
        if (!streq(type->valuestring, "python") && !streq(type->valuestring, "sql"))
                return why(reason, "%s\"type\" is \"%.32s\", not python or sql", where, type->valuestring);
        if (!cJSON_IsString(code))
                return why(reason, "%s\"code\" is %s", where, code ? "not a string" : "missing");
        if (status && !(cJSON_IsString(status) && string_in(status->valuestring, cell_statuses)))
                return why(reason, "%s\"status\" is not idle, running, success or error", where);
        if (add_or_fail(c, "id", cJSON_CreateString(id->valuestring)) < 0 ||
            add_or_fail(c, "type", cJSON_CreateString(type->valuestring)) < 0 ||
            add_or_fail(c, "code", cJSON_CreateString(code->valuestring)) < 0 ||
            add_or_fail(c, "status", cJSON_CreateString(status ? status->valuestring : "idle")) < 0)
                return -ENOMEM;
        v = cJSON_GetObjectItemCaseSensitive(in, "stdout");
        if (v && !cJSON_IsString(v))
                return why(reason, "%s\"stdout\" is not a string", where);
        if (add_or_fail(c, "stdout", cJSON_CreateString(v ? v->valuestring : "")) < 0)
                return -ENOMEM;

        outputs = cJSON_CreateArray();
        if (!outputs)
                return -ENOMEM;
        v = cJSON_GetObjectItemCaseSensitive(in, "outputs");
        if (v && !cJSON_IsArray(v))
                return why(reason, "%s\"outputs\" is not a list", where);
        cJSON_ArrayForEach(out, v)
        {
                const cJSON *mime = cJSON_GetObjectItemCaseSensitive(out, "mime_type");
                const cJSON *data = cJSON_GetObjectItemCaseSensitive(out, "data");
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(out, "metadata");
                cJSON *o;

                if (!cJSON_IsObject(out))
                        return why(reason, "%soutputs[%zu] is not an object", where, j);
                if (!cJSON_IsString(mime) || !*mime->valuestring)
                        return why(reason, "%soutputs[%zu]: \"mime_type\" is not a non-empty string", where,
                                   j);
                if (!data || !(cJSON_IsString(data) || cJSON_IsObject(data) || cJSON_IsArray(data)))
                        return why(reason, "%soutputs[%zu]: \"data\" is not a string, an object or a list",
                                   where, j);
                if (md && !cJSON_IsObject(md) && !cJSON_IsNull(md))
                        return why(reason, "%soutputs[%zu]: \"metadata\" is not an object", where, j);
                o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(outputs, o)) {
                        cJSON_Delete(o);
                        return -ENOMEM;
                }
                if (add_or_fail(o, "mime_type", cJSON_CreateString(mime->valuestring)) < 0 ||
                    add_or_fail(o, "data", cJSON_Duplicate(data, true)) < 0 ||
                    add_or_fail(o, "metadata",
                                cJSON_IsObject(md) ? cJSON_Duplicate(md, true) : cJSON_CreateObject()) < 0)
                        return -ENOMEM;
                j++;
        }
        if (add_or_fail(c, "outputs", TAKE_PTR(outputs)) < 0)
                return -ENOMEM;
        r = get_string_or_null(in, "error", where, false, &tmp, reason);
        if (r < 0)
                return r;
        if (add_or_fail(c, "error", tmp) < 0)
                return -ENOMEM;
        r = add_vars(c, in, where, reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* The app's notebooks/{id}.json (backend/storage.py). A file without user_id is a legacy one:
 * it goes to --user, or to the daemon's default user for this peer. */
static int parse_app_json(const cJSON *top, const char *user, Wanted *w, char **reason)
{
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(top, "id");
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(top, "user_id");
        const cJSON *cells = cJSON_GetObjectItemCaseSensitive(top, "cells");
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(top, "revision");
        const cJSON *cell;
        size_t i = 0;
        int r;

        if (!cJSON_IsString(id) || !*id->valuestring)
                return why(reason, "\"id\" is %s", id ? "not a non-empty string" : "missing");
        if (uid && !cJSON_IsNull(uid) && (!cJSON_IsString(uid) || !*uid->valuestring))
                return why(reason, "\"user_id\" is not a non-empty string");
        if (cells && !cJSON_IsArray(cells))
                return why(reason, "\"cells\" is not a list");
        if (rev && !cJSON_IsNumber(rev))
                return why(reason, "\"revision\" is not a number");
        w->notebook_id = strdup(id->valuestring);
        if (!w->notebook_id)
                return -ENOMEM;
        if (cJSON_IsString(uid) || user) {
                w->user_id = strdup(cJSON_IsString(uid) ? uid->valuestring : user);
                if (!w->user_id)
                        return -ENOMEM;
        }
        if ((r = get_string_or_null(top, "name", "", false, &w->name, reason)) < 0 ||
            (r = get_string_or_null(top, "db_conn_string", "", false, &w->db_conn_string, reason)) < 0)
                return r;
        w->cells = cJSON_CreateArray();
        if (!w->cells)
                return -ENOMEM;
        cJSON_ArrayForEach(cell, cells)
        {
                cJSON *c = NULL;

                r = app_cell(cell, i++, &c, reason);
                if (r < 0)
                        return r;
                if (!cJSON_AddItemToArray(w->cells, c)) {
                        cJSON_Delete(c);
                        return -ENOMEM;
                }
        }
        return 0;
}

/* nbformat's multiline string: a string, or a list of strings to join. NULL: neither (or OOM,
 * told apart by *oom). */
static char *multiline(const cJSON *v, bool *oom)
{
        const cJSON *s;
        size_t n = 0;
        char *out, *p;

        *oom = false;
        if (cJSON_IsString(v)) {
                out = strdup(v->valuestring);
                *oom = !out;
                return out;
        }
        if (!cJSON_IsArray(v))
                return NULL;
        cJSON_ArrayForEach(s, v)
        {
                if (!cJSON_IsString(s))
                        return NULL;
                n += strlen(s->valuestring);
        }
        out = p = malloc(n + 1);
        if (!out) {
                *oom = true;
                return NULL;
        }
        cJSON_ArrayForEach(s, v) p = stpcpy(p, s->valuestring);
        *p = 0;
        return out;
}

static int append(char **buf, const char *s)
{
        char *n;

        if (asprintf(&n, "%s%s", *buf ? *buf : "", s) < 0)
                return -ENOMEM;
        free(*buf);
        *buf = n;
        return 0;
}

static bool int_in(const cJSON *list, int v)
{
        const cJSON *i;

        cJSON_ArrayForEach(i, list) if (cJSON_IsNumber(i) && i->valueint == v) return true;
        return false;
}

/* Adds the outputs of one display_data or execute_result: one output per MIME type of the bundle.
 * With a single type, the output's metadata is the whole metadata object (what export writes);
 * with several, each takes metadata[type] when that is an object. */
static int ipynb_bundle(const cJSON *o, const cJSON *json_data, int *k, cJSON *outputs, const char *where,
                        char **reason)
{
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata"), *v;
        int n = cJSON_GetArraySize(data);

        if (!cJSON_IsObject(data))
                return why(reason, "%san output's \"data\" is not an object", where);
        cJSON_ArrayForEach(v, data)
        {
                cJSON *out = cJSON_CreateObject(), *value;
                const cJSON *m;
                bool oom;

                if (!out || !cJSON_AddItemToArray(outputs, out)) {
                        cJSON_Delete(out);
                        return -ENOMEM;
                }
                if (mime_is_json(v->string))
                        value = cJSON_Duplicate(v, true);
                else {
                        _cleanup_free_ char *text = multiline(v, &oom);

                        if (!text)
                                return oom ? -ENOMEM
                                           : why(reason, "%soutput \"%.64s\" is not text", where, v->string);
                        if (int_in(json_data, *k)) {
                                value = cJSON_Parse(text);
                                if (!value || cJSON_IsNumber(value) || cJSON_IsBool(value) ||
                                    cJSON_IsNull(value))
                                        return why(reason,
                                                   "%soutput \"%.64s\" is not the JSON its cell says", where,
                                                   v->string);
                        } else
                                value = cJSON_CreateString(text);
                }
                if (add_or_fail(out, "mime_type", cJSON_CreateString(v->string)) < 0 ||
                    add_or_fail(out, "data", value) < 0)
                        return -ENOMEM;
                m = n == 1 ? md : cJSON_GetObjectItemCaseSensitive(md, v->string);
                if (add_or_fail(out, "metadata",
                                cJSON_IsObject(m) ? cJSON_Duplicate(m, true) : cJSON_CreateObject()) < 0)
                        return -ENOMEM;
                (*k)++;
        }
        return 0;
}

static char *comment_lines(const char *text)
{
        _cleanup_free_ char *out = NULL;
        const char *p = text;

        out = strdup("");
        if (!out)
                return NULL;
        for (;;) {
                const char *e = strchr(p, '\n');
                _cleanup_free_ char *line = strndup(p, e ? (size_t)(e - p) : strlen(p));

                if (!line || append(&out, *line ? "# " : "#") < 0 || append(&out, line) < 0 ||
                    (e && append(&out, "\n") < 0))
                        return NULL;
                if (!e)
                        break;
                p = e + 1;
        }
        return TAKE_PTR(out);
}

/* One Jupyter cell as a notebookd cell (doc/formats.md). */
static int ipynb_cell(const cJSON *in, size_t index, cJSON **ret, bool *text_cell, char **reason)
{
        _cleanup_(cjson_deletep) cJSON *c = cJSON_CreateObject(), *outputs = cJSON_CreateArray();
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(in, "cell_type");
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(in, "id");
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(in, "metadata"), "notebookd");
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(meta, "id");
        const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(meta, "type");
        const cJSON *mstatus = cJSON_GetObjectItemCaseSensitive(meta, "status");
        const cJSON *json_data = cJSON_GetObjectItemCaseSensitive(meta, "json_data"), *o;
        _cleanup_free_ char *source = NULL, *stdout_ = NULL, *error_text = NULL;
        char where[64], idbuf[32];
        const char *id, *type = "python", *code, *status;
        bool oom, has_error_output = false;
        cJSON *tmp = NULL;
        int k = 0, r;

        snprintf(where, sizeof(where), "cells[%zu]: ", index);
        if (!c || !outputs)
                return -ENOMEM;
        if (!cJSON_IsObject(in))
                return why(reason, "cells[%zu] is not an object", index);
        if (!cJSON_IsString(ct))
                return why(reason, "%s\"cell_type\" is %s", where, ct ? "not a string" : "missing");
        if (meta && !cJSON_IsObject(meta))
                return why(reason, "%smetadata \"notebookd\" is not an object", where);
        source = multiline(cJSON_GetObjectItemCaseSensitive(in, "source"), &oom);
        if (!source)
                return oom ? -ENOMEM : why(reason, "%s\"source\" is not text", where);
        snprintf(idbuf, sizeof(idbuf), "cell-%zu", index + 1);
        id = cJSON_IsString(mid) ? mid->valuestring : cJSON_IsString(jid) ? jid->valuestring : idbuf;
        code = source;

        *text_cell = false;
        if (streq(ct->valuestring, "markdown") || streq(ct->valuestring, "raw")) {
                /* notebookd has no text cells: the text stays, as a Python comment in its place. */
                _cleanup_free_ char *commented = comment_lines(source);

                if (!commented)
                        return -ENOMEM;
                free(source);
                source = TAKE_PTR(commented);
                code = source;
                *text_cell = true;
        } else if (!streq(ct->valuestring, "code"))
                return why(reason, "%s\"cell_type\" is \"%.32s\", not code, markdown or raw", where,
                           ct->valuestring);
        else {
                bool magic = startswith(source, "%%sql\n") || streq(source, "%%sql");

                if (cJSON_IsString(mtype)) {
                        if (!streq(mtype->valuestring, "python") && !streq(mtype->valuestring, "sql"))
                                return why(reason, "%snotebookd \"type\" is not python or sql", where);
                        type = mtype->valuestring;
                } else if (magic)
                        type = "sql";
                if (streq(type, "sql") && magic)
                        code = source + (source[5] ? 6 : 5);
        }

        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(in, "outputs"))
        {
                const cJSON *ot = cJSON_GetObjectItemCaseSensitive(o, "output_type");

                if (!cJSON_IsString(ot))
                        return why(reason, "%san output has no \"output_type\"", where);
                if (streq(ot->valuestring, "stream")) {
                        /* notebookd keeps one stdout; stderr joins it. */
                        _cleanup_free_ char *text =
                                multiline(cJSON_GetObjectItemCaseSensitive(o, "text"), &oom);

                        if (!text)
                                return oom ? -ENOMEM
                                           : why(reason, "%sa stream's \"text\" is not text", where);
                        if (append(&stdout_, text) < 0)
                                return -ENOMEM;
                } else if (streq(ot->valuestring, "display_data") ||
                           streq(ot->valuestring, "execute_result")) {
                        r = ipynb_bundle(o, json_data, &k, outputs, where, reason);
                        if (r < 0)
                                return r;
                } else if (streq(ot->valuestring, "error")) {
                        const cJSON *tb = cJSON_GetObjectItemCaseSensitive(o, "traceback"), *line;
                        const cJSON *ename = cJSON_GetObjectItemCaseSensitive(o, "ename");
                        const cJSON *evalue = cJSON_GetObjectItemCaseSensitive(o, "evalue");

                        has_error_output = true;
                        free(error_text);
                        error_text = NULL;
                        cJSON_ArrayForEach(line, tb)
                        {
                                if (!cJSON_IsString(line))
                                        continue;
                                if ((error_text && append(&error_text, "\n") < 0) ||
                                    append(&error_text, line->valuestring) < 0)
                                        return -ENOMEM;
                        }
                        if (!error_text && asprintf(&error_text, "%s: %s",
                                                    cJSON_IsString(ename) ? ename->valuestring : "Error",
                                                    cJSON_IsString(evalue) ? evalue->valuestring : "") < 0)
                                return -ENOMEM;
                } else
                        return why(reason, "%san output's type \"%.32s\" is unknown", where,
                                   ot->valuestring);
        }

        if (cJSON_IsString(mstatus)) {
                if (!string_in(mstatus->valuestring, cell_statuses))
                        return why(reason, "%snotebookd \"status\" is not idle, running, success or error",
                                   where);
                status = mstatus->valuestring;
        } else
                status = has_error_output ? "error"
                         : !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(in, "execution_count")) &&
                                         cJSON_GetObjectItemCaseSensitive(in, "execution_count")
                                 ? "success"
                                 : "idle";

        if (add_or_fail(c, "id", cJSON_CreateString(id)) < 0 ||
            add_or_fail(c, "type", cJSON_CreateString(type)) < 0 ||
            add_or_fail(c, "code", cJSON_CreateString(code)) < 0 ||
            add_or_fail(c, "status", cJSON_CreateString(status)) < 0 ||
            add_or_fail(c, "stdout", cJSON_CreateString(stdout_ ? stdout_ : "")) < 0 ||
            add_or_fail(c, "outputs", TAKE_PTR(outputs)) < 0)
                return -ENOMEM;
        /* The error text as the cell had it is in the metadata; a foreign error output gives its
         * traceback. */
        if (meta && cJSON_GetObjectItemCaseSensitive(meta, "error")) {
                r = get_string_or_null(meta, "error", where, false, &tmp, reason);
                if (r < 0)
                        return r;
        } else
                tmp = error_text ? cJSON_CreateString(error_text) : cJSON_CreateNull();
        if (add_or_fail(c, "error", tmp) < 0)
                return -ENOMEM;
        r = add_vars(c, meta, where, reason);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static char *path_stem(const char *path)
{
        const char *b = strrchr(path, '/'), *dot;

        b = b ? b + 1 : path;
        dot = strrchr(b, '.');
        return strndup(b, dot && dot > b ? (size_t)(dot - b) : strlen(b));
}

/* A Jupyter notebook, nbformat 4. The notebook's id, owner, name and settings come from its
 * metadata "notebookd" when present (notebookctl export writes it); else the id and name are the
 * file name without its extension, and the owner is --user or the daemon's default. */
static int parse_ipynb(const cJSON *top, const char *path, const char *user, Wanted *w, char **reason)
{
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(top, "nbformat");
        const cJSON *cells = cJSON_GetObjectItemCaseSensitive(top, "cells"), *cell;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(top, "metadata"), "notebookd");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(meta, "id");
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(meta, "user_id");
        const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(meta, "ttl");
        _cleanup_free_ char *stem = path_stem(path);
        size_t i = 0;
        int r;

        if (!stem)
                return -ENOMEM;
        if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 4)
                return why(reason, "a Jupyter notebook of nbformat %s: only nbformat 4 is read",
                           cJSON_IsNumber(fmt) ? "other than 4" : "unknown");
        if (!cJSON_IsArray(cells))
                return why(reason, "\"cells\" is %s", cells ? "not a list" : "missing");
        if (meta && !cJSON_IsObject(meta))
                return why(reason, "metadata \"notebookd\" is not an object");
        if (id && (!cJSON_IsString(id) || !*id->valuestring))
                return why(reason, "notebookd \"id\" is not a non-empty string");
        if (uid && !cJSON_IsNull(uid) && (!cJSON_IsString(uid) || !*uid->valuestring))
                return why(reason, "notebookd \"user_id\" is not a non-empty string");
        if (ttl && !cJSON_IsNull(ttl) && !cJSON_IsNumber(ttl))
                return why(reason, "notebookd \"ttl\" is not a number or null");
        w->notebook_id = strdup(id ? id->valuestring : stem);
        if (!w->notebook_id)
                return -ENOMEM;
        if (cJSON_IsString(uid) || user) {
                w->user_id = strdup(cJSON_IsString(uid) ? uid->valuestring : user);
                if (!w->user_id)
                        return -ENOMEM;
        }
        if (meta && cJSON_GetObjectItemCaseSensitive(meta, "name")) {
                if ((r = get_string_or_null(meta, "name", "notebookd ", false, &w->name, reason)) < 0)
                        return r;
        } else if (!(w->name = cJSON_CreateString(stem)))
                return -ENOMEM;
        if ((r = get_string_or_null(meta, "db_conn_string", "notebookd ", false, &w->db_conn_string,
                                    reason)) < 0)
                return r;
        if (ttl && !(w->ttl = cJSON_Duplicate(ttl, false)))
                return -ENOMEM;
        w->cells = cJSON_CreateArray();
        if (!w->cells)
                return -ENOMEM;
        cJSON_ArrayForEach(cell, cells)
        {
                cJSON *c = NULL;
                bool text_cell = false;

                r = ipynb_cell(cell, i++, &c, &text_cell, reason);
                if (r < 0)
                        return r;
                if (!cJSON_AddItemToArray(w->cells, c)) {
                        cJSON_Delete(c);
                        return -ENOMEM;
                }
                w->text_cells += text_cell;
        }
        return 0;
}

/* Reads a file of at most IMPORT_MAX_FILE_BYTES. */
static int read_bounded(const char *path, char **ret, size_t *ret_len, char **reason)
{
        /* O_NONBLOCK: a FIFO named by mistake is refused below, not waited on. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap;
        struct stat st;

        if (fd < 0)
                return why(reason, "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return why(reason, "cannot read: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return why(reason, "not a regular file");
        if ((uint64_t)st.st_size > IMPORT_MAX_FILE_BYTES)
                return why(reason,
                           "too large: %" PRIu64 " bytes, more than the %zu a notebook file may have",
                           (uint64_t)st.st_size, IMPORT_MAX_FILE_BYTES);
        /* The size may change while it is read: never more than the bound. */
        cap = (size_t)st.st_size + 1;
        buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n;

                if (len == cap) {
                        size_t ncap = MIN(cap * 2, IMPORT_MAX_FILE_BYTES + 1);
                        char *p;

                        if (ncap <= len)
                                return why(reason,
                                           "too large: more than the %zu bytes a notebook file may have",
                                           IMPORT_MAX_FILE_BYTES);
                        p = realloc(buf, ncap + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return why(reason, "cannot read: %s", strerror(errno));
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int key_compare(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key that an object in v repeats, or NULL. Python's json (the app) keeps the last of repeated
 * keys and cJSON the first, so such a file has no one meaning, and the daemon refuses them too.
 * *oom is set when the check could not be made. */
static const char *repeated_key(const cJSON *v, bool *oom)
{
        const cJSON *c;
        size_t n = 0;

        if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
                return NULL;
        for (c = v->child; c; c = c->next) {
                const char *k = repeated_key(c, oom);

                if (k || *oom)
                        return k;
                n++;
        }
        if (!cJSON_IsObject(v) || n < 2)
                return NULL;
        if (n <= 16) {
                for (c = v->child; c; c = c->next)
                        for (const cJSON *d = c->next; d; d = d->next)
                                if (streq(c->string, d->string))
                                        return c->string;
                return NULL;
        } else {
                _cleanup_free_ const char **keys = malloc(n * sizeof(*keys));
                size_t i = 0;

                if (!keys) {
                        *oom = true;
                        return NULL;
                }
                for (c = v->child; c; c = c->next)
                        keys[i++] = c->string;
                qsort(keys, n, sizeof(*keys), key_compare);
                for (i = 1; i < n; i++)
                        if (streq(keys[i], keys[i - 1]))
                                return keys[i];
                return NULL;
        }
}

/* Parses and checks a file's text (NUL-terminated at len); on success *w holds what to store. */
static int parse_text(const char *buf, size_t len, const char *path, const char *user, Wanted *w,
                      char **reason)
{
        _cleanup_(cjson_deletep) cJSON *top = NULL;
        const char *end = NULL, *dup;
        bool oom = false;
        int r;

        if (memchr(buf, 0, len))
                return why(reason, "not JSON: a NUL byte at offset %zu",
                           (size_t)((const char *)memchr(buf, 0, len) - buf));
        top = cJSON_ParseWithLengthOpts(buf, len, &end, false);
        if (!top)
                return why(reason, "not JSON (error at byte %zu)", end ? (size_t)(end - buf) : (size_t)0);
        for (; end && *end; end++)
                if (!strchr(" \t\r\n", *end))
                        return why(reason, "not JSON: text after the value at byte %zu",
                                   (size_t)(end - buf));
        if (!cJSON_IsObject(top))
                return why(reason, "not a notebook: the JSON value is not an object");
        dup = repeated_key(top, &oom);
        if (oom)
                return why(reason, "out of memory");
        if (dup)
                return why(reason, "not a notebook: the key \"%.64s\" is repeated in an object", dup);
        if (cJSON_GetObjectItemCaseSensitive(top, "nbformat"))
                r = parse_ipynb(top, path, user, w, reason);
        else
                r = parse_app_json(top, user, w, reason);
        if (r == -ENOMEM)
                return why(reason, "out of memory");
        return r;
}

/* Reads, parses and checks one file; on success *w holds what to store. */
static int load_file(const char *path, const char *user, Wanted *w, char **reason)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r;

        r = read_bounded(path, &buf, &len, reason);
        if (r < 0)
                return r;
        return parse_text(buf, len, path, user, w, reason);
}

/* ---------------------------------------------------------------------------------------------
 * Import: the pipeline */

typedef enum Outcome {
        OUTCOME_PENDING,
        OUTCOME_IMPORTED,
        OUTCOME_REPLACED,
        OUTCOME_UNCHANGED,
        OUTCOME_SKIPPED,
        _OUTCOME_MAX,
} Outcome;

static const char *const outcome_names[_OUTCOME_MAX] = {
        [OUTCOME_PENDING] = "not imported", [OUTCOME_IMPORTED] = "imported", [OUTCOME_REPLACED] = "replaced",
        [OUTCOME_UNCHANGED] = "unchanged",  [OUTCOME_SKIPPED] = "skipped",
};

typedef struct Item {
        char *path;
        char *notebook_id;
        char *user_id;
        char *reason; /* skipped: why; else an optional note */
        Outcome outcome;
} Item;

typedef enum Step {
        STEP_CREATE,
        STEP_GET,
        STEP_REPLACE,
} Step;

typedef struct Job {
        bool busy;
        uint64_t request;
        size_t item;
        Step step;
        Wanted w;
} Job;

typedef struct Import {
        const ImportArgs *a;
        Item *items;
        size_t n_items, cap_items;
        size_t ignored; /* files in directories that are neither .json nor .ipynb */
        size_t done;
        Job jobs[IMPORT_MAX_WINDOW];
        unsigned window, in_flight;
        bool progress;
        uint64_t start_usec, last_progress_usec;
        int transport_error; /* the first, or 0 */
} Import;

static void import_done(Import *im)
{
        for (size_t i = 0; i < im->n_items; i++) {
                free(im->items[i].path);
                free(im->items[i].notebook_id);
                free(im->items[i].user_id);
                free(im->items[i].reason);
        }
        free(im->items);
        for (unsigned i = 0; i < IMPORT_MAX_WINDOW; i++)
                wanted_done(&im->jobs[i].w);
}

static int item_add(Import *im, const char *path)
{
        if (im->n_items == im->cap_items) {
                size_t ncap = im->cap_items ? im->cap_items * 2 : 256;
                Item *n = realloc(im->items, ncap * sizeof(*n));

                if (!n)
                        return -ENOMEM;
                im->items = n;
                im->cap_items = ncap;
        }
        im->items[im->n_items] = (Item){ .path = strdup(path) };
        if (!im->items[im->n_items].path)
                return -ENOMEM;
        im->n_items++;
        return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);

        return n > m && streq(s + n - m, suffix);
}

static int name_compare(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's .json and .ipynb files, in name order, and those of its subdirectories. Hidden
 * entries are passed over (an editor's or the app's temporary files); symbolic links to
 * directories are not followed, so a link cannot make a loop. */
static int collect_dir(Import *im, const char *dir, unsigned depth)
{
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_free_ char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int r = 0;

        if (depth > 64)
                return item_add(im, dir) < 0 ? -ENOMEM : 0;
        d = opendir(dir);
        if (!d) {
                r = item_add(im, dir); /* load_file() says why */
                return r;
        }
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        char **p = realloc(names, ncap * sizeof(*p));

                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        names = p;
                        cap = ncap;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r == 0 && n > 1)
                qsort(names, n, sizeof(*names), name_compare);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (r == 0 && asprintf(&p, "%s%s%s", dir, has_suffix(dir, "/") ? "" : "/", names[i]) < 0)
                        r = -ENOMEM;
                if (r == 0 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        r = collect_dir(im, p, depth + 1);
                else if (r == 0 && (has_suffix(names[i], ".json") || has_suffix(names[i], ".ipynb")))
                        r = item_add(im, p);
                else if (r == 0)
                        im->ignored++;
                free(names[i]);
        }
        return r;
}

static int collect(Import *im)
{
        for (int i = 0; i < im->a->n_paths; i++) {
                const char *p = im->a->paths[i];
                struct stat st;
                int r;

                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        r = collect_dir(im, p, 0);
                else
                        r = item_add(im, p); /* a file named is read whatever its name */
                if (r < 0)
                        return r;
        }
        return 0;
}

static void item_finish(Import *im, size_t i, Outcome o, char *reason)
{
        Item *it = &im->items[i];

        /* Without a reason, a note the file got when it was read stays. */
        it->outcome = o;
        if (reason) {
                free(it->reason);
                it->reason = reason;
        }
        im->done++;
}

static void item_skip(Import *im, size_t i, const char *fmt, ...) _printf_(3, 4);
static void item_skip(Import *im, size_t i, const char *fmt, ...)
{
        char *s = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        item_finish(im, i, OUTCOME_SKIPPED, s);
}

static void progress_update(Import *im, bool force)
{
        uint64_t now = now_usec();
        double secs, rate;

        if (!im->progress || (!force && now - im->last_progress_usec < PROGRESS_USEC))
                return;
        im->last_progress_usec = now;
        secs = (double)(now - im->start_usec) / 1e6;
        rate = secs > 0 ? (double)im->done / secs : 0;
        fprintf(stderr, "\rimport: %zu/%zu files, %.0f files/s", im->done, im->n_items, rate);
        if (rate > 0 && im->done < im->n_items)
                fprintf(stderr, ", ETA %.0f s", (double)(im->n_items - im->done) / rate);
        fputs("\033[K", stderr);
        fflush(stderr);
}

/* Params for notebook.create or (replace) notebook.update of the wanted notebook. */
static cJSON *wanted_params(const Wanted *w, bool update, double expected_revision)
{
        _cleanup_(cjson_deletep) cJSON *p = cJSON_CreateObject();

        if (!p || (w->user_id && !cJSON_AddStringToObject(p, "user_id", w->user_id)) ||
            !cJSON_AddStringToObject(p, "notebook_id", w->notebook_id) ||
            (update && !cJSON_AddNumberToObject(p, "expected_revision", expected_revision)) ||
            add_or_fail(p, "name", cJSON_Duplicate(w->name, true)) < 0 ||
            add_or_fail(p, "db_conn_string", cJSON_Duplicate(w->db_conn_string, true)) < 0 ||
            (w->ttl && add_or_fail(p, "ttl", cJSON_Duplicate(w->ttl, true)) < 0) ||
            add_or_fail(p, "cells", cJSON_Duplicate(w->cells, true)) < 0)
                return NULL;
        return TAKE_PTR(p);
}

/* The stored notebook's content as a file states it: cells with exactly the cell fields. */
static bool wanted_equal(const Wanted *w, const cJSON *nb)
{
        static const char *const keys[] = { "id",      "type",  "code",  "status", "stdout",
                                            "outputs", "error", "reads", "writes" };
        const cJSON *cells = cJSON_GetObjectItemCaseSensitive(nb, "cells"), *c, *wc;

        if (!cJSON_Compare(w->name, cJSON_GetObjectItemCaseSensitive(nb, "name"), true) ||
            !cJSON_Compare(w->db_conn_string, cJSON_GetObjectItemCaseSensitive(nb, "db_conn_string"),
                           true) ||
            (w->ttl && !cJSON_Compare(w->ttl, cJSON_GetObjectItemCaseSensitive(nb, "ttl"), true)) ||
            cJSON_GetArraySize(cells) != cJSON_GetArraySize(w->cells))
                return false;
        wc = w->cells ? w->cells->child : NULL;
        cJSON_ArrayForEach(c, cells)
        {
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(wc, keys[i]),
                                           cJSON_GetObjectItemCaseSensitive(c, keys[i]), true))
                                return false;
                wc = wc->next;
        }
        return true;
}

static int job_send(Import *im, Job *j, const char *method, cJSON *params)
{
        int r;

        if (!params)
                return -ENOMEM;
        r = nb_client_send(im->a->client, method, params, &j->request);
        if (r < 0)
                return r;
        if (!j->busy)
                im->in_flight++;
        j->busy = true;
        return 0;
}

static void job_end(Import *im, Job *j)
{
        wanted_done(&j->w);
        if (j->busy)
                im->in_flight--;
        j->busy = false;
}

/* Starts the next file: reads and checks it, then sends its notebook.create. */
static int start_next(Import *im, size_t i, Job *j)
{
        Item *it = &im->items[i];
        char *reason = NULL;
        int r;

        r = load_file(it->path, im->a->user, &j->w, &reason);
        if (r < 0) {
                wanted_done(&j->w);
                item_finish(im, i, OUTCOME_SKIPPED, reason ? reason : strdup("out of memory"));
                return 0;
        }
        free(reason);
        it->notebook_id = strdup(j->w.notebook_id);
        it->user_id = j->w.user_id ? strdup(j->w.user_id) : NULL;
        if (j->w.text_cells && asprintf(&it->reason, "%u markdown or raw cell%s kept as comment cells",
                                        j->w.text_cells, j->w.text_cells == 1 ? "" : "s") < 0)
                it->reason = NULL;
        j->item = i;
        j->step = STEP_CREATE;
        return job_send(im, j, "notebook.create", wanted_params(&j->w, false, 0));
}

static const char *error_param(const NbError *e)
{
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e->data, "param");

        return cJSON_IsString(p) ? p->valuestring : NULL;
}

/* The daemon refused the content (nothing stored): the reason in its words. */
static void skip_for_error(Import *im, size_t i, const NbError *e)
{
        const char *param = error_param(e);
        const cJSON *limit = cJSON_GetObjectItemCaseSensitive(e->data, "limit");
        char lim[64] = "";

        if (cJSON_IsNumber(limit))
                snprintf(lim, sizeof(lim), "%slimit %.0f", param ? ", " : "", limit->valuedouble);
        if (e->code == NB_ERROR_TOO_LARGE || e->code == NB_ERROR_LINE_TOO_LONG)
                item_skip(im, i, "too large: %s%s%s%s%s", e->message, param || *lim ? " (" : "",
                          param ? param : "", lim, param || *lim ? ")" : "");
        else if (e->code == NB_ERROR_ACCESS_DENIED)
                item_skip(im, i, "access denied for user %s: %s",
                          im->items[i].user_id ? im->items[i].user_id : "(default)", e->message);
        else
                item_skip(im, i, "refused by the daemon: %s (error %d%s%s)", e->message, e->code,
                          param ? ", " : "", param ? param : "");
}

static int handle_reply(Import *im, Job *j, int r, cJSON *result, const NbError *e)
{
        size_t i = j->item;

        switch (j->step) {
        case STEP_CREATE:
                if (r == 0) {
                        item_finish(im, i, OUTCOME_IMPORTED, NULL);
                        break;
                }
                if (e->code == NB_ERROR_EXISTS) {
                        _cleanup_(cjson_deletep) cJSON *p = cJSON_CreateObject();

                        if (!p || (j->w.user_id && !cJSON_AddStringToObject(p, "user_id", j->w.user_id)) ||
                            !cJSON_AddStringToObject(p, "notebook_id", j->w.notebook_id))
                                return -ENOMEM;
                        j->step = STEP_GET;
                        return job_send(im, j, "notebook.get", TAKE_PTR(p));
                }
                skip_for_error(im, i, e);
                break;
        case STEP_GET: {
                const cJSON *nb = cJSON_GetObjectItemCaseSensitive(result, "notebook");
                const cJSON *rev = cJSON_GetObjectItemCaseSensitive(nb, "revision");

                if (r != 0) {
                        /* Deleted between the create and the get: the next run imports it. */
                        item_skip(im, i, "exists, but could not be read: %s (error %d)", e->message,
                                  e->code);
                        break;
                }
                if (wanted_equal(&j->w, nb)) {
                        item_finish(im, i, OUTCOME_UNCHANGED, NULL);
                        break;
                }
                if (!im->a->replace) {
                        item_skip(im, i, "notebook %s exists with other content (--replace replaces it)",
                                  j->w.notebook_id);
                        break;
                }
                if (!cJSON_IsNumber(rev))
                        return -EPROTO;
                /* expected_revision: an edit made since the get is not overwritten. */
                j->step = STEP_REPLACE;
                return job_send(im, j, "notebook.update", wanted_params(&j->w, true, rev->valuedouble));
        }
        case STEP_REPLACE:
                if (r == 0)
                        item_finish(im, i, OUTCOME_REPLACED, NULL);
                else if (e->code == NB_ERROR_CONFLICT)
                        item_skip(im, i,
                                  "notebook %s changed while it was being replaced; run the import again",
                                  j->w.notebook_id);
                else if (e->code == NB_ERROR_INVALID_PARAMS && streq_ptr(error_param(e), "cells") &&
                         strstr(e->message, "nknown"))
                        item_skip(im, i,
                                  "the daemon cannot replace a notebook's cells (notebook.update without "
                                  "\"cells\"); update notebookd");
                else
                        skip_for_error(im, i, e);
                break;
        }
        job_end(im, j);
        return 0;
}

static Job *job_free_slot(Import *im)
{
        for (unsigned k = 0; k < im->window; k++)
                if (!im->jobs[k].busy)
                        return &im->jobs[k];
        return NULL;
}

static Job *job_find(Import *im, uint64_t request)
{
        for (unsigned k = 0; k < im->window; k++)
                if (im->jobs[k].busy && im->jobs[k].request == request)
                        return &im->jobs[k];
        return NULL;
}

static int run_pipeline(Import *im)
{
        size_t next = 0;
        int r;

        while (next < im->n_items || im->in_flight > 0) {
                NbError e = NB_ERROR_INIT;
                cJSON *result = NULL;
                uint64_t id = 0;
                Job *j;

                while (next < im->n_items && (j = job_free_slot(im))) {
                        r = start_next(im, next++, j);
                        if (r < 0) {
                                if (!j->busy)
                                        wanted_done(&j->w);
                                return r;
                        }
                        progress_update(im, false);
                }
                if (im->in_flight == 0)
                        continue;
                r = nb_client_recv(im->a->client, &id, &result, &e);
                if (r < 0 && r != NB_CLIENT_EREMOTE) {
                        nb_error_done(&e);
                        return r;
                }
                j = job_find(im, id);
                if (!j) {
                        cJSON_Delete(result);
                        nb_error_done(&e);
                        return -EPROTO;
                }
                r = handle_reply(im, j, r, result, &e);
                cJSON_Delete(result);
                nb_error_done(&e);
                if (r < 0)
                        return r;
                progress_update(im, false);
        }
        return 0;
}

static void print_summary(Import *im, double secs)
{
        size_t counts[_OUTCOME_MAX] = { 0 };

        for (size_t i = 0; i < im->n_items; i++)
                counts[im->items[i].outcome]++;
        if (im->a->json) {
                _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
                _cleanup_free_ char *text = NULL, *safe = NULL;
                cJSON *files;

                if (!o || !cJSON_AddNumberToObject(o, "files", (double)im->n_items) ||
                    !cJSON_AddNumberToObject(o, "imported", (double)counts[OUTCOME_IMPORTED]) ||
                    !cJSON_AddNumberToObject(o, "replaced", (double)counts[OUTCOME_REPLACED]) ||
                    !cJSON_AddNumberToObject(o, "unchanged", (double)counts[OUTCOME_UNCHANGED]) ||
                    !cJSON_AddNumberToObject(o, "skipped",
                                             (double)(counts[OUTCOME_SKIPPED] + counts[OUTCOME_PENDING])) ||
                    !cJSON_AddNumberToObject(o, "ignored", (double)im->ignored) ||
                    !cJSON_AddNumberToObject(o, "seconds", secs) ||
                    !(files = cJSON_AddArrayToObject(o, "results"))) {
                        local_error("out of memory");
                        return;
                }
                for (size_t i = 0; i < im->n_items; i++) {
                        const Item *it = &im->items[i];
                        cJSON *f = cJSON_CreateObject();

                        if (!f || !cJSON_AddItemToArray(files, f) ||
                            !cJSON_AddStringToObject(f, "path", it->path) ||
                            add_or_fail(f, "notebook_id",
                                        it->notebook_id ? cJSON_CreateString(it->notebook_id)
                                                        : cJSON_CreateNull()) < 0 ||
                            add_or_fail(f, "user_id",
                                        it->user_id ? cJSON_CreateString(it->user_id) : cJSON_CreateNull()) <
                                    0 ||
                            !cJSON_AddStringToObject(f, "result",
                                                     it->outcome == OUTCOME_PENDING
                                                             ? "skipped"
                                                             : outcome_names[it->outcome]) ||
                            add_or_fail(f,
                                        it->outcome == OUTCOME_SKIPPED || it->outcome == OUTCOME_PENDING
                                                ? "reason"
                                                : "note",
                                        it->reason ? cJSON_CreateString(it->reason)
                                        : it->outcome == OUTCOME_PENDING
                                                ? cJSON_CreateString("not imported: the connection failed")
                                                : cJSON_CreateNull()) < 0) {
                                local_error("out of memory");
                                return;
                        }
                }
                text = json_print_indented(o);
                safe = text ? display_json(text) : NULL;
                if (!safe) {
                        local_error("out of memory");
                        return;
                }
                puts(safe);
                return;
        }
        printf("%zu file%s: %zu imported, %zu replaced, %zu unchanged, %zu skipped", im->n_items,
               im->n_items == 1 ? "" : "s", counts[OUTCOME_IMPORTED], counts[OUTCOME_REPLACED],
               counts[OUTCOME_UNCHANGED], counts[OUTCOME_SKIPPED] + counts[OUTCOME_PENDING]);
        if (im->ignored)
                printf(" (%zu other file%s in the directories ignored)", im->ignored,
                       im->ignored == 1 ? "" : "s");
        printf(", %.2f s\n", secs);
        if (counts[OUTCOME_UNCHANGED] == im->n_items && im->n_items > 0)
                printf("Nothing to do: every notebook is already stored as the files have it.\n");
        for (size_t i = 0; i < im->n_items; i++) {
                const Item *it = &im->items[i];

                if (it->outcome != OUTCOME_SKIPPED && it->outcome != OUTCOME_PENDING && !it->reason)
                        continue;
                fputs(it->outcome == OUTCOME_SKIPPED || it->outcome == OUTCOME_PENDING ? "skipped "
                                                                                       : "note    ",
                      stdout);
                display_put(stdout, it->path, DISPLAY_LINE);
                fputs(": ", stdout);
                display_put(stdout,
                            it->reason                       ? it->reason
                            : it->outcome == OUTCOME_PENDING ? "not imported: the connection failed"
                                                             : "?",
                            DISPLAY_LINE);
                fputc('\n', stdout);
        }
}

/* After a transport failure: what was in flight may or may not be stored. */
static void mark_in_flight_unknown(Import *im)
{
        for (unsigned k = 0; k < im->window; k++) {
                Job *j = &im->jobs[k];

                if (!j->busy)
                        continue;
                free(im->items[j->item].reason);
                im->items[j->item].reason = strdup(
                        j->step == STEP_GET ? "not imported: the connection failed"
                                            : "the connection failed before the daemon answered: the "
                                              "notebook may or may not be stored (import again to know)");
                job_end(im, j);
        }
}

int transfer_import(const ImportArgs *a)
{
        Import im = {
                .a = a,
                .window = a->window ? MIN(a->window, IMPORT_MAX_WINDOW) : IMPORT_MAX_WINDOW,
                .progress = !a->quiet && isatty(STDERR_FILENO),
        };
        bool skipped = false;
        int r;

        im.start_usec = im.last_progress_usec = now_usec();
        r = collect(&im);
        if (r >= 0)
                r = run_pipeline(&im);
        if (r < 0)
                mark_in_flight_unknown(&im);
        if (im.progress) {
                progress_update(&im, true);
                fputs("\r\033[K", stderr);
        }
        if (r == -ENOMEM) {
                import_done(&im);
                return local_error("out of memory");
        }
        print_summary(&im, (double)(now_usec() - im.start_usec) / 1e6);
        for (size_t i = 0; i < im.n_items; i++)
                if (im.items[i].outcome == OUTCOME_SKIPPED || im.items[i].outcome == OUTCOME_PENDING)
                        skipped = true;
        import_done(&im);
        if (r < 0) {
                const char *what = r == -EPROTO       ? "invalid reply from the daemon"
                                   : r == -EMSGSIZE   ? "reply from the daemon too long"
                                   : r == -ECONNRESET ? "the daemon closed the connection"
                                                      : strerror(-r);
                fprintf(stderr, "notebookctl: import: %s\n", what);
                return EXIT_TRANSPORT;
        }
        return skipped ? IMPORT_EXIT_SKIPPED : EXIT_OK;
}

int transfer_parse(const char *text, size_t len, const char *path, const char *user, cJSON **ret,
                   unsigned *ret_text_cells, char **ret_reason)
{
        _cleanup_free_ char *copy = malloc(len + 1);
        Wanted w = { 0 };
        char *reason = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        memcpy(copy, text, len);
        copy[len] = 0;
        r = parse_text(copy, len, path, user, &w, &reason);
        if (r < 0) {
                wanted_done(&w);
                *ret_reason = reason;
                return reason ? -EINVAL : -ENOMEM;
        }
        free(reason);
        *ret = wanted_params(&w, false, 0);
        if (ret_text_cells)
                *ret_text_cells = w.text_cells;
        wanted_done(&w);
        return *ret ? 0 : -ENOMEM;
}
