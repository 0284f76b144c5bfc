/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "json-print.h"
#include "conf.h"
#include "ctl.h"
#include "ddb.h"
#include "display.h"
#include "log.h"
#include "model.h"
#include "remote.h"
#include "table.h"

#define POLL_INTERVAL_USEC (200 * USEC_PER_MSEC)

/* What one call brought back, kept past the callback. */
typedef struct Answer {
        bool done;
        int error; /* no HTTP answer */
        DdbErrorClass cls;
        char *message, *type;
        cJSON *body;
} Answer;

typedef struct Table {
        sd_event *event;
        Config *config;
        Remote *remote;
        const char *name;
        char *parts_name; /* where big notebooks keep their parts (doc/sync.md, "Big notebooks") */
        bool json;
} Table;

static void answer_done(Answer *a)
{
        free(a->message);
        free(a->type);
        cJSON_Delete(a->body);
        *a = (Answer){ 0 };
}

static void on_answer(void *owner, void *userdata, RemoteReply *reply)
{
        Answer *a = userdata;

        a->done = true;
        a->error = reply->error;
        a->cls = reply->cls;
        a->message = strdup(reply->message ? reply->message : "no answer");
        a->type = strdup(reply->type ? reply->type : "");
        a->body = reply->body ? cJSON_Duplicate(reply->body, true) : NULL;
}

/* One call, waited for: notebookctl has nothing else to do meanwhile. body is taken. A negative
 * return is a local failure (no answer to look at), already reported. */
static int table_call(Table *t, const char *target, cJSON *body, Answer *a)
{
        int r;

        *a = (Answer){ 0 };
        if (!body)
                return local_error("out of memory"), -ENOMEM;
        r = remote_call(t->remote, target, body, on_answer, t, a);
        cJSON_Delete(body);
        if (r < 0)
                return local_error("cannot send %s: %s", target, strerror(-r)), r;
        while (!a->done) {
                r = sd_event_run(t->event, UINT64_MAX);
                if (r < 0) {
                        /* The call must not outlive *a: cancelling runs its callback now. */
                        t->remote = remote_free(t->remote);
                        answer_done(a);
                        return local_error("the event loop failed: %s", strerror(-r)), r;
                }
        }
        if (!a->message || !a->type || (a->cls == DDB_OK && !a->error && !a->body)) {
                answer_done(a);
                return local_error("out of memory"), -ENOMEM;
        }
        return 0;
}

/* The exit code for a failed call about table name, after saying what failed. */
static int answer_fail_on(const Table *t, const char *name, const Answer *a, const char *what)
{
        local_error("%s %s at %s: %s", what, name, remote_endpoint(t->remote), a->message);
        if (a->error)
                return EXIT_TRANSPORT;
        if (a->cls == DDB_AUTH)
                return EXIT_DENIED;
        if (streq(a->type, "ResourceNotFoundException"))
                return EXIT_NOT_FOUND;
        return EXIT_DAEMON;
}

static int answer_fail(const Table *t, const Answer *a, const char *what)
{
        return answer_fail_on(t, t->name, a, what);
}

static void report_config_error(void *userdata, const char *path, unsigned line, const char *message)
{
        if (line > 0)
                local_error("%s:%u: %s", path, line, message);
        else
                local_error("%s: %s", path, message);
}

static int replace(char **field, const char *value)
{
        char *v;

        if (!value)
                return 0;
        v = strdup(value);
        if (!v)
                return -ENOMEM;
        free(*field);
        *field = v;
        return 0;
}

static void table_done(Table *t)
{
        t->remote = remote_free(t->remote);
        t->event = sd_event_unref(t->event);
        t->config = config_free(t->config);
        t->parts_name = mfree(t->parts_name);
}

/* The daemon's [remote] settings (from the named configuration, else the default one if it
 * exists), with the command line's overrides. Returns an exit code. */
static int table_open(const TableArgs *a, Table *t)
{
        _cleanup_free_ char *path = NULL;
        int r;

        *t = (Table){ .json = a->json };
        /* The DynamoDB code logs through log.c: only real trouble, under our name. */
        log_set_ident("notebookctl");
        log_set_max_level(LOG_WARNING);

        path = a->config_path ? strdup(a->config_path) : config_default_path();
        if (path) {
                r = config_load(path, report_config_error, NULL, &t->config);
                if (r == -EINVAL)
                        return local_error("%s is invalid.", path);
                if (r < 0 && (r != -ENOENT || a->config_path))
                        return local_error("cannot read %s: %s", path, strerror(-r));
        }
        if (!t->config && !(t->config = config_new()))
                return local_error("out of memory");
        if (replace(&t->config->remote.table, a->table) < 0 ||
            replace(&t->config->remote.endpoint, a->endpoint) < 0 ||
            replace(&t->config->remote.region, a->region) < 0)
                return local_error("out of memory");
        t->name = t->config->remote.table;
        t->parts_name = remote_parts_table(&t->config->remote);
        if (!t->parts_name)
                return local_error("out of memory");

        r = sd_event_new(&t->event);
        if (r < 0)
                return local_error("cannot create an event loop: %s", strerror(-r));
        r = remote_new(t->event, &t->config->remote, &t->remote);
        if (r == -EINVAL)
                return local_error(
                        "no DynamoDB endpoint: set a region (--region, AWS_REGION, region= in [remote]) "
                        "or an endpoint (--endpoint, AWS_ENDPOINT_URL_DYNAMODB, endpoint= in [remote]).");
        if (r < 0)
                return local_error("cannot set up the DynamoDB client: %s", strerror(-r));
        return EXIT_OK;
}

/* DescribeTimeToLive, in one word: enabled, enabling, disabled, disabling, "on ATTRIBUTE" (TTL on
 * another attribute), or unsupported (the endpoint does not implement it). NULL on a failure,
 * after setting *ret_exit. */
static const char *table_ttl(Table *t, int *ret_exit)
{
        static char other[128];
        Answer a;
        const cJSON *d, *status, *attr;
        int r;

        r = table_call(t, "DescribeTimeToLive", ddb_describe_table_body(t->name), &a);
        if (r < 0) {
                *ret_exit = EXIT_DAEMON;
                return NULL;
        }
        if (a.error || a.cls != DDB_OK) {
                const char *ret = NULL;

                if (streq(a.type, "UnknownOperationException"))
                        ret = "unsupported";
                else
                        *ret_exit = answer_fail(t, &a, "cannot read the TTL of table");
                answer_done(&a);
                return ret;
        }
        d = cJSON_GetObjectItemCaseSensitive(a.body, "TimeToLiveDescription");
        status = cJSON_GetObjectItemCaseSensitive(d, "TimeToLiveStatus");
        attr = cJSON_GetObjectItemCaseSensitive(d, "AttributeName");
        if (!cJSON_IsString(status) || streq(status->valuestring, "DISABLED")) {
                answer_done(&a);
                return "disabled";
        }
        if (cJSON_IsString(attr) && !streq(attr->valuestring, "ttl")) {
                snprintf(other, sizeof(other), "on %s", attr->valuestring);
                answer_done(&a);
                return other;
        }
        if (streq(status->valuestring, "ENABLING")) {
                answer_done(&a);
                return "enabling";
        }
        if (streq(status->valuestring, "DISABLING")) {
                answer_done(&a);
                return "disabling";
        }
        answer_done(&a);
        return "enabled";
}

static const char *ttl_sentence(const char *ttl)
{
        if (streq(ttl, "enabled") || streq(ttl, "enabling"))
                return "";
        if (streq(ttl, "unsupported"))
                return " (this endpoint does not implement TTL: notebooks with a ttl are kept, not expired)";
        return " (notebooks with a ttl are not expired: enable TTL on attribute \"ttl\")";
}

/* One line of the report on stdout. The endpoint's answers (a status, an attribute's name) are
 * escaped with the rest, as display.h says: none of them reaches the terminal raw. */
static void put_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void put_line(const char *fmt, ...)
{
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        display_put(stdout, r < 0 ? "(out of memory)" : s, DISPLAY_LINE);
        putchar('\n');
}

/* Describes the parts table and adds what does not fit to *problems (one line each), counted in
 * *n. Returns its status ("ACTIVE", "missing", ...), or NULL after a failure reported (*ret_exit). */
static const char *parts_report(Table *t, char **problems, int *n, int *ret_exit)
{
        static char status_buf[32];
        _cleanup_free_ char *more = NULL;
        const char *status;
        char *joined = NULL;
        Answer a;
        int k;

        if (table_call(t, "DescribeTable", ddb_describe_table_body(t->parts_name), &a) < 0) {
                *ret_exit = EXIT_DAEMON;
                return NULL;
        }
        if (a.error || a.cls != DDB_OK) {
                if (!streq(a.type, "ResourceNotFoundException")) {
                        *ret_exit = answer_fail_on(t, t->parts_name, &a, "cannot describe table");
                        answer_done(&a);
                        return NULL;
                }
                answer_done(&a);
                if (asprintf(&more,
                             "parts table %s: missing; notebooks larger than a DynamoDB item need it "
                             "('notebookctl table create' makes it)",
                             t->parts_name) < 0)
                        more = NULL;
                status = "missing";
                k = 1;
        } else {
                const cJSON *st = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(a.body, "Table"), "TableStatus");

                k = ddb_parts_table_check(a.body, &more);
                if (k < 0) {
                        answer_done(&a);
                        *ret_exit = local_error("DynamoDB's description of table %s is not understood: %s",
                                                t->parts_name, strerror(-k));
                        return NULL;
                }
                snprintf(status_buf, sizeof(status_buf), "%s",
                         cJSON_IsString(st) ? st->valuestring : "unknown");
                status = status_buf;
                answer_done(&a);
                if (!streq(status, "ACTIVE")) {
                        char *m = NULL;

                        if (asprintf(&m, "%s%sparts table %s: %s, not ACTIVE", more ? more : "",
                                     more ? "\n" : "", t->parts_name, status) < 0)
                                m = NULL;
                        free(more);
                        more = m;
                        k++;
                }
        }
        if (k > 0) {
                if (!more || asprintf(&joined, "%s%s%s", *problems ? *problems : "", *problems ? "\n" : "",
                                      more) < 0) {
                        *ret_exit = local_error("out of memory");
                        return NULL;
                }
                free(*problems);
                *problems = joined;
                *n += k;
        }
        return status;
}

/* Describes the table and checks that it serves notebookd; ttl is what is known of its TTL already,
 * or NULL to ask. Returns an exit code: EXIT_OK when it fits, EXIT_DAEMON when it does not. */
static int table_report(Table *t, bool created, const char *ttl, const char *note)
{
        _cleanup_(cJSON_Deletep) cJSON *out = NULL;
        _cleanup_free_ char *problems = NULL, *shown = NULL;
        const cJSON *tab, *status, *billing, *count;
        const char *parts_status;
        Answer a;
        int r, n, ret = EXIT_OK;

        r = table_call(t, "DescribeTable", ddb_describe_table_body(t->name), &a);
        if (r < 0)
                return EXIT_DAEMON;
        if (a.error || a.cls != DDB_OK) {
                r = answer_fail(t, &a, "cannot describe table");
                if (streq(a.type, "ResourceNotFoundException"))
                        fprintf(stderr, "notebookctl: create it with 'notebookctl table create'.\n");
                answer_done(&a);
                return r;
        }
        n = ddb_table_check(a.body, &problems);
        if (n < 0) {
                answer_done(&a);
                return local_error("DynamoDB's description of table %s is not understood: %s", t->name,
                                   strerror(-n));
        }
        tab = cJSON_GetObjectItemCaseSensitive(a.body, "Table");
        status = cJSON_GetObjectItemCaseSensitive(tab, "TableStatus");
        /* A table being created, changed or deleted does not serve yet (or any more). */
        if (cJSON_IsString(status) && !streq(status->valuestring, "ACTIVE")) {
                char *more = NULL;

                if (asprintf(&more, "%s%sthe table is %s, not ACTIVE", problems ? problems : "",
                             problems ? "\n" : "", status->valuestring) < 0) {
                        answer_done(&a);
                        return local_error("out of memory");
                }
                free(problems);
                problems = more;
                n++;
        }
        billing = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(tab, "BillingModeSummary"), "BillingMode");
        count = cJSON_GetObjectItemCaseSensitive(tab, "ItemCount");

        if (!ttl)
                ttl = table_ttl(t, &ret);
        if (!ttl) {
                answer_done(&a);
                return ret;
        }
        parts_status = parts_report(t, &problems, &n, &ret);
        if (!parts_status) {
                answer_done(&a);
                return ret;
        }

        if (t->json) {
                cJSON *list;
                char *line, *save = NULL;

                out = cJSON_CreateObject();
                if (!out || !cJSON_AddStringToObject(out, "table", t->name) ||
                    !cJSON_AddStringToObject(out, "endpoint", remote_endpoint(t->remote)) ||
                    !cJSON_AddStringToObject(out, "region", remote_region(t->remote)) ||
                    !cJSON_AddBoolToObject(out, "created", created) ||
                    !cJSON_AddStringToObject(out, "status",
                                             cJSON_IsString(status) ? status->valuestring : "") ||
                    !cJSON_AddStringToObject(out, "billing_mode",
                                             cJSON_IsString(billing) ? billing->valuestring
                                                                     : "PROVISIONED") ||
                    !cJSON_AddNumberToObject(out, "item_count",
                                             cJSON_IsNumber(count) ? count->valuedouble : 0) ||
                    !cJSON_AddStringToObject(out, "ttl", ttl) ||
                    !cJSON_AddStringToObject(out, "parts_table", t->parts_name) ||
                    !cJSON_AddStringToObject(out, "parts_status", parts_status) ||
                    !cJSON_AddBoolToObject(out, "fits", n == 0) ||
                    !(list = cJSON_AddArrayToObject(out, "problems"))) {
                        answer_done(&a);
                        return local_error("out of memory");
                }
                for (line = problems ? strtok_r(problems, "\n", &save) : NULL; line;
                     line = strtok_r(NULL, "\n", &save))
                        cJSON_AddItemToArray(list, cJSON_CreateString(line));
                line = json_print(out, false);
                if (!line) {
                        answer_done(&a);
                        return local_error("out of memory");
                }
                shown = display_json(line);
                free(line);
                if (!shown) {
                        answer_done(&a);
                        return local_error("out of memory");
                }
                puts(shown);
        } else {
                char *line, *save = NULL;

                if (note)
                        put_line("%s", note);
                put_line("Table %s at %s (region %s): %s, %s, %.0f items.", t->name,
                         remote_endpoint(t->remote), remote_region(t->remote),
                         cJSON_IsString(status) ? status->valuestring : "status unknown",
                         cJSON_IsString(billing) ? billing->valuestring : "PROVISIONED",
                         cJSON_IsNumber(count) ? count->valuedouble : 0.0);
                put_line("TTL: %s%s.", ttl, ttl_sentence(ttl));
                put_line("Parts table %s (for notebooks larger than a DynamoDB item): %s.", t->parts_name,
                         parts_status);
                if (n == 0)
                        put_line("It fits: notebookd can sync to it.");
                else
                        put_line("It does not fit notebookd (%d problem%s):", n, n == 1 ? "" : "s");
                for (line = problems ? strtok_r(problems, "\n", &save) : NULL; line;
                     line = strtok_r(NULL, "\n", &save))
                        put_line("%s", line);
        }
        answer_done(&a);
        return n == 0 ? EXIT_OK : EXIT_DAEMON;
}

int table_check(const TableArgs *args)
{
        Table t;
        int r;

        r = table_open(args, &t);
        if (r == EXIT_OK)
                r = table_report(&t, false, NULL, NULL);
        table_done(&t);
        return r;
}

/* Waits until table name and its indexes are ACTIVE. Returns an exit code. */
static int table_wait_active(Table *t, const char *name, uint64_t wait_usec)
{
        uint64_t deadline = now_monotonic_usec() + wait_usec;
        bool said = false;

        for (;;) {
                const cJSON *tab, *gsi;
                const char *status;
                bool active;
                Answer a;
                int r;

                r = table_call(t, "DescribeTable", ddb_describe_table_body(name), &a);
                if (r < 0)
                        return EXIT_DAEMON;
                if (a.error || a.cls != DDB_OK) {
                        r = answer_fail_on(t, name, &a, "cannot describe table");
                        answer_done(&a);
                        return r;
                }
                tab = cJSON_GetObjectItemCaseSensitive(a.body, "Table");
                status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tab, "TableStatus"));
                active = status && streq(status, "ACTIVE");
                cJSON_ArrayForEach(gsi, cJSON_GetObjectItemCaseSensitive(tab, "GlobalSecondaryIndexes"))
                {
                        const char *s =
                                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(gsi, "IndexStatus"));

                        if (s && !streq(s, "ACTIVE"))
                                active = false;
                }
                if (active) {
                        answer_done(&a);
                        return EXIT_OK;
                }
                if (now_monotonic_usec() >= deadline) {
                        r = local_error("table %s is still %s after %" PRIu64
                                        " s; 'notebookctl table check' tells "
                                        "when it is ready.",
                                        name, status ? status : "not active", wait_usec / USEC_PER_SEC);
                        answer_done(&a);
                        return r;
                }
                answer_done(&a);
                if (!said && !t->json && isatty(STDERR_FILENO)) {
                        fputs("Waiting for table ", stderr);
                        display_put(stderr, name, DISPLAY_LINE);
                        fputs(" to become active...\n", stderr);
                        said = true;
                }
                usleep(POLL_INTERVAL_USEC);
        }
}

int table_create(const TableArgs *args)
{
        _cleanup_free_ char *note = NULL;
        const char *ttl = NULL;
        bool created = false;
        Answer a;
        Table t;
        int r;

        r = table_open(args, &t);
        if (r != EXIT_OK)
                goto finish;

        r = table_call(&t, "CreateTable", ddb_create_table_body(t.name), &a);
        if (r < 0) {
                r = EXIT_DAEMON;
                goto finish;
        }
        if (a.error || a.cls != DDB_OK) {
                if (!streq(a.type, "ResourceInUseException")) {
                        r = answer_fail(&t, &a, "cannot create table");
                        answer_done(&a);
                        goto finish;
                }
                /* An existing table is left as it is, only checked. */
                if (asprintf(&note, "Table %s exists already; left as it is.", t.name) < 0)
                        note = NULL;
        } else
                created = true;
        answer_done(&a);

        r = table_wait_active(&t, t.name, args->wait_usec);
        if (r != EXIT_OK)
                goto finish;

        if (created) {
                r = table_call(&t, "UpdateTimeToLive", ddb_update_ttl_body(t.name), &a);
                if (r < 0) {
                        r = EXIT_DAEMON;
                        goto finish;
                }
                /* An endpoint without TTL (a local test server) still serves; table_report() says
                 * so. Any other refusal is an error. */
                if ((a.error || a.cls != DDB_OK) && !streq(a.type, "UnknownOperationException")) {
                        r = answer_fail(&t, &a, "cannot enable TTL on table");
                        answer_done(&a);
                        goto finish;
                }
                if (streq(a.type, "UnknownOperationException"))
                        ttl = "unsupported";
                answer_done(&a);
                if (asprintf(&note, "Created table %s.", t.name) < 0)
                        note = NULL;
        }

        /* The parts table, made and waited for the same way. */
        r = table_call(&t, "CreateTable", ddb_create_parts_table_body(t.parts_name), &a);
        if (r < 0) {
                r = EXIT_DAEMON;
                goto finish;
        }
        if ((a.error || a.cls != DDB_OK) && !streq(a.type, "ResourceInUseException")) {
                r = answer_fail_on(&t, t.parts_name, &a, "cannot create table");
                answer_done(&a);
                goto finish;
        }
        if (!a.error && a.cls == DDB_OK) {
                char *more = NULL;

                if (asprintf(&more, "%s%sCreated table %s.", note ? note : "", note ? " " : "",
                             t.parts_name) < 0)
                        more = NULL;
                free(note);
                note = more;
        }
        answer_done(&a);
        r = table_wait_active(&t, t.parts_name, args->wait_usec);
        if (r != EXIT_OK)
                goto finish;
        r = table_report(&t, created, ttl, note);
finish:
        table_done(&t);
        return r;
}
