/* SPDX-License-Identifier: MIT */

/* notebookctl: the command line client of notebookd. Each command is one JSON-RPC call
 * (doc/protocol.md); this file parses arguments, builds params, and prints the result as a table
 * or, with --json, as the protocol's result object. */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "json-print.h"
#include "ctl.h"
#include "display.h"
#include "nbclient.h"
#include "table.h"
#include "transfer.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#include "util.h"

static inline void cjson_deletep(cJSON **p)
{
        cJSON_Delete(*p);
}

/* Code read from a file or stdin: the daemon takes 1 MiB and reports anything larger itself
 * (-32013); reading stops well above that so a runaway pipe cannot eat memory. */
#define MAX_INPUT_BYTES ((size_t)16 * 1024 * 1024)
#define MAX_JSON_INT    ((int64_t)1 << 53)

typedef struct Ctl {
        const char *socket_path; /* --socket, or NULL for the default */
        const char *user;        /* --user, or NULL: the daemon picks */
        bool json;
        NbClient *client;
        char *resolved_socket;
} Ctl;

typedef struct Command Command;
struct Command {
        const char *name; /* "cell add" */
        const char *synopsis;
        const char *help; /* option lines and explanation */
        int (*run)(Ctl *ctl, const Command *cmd, int argc, char **argv);
};

static void ctl_done(Ctl *ctl)
{
        nb_client_free(ctl->client);
        free(ctl->resolved_socket);
}

/* ---------------------------------------------------------------------------------------------
 * Messages */

static void print_command_help(const Command *cmd)
{
        printf("Usage: notebookctl [GLOBAL OPTIONS] %s%s%s\n\n%s", cmd->name, cmd->synopsis[0] ? " " : "",
               cmd->synopsis, cmd->help);
        printf("\nGlobal options (also accepted after the command): --socket PATH, --user USER_ID, --json.\n"
               "See 'notebookctl --help' for exit codes.\n");
}

/* "notebookctl: " and the message on stderr, without its newline. What it quotes (an argument, a
 * name, DynamoDB's words) is escaped as display.h says: no control reaches the terminal. */
static void put_message(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void put_message(const char *fmt, va_list ap)
{
        _cleanup_(freep) char *msg = NULL;

        fputs("notebookctl: ", stderr);
        /* Out of memory: the format, which says at least what went wrong. */
        display_put(stderr, vasprintf(&msg, fmt, ap) < 0 ? fmt : msg, DISPLAY_LINE);
}

static int usage_error(const Command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const Command *cmd, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        put_message(fmt, ap);
        va_end(ap);
        if (cmd)
                fprintf(stderr, "\nTry 'notebookctl %s --help'.\n", cmd->name);
        else
                fputs("\nTry 'notebookctl --help'.\n", stderr);
        return EXIT_USAGE;
}

int local_error(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        put_message(fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_DAEMON;
}

/* Writes text that is not ours within a line, escaped (display.h): a notebook's content, or a
 * daemon's answer, cannot drive the terminal. */
static void put_text(FILE *f, const char *s)
{
        display_put(f, s, DISPLAY_LINE);
}

/* Columns of s as put_text() writes it. */
static size_t text_width(const char *s)
{
        return display_width(s, DISPLAY_LINE);
}

/* Part of a JSON document as it goes to the terminal: the same value, no raw control or bidi
 * character. */
static int put_json_fragment(const char *s)
{
        _cleanup_(freep) char *t = display_json(s);

        if (!t)
                return local_error("out of memory");
        fputs(t, stdout);
        return EXIT_OK;
}

/* JSON text as it goes to the terminal: the same value, no raw control or bidi character. */
static void put_json_text(const char *s)
{
        _cleanup_(freep) char *t = display_json(s);

        if (t)
                puts(t);
        else
                local_error("out of memory");
}

static void print_json(const cJSON *v)
{
        _cleanup_(freep) char *s = json_print_indented(v);

        if (s)
                put_json_text(s);
}

/* Compact text of a scalar or short JSON value, for one-line summaries. NULL on OOM. */
static char *value_to_text(const cJSON *v)
{
        if (cJSON_IsString(v))
                return strdup(v->valuestring);
        if (cJSON_IsNull(v) || !v)
                return strdup("-");
        return json_print(v, false);
}

static void print_rpc_error(const Ctl *ctl, const NbError *e)
{
        fprintf(stderr, "notebookctl: ");
        put_text(stderr, e->message);
        fprintf(stderr, " (error %d", e->code);
        if (cJSON_IsObject(e->data)) {
                const cJSON *d;
                const char *sep = ": ";

                cJSON_ArrayForEach(d, e->data)
                {
                        _cleanup_(freep) char *t = value_to_text(d);

                        fputs(sep, stderr);
                        put_text(stderr, d->string ? d->string : "?");
                        fputc('=', stderr);
                        put_text(stderr, t ? t : "?");
                        sep = ", ";
                }
        } else if (e->data) {
                _cleanup_(freep) char *t = value_to_text(e->data);

                fputs(": ", stderr);
                put_text(stderr, t ? t : "?");
        }
        fprintf(stderr, ")\n");

        if (ctl->json) {
                _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();

                if (o && cJSON_AddNumberToObject(o, "code", e->code) &&
                    cJSON_AddStringToObject(o, "message", e->message)) {
                        if (e->data)
                                cJSON_AddItemToObject(o, "data", cJSON_Duplicate(e->data, true));
                        print_json(o);
                }
        }
}

static int exit_code_for_error(int code)
{
        switch (code) {
        case NB_ERROR_NOT_FOUND:
                return EXIT_NOT_FOUND;
        case NB_ERROR_CONFLICT:
                return EXIT_CONFLICT;
        case NB_ERROR_ACCESS_DENIED:
                return EXIT_DENIED;
        default:
                return EXIT_DAEMON;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Talking to the daemon */

static int ctl_connect(Ctl *ctl)
{
        const char *path = ctl->socket_path;
        int r;

        if (ctl->client)
                return 0;
        if (!path) {
                ctl->resolved_socket = nb_default_socket_path();
                if (!ctl->resolved_socket)
                        return local_error("out of memory");
                path = ctl->resolved_socket;
        }
        r = nb_client_connect(path, &ctl->client);
        if (r < 0) {
                fputs("notebookctl: cannot connect to ", stderr);
                put_text(stderr, path);
                fprintf(stderr, ": %s\n", strerror(-r));
                if (r == -ENOENT || r == -ECONNREFUSED)
                        fprintf(stderr,
                                "notebookctl: is notebookd running? (use --socket or NOTEBOOKD_SOCKET "
                                "to name another socket)\n");
                return EXIT_TRANSPORT;
        }
        return 0;
}

/* One call; params is taken. Returns an exit code; *ret gets the result on EXIT_OK. */
static int ctl_call(Ctl *ctl, const char *method, cJSON *params, cJSON **ret)
{
        _cleanup_(cjson_deletep) cJSON *p = params;
        NbError e = NB_ERROR_INIT;
        int r;

        r = ctl_connect(ctl);
        if (r != 0)
                return r;
        r = nb_client_call(ctl->client, method, TAKE_PTR(p), ret, &e);
        if (r == NB_CLIENT_EREMOTE) {
                print_rpc_error(ctl, &e);
                r = exit_code_for_error(e.code);
                nb_error_done(&e);
                return r;
        }
        if (r == -ENOMEM)
                return local_error("out of memory");
        if (r < 0) {
                const char *what = r == -EPROTO       ? "invalid reply from the daemon"
                                   : r == -EMSGSIZE   ? "reply from the daemon too long"
                                   : r == -ECONNRESET ? "the daemon closed the connection"
                                                      : strerror(-r);
                fprintf(stderr, "notebookctl: %s: %s\n", method, what);
                return EXIT_TRANSPORT;
        }
        return EXIT_OK;
}

/* A params object with user_id when --user was given. */
static cJSON *params_new(const Ctl *ctl)
{
        cJSON *p = cJSON_CreateObject();

        if (p && ctl->user && !cJSON_AddStringToObject(p, "user_id", ctl->user)) {
                cJSON_Delete(p);
                return NULL;
        }
        return p;
}

/* ---------------------------------------------------------------------------------------------
 * Argument helpers */

enum {
        OPT_SOCKET = 0x100,
        OPT_USER,
        OPT_JSON,
        OPT_EXPECT,
        OPT_NAME,
        OPT_NO_NAME,
        OPT_ID,
        OPT_DB_CONN,
        OPT_NO_DB_CONN,
        OPT_TTL,
        OPT_NO_TTL,
        OPT_TYPE,
        OPT_CODE,
        OPT_FILE,
        OPT_POSITION,
        OPT_AFTER,
        OPT_FIRST,
        OPT_STATUS,
        OPT_STDOUT,
        OPT_ERROR,
        OPT_NO_ERROR,
        OPT_READS,
        OPT_WRITES,
        OPT_OUTPUTS,
        OPT_CONFIG,
        OPT_TABLE,
        OPT_ENDPOINT,
        OPT_REGION,
        OPT_WAIT,
        OPT_COUNT,
        OPT_FIELD,
        OPT_KEEP,
        OPT_NUMBER, /* notebook_and_numbers(): OPT_NUMBER + i for its i-th option */
        OPT_NUMBER_2,
        OPT_IDS,
};

#define COMMON_OPTIONS                                                                         \
        { "help", no_argument, NULL, 'h' }, { "socket", required_argument, NULL, OPT_SOCKET }, \
                { "user", required_argument, NULL, OPT_USER },                                 \
        {                                                                                      \
                "json", no_argument, NULL, OPT_JSON                                            \
        }

#define OPTIONS_END              \
        {                        \
                NULL, 0, NULL, 0 \
        }

/* Parses a whole decimal integer within ±2^53 (exact as a JSON number). */
static int parse_int(const char *s, int64_t min, int64_t *ret)
{
        char *end;
        long long v;

        /* strtoll() would also take leading blanks and a '+'. */
        if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end || v < min || v > MAX_JSON_INT || v < -MAX_JSON_INT)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* getopt_long() for a command: handles the common options, prints help, and returns the next
 * command-specific option; -1 at the end; '?' after a usage error was printed. The help case
 * returns 'h' and the caller exits 0. */
static int command_getopt(Ctl *ctl, const Command *cmd, int argc, char **argv, const struct option *opts,
                          bool *usage_failed)
{
        for (;;) {
                int c = getopt_long(argc, argv, "h", opts, NULL);

                switch (c) {
                case OPT_SOCKET:
                        ctl->socket_path = optarg;
                        continue;
                case OPT_USER:
                        ctl->user = optarg;
                        continue;
                case OPT_JSON:
                        ctl->json = true;
                        continue;
                case 'h':
                        print_command_help(cmd);
                        return 'h';
                case '?':
                case ':':
                        fprintf(stderr, "Try 'notebookctl %s --help'.\n", cmd->name);
                        *usage_failed = true;
                        return '?';
                default:
                        return c;
                }
        }
}

/* Runs getopt for a command without options of its own; checks the positional count. */
static int simple_args(Ctl *ctl, const Command *cmd, int argc, char **argv, int npos, int *ret_exit)
{
        static const struct option opts[] = { COMMON_OPTIONS, OPTIONS_END };
        bool bad = false;
        int c;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                if (c == 'h') {
                        *ret_exit = EXIT_OK;
                        return -1;
                }
                *ret_exit = EXIT_USAGE;
                return -1;
        }
        if (argc - optind != npos) {
                *ret_exit = usage_error(cmd, "%s expects %d argument%s, got %d", cmd->name, npos,
                                        npos == 1 ? "" : "s", argc - optind);
                return -1;
        }
        return 0;
}

static int check_positional(const Command *cmd, int argc, int want)
{
        if (argc - optind != want)
                return usage_error(cmd, "%s expects %d argument%s, got %d", cmd->name, want,
                                   want == 1 ? "" : "s", argc - optind);
        return EXIT_OK;
}

static int add_expected_revision(cJSON *p, bool have, int64_t rev)
{
        if (have && !cJSON_AddNumberToObject(p, "expected_revision", (double)rev))
                return -ENOMEM;
        return 0;
}

/* Reads a whole file ("-": stdin) as code. */
static int read_input(const char *path, char **ret)
{
        _cleanup_(freep) char *buf = NULL;
        size_t len = 0, cap = 0;
        int fd, r = 0;

        if (streq(path, "-"))
                fd = STDIN_FILENO;
        else {
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return local_error("cannot open %s: %s", path, strerror(errno));
        }
        for (;;) {
                ssize_t n;

                if (cap - len < 4096) {
                        size_t ncap = cap ? cap * 2 : 65536;
                        char *p;

                        if (ncap > MAX_INPUT_BYTES + 1)
                                ncap = MAX_INPUT_BYTES + 1;
                        if (ncap <= len) {
                                r = local_error("%s: more than %zu bytes", streq(path, "-") ? "stdin" : path,
                                                MAX_INPUT_BYTES);
                                break;
                        }
                        p = realloc(buf, ncap + 1);
                        if (!p) {
                                r = local_error("out of memory");
                                break;
                        }
                        buf = p;
                        cap = ncap;
                }
                n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = local_error("cannot read %s: %s", streq(path, "-") ? "stdin" : path,
                                        strerror(errno));
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (fd != STDIN_FILENO)
                close(fd);
        if (r != 0)
                return r;
        if (!buf) {
                buf = strdup("");
                if (!buf)
                        return local_error("out of memory");
        } else
                buf[len] = 0;
        if (strlen(buf) != len)
                return local_error("%s contains a NUL byte", streq(path, "-") ? "stdin" : path);
        *ret = TAKE_PTR(buf);
        return EXIT_OK;
}

/* "a,b,c" -> ["a","b","c"]; spaces around names are dropped, and so are empty names. */
static cJSON *split_names(const char *s)
{
        _cleanup_(cjson_deletep) cJSON *a = cJSON_CreateArray();
        const char *p = s;

        if (!a)
                return NULL;
        while (*p) {
                const char *e = strchr(p, ',');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                const char *b = p;
                _cleanup_(freep) char *name = NULL;

                while (n > 0 && (*b == ' ' || *b == '\t')) {
                        b++;
                        n--;
                }
                while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t'))
                        n--;
                if (n > 0) {
                        cJSON *item;

                        name = strndup(b, n);
                        item = name ? cJSON_CreateString(name) : NULL;
                        if (!item)
                                return NULL;
                        cJSON_AddItemToArray(a, item);
                }
                if (!e)
                        break;
                p = e + 1;
        }
        return TAKE_PTR(a);
}

static const char *str_or_dash(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsString(v) ? v->valuestring : "-";
}

static int64_t int_or(const cJSON *o, const char *key, int64_t dflt)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

        return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : dflt;
}

/* ---------------------------------------------------------------------------------------------
 * Commands */

/* Notebooks asked for per page: the daemon's largest page. */
#define LIST_PAGE 1000

static void list_widths(const cJSON *nbs, size_t *w_id, size_t *w_name)
{
        const cJSON *nb;

        cJSON_ArrayForEach(nb, nbs)
        {
                size_t a = text_width(str_or_dash(nb, "id")), b = text_width(str_or_dash(nb, "name"));

                if (a > *w_id)
                        *w_id = a;
                if (b > *w_name)
                        *w_name = b;
        }
        if (*w_name > 40)
                *w_name = 40; /* longer names push the other columns, but do not widen them all */
}

static void list_rows(const cJSON *nbs, size_t w_id, size_t w_name)
{
        const cJSON *nb;

        cJSON_ArrayForEach(nb, nbs)
        {
                const char *id = str_or_dash(nb, "id"), *name = str_or_dash(nb, "name");
                size_t pad;

                put_text(stdout, id);
                for (pad = text_width(id); pad < w_id + 2; pad++)
                        putchar(' ');
                put_text(stdout, name);
                for (pad = text_width(name); pad < w_name + 2; pad++)
                        putchar(' ');
                printf("%5" PRId64 "  %5" PRId64 "  ", int_or(nb, "cell_count", 0),
                       int_or(nb, "revision", 0));
                put_text(stdout, str_or_dash(nb, "updated_at"));
                putchar('\n');
        }
}

/* The summaries of one page as members of the "notebooks" array of the --json document. */
static int list_json_items(const cJSON *nbs, bool *first)
{
        const cJSON *nb;

        cJSON_ArrayForEach(nb, nbs)
        {
                _cleanup_(freep) char *t = json_print(nb, false);

                if (!t)
                        return local_error("out of memory");
                printf("%s\n\t\t", *first ? "" : ",");
                if (put_json_fragment(t) != EXIT_OK)
                        return EXIT_DAEMON;
                *first = false;
        }
        return EXIT_OK;
}

/* Follows the daemon's pages and prints each as it comes, so that a long list takes no more
 * memory than one page. The table's column widths come from the first page; a longer id or name
 * further down pushes the columns of its own row only. --json prints one document, the daemon's
 * first result with the notebooks of every page in its array (and no next_cursor). */
static int cmd_list(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "ids", no_argument, NULL, OPT_IDS },
                OPTIONS_END,
        };
        _cleanup_(freep) char *cursor = NULL;
        size_t w_id = 2, w_name = 4;
        bool first_page = true, first_item = true, ids = false, bad = false;
        int r, c;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                if (c == 'h')
                        return EXIT_OK;
                if (c != OPT_IDS)
                        return EXIT_USAGE;
                ids = true;
        }
        r = check_positional(cmd, argc, 0);
        if (r != EXIT_OK)
                return r;
        if (ids && ctl->json)
                return usage_error(cmd, "--ids and --json do not go together");
        for (;;) {
                _cleanup_(cjson_deletep) cJSON *res = NULL;
                cJSON *p = params_new(ctl);
                const cJSON *nbs, *next;

                if (!p || !cJSON_AddNumberToObject(p, "limit", LIST_PAGE) ||
                    (cursor && !cJSON_AddStringToObject(p, "cursor", cursor))) {
                        cJSON_Delete(p);
                        return local_error("out of memory");
                }
                r = ctl_call(ctl, "notebook.list", p, &res);
                /* With part of a --json document out, it stays unfinished, so that no parser takes
                 * it for the whole list; the exit status tells why. */
                if (r != EXIT_OK)
                        return r;
                nbs = cJSON_GetObjectItemCaseSensitive(res, "notebooks");
                next = cJSON_GetObjectItemCaseSensitive(res, "next_cursor");
                if (first_page && ctl->json) {
                        _cleanup_(freep) char *user = NULL, *prov = NULL;

                        user = json_print_indented(cJSON_GetObjectItemCaseSensitive(res, "user_id"));
                        prov = json_print_indented(cJSON_GetObjectItemCaseSensitive(res, "provisioned"));
                        if (!user || !prov)
                                return local_error("out of memory");
                        printf("{\n\t\"user_id\":\t");
                        if (put_json_fragment(user) != EXIT_OK)
                                return EXIT_DAEMON;
                        printf(",\n\t\"provisioned\":\t");
                        if (put_json_fragment(prov) != EXIT_OK)
                                return EXIT_DAEMON;
                        printf(",\n\t\"notebooks\":\t[");
                } else if (first_page && !ids) {
                        list_widths(nbs, &w_id, &w_name);
                        printf("%-*s  %-*s  %5s  %5s  %s\n", (int)w_id, "ID", (int)w_name, "NAME", "CELLS",
                               "REV", "UPDATED");
                }
                first_page = false;
                if (ctl->json) {
                        r = list_json_items(nbs, &first_item);
                        if (r != EXIT_OK)
                                return r;
                } else if (ids) {
                        const cJSON *nb;

                        /* Ids hold no control or separator characters: one per line is safe. */
                        cJSON_ArrayForEach(nb, nbs) printf("%s\n", str_or_dash(nb, "id"));
                } else
                        list_rows(nbs, w_id, w_name);
                if (!cJSON_IsString(next))
                        break;
                free(cursor);
                cursor = strdup(next->valuestring);
                if (!cursor)
                        return local_error("out of memory");
        }
        if (ctl->json)
                printf("%s]\n}\n", first_item ? "" : "\n\t");
        return EXIT_OK;
}

static void print_indented(const char *text, const char *indent)
{
        const char *p = text;

        while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                _cleanup_(freep) char *line = strndup(p, n);

                /* No trailing blanks for empty lines. */
                if (n > 0) {
                        fputs(indent, stdout);
                        display_put(stdout, line ? line : "?", DISPLAY_BLOCK);
                }
                putchar('\n');
                if (!e)
                        break;
                p = e + 1;
        }
}

static void print_name_list(const char *label, const cJSON *arr)
{
        const cJSON *v;
        const char *sep = "";

        if (cJSON_GetArraySize(arr) == 0)
                return;
        printf("  %s ", label);
        cJSON_ArrayForEach(v, arr)
        {
                if (cJSON_IsString(v)) {
                        fputs(sep, stdout);
                        put_text(stdout, v->valuestring);
                        sep = ",";
                }
        }
}

/* A number option of a command that takes one NOTEBOOK: --name N, in [min, max], sent as param. */
typedef struct NumberOption {
        const char *name, *param;
        int64_t min, max;
} NumberOption;

/* The arguments of such a command (at most 2 number options): the parameters, with notebook_id
 * and each number given. -1 after --help. */
static int notebook_and_numbers(Ctl *ctl, const Command *cmd, int argc, char **argv, const NumberOption *n,
                                size_t n_opts, cJSON **ret)
{
        /* The common ones, then room for two number options and the end. */
        struct option opts[] = { COMMON_OPTIONS, OPTIONS_END, OPTIONS_END, OPTIONS_END };
        const size_t first = sizeof(opts) / sizeof(opts[0]) - 3;
        _cleanup_(cjson_deletep) cJSON *p = NULL;
        bool bad = false;
        int c, r;

        for (size_t i = 0; i < n_opts && i < 2; i++)
                opts[first + i] = (struct option){ n[i].name, required_argument, NULL, OPT_NUMBER + (int)i };
        p = params_new(ctl);
        if (!p)
                return local_error("out of memory");
        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                const NumberOption *o;
                int64_t v;

                if (c == 'h')
                        return -1;
                if (c != OPT_NUMBER && c != OPT_NUMBER_2)
                        return EXIT_USAGE;
                o = &n[c - OPT_NUMBER];
                if (parse_int(optarg, o->min, &v) < 0 || v > o->max)
                        return usage_error(cmd,
                                           "--%s wants a number from %" PRId64 " to %" PRId64 ", not '%s'",
                                           o->name, o->min, o->max, optarg);
                cJSON_DeleteItemFromObjectCaseSensitive(p, o->param);
                if (!cJSON_AddNumberToObject(p, o->param, (double)v))
                        return local_error("out of memory");
        }
        r = check_positional(cmd, argc, 1);
        if (r != EXIT_OK)
                return r;
        if (!cJSON_AddStringToObject(p, "notebook_id", argv[optind]))
                return local_error("out of memory");
        *ret = TAKE_PTR(p);
        return EXIT_OK;
}

static int cmd_show(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        cJSON *p = NULL, *nb, *cells, *cell, *v;
        int r, i = 0;

        static const NumberOption revision = { "revision", "revision", 1, MAX_JSON_INT };

        r = notebook_and_numbers(ctl, cmd, argc, argv, &revision, 1, &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = ctl_call(ctl, "notebook.get", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        nb = cJSON_GetObjectItemCaseSensitive(res, "notebook");
        cells = cJSON_GetObjectItemCaseSensitive(nb, "cells");

        printf("Notebook:  ");
        put_text(stdout, str_or_dash(nb, "id"));
        printf("\nName:      ");
        put_text(stdout, str_or_dash(nb, "name"));
        printf("\nUser:      ");
        put_text(stdout, str_or_dash(nb, "user_id"));
        printf("\nRevision:  %" PRId64 "\n", int_or(nb, "revision", 0));
        printf("Created:   ");
        put_text(stdout, str_or_dash(nb, "created_at"));
        printf("\nUpdated:   ");
        put_text(stdout, str_or_dash(nb, "updated_at"));
        putchar('\n');
        printf("DB conn:   ");
        put_text(stdout, str_or_dash(nb, "db_conn_string"));
        v = cJSON_GetObjectItemCaseSensitive(nb, "ttl");
        if (cJSON_IsNumber(v))
                printf("\nTTL:       %" PRId64 "\n", (int64_t)v->valuedouble);
        else
                printf("\nTTL:       -\n");
        v = cJSON_GetObjectItemCaseSensitive(nb, "demo_version");
        if (cJSON_IsNumber(v))
                printf("Demo:      version %" PRId64 "\n", (int64_t)v->valuedouble);
        printf("Cells:     %d\n", cJSON_GetArraySize(cells));

        cJSON_ArrayForEach(cell, cells)
        {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(cell, "code");
                const cJSON *err = cJSON_GetObjectItemCaseSensitive(cell, "error");
                const cJSON *outs = cJSON_GetObjectItemCaseSensitive(cell, "outputs");
                const cJSON *out = cJSON_GetObjectItemCaseSensitive(cell, "stdout");

                printf("\n[%d] ", i++);
                put_text(stdout, str_or_dash(cell, "id"));
                printf("  ");
                put_text(stdout, str_or_dash(cell, "type"));
                printf("  ");
                put_text(stdout, str_or_dash(cell, "status"));
                print_name_list("reads:", cJSON_GetObjectItemCaseSensitive(cell, "reads"));
                print_name_list("writes:", cJSON_GetObjectItemCaseSensitive(cell, "writes"));
                if (cJSON_GetArraySize(outs) > 0)
                        printf("  outputs: %d", cJSON_GetArraySize(outs));
                putchar('\n');
                if (cJSON_IsString(code))
                        print_indented(code->valuestring, "    ");
                if (cJSON_IsString(out) && *out->valuestring)
                        print_indented(out->valuestring, "    > ");
                if (cJSON_IsString(err))
                        print_indented(err->valuestring, "    ! ");
        }
        return EXIT_OK;
}

static int cmd_create(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "name", required_argument, NULL, OPT_NAME },
                { "id", required_argument, NULL, OPT_ID },
                { "db-conn", required_argument, NULL, OPT_DB_CONN },
                { "ttl", required_argument, NULL, OPT_TTL },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *p = NULL, *res = NULL;
        const char *name = NULL, *id = NULL, *db = NULL;
        bool bad = false, have_ttl = false;
        int64_t ttl = 0;
        const cJSON *nb;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_NAME:
                        name = optarg;
                        break;
                case OPT_ID:
                        id = optarg;
                        break;
                case OPT_DB_CONN:
                        db = optarg;
                        break;
                case OPT_TTL:
                        if (parse_int(optarg, 0, &ttl) < 0)
                                return usage_error(cmd, "--ttl wants a Unix time in seconds, not '%s'",
                                                   optarg);
                        have_ttl = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        r = check_positional(cmd, argc, 0);
        if (r != EXIT_OK)
                return r;
        p = params_new(ctl);
        if (!p || (id && !cJSON_AddStringToObject(p, "notebook_id", id)) ||
            (name && !cJSON_AddStringToObject(p, "name", name)) ||
            (db && !cJSON_AddStringToObject(p, "db_conn_string", db)) ||
            (have_ttl && !cJSON_AddNumberToObject(p, "ttl", (double)ttl)))
                return local_error("out of memory");
        r = ctl_call(ctl, "notebook.create", TAKE_PTR(p), &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        nb = cJSON_GetObjectItemCaseSensitive(res, "notebook");
        printf("Created notebook ");
        put_text(stdout, str_or_dash(nb, "id"));
        printf(" (revision %" PRId64 ").\n", int_or(nb, "revision", 0));
        return EXIT_OK;
}

static void print_summary_line(const char *verb, const cJSON *nb)
{
        printf("%s notebook ", verb);
        put_text(stdout, str_or_dash(nb, "id"));
        printf(" (revision %" PRId64 ").\n", int_or(nb, "revision", 0));
}

/* rename and update share notebook.update. */
static int notebook_update(Ctl *ctl, cJSON *p)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        int r;

        r = ctl_call(ctl, "notebook.update", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json)
                print_json(res);
        else
                print_summary_line("Updated", cJSON_GetObjectItemCaseSensitive(res, "notebook"));
        return EXIT_OK;
}

/* Commands of npos positional arguments, NOTEBOOK first, and --expect-revision: the params, with
 * notebook_id, the second argument as the string param second (NULL: the caller reads it) and
 * expected_revision. -1 after --help. */
static int parse_id_command(Ctl *ctl, const Command *cmd, int argc, char **argv, int npos,
                            const char *second, cJSON **ret)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                OPTIONS_END,
        };
        bool bad = false, have_rev = false;
        int64_t rev = 0;
        cJSON *p;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                if (c == 'h')
                        return -1;
                if (c != OPT_EXPECT)
                        return EXIT_USAGE;
                if (parse_int(optarg, 0, &rev) < 0)
                        return usage_error(cmd, "--expect-revision wants a number, not '%s'", optarg);
                have_rev = true;
        }
        r = check_positional(cmd, argc, npos);
        if (r != EXIT_OK)
                return r;
        p = params_new(ctl);
        if (!p || (npos >= 1 && !cJSON_AddStringToObject(p, "notebook_id", argv[optind])) ||
            (npos >= 2 && second && !cJSON_AddStringToObject(p, second, argv[optind + 1])) ||
            add_expected_revision(p, have_rev, rev) < 0) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        *ret = p;
        return EXIT_OK;
}

static int cmd_rename(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        cJSON *p = NULL;
        int r;

        r = parse_id_command(ctl, cmd, argc, argv, 2, "name", &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        return notebook_update(ctl, p);
}

static int cmd_update(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                { "name", required_argument, NULL, OPT_NAME },
                { "no-name", no_argument, NULL, OPT_NO_NAME },
                { "db-conn", required_argument, NULL, OPT_DB_CONN },
                { "no-db-conn", no_argument, NULL, OPT_NO_DB_CONN },
                { "ttl", required_argument, NULL, OPT_TTL },
                { "no-ttl", no_argument, NULL, OPT_NO_TTL },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *fields = cJSON_CreateObject();
        bool bad = false, have_rev = false;
        int64_t rev = 0, ttl;
        cJSON *p, *v, *next;
        int c, r;

        if (!fields)
                return local_error("out of memory");
        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                const char *key;
                cJSON *item;

                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_EXPECT:
                        if (parse_int(optarg, 0, &rev) < 0)
                                return usage_error(cmd, "--expect-revision wants a number, not '%s'",
                                                   optarg);
                        have_rev = true;
                        continue;
                case OPT_NAME:
                case OPT_NO_NAME:
                        key = "name";
                        item = c == OPT_NAME ? cJSON_CreateString(optarg) : cJSON_CreateNull();
                        break;
                case OPT_DB_CONN:
                case OPT_NO_DB_CONN:
                        key = "db_conn_string";
                        item = c == OPT_DB_CONN ? cJSON_CreateString(optarg) : cJSON_CreateNull();
                        break;
                case OPT_TTL:
                        if (parse_int(optarg, 0, &ttl) < 0)
                                return usage_error(cmd, "--ttl wants a Unix time in seconds, not '%s'",
                                                   optarg);
                        key = "ttl";
                        item = cJSON_CreateNumber((double)ttl);
                        break;
                case OPT_NO_TTL:
                        key = "ttl";
                        item = cJSON_CreateNull();
                        break;
                default:
                        return EXIT_USAGE;
                }
                if (!item)
                        return local_error("out of memory");
                if (cJSON_GetObjectItemCaseSensitive(fields, key)) {
                        cJSON_Delete(item);
                        return usage_error(cmd, "%s given twice", key);
                }
                cJSON_AddItemToObject(fields, key, item);
        }
        r = check_positional(cmd, argc, 1);
        if (r != EXIT_OK)
                return r;
        if (!fields->child)
                return usage_error(
                        cmd, "nothing to update: give --name, --db-conn or --ttl (or their --no- forms)");
        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind]) ||
            add_expected_revision(p, have_rev, rev) < 0) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        for (v = fields->child; v; v = next) {
                next = v->next;
                cJSON_AddItemToObject(p, v->string, cJSON_DetachItemViaPointer(fields, v));
        }
        return notebook_update(ctl, p);
}

static int cmd_rm(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        cJSON *p = NULL;
        int r;

        r = parse_id_command(ctl, cmd, argc, argv, 1, NULL, &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = ctl_call(ctl, "notebook.delete", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        printf("Deleted notebook ");
        put_text(stdout, str_or_dash(res, "notebook_id"));
        printf(" (revision %" PRId64 ").\n", int_or(res, "revision", 0));
        return EXIT_OK;
}

static int cmd_history(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        const cJSON *e, *list;
        cJSON *p = NULL;
        int64_t current;
        int r;

        static const NumberOption opts[] = {
                { "limit", "limit", 1, 1000 },
                { "before", "before", 1, MAX_JSON_INT },
        };

        r = notebook_and_numbers(ctl, cmd, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = ctl_call(ctl, "notebook.history", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        current = int_or(res, "revision", 0);
        list = cJSON_GetObjectItemCaseSensitive(res, "revisions");
        printf("%-8s  %-24s  %-8s  %s\n", "REV", "WHEN", "ORIGIN", "CHANGED");
        cJSON_ArrayForEach(e, list)
        {
                const cJSON *fields = cJSON_GetObjectItemCaseSensitive(e, "fields_changed"), *f;
                const cJSON *order = cJSON_GetObjectItemCaseSensitive(e, "order_changed");
                int64_t rev = int_or(e, "revision", 0), cells = int_or(e, "cells_changed", -1);
                const char *sep = "";

                printf("%-8" PRId64 "  ", rev);
                put_text(stdout, str_or_dash(e, "at"));
                printf("%*s  ", (int)(24 - MIN(24, text_width(str_or_dash(e, "at")))), "");
                put_text(stdout, str_or_dash(e, "origin"));
                printf("%*s  ", (int)(8 - MIN(8, text_width(str_or_dash(e, "origin")))), "");
                if (cells > 0) {
                        printf("%" PRId64 " cell%s", cells, cells == 1 ? "" : "s");
                        sep = ", ";
                }
                if (cJSON_IsTrue(order)) {
                        printf("%sorder", sep);
                        sep = ", ";
                }
                cJSON_ArrayForEach(f, fields)
                {
                        if (cJSON_IsString(f)) {
                                printf("%s", sep);
                                put_text(stdout, f->valuestring);
                                sep = ", ";
                        }
                }
                printf("%s%s\n", *sep ? "" : "-", rev == current ? "  (current)" : "");
        }
        return EXIT_OK;
}

static int cmd_restore(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        int64_t revision;
        const cJSON *nb;
        cJSON *p = NULL;
        int r;

        r = parse_id_command(ctl, cmd, argc, argv, 2, NULL, &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        if (parse_int(argv[optind + 1], 1, &revision) < 0) {
                cJSON_Delete(p);
                return usage_error(cmd, "REVISION must be a revision number, not '%s'", argv[optind + 1]);
        }
        if (!cJSON_AddNumberToObject(p, "revision", (double)revision)) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        r = ctl_call(ctl, "notebook.restore", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        nb = cJSON_GetObjectItemCaseSensitive(res, "notebook");
        printf("Restored notebook ");
        put_text(stdout, str_or_dash(nb, "id"));
        printf(" to revision %" PRId64 "'s content, as revision %" PRId64 ".\n", revision,
               int_or(nb, "revision", 0));
        return EXIT_OK;
}

static int cmd_demo_reset(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        cJSON *p = NULL;
        int r;

        r = parse_id_command(ctl, cmd, argc, argv, 0, NULL, &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = ctl_call(ctl, "demo.reset", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json)
                print_json(res);
        else
                print_summary_line("Reset demo", cJSON_GetObjectItemCaseSensitive(res, "notebook"));
        return EXIT_OK;
}

/* The code of cell add and cell edit: --code, --file, or "-" (stdin). */
typedef struct CodeSource {
        const char *code;
        const char *file; /* "-" for stdin */
} CodeSource;

static int code_source_set(const Command *cmd, CodeSource *s, int opt, const char *arg)
{
        if (s->code || s->file)
                return usage_error(cmd, "give the code once: --code, --file or '-'");
        if (opt == OPT_CODE)
                s->code = arg;
        else
                s->file = arg;
        return EXIT_OK;
}

/* Adds "code" to p from the source, if there is one. */
static int code_source_add(const CodeSource *s, cJSON *p)
{
        _cleanup_(freep) char *text = NULL;
        int r;

        if (s->code)
                return cJSON_AddStringToObject(p, "code", s->code) ? EXIT_OK : local_error("out of memory");
        if (!s->file)
                return EXIT_OK;
        r = read_input(s->file, &text);
        if (r != EXIT_OK)
                return r;
        return cJSON_AddStringToObject(p, "code", text) ? EXIT_OK : local_error("out of memory");
}

static void print_cell_result(const char *verb, const cJSON *res)
{
        const cJSON *cell = cJSON_GetObjectItemCaseSensitive(res, "cell");
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(res, "position");

        printf("%s cell ", verb);
        put_text(stdout, cell ? str_or_dash(cell, "id") : "-");
        if (cJSON_IsNumber(pos))
                printf(" at position %" PRId64, (int64_t)pos->valuedouble);
        printf(" (notebook revision %" PRId64 ").\n", int_or(res, "revision", 0));
}

static int cmd_cell_add(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                { "type", required_argument, NULL, OPT_TYPE },
                { "code", required_argument, NULL, OPT_CODE },
                { "file", required_argument, NULL, OPT_FILE },
                { "position", required_argument, NULL, OPT_POSITION },
                { "after", required_argument, NULL, OPT_AFTER },
                { "id", required_argument, NULL, OPT_ID },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *p = NULL, *res = NULL;
        const char *type = NULL, *after = NULL, *id = NULL;
        bool bad = false, have_rev = false, have_pos = false;
        int64_t rev = 0, pos = 0;
        CodeSource src = { 0 };
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_EXPECT:
                        if (parse_int(optarg, 0, &rev) < 0)
                                return usage_error(cmd, "--expect-revision wants a number, not '%s'",
                                                   optarg);
                        have_rev = true;
                        break;
                case OPT_TYPE:
                        type = optarg;
                        break;
                case OPT_CODE:
                case OPT_FILE:
                        r = code_source_set(cmd, &src, c, optarg);
                        if (r != EXIT_OK)
                                return r;
                        break;
                case OPT_POSITION:
                        if (parse_int(optarg, 0, &pos) < 0)
                                return usage_error(cmd, "--position wants a number from 0, not '%s'",
                                                   optarg);
                        have_pos = true;
                        break;
                case OPT_AFTER:
                        after = optarg;
                        break;
                case OPT_ID:
                        id = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (argc - optind == 2 && streq(argv[optind + 1], "-")) {
                r = code_source_set(cmd, &src, OPT_FILE, "-");
                if (r != EXIT_OK)
                        return r;
        } else {
                r = check_positional(cmd, argc, 1);
                if (r != EXIT_OK)
                        return r;
        }
        if (have_pos && after)
                return usage_error(cmd, "--position and --after exclude each other");
        /* Code piped in is taken without '-', as cat would; a terminal is never read. */
        if (!src.code && !src.file && fcntl(STDIN_FILENO, F_GETFD) >= 0 && !isatty(STDIN_FILENO))
                src.file = "-";

        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind]) ||
            add_expected_revision(p, have_rev, rev) < 0 ||
            (id && !cJSON_AddStringToObject(p, "cell_id", id)) ||
            (type && !cJSON_AddStringToObject(p, "type", type)) ||
            (have_pos && !cJSON_AddNumberToObject(p, "position", (double)pos)) ||
            (after && !cJSON_AddStringToObject(p, "after_cell_id", after)))
                return local_error("out of memory");
        r = code_source_add(&src, p);
        if (r != EXIT_OK)
                return r;
        r = ctl_call(ctl, "cell.create", TAKE_PTR(p), &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json)
                print_json(res);
        else
                print_cell_result("Added", res);
        return EXIT_OK;
}

static int cmd_cell_edit(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                { "type", required_argument, NULL, OPT_TYPE },
                { "code", required_argument, NULL, OPT_CODE },
                { "file", required_argument, NULL, OPT_FILE },
                { "status", required_argument, NULL, OPT_STATUS },
                { "stdout", required_argument, NULL, OPT_STDOUT },
                { "error", required_argument, NULL, OPT_ERROR },
                { "no-error", no_argument, NULL, OPT_NO_ERROR },
                { "reads", required_argument, NULL, OPT_READS },
                { "writes", required_argument, NULL, OPT_WRITES },
                { "outputs", required_argument, NULL, OPT_OUTPUTS },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *fields = cJSON_CreateObject(), *p = NULL, *res = NULL;
        bool bad = false, have_rev = false;
        CodeSource src = { 0 };
        int64_t rev = 0;
        cJSON *v, *next;
        int c, r;

        if (!fields)
                return local_error("out of memory");
        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                const char *key;
                cJSON *item;

                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_EXPECT:
                        if (parse_int(optarg, 0, &rev) < 0)
                                return usage_error(cmd, "--expect-revision wants a number, not '%s'",
                                                   optarg);
                        have_rev = true;
                        continue;
                case OPT_CODE:
                case OPT_FILE:
                        r = code_source_set(cmd, &src, c, optarg);
                        if (r != EXIT_OK)
                                return r;
                        continue;
                case OPT_TYPE:
                        key = "type";
                        item = cJSON_CreateString(optarg);
                        break;
                case OPT_STATUS:
                        key = "status";
                        item = cJSON_CreateString(optarg);
                        break;
                case OPT_STDOUT:
                        key = "stdout";
                        item = cJSON_CreateString(optarg);
                        break;
                case OPT_ERROR:
                        key = "error";
                        item = cJSON_CreateString(optarg);
                        break;
                case OPT_NO_ERROR:
                        key = "error";
                        item = cJSON_CreateNull();
                        break;
                case OPT_READS:
                        key = "reads";
                        item = split_names(optarg);
                        break;
                case OPT_WRITES:
                        key = "writes";
                        item = split_names(optarg);
                        break;
                case OPT_OUTPUTS:
                        key = "outputs";
                        item = cJSON_Parse(optarg);
                        if (!cJSON_IsArray(item)) {
                                cJSON_Delete(item);
                                return usage_error(cmd, "--outputs wants a JSON array of outputs");
                        }
                        break;
                default:
                        return EXIT_USAGE;
                }
                if (!item)
                        return local_error("out of memory");
                if (cJSON_GetObjectItemCaseSensitive(fields, key)) {
                        cJSON_Delete(item);
                        return usage_error(cmd, "%s given twice", key);
                }
                cJSON_AddItemToObject(fields, key, item);
        }
        if (argc - optind == 3 && streq(argv[optind + 2], "-")) {
                r = code_source_set(cmd, &src, OPT_FILE, "-");
                if (r != EXIT_OK)
                        return r;
        } else {
                r = check_positional(cmd, argc, 2);
                if (r != EXIT_OK)
                        return r;
        }
        if (!fields->child && !src.code && !src.file)
                return usage_error(cmd, "nothing to change: give --code, --file, '-' or another field");

        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind]) ||
            !cJSON_AddStringToObject(p, "cell_id", argv[optind + 1]) ||
            add_expected_revision(p, have_rev, rev) < 0)
                return local_error("out of memory");
        r = code_source_add(&src, p);
        if (r != EXIT_OK)
                return r;
        for (v = fields->child; v; v = next) {
                next = v->next;
                cJSON_AddItemToObject(p, v->string, cJSON_DetachItemViaPointer(fields, v));
        }
        r = ctl_call(ctl, "cell.update", TAKE_PTR(p), &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json)
                print_json(res);
        else
                print_cell_result("Updated", res);
        return EXIT_OK;
}

static int cmd_cell_rm(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        cJSON *p = NULL;
        int r;

        r = parse_id_command(ctl, cmd, argc, argv, 2, "cell_id", &p);
        if (r != EXIT_OK)
                return r < 0 ? EXIT_OK : r;
        r = ctl_call(ctl, "cell.delete", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        printf("Deleted cell ");
        put_text(stdout, argv[optind + 1]);
        printf(" (notebook revision %" PRId64 ").\n", int_or(res, "revision", 0));
        return EXIT_OK;
}

static int cmd_cell_mv(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                { "position", required_argument, NULL, OPT_POSITION },
                { "after", required_argument, NULL, OPT_AFTER },
                { "first", no_argument, NULL, OPT_FIRST },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *p = NULL, *res = NULL;
        bool bad = false, have_rev = false, have_pos = false, first = false;
        const char *after = NULL;
        int64_t rev = 0, pos = 0;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_EXPECT:
                        if (parse_int(optarg, 0, &rev) < 0)
                                return usage_error(cmd, "--expect-revision wants a number, not '%s'",
                                                   optarg);
                        have_rev = true;
                        break;
                case OPT_POSITION:
                        if (parse_int(optarg, 0, &pos) < 0)
                                return usage_error(cmd, "--position wants a number from 0, not '%s'",
                                                   optarg);
                        have_pos = true;
                        break;
                case OPT_AFTER:
                        after = optarg;
                        break;
                case OPT_FIRST:
                        first = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        r = check_positional(cmd, argc, 2);
        if (r != EXIT_OK)
                return r;
        if (have_pos + !!after + first != 1)
                return usage_error(cmd, "give exactly one of --position, --after and --first");

        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind]) ||
            !cJSON_AddStringToObject(p, "cell_id", argv[optind + 1]) ||
            add_expected_revision(p, have_rev, rev) < 0 ||
            (have_pos && !cJSON_AddNumberToObject(p, "position", (double)pos)) ||
            (after && !cJSON_AddStringToObject(p, "after_cell_id", after)) ||
            (first && !cJSON_AddNullToObject(p, "after_cell_id")))
                return local_error("out of memory");
        r = ctl_call(ctl, "cell.move", TAKE_PTR(p), &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        printf("Moved cell ");
        put_text(stdout, argv[optind + 1]);
        printf(" to position %" PRId64 " (notebook revision %" PRId64 ").\n", int_or(res, "position", 0),
               int_or(res, "revision", 0));
        return EXIT_OK;
}

static int cmd_graph(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        const cJSON *edges, *order, *cycles, *v;
        cJSON *p;
        int r, ex, i;

        if (simple_args(ctl, cmd, argc, argv, 1, &ex) < 0)
                return ex;
        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind])) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        r = ctl_call(ctl, "notebook.graph", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        edges = cJSON_GetObjectItemCaseSensitive(res, "edges");
        order = cJSON_GetObjectItemCaseSensitive(res, "order");
        cycles = cJSON_GetObjectItemCaseSensitive(res, "cycles");

        printf("Notebook ");
        put_text(stdout, str_or_dash(res, "notebook_id"));
        printf(", revision %" PRId64 "\n", int_or(res, "revision", 0));
        printf("Edges (writer -> reader: variables):\n");
        if (cJSON_GetArraySize(edges) == 0)
                printf("  (none)\n");
        cJSON_ArrayForEach(v, edges)
        {
                const cJSON *var;
                const char *sep = "";

                printf("  ");
                put_text(stdout, str_or_dash(v, "from"));
                printf(" -> ");
                put_text(stdout, str_or_dash(v, "to"));
                printf(": ");
                cJSON_ArrayForEach(var, cJSON_GetObjectItemCaseSensitive(v, "vars"))
                {
                        if (!cJSON_IsString(var))
                                continue;
                        fputs(sep, stdout);
                        put_text(stdout, var->valuestring);
                        sep = ", ";
                }
                putchar('\n');
        }
        printf("Order:\n");
        if (cJSON_GetArraySize(order) == 0)
                printf("  (none)\n");
        i = 1;
        cJSON_ArrayForEach(v, order)
        {
                printf("  %d. ", i++);
                put_text(stdout, cJSON_IsString(v) ? v->valuestring : "?");
                putchar('\n');
        }
        printf("Cycles:\n");
        if (cJSON_GetArraySize(cycles) == 0)
                printf("  (none)\n");
        cJSON_ArrayForEach(v, cycles)
        {
                const cJSON *id;
                const char *sep = "";

                printf("  ");
                cJSON_ArrayForEach(id, v)
                {
                        fputs(sep, stdout);
                        put_text(stdout, cJSON_IsString(id) ? id->valuestring : "?");
                        sep = ", ";
                }
                putchar('\n');
        }
        return EXIT_OK;
}

/* Prints an object as "key: value" lines, nested objects as "outer.inner: value". */
static void print_flat(const cJSON *o, const char *prefix)
{
        const cJSON *v;

        cJSON_ArrayForEach(v, o)
        {
                _cleanup_(freep) char *key = NULL;

                if (asprintf(&key, "%s%s", prefix, v->string ? v->string : "?") < 0)
                        return;
                if (cJSON_IsObject(v)) {
                        _cleanup_(freep) char *sub = NULL;

                        if (asprintf(&sub, "%s.", key) < 0)
                                return;
                        print_flat(v, sub);
                        continue;
                }
                put_text(stdout, key);
                fputs(": ", stdout);
                if (cJSON_IsArray(v)) {
                        const cJSON *e;
                        const char *sep = "";

                        if (cJSON_GetArraySize(v) == 0)
                                fputs("-", stdout);
                        cJSON_ArrayForEach(e, v)
                        {
                                _cleanup_(freep) char *t = value_to_text(e);

                                fputs(sep, stdout);
                                put_text(stdout, t ? t : "?");
                                sep = ", ";
                        }
                } else {
                        _cleanup_(freep) char *t = NULL;

                        if (cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble)
                                printf("%" PRId64, (int64_t)v->valuedouble);
                        else if (cJSON_IsBool(v))
                                fputs(cJSON_IsTrue(v) ? "yes" : "no", stdout);
                        else {
                                t = value_to_text(v);
                                put_text(stdout, t ? t : "?");
                        }
                }
                putchar('\n');
        }
}

/* The text as the daemon made it: Prometheus' text format, for a file or a pipe (promtool,
 * node_exporter's textfile collector). */
static int cmd_metrics(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        const char *text;
        int r, ex;

        if (simple_args(ctl, cmd, argc, argv, 0, &ex) < 0)
                return ex;
        r = ctl_call(ctl, "daemon.metrics", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(res, "text"));
        if (!text) {
                fprintf(stderr, "notebookctl: the daemon's answer has no metrics text.\n");
                return EXIT_TRANSPORT;
        }
        fputs(text, stdout);
        if (fflush(stdout) != 0) {
                fprintf(stderr, "notebookctl: cannot write the metrics: %s\n", strerror(errno));
                return EXIT_DAEMON;
        }
        return EXIT_OK;
}

static int cmd_status(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        bool in_conflict = false;
        cJSON *nbs, *n;
        int r, ex;

        if (simple_args(ctl, cmd, argc, argv, 0, &ex) < 0)
                return ex;
        /* daemon.status takes no params, not even user_id. */
        r = ctl_call(ctl, "daemon.status", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        /* The notebooks not in sync get a line each, after the rest. */
        nbs = cJSON_DetachItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(res, "sync"),
                                                      "notebooks");
        print_flat(res, "");
        if (nbs)
                printf("sync.notebooks: %s\n", cJSON_GetArraySize(nbs) == 0 ? "all in sync" : "");
        cJSON_ArrayForEach(n, nbs)
        {
                const char *err = str_or_dash(n, "error");
                int64_t conflicts = int_or(n, "conflicts", 0);

                printf("  ");
                put_text(stdout, str_or_dash(n, "user_id"));
                putchar('/');
                put_text(stdout, str_or_dash(n, "notebook_id"));
                fputs(": ", stdout);
                put_text(stdout, str_or_dash(n, "state"));
                printf(", revision %" PRId64, int_or(n, "revision", 0));
                if (int_or(n, "base_revision", -1) >= 0)
                        printf(" (the table has %" PRId64 ")", int_or(n, "base_revision", -1));
                else
                        fputs(" (not in the table yet)", stdout);
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "deleted")))
                        fputs(", deleted", stdout);
                if (conflicts > 0)
                        printf(", %" PRId64 " conflict%s", conflicts, conflicts == 1 ? "" : "s");
                if (conflicts > 0 || streq(str_or_dash(n, "state"), "conflict"))
                        in_conflict = true;
                if (!streq(err, "-")) {
                        fputs(": ", stdout);
                        put_text(stdout, err);
                }
                putchar('\n');
        }
        cJSON_Delete(nbs);
        if (in_conflict)
                printf("Resolve with 'notebookctl conflicts' and 'notebookctl resolve'.\n");
        return EXIT_OK;
}

/* Prints notebook.changed notifications as they come, until --count of them or the end. */
static int cmd_watch(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "count", required_argument, NULL, OPT_COUNT },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        int64_t count = -1, seen = 0;
        bool bad = false;
        cJSON *p;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                if (c == 'h')
                        return EXIT_OK;
                if (c != OPT_COUNT)
                        return EXIT_USAGE;
                if (parse_int(optarg, 1, &count) < 0)
                        return usage_error(cmd, "--count takes a positive integer");
        }
        if (argc - optind > 1)
                return usage_error(cmd, "watch takes at most one NOTEBOOK");
        p = params_new(ctl);
        if (!p || (argc - optind == 1 && !cJSON_AddStringToObject(p, "notebook_id", argv[optind]))) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        r = ctl_call(ctl, "notebook.watch", p, &res);
        if (r != EXIT_OK)
                return r;
        if (!ctl->json && isatty(STDERR_FILENO)) {
                fputs("Watching ", stderr);
                put_text(stderr, argc - optind == 1 ? argv[optind] : "all notebooks");
                fputs(" of user ", stderr);
                put_text(stderr, str_or_dash(res, "user_id"));
                fputs("; Ctrl-C stops.\n", stderr);
        }
        fflush(stdout);

        while (count < 0 || seen < count) {
                _cleanup_(cjson_deletep) cJSON *msg = NULL;
                const cJSON *params;
                const char *method;
                char ts[TIMESTAMP_MAX];

                r = nb_client_next_notification(ctl->client, &msg);
                if (r < 0) {
                        fprintf(stderr, "notebookctl: watch: %s\n",
                                r == -ECONNRESET ? "the daemon closed the connection" : strerror(-r));
                        return EXIT_TRANSPORT;
                }
                method = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "method"));
                params = cJSON_GetObjectItemCaseSensitive(msg, "params");
                if (method && streq(method, "notebook.changes_lost")) {
                        /* Not a change of its own: the lines above may have missed some. */
                        if (ctl->json)
                                puts("{\"changes_lost\":true}");
                        else
                                printf("%s some changes were not reported (watch fell behind): read again\n",
                                       format_timestamp(ts, now_realtime_usec()));
                        fflush(stdout);
                        continue;
                }
                if (!method || !streq(method, "notebook.changed") || !cJSON_IsObject(params))
                        continue;
                seen++;
                if (ctl->json) {
                        _cleanup_(freep) char *line = json_print(params, false);

                        if (!line)
                                return local_error("out of memory");
                        put_json_text(line);
                } else {
                        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(params, "revision");

                        fputs(format_timestamp(ts, now_realtime_usec()), stdout);
                        putchar(' ');
                        put_text(stdout, str_or_dash(params, "notebook_id"));
                        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "deleted")))
                                fputs(" deleted", stdout);
                        else if (cJSON_IsNumber(rev))
                                printf(" revision %" PRId64, (int64_t)rev->valuedouble);
                        fputs(" (", stdout);
                        put_text(stdout, str_or_dash(params, "origin"));
                        fputs(")\n", stdout);
                }
                if (fflush(stdout) != 0)
                        return local_error("cannot write output: %s", strerror(errno));
        }
        return EXIT_OK;
}

static int cmd_pull(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        int r, ex;

        if (simple_args(ctl, cmd, argc, argv, 0, &ex) < 0)
                return ex;
        r = ctl_call(ctl, "sync.pull", NULL, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json)
                print_json(res);
        else
                printf("Pull started: newer versions in the table come in shortly ('notebookctl status' "
                       "shows how it went).\n");
        return EXIT_OK;
}

/* One conflict as the WHAT column shows it: "cell ID -> COPY" or "field NAME, ours: VALUE". */
static char *conflict_what(const cJSON *c)
{
        const cJSON *cell = cJSON_GetObjectItemCaseSensitive(c, "cell_id"), *v;
        _cleanup_(freep) char *local = NULL;
        char *s = NULL;

        if (cJSON_IsString(cell)) {
                if (asprintf(&s, "cell %s -> %s", cell->valuestring, str_or_dash(c, "copy_id")) < 0)
                        return NULL;
                return s;
        }
        /* Our value as JSON text: a name "-" shows quoted, unlike no value (-). */
        v = cJSON_GetObjectItemCaseSensitive(c, "local");
        local = !v || cJSON_IsNull(v) ? strdup("-") : json_print(v, false);
        if (!local || asprintf(&s, "field %s, ours: %s", str_or_dash(c, "field"), local) < 0)
                return NULL;
        return s;
}

static int cmd_conflicts(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = { COMMON_OPTIONS, OPTIONS_END };
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        const cJSON *list, *cf;
        size_t w_nb = 8, w_what = 4;
        bool bad = false;
        cJSON *p;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                if (c == 'h')
                        return EXIT_OK;
                return EXIT_USAGE;
        }
        if (argc - optind > 1)
                return usage_error(cmd, "conflicts takes at most one NOTEBOOK");
        p = params_new(ctl);
        if (!p || (argc - optind == 1 && !cJSON_AddStringToObject(p, "notebook_id", argv[optind]))) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        r = ctl_call(ctl, "sync.conflicts", p, &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        list = cJSON_GetObjectItemCaseSensitive(res, "conflicts");
        if (cJSON_GetArraySize(list) == 0) {
                printf("No conflicts.\n");
                return EXIT_OK;
        }
        cJSON_ArrayForEach(cf, list)
        {
                _cleanup_(freep) char *what = conflict_what(cf);
                size_t a = text_width(str_or_dash(cf, "notebook_id")), b = what ? text_width(what) : 1;

                if (a > w_nb)
                        w_nb = a;
                if (b > w_what)
                        w_what = b;
        }
        if (w_what > 60)
                w_what = 60; /* a long value pushes its own line's time, not every line's */
        printf("%-*s  %-*s  %s\n", (int)w_nb, "NOTEBOOK", (int)w_what, "WHAT", "SINCE");
        cJSON_ArrayForEach(cf, list)
        {
                _cleanup_(freep) char *what = conflict_what(cf);
                const char *nb = str_or_dash(cf, "notebook_id");
                size_t pad;

                put_text(stdout, nb);
                for (pad = text_width(nb); pad < w_nb + 2; pad++)
                        putchar(' ');
                put_text(stdout, what ? what : "?");
                for (pad = what ? text_width(what) : 1; pad < w_what + 2; pad++)
                        putchar(' ');
                put_text(stdout, str_or_dash(cf, "created_at"));
                putchar('\n');
        }
        return EXIT_OK;
}

static int cmd_resolve(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "expect-revision", required_argument, NULL, OPT_EXPECT },
                { "field", required_argument, NULL, OPT_FIELD },
                { "keep", required_argument, NULL, OPT_KEEP },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *p = NULL, *res = NULL;
        const char *field = NULL, *keep = NULL;
        bool bad = false, have_rev = false;
        int64_t rev = 0, n;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_EXPECT:
                        if (parse_int(optarg, 0, &rev) < 0)
                                return usage_error(cmd, "--expect-revision wants a number, not '%s'",
                                                   optarg);
                        have_rev = true;
                        break;
                case OPT_FIELD:
                        field = optarg;
                        break;
                case OPT_KEEP:
                        if (!streq(optarg, "local") && !streq(optarg, "server") && !streq(optarg, "both"))
                                return usage_error(cmd, "--keep wants local, server or both, not '%s'",
                                                   optarg);
                        keep = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (argc - optind < 1 || argc - optind > 2)
                return usage_error(cmd, "resolve expects NOTEBOOK and at most one CELL, got %d argument%s",
                                   argc - optind, argc - optind == 1 ? "" : "s");
        if (!keep)
                return usage_error(cmd,
                                   "say which version to keep: --keep local, --keep server or --keep both");
        if (field && argc - optind == 2)
                return usage_error(cmd, "give a CELL or --field, not both");
        if (field && streq(keep, "both"))
                return usage_error(cmd, "a field holds one value: --keep local or --keep server");

        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind]) ||
            (argc - optind == 2 && !cJSON_AddStringToObject(p, "cell_id", argv[optind + 1])) ||
            (field && !cJSON_AddStringToObject(p, "field", field)) ||
            !cJSON_AddStringToObject(p, "keep", keep) || add_expected_revision(p, have_rev, rev) < 0)
                return local_error("out of memory");
        r = ctl_call(ctl, "sync.resolve", TAKE_PTR(p), &res);
        if (r != EXIT_OK)
                return r;
        if (ctl->json) {
                print_json(res);
                return EXIT_OK;
        }
        n = int_or(res, "resolved", 0);
        printf("Resolved %" PRId64 " conflict%s in ", n, n == 1 ? "" : "s");
        put_text(stdout, str_or_dash(res, "notebook_id"));
        printf(" (revision %" PRId64 ").\n", int_or(res, "revision", 0));
        return EXIT_OK;
}

/* table create|check: DynamoDB is reached directly, not through the daemon (table.c). */
static int cmd_table(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "config", required_argument, NULL, OPT_CONFIG },
                { "table", required_argument, NULL, OPT_TABLE },
                { "endpoint", required_argument, NULL, OPT_ENDPOINT },
                { "region", required_argument, NULL, OPT_REGION },
                { "wait", required_argument, NULL, OPT_WAIT },
                OPTIONS_END,
        };
        TableArgs a = { .wait_usec = 300 * USEC_PER_SEC };
        bool create = streq(cmd->name, "table create"), bad = false;
        int64_t wait;
        int c;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_CONFIG:
                        a.config_path = optarg;
                        break;
                case OPT_TABLE:
                        a.table = optarg;
                        break;
                case OPT_ENDPOINT:
                        a.endpoint = optarg;
                        break;
                case OPT_REGION:
                        a.region = optarg;
                        break;
                case OPT_WAIT:
                        if (!create || parse_int(optarg, 1, &wait) < 0 || wait > 86400)
                                return usage_error(cmd, create ? "--wait takes whole seconds, 1 to 86400"
                                                               : "--wait is an option of table create");
                        a.wait_usec = (uint64_t)wait * USEC_PER_SEC;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (check_positional(cmd, argc, 0) != EXIT_OK)
                return EXIT_USAGE;
        a.json = ctl->json;
        return create ? table_create(&a) : table_check(&a);
}

/* ---------------------------------------------------------------------------------------------
 * import and export (transfer.c does the work) */

enum {
        OPT_TRANSFER_REPLACE = 0x200,
        OPT_TRANSFER_QUIET,
        OPT_TRANSFER_FORMAT,
        OPT_TRANSFER_WINDOW,
        OPT_TRANSFER_ALL,
};

static int cmd_import(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "replace", no_argument, NULL, OPT_TRANSFER_REPLACE },
                { "quiet", no_argument, NULL, 'q' },
                { "window", required_argument, NULL, OPT_TRANSFER_WINDOW },
                OPTIONS_END,
        };
        ImportArgs a = { .window = 64 };
        bool bad = false;
        int64_t window;
        int c, r;

        while ((c = command_getopt(ctl, cmd, argc, argv, opts, &bad)) != -1) {
                switch (c) {
                case 'h':
                        return EXIT_OK;
                case OPT_TRANSFER_REPLACE:
                        a.replace = true;
                        break;
                case 'q':
                        a.quiet = true;
                        break;
                case OPT_TRANSFER_WINDOW:
                        if (parse_int(optarg, 1, &window) < 0 || window > 64)
                                return usage_error(cmd, "--window takes 1 to 64");
                        a.window = (unsigned)window;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage_error(cmd, "import expects at least one file or directory");
        r = ctl_connect(ctl);
        if (r != 0)
                return r;
        a.client = ctl->client;
        a.user = ctl->user;
        a.paths = argv + optind;
        a.n_paths = argc - optind;
        a.json = ctl->json;
        return transfer_import(&a);
}

static int cmd_export(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        static const struct option opts[] = {
                COMMON_OPTIONS,
                { "format", required_argument, NULL, OPT_TRANSFER_FORMAT },
                { "output", required_argument, NULL, 'o' },
                { "all", no_argument, NULL, OPT_TRANSFER_ALL },
                OPTIONS_END,
        };
        _cleanup_(cjson_deletep) cJSON *res = NULL;
        _cleanup_free_ char *text = NULL;
        const char *output = NULL, *format = NULL;
        bool all = false;
        ExportFormat f;
        cJSON *p;
        int c, r;

        /* command_getopt() knows no short options but -h; -o is read here. */
        while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case OPT_TRANSFER_FORMAT:
                        format = optarg;
                        break;
                case OPT_TRANSFER_ALL:
                        all = true;
                        break;
                case OPT_SOCKET:
                        ctl->socket_path = optarg;
                        break;
                case OPT_USER:
                        ctl->user = optarg;
                        break;
                case OPT_JSON:
                        ctl->json = true;
                        break;
                case 'h':
                        print_command_help(cmd);
                        return EXIT_OK;
                default:
                        fprintf(stderr, "Try 'notebookctl %s --help'.\n", cmd->name);
                        return EXIT_USAGE;
                }
        }
        if (check_positional(cmd, argc, all ? 0 : 1) != EXIT_OK)
                return EXIT_USAGE;
        if (all && (!output || streq(output, "-")))
                return usage_error(cmd, "--all needs -o DIRECTORY");
        if (!format && all)
                f = EXPORT_JSON;
        else if (!format)
                f = output && strlen(output) > 6 && streq(output + strlen(output) - 6, ".ipynb")
                            ? EXPORT_IPYNB
                            : EXPORT_JSON;
        else if (streq(format, "json"))
                f = EXPORT_JSON;
        else if (streq(format, "ipynb"))
                f = EXPORT_IPYNB;
        else
                return usage_error(cmd, "--format is json or ipynb");

        if (all) {
                r = ctl_connect(ctl);
                if (r != 0)
                        return r;
                return transfer_export_all(ctl->client, ctl->user, output, f, ctl->json);
        }
        p = params_new(ctl);
        if (!p || !cJSON_AddStringToObject(p, "notebook_id", argv[optind])) {
                cJSON_Delete(p);
                return local_error("out of memory");
        }
        r = ctl_call(ctl, "notebook.get", p, &res);
        if (r != EXIT_OK)
                return r;
        text = transfer_export_text(cJSON_GetObjectItemCaseSensitive(res, "notebook"), f);
        if (!text)
                return local_error("out of memory");
        return transfer_write_file(output, text);
}

static int cmd_help(Ctl *ctl, const Command *cmd, int argc, char **argv);
static int cmd_group(Ctl *ctl, const Command *cmd, int argc, char **argv);

#define TABLE_HELP                                                                                   \
        "  --config FILE         the daemon's configuration, for its [remote] section (default:\n"   \
        "                        /etc/notebookd/notebookd.conf for root, else\n"                     \
        "                        $XDG_CONFIG_HOME/notebookd/notebookd.conf, if present)\n"           \
        "  --table NAME          the table (default: [remote] table, else \"notebooks\")\n"          \
        "  --endpoint URL        the DynamoDB endpoint (default: [remote] endpoint,\n"               \
        "                        $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL, else AWS's for the " \
        "region)\n"                                                                                  \
        "  --region REGION       the region (default: [remote] region, $AWS_REGION,\n"               \
        "                        $AWS_DEFAULT_REGION, ~/.aws/config)\n"

#define TABLE_CREDENTIALS_HELP \
        "Credentials come from the standard AWS chain (environment, shared files, container, instance).\n"

#define EXPECT_HELP "  --expect-revision N   fail with exit code 5 unless the notebook is at revision N\n"

static const Command commands[] = {
        { "list", "[--ids]",
          "Lists the user's notebooks: ID, NAME, CELLS, REV, UPDATED, page by page as the daemon\n"
          "sends them (--json: still one document).\n"
          "  --ids                 print only the ids, one per line (for scripts and completion)\n",
          cmd_list },
        { "show", "NOTEBOOK [--revision N]",
          "Shows a notebook and its cells: index, id, type, status, variables read and written, the\n"
          "number of outputs, then the code indented, the captured stdout (lines marked '>') and the\n"
          "error (lines marked '!').\n"
          "  --revision N          show the notebook as it was at revision N (one that 'history'\n"
          "                        lists)\n",
          cmd_show },
        { "create", "[--name NAME] [--id ID] [--db-conn STRING] [--ttl UNIXTIME]",
          "Creates a notebook (the id is a new UUID unless --id is given).\n"
          "  --name NAME           the notebook's name\n"
          "  --id ID               the notebook id\n"
          "  --db-conn STRING      the database connection string\n"
          "  --ttl UNIXTIME        expiry time, Unix seconds\n",
          cmd_create },
        { "rename", "NOTEBOOK NAME [--expect-revision N]", "Renames a notebook.\n" EXPECT_HELP, cmd_rename },
        { "update",
          "NOTEBOOK [--name NAME|--no-name] [--db-conn STRING|--no-db-conn] [--ttl UNIXTIME|--no-ttl] "
          "[--expect-revision N]",
          "Changes a notebook's name, connection string or expiry; the --no- forms clear "
          "them.\n" EXPECT_HELP,
          cmd_update },
        { "rm", "NOTEBOOK [--expect-revision N]", "Deletes a notebook.\n" EXPECT_HELP, cmd_rm },
        { "cell", "add|edit|rm|mv ...",
          "Cell commands:\n"
          "  cell add NOTEBOOK [OPTIONS] [-]\n"
          "  cell edit NOTEBOOK CELL [OPTIONS] [-]\n"
          "  cell rm NOTEBOOK CELL [--expect-revision N]\n"
          "  cell mv NOTEBOOK CELL (--position N | --after CELL | --first) [--expect-revision N]\n"
          "Run 'notebookctl cell COMMAND --help' for each.\n",
          cmd_group },
        { "cell add",
          "NOTEBOOK [--type python|sql] [--code CODE | --file PATH | -] [--position N | --after CELL] [--id "
          "ID] "
          "[--expect-revision N]",
          "Adds a cell (appended unless --position or --after is given).\n"
          "  --type TYPE           python (the default) or sql\n"
          "  --code CODE           the cell's code\n"
          "  --file PATH           read the code from PATH ('-': standard input)\n"
          "  -                     read the code from standard input; it is also read when it is\n"
          "                        not a terminal and neither --code nor --file is given\n"
          "  --position N          the 0-based index the new cell takes\n"
          "  --after CELL          insert after this cell\n"
          "  --id ID               the cell id (default: a new UUID)\n" EXPECT_HELP,
          cmd_cell_add },
        { "cell edit",
          "NOTEBOOK CELL [--code CODE | --file PATH | -] [--type python|sql] [--status "
          "idle|running|success|error] "
          "[--stdout S] "
          "[--error S | --no-error] [--reads A,B] [--writes A,B] [--outputs JSON] [--expect-revision N]",
          "Changes the given fields of a cell; the others keep their values.\n"
          "  --code CODE           new code\n"
          "  --file PATH           read the new code from PATH ('-': standard input)\n"
          "  -                     read the new code from standard input\n"
          "  --type TYPE           python or sql\n"
          "  --status STATUS       idle, running, success or error\n"
          "  --stdout TEXT         the cell's captured output\n"
          "  --error TEXT          the cell's error message; --no-error clears it\n"
          "  --reads A,B           variables the cell reads (comma-separated; \"\" for none)\n"
          "  --writes A,B          variables the cell writes\n"
          "  --outputs JSON        a JSON array of {\"mime_type\", \"data\", \"metadata\"} "
          "objects\n" EXPECT_HELP,
          cmd_cell_edit },
        { "cell rm", "NOTEBOOK CELL [--expect-revision N]", "Deletes a cell.\n" EXPECT_HELP, cmd_cell_rm },
        { "cell mv", "NOTEBOOK CELL (--position N | --after CELL | --first) [--expect-revision N]",
          "Moves a cell.\n"
          "  --position N          the 0-based index the cell has after the move\n"
          "  --after CELL          put it after this (other) cell\n"
          "  --first               put it at the front\n" EXPECT_HELP,
          cmd_cell_mv },
        { "graph", "NOTEBOOK", "Shows the notebook's dependency graph: edges, an execution order, cycles.\n",
          cmd_graph },
        { "history", "NOTEBOOK [--limit N] [--before REVISION]",
          "Lists the revisions of a notebook kept here, newest first: revision, when it was made,\n"
          "its origin (create, edit, pull from another machine, merge with one, restore) and what it\n"
          "changed (cells, order, notebook fields). Any of them can be shown (show --revision) or\n"
          "restored. How many are kept, and for how long, is set in notebookd.conf(5).\n"
          "  --limit N             list at most N revisions (1 to 1000; default 1000)\n"
          "  --before REVISION     only those below REVISION (to list on past the first 1000)\n",
          cmd_history },
        { "restore", "NOTEBOOK REVISION [--expect-revision N]",
          "Makes the content of an earlier revision (cells, name, connection string, ttl) the\n"
          "notebook's newest revision: an edit like any other, which syncs to other machines and\n"
          "can itself be undone. Exit status 4 when the revision is not in the history.\n" EXPECT_HELP,
          cmd_restore },
        { "demo-reset", "[--expect-revision N]",
          "Rewrites the user's demo notebook (demo-USER) to the current demo content.\n" EXPECT_HELP,
          cmd_demo_reset },
        { "watch", "[NOTEBOOK] [--count N]",
          "Prints a line each time one of the user's notebooks (or the one named) changes, here or\n"
          "through sync from another machine: time, notebook, revision (or 'deleted'), and origin\n"
          "(local or remote). With --json, one notification object per line.\n"
          "  --count N             stop after N changes\n",
          cmd_watch },
        { "pull", "",
          "Asks the daemon to look for newer versions in the DynamoDB table now, for every user it\n"
          "knows (it also does so at start and periodically).\n",
          cmd_pull },
        { "conflicts", "[NOTEBOOK]",
          "Lists the conflicts sync left to resolve in the user's notebooks (or the one named): a cell\n"
          "changed here and on another device (the other device's version stays under the cell's id,\n"
          "ours is the copy ID~conflict right after it), or a notebook field (name, db_conn_string,\n"
          "ttl, demo_version) changed on both (the other device's value stands; ours is shown).\n"
          "Columns: NOTEBOOK, WHAT (cell ID -> COPY, or field NAME with our value), SINCE.\n",
          cmd_conflicts },
        { "resolve", "NOTEBOOK [CELL] [--field NAME] --keep local|server|both [--expect-revision N]",
          "Resolves the conflicts of a notebook: all of them, those of CELL, or of field NAME.\n"
          "  --keep local          keep our version: the copy's content replaces the cell's and the\n"
          "                        copy goes; a field gets our value back\n"
          "  --keep server         keep the other device's version: the copy goes; a field keeps\n"
          "                        its value\n"
          "  --keep both           keep the copy as an ordinary cell (cells only; for a whole\n"
          "                        notebook, its fields keep the other device's value)\n"
          "  --field NAME          resolve the conflict of this notebook field (not with CELL)\n" EXPECT_HELP
          "Exit status 4 when there is no such notebook, or no conflict to resolve there.\n",
          cmd_resolve },
        { "import", "PATH... [--replace] [--quiet] [--window N]",
          "Imports notebooks from files: the web app's JSON files (notebooks/ID.json, as its\n"
          "backend/storage.py writes them) and Jupyter notebooks (.ipynb, nbformat 4). A directory\n"
          "is read for its *.json and *.ipynb files, subdirectories included. A file's own user_id\n"
          "decides whose notebook it is (acting for another user needs a privileged peer); a file\n"
          "without one goes to --user, or to the daemon's default user. Each notebook is created\n"
          "with its cells in one transaction; a file that is not valid is named with the reason and\n"
          "nothing of it is stored. A notebook that exists with the same content is 'unchanged';\n"
          "with other content it is skipped, unless --replace is given. Prints a summary on stdout\n"
          "(--json: a JSON document with a result per file) and, on a terminal, progress on stderr.\n"
          "  --replace             replace a notebook that exists with other content (name,\n"
          "                        connection string and all cells, in one revision)\n"
          "  --quiet               no progress line\n"
          "  --window N            requests in flight at once, 1 to 64 (default 64)\n"
          "Exit status 0 when every file was imported or already there, 1 when a file was skipped,\n"
          "3 when the daemon cannot be reached. See doc/formats.md for the formats.\n",
          cmd_import },
        { "export", "NOTEBOOK [--format json|ipynb] [-o FILE] | --all -o DIRECTORY [--format json|ipynb]",
          "Writes a notebook to a file: in the web app's JSON file format (json, the default), which\n"
          "the app's backend/storage.py reads back, or as a Jupyter notebook (ipynb, nbformat 4.5:\n"
          "SQL cells start with the %%sql cell magic; outputs by MIME type; the cells' state in\n"
          "metadata \"notebookd\"). 'notebookctl import' reads both back unchanged.\n"
          "  --format FORMAT       json or ipynb (default: ipynb when FILE ends in .ipynb, else json)\n"
          "  -o, --output FILE     write FILE (atomically: a new file renamed over it) instead of\n"
          "                        standard output\n"
          "  --all                 export every notebook of the user into the directory -o names\n"
          "                        (made if missing), one file ID.json or ID.ipynb each (a '/' or '%'\n"
          "                        in an id, or a leading '.', written as %2F, %25, %2E)\n",
          cmd_export },
        { "status", "", "Shows the daemon's status.\n", cmd_status },
        { "metrics", "",
          "Prints the daemon's metrics in Prometheus' text format (0.0.4): requests and errors by\n"
          "method, group commits, connections, sync and DynamoDB traffic. With --json, the result\n"
          "object {\"text\": ...}. For root, the daemon's own uid and admin_group only (exit status 6\n"
          "otherwise).\n",
          cmd_metrics },
        { "table", "create|check [OPTIONS]",
          "Table commands (they talk to DynamoDB directly, with the daemon's [remote] settings):\n"
          "  table create          create the table notebookd syncs to\n"
          "  table check           tell whether an existing table fits notebookd\n"
          "Run 'notebookctl table COMMAND --help' for each.\n",
          cmd_group },
        { "table create",
          "[--config FILE] [--table NAME] [--endpoint URL] [--region REGION] [--wait SECONDS]",
          "Creates the DynamoDB table notebookd syncs to: keys user_id and notebook_id, the indexes\n"
          "NotebookByIdIndex and NotebooksByUserCreatedIndex, on-demand billing, TTL on attribute\n"
          "\"ttl\" (where the endpoint implements TTL; it says so where it does not). Waits until the\n"
          "table is active, then checks it as 'table check' does. Then the same for its parts table\n"
          "(TABLE-parts, or parts_table in [remote]: keys owner and part), where notebooks larger than\n"
          "a DynamoDB item keep their largest values. A table that exists already is left as it is\n"
          "and only checked.\n" TABLE_HELP
          "  --wait SECONDS        how long to wait for the table to become active (default "
          "300)\n" TABLE_CREDENTIALS_HELP,
          cmd_table },
        { "table check", "[--config FILE] [--table NAME] [--endpoint URL] [--region REGION]",
          "Tells whether an existing table fits notebookd: its keys, both indexes with their keys and\n"
          "projections, its status (a table that is not ACTIVE does not fit yet), and whether TTL is\n"
          "on; and the parts table's keys and status. Exit status 0 when both fit, 1 when one does\n"
          "not (a missing parts table too), 3 when the endpoint cannot be reached,\n"
          "4 when there is no such table, 6 without credentials or when DynamoDB refuses them.\n" TABLE_HELP
                  TABLE_CREDENTIALS_HELP,
          cmd_table },
        { "help", "[COMMAND]", "Shows help for notebookctl or for one command.\n", cmd_help },
};

static const Command *command_find(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static void print_main_help(void)
{
        printf("Usage: notebookctl [--socket PATH] [--user USER_ID] [--json] COMMAND [ARGS...]\n"
               "       notebookctl --help | --version\n"
               "\n"
               "Talks to notebookd, the notebook daemon.\n"
               "\n"
               "Options:\n"
               "  --socket PATH     the daemon's socket (default: $NOTEBOOKD_SOCKET, else\n"
               "                    /run/notebookd/notebookd.sock for root,\n"
               "                    $XDG_RUNTIME_DIR/notebookd/notebookd.sock for others)\n"
               "  --user USER_ID    act for this user (default: the daemon picks one for you)\n"
               "  --json            print the daemon's result (or error object) as JSON\n"
               "  -h, --help        show this help ('notebookctl COMMAND --help' for a command)\n"
               "  -V, --version     show the version\n"
               "\n"
               "Commands:\n"
               "  list                          list notebooks\n"
               "  show NOTEBOOK                 show a notebook and its cells\n"
               "  create [OPTIONS]              create a notebook\n"
               "  rename NOTEBOOK NAME          rename a notebook\n"
               "  update NOTEBOOK [OPTIONS]     change name, connection string, ttl\n"
               "  rm NOTEBOOK                   delete a notebook\n"
               "  cell add NOTEBOOK [OPTIONS]   add a cell\n"
               "  cell edit NOTEBOOK CELL ...   change a cell\n"
               "  cell rm NOTEBOOK CELL         delete a cell\n"
               "  cell mv NOTEBOOK CELL ...     move a cell\n"
               "  graph NOTEBOOK                show the cells' dependency graph\n"
               "  history NOTEBOOK              list the notebook's earlier revisions\n"
               "  restore NOTEBOOK REVISION     make an earlier revision's content the newest\n"
               "  demo-reset                    restore the demo notebook\n"
               "  watch [NOTEBOOK]              print changes as they happen\n"
               "  pull                          fetch newer versions from the table now\n"
               "  conflicts [NOTEBOOK]          list the conflicts sync left to resolve\n"
               "  resolve NOTEBOOK [CELL] ...   resolve conflicts: --keep local|server|both\n"
               "  import PATH...                import notebooks from app JSON and .ipynb files\n"
               "  export NOTEBOOK [-o FILE]     write a notebook as app JSON or .ipynb\n"
               "  status                        show the daemon's status\n"
               "  metrics                       print the daemon's metrics (Prometheus text)\n"
               "  table create|check            create or check the DynamoDB table\n"
               "  help [COMMAND]                show help\n"
               "Commands that change an existing notebook take --expect-revision N.\n"
               "\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  the daemon reported an error (not one below), or a local failure\n"
               "  2  usage error\n"
               "  3  cannot connect to the daemon, or the connection failed\n"
               "  4  not found (-32010)\n"
               "  5  revision conflict (-32011)\n"
               "  6  access denied (-32012)\n"
               "\n"
               "Environment:\n"
               "  NOTEBOOKD_SOCKET  the socket to use when --socket is not given\n"
               "\n"
               "See notebookctl(1) and doc/protocol.md.\n");
}

static int cmd_help(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        char name[64];
        const Command *c;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                print_main_help();
                return EXIT_OK;
        }
        c = command_find(argv[1]);
        if (argc >= 3 && c && c->run == cmd_group)
                snprintf(name, sizeof(name), "%s %s", argv[1], argv[2]);
        else
                snprintf(name, sizeof(name), "%s", argv[1]);
        c = command_find(name);
        if (!c)
                return usage_error(NULL, "unknown command '%s'", name);
        print_command_help(c);
        return EXIT_OK;
}

/* Runs cmd with argv[0] replaced by "notebookctl NAME" (getopt's messages name it). */
static int command_run(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        _cleanup_(freep) char **args = calloc((size_t)argc + 1, sizeof(char *));
        _cleanup_(freep) char *arg0 = NULL;

        if (!args || asprintf(&arg0, "notebookctl %s", cmd->name) < 0)
                return local_error("out of memory");
        args[0] = arg0;
        for (int i = 1; i < argc; i++)
                args[i] = argv[i];
        optind = 0; /* glibc: start over, forgetting the state of the previous parse */
        return cmd->run(ctl, cmd, argc, args);
}

/* A command with sub-commands ("cell add", "table check"): runs the one named next. */
static int cmd_group(Ctl *ctl, const Command *cmd, int argc, char **argv)
{
        char name[64];
        const Command *sub;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                if (argc < 2)
                        return usage_error(cmd, "%s needs a command: %s", cmd->name, cmd->synopsis);
                print_command_help(cmd);
                return EXIT_OK;
        }
        snprintf(name, sizeof(name), "%s %s", cmd->name, argv[1]);
        sub = command_find(name);
        if (!sub || sub == cmd)
                return usage_error(cmd, "unknown %s command '%s'", cmd->name, argv[1]);
        return command_run(ctl, sub, argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "user", required_argument, NULL, OPT_USER },
                { "json", no_argument, NULL, OPT_JSON },
                OPTIONS_END,
        };
        Ctl ctl = { 0 };
        const Command *cmd;
        int c, r;

        /* '+': stop at the command name; the command parses the rest. */
        while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
                switch (c) {
                case 'h':
                        print_main_help();
                        return EXIT_OK;
                case 'V':
                        printf("notebookctl %s\n", PACKAGE_VERSION);
                        return EXIT_OK;
                case OPT_SOCKET:
                        ctl.socket_path = optarg;
                        break;
                case OPT_USER:
                        ctl.user = optarg;
                        break;
                case OPT_JSON:
                        ctl.json = true;
                        break;
                default:
                        fputs("Try 'notebookctl --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage_error(NULL, "no command given");
        cmd = command_find(argv[optind]);
        if (!cmd || strchr(argv[optind], ' '))
                return usage_error(NULL, "unknown command '%s'", argv[optind]);

        r = command_run(&ctl, cmd, argc - optind, argv + optind);
        if (fflush(stdout) != 0 && r == EXIT_OK)
                r = local_error("cannot write output: %s", strerror(errno));
        ctl_done(&ctl);
        return r;
}
