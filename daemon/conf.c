/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "conf.h"
#include "nb-limits.h"
#include "log.h"
#include "util.h"

#define CONF_MAX_FILE_BYTES      (1024u * 1024)
#define CONF_MAX_LINE_BYTES      (64u * 1024)
#define CONF_MAX_LINE_BYTES_HIGH (1024u * 1024 * 1024)
#define CONF_ERROR_MAX           1024
#define REMOTE_TABLE_MIN         3u /* DynamoDB's rules for a table name */
#define REMOTE_TABLE_MAX         255u
#define REMOTE_REGION_MAX        64u
#define REMOTE_ENDPOINT_MAX      1024u

typedef enum ConfSection {
        SECTION_NONE,
        SECTION_DAEMON,
        SECTION_USERS,
        SECTION_REMOTE,
        SECTION_METRICS,
        SECTION_UNKNOWN, /* reported once at its header; its keys are skipped */
} ConfSection;

/* The keys of [remote], as indexes into remote_keys[]. */
typedef enum RemoteKey {
        REMOTE_ENABLED,
        REMOTE_TABLE,
        REMOTE_REGION,
        REMOTE_ENDPOINT,
        REMOTE_CA_FILE,
        REMOTE_DEBOUNCE,
        REMOTE_MAX_DELAY,
        REMOTE_MAX_IN_FLIGHT,
        REMOTE_PULL_INTERVAL,
        REMOTE_CONNECT_TIMEOUT,
        REMOTE_REQUEST_TIMEOUT,
        REMOTE_PARTS_TABLE,
        REMOTE_PARTS_GRACE,
        _REMOTE_KEY_MAX,
} RemoteKey;

typedef struct ConfParser ConfParser;

/* Parses value into p->config. 0, -EINVAL after reporting the problem, or -ENOMEM. */
typedef int (*ConfKeyParser)(ConfParser *p, const char *value);

typedef struct ConfKey {
        const char *name;
        ConfKeyParser parse;
} ConfKey;

struct ConfParser {
        const char *path;
        ConfigErrorFunc report;
        void *userdata;
        unsigned line;
        unsigned n_errors;
        ConfSection section;
        Config *config;
        unsigned daemon_key_lines[15];              /* where each of daemon_keys[] was set, 0 if not yet */
        unsigned remote_key_lines[_REMOTE_KEY_MAX]; /* where each of remote_keys[] was set, 0 if not yet */
        bool remote_key_bad[_REMOTE_KEY_MAX];       /* its value was refused */
        unsigned metrics_listen_line;
        unsigned *binding_lines; /* where each binding was written, for duplicate reports */
        size_t n_bindings_alloc;
};

/* Reports a problem on the current line. */
static void conf_report(ConfParser *p, const char *fmt, ...) _printf_(2, 3);
static void conf_report(ConfParser *p, const char *fmt, ...)
{
        char msg[CONF_ERROR_MAX];
        va_list ap;

        p->n_errors++;
        if (!p->report)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        p->report(p->userdata, p->path, p->line, msg);
}

/* Values quoted in messages are cut, so that one long line does not drown the rest. */
#define QUOTE_MAX 64
#define QUOTE(s) \
        (int)(strlen(s) > QUOTE_MAX ? QUOTE_MAX : strlen(s)), (s), (strlen(s) > QUOTE_MAX ? "..." : "")

const Limits limits_default = {
        .max_notebook_bytes = MAX_NOTEBOOK_BYTES_DEFAULT,
        .output_soft_bytes = 8 * 1024 * 1024,
        .output_hard_bytes = 64 * 1024 * 1024,
        .uid_buffer_bytes = 128 * 1024 * 1024,
        .buffer_bytes = 256 * 1024 * 1024,
        .request_timeout_usec = 30 * USEC_PER_SEC,
        .idle_timeout_usec = 600 * USEC_PER_SEC,
        .history_revisions = HISTORY_REVISIONS_DEFAULT,
        .history_max_age_usec = (uint64_t)HISTORY_AGE_DAYS_DEFAULT * 86400 * USEC_PER_SEC,
};

Config *config_new(void)
{
        Config *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->durability_full = true;
        c->max_line_bytes = MAX_LINE_BYTES_DEFAULT;
        c->log_level = -1;
        c->limits = limits_default;
        c->remote = (RemoteConfig){
                .enabled = true,
                .table = strdup("notebooks"),
                .debounce_usec = 500 * USEC_PER_MSEC,
                .max_delay_usec = 5 * USEC_PER_SEC,
                .pull_interval_usec = 60 * USEC_PER_SEC,
                .connect_timeout_usec = 5 * USEC_PER_SEC,
                .request_timeout_usec = 30 * USEC_PER_SEC,
                .max_in_flight = 8,
                .parts_grace_usec = 3600 * USEC_PER_SEC,
        };
        if (!c->remote.table) {
                free(c);
                return NULL;
        }
        return c;
}

Config *config_free(Config *c)
{
        if (!c)
                return NULL;
        free(c->state_dir);
        free(c->socket_path);
        for (size_t i = 0; i < c->n_bindings; i++) {
                for (size_t k = 0; k < c->bindings[i].n_user_ids; k++)
                        free(c->bindings[i].user_ids[k]);
                free(c->bindings[i].user_ids);
        }
        free(c->bindings);
        free(c->remote.table);
        free(c->remote.parts_table);
        free(c->remote.region);
        free(c->remote.endpoint);
        free(c->remote.ca_file);
        free(c->metrics.listen);
        for (size_t i = 0; i < c->n_names; i++)
                free(c->names[i].name);
        free(c->names);
        free(c);
        return NULL;
}

const UserBinding *config_find_uid(const Config *c, uid_t uid)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_bindings; i++)
                if (c->bindings[i].uid == uid)
                        return &c->bindings[i];
        return NULL;
}

static bool conf_is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r';
}

/* Trims blanks at both ends, in place. */
static char *conf_strip(char *s)
{
        size_t n;

        while (conf_is_blank(*s))
                s++;
        n = strlen(s);
        while (n > 0 && conf_is_blank(s[n - 1]))
                s[--n] = 0;
        return s;
}

static int conf_set_path(ConfParser *p, const char *value, const char *key, char **field)
{
        char *copy;

        if (value[0] != '/') {
                conf_report(p, "%s must be an absolute path, got '%.*s%s'", key, QUOTE(value));
                return -EINVAL;
        }
        /* PATH_MAX counts the terminating NUL. */
        if (strlen(value) >= PATH_MAX) {
                conf_report(p, "%s is longer than %d bytes", key, PATH_MAX - 1);
                return -EINVAL;
        }
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int conf_parse_state_dir(ConfParser *p, const char *value)
{
        return conf_set_path(p, value, "state_dir", &p->config->state_dir);
}

static int conf_parse_socket(ConfParser *p, const char *value)
{
        struct sockaddr_un sa;

        if (value[0] == '/' && strlen(value) >= sizeof(sa.sun_path)) {
                conf_report(p, "socket path is longer than %zu bytes, too long for a Unix socket",
                            sizeof(sa.sun_path) - 1);
                return -EINVAL;
        }
        return conf_set_path(p, value, "socket", &p->config->socket_path);
}

static int conf_parse_durability(ConfParser *p, const char *value)
{
        if (streq(value, "full"))
                p->config->durability_full = true;
        else if (streq(value, "normal"))
                p->config->durability_full = false;
        else {
                conf_report(p, "durability must be 'full' or 'normal', got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        return 0;
}

static int conf_parse_max_line_bytes(ConfParser *p, const char *value)
{
        uint64_t v;

        if (parse_uint64(value, &v) < 0 || v < MAX_LINE_BYTES_MIN || v > CONF_MAX_LINE_BYTES_HIGH) {
                conf_report(p, "max_line_bytes must be a number from %u to %u, got '%.*s%s'",
                            MAX_LINE_BYTES_MIN, CONF_MAX_LINE_BYTES_HIGH, QUOTE(value));
                return -EINVAL;
        }
        p->config->max_line_bytes = (size_t)v;
        return 0;
}

/* A whole number in [min, max] times unit, into *field. */
static int conf_number(ConfParser *p, const char *key, const char *value, uint64_t min, uint64_t max,
                       uint64_t unit, uint64_t *field)
{
        uint64_t v;

        if (parse_uint64(value, &v) < 0 || v < min || v > max) {
                conf_report(p, "%s must be a number from %" PRIu64 " to %" PRIu64 ", got '%.*s%s'", key, min,
                            max, QUOTE(value));
                return -EINVAL;
        }
        *field = v * unit;
        return 0;
}

#define LIMIT_NUMBER(fn, key, min, max, unit, field)                                         \
        static int fn(ConfParser *p, const char *value)                                      \
        {                                                                                    \
                return conf_number(p, key, value, min, max, unit, &p->config->limits.field); \
        }
#define MIB (UINT64_C(1024) * 1024)
LIMIT_NUMBER(conf_parse_max_notebook, "max_notebook_bytes", 64 * 1024, 1024 * MIB, 1, max_notebook_bytes)
LIMIT_NUMBER(conf_parse_output_soft, "output_soft_limit", 64 * 1024, 64 * 1024 * MIB, 1, output_soft_bytes)
LIMIT_NUMBER(conf_parse_output_hard, "output_hard_limit", 1 * MIB, 64 * 1024 * MIB, 1, output_hard_bytes)
LIMIT_NUMBER(conf_parse_uid_buffer, "uid_buffer_limit", 1 * MIB, 64 * 1024 * MIB, 1, uid_buffer_bytes)
LIMIT_NUMBER(conf_parse_buffer, "buffer_limit", 1 * MIB, 64 * 1024 * MIB, 1, buffer_bytes)
LIMIT_NUMBER(conf_parse_request_timeout, "request_timeout_s", 1, 3600, USEC_PER_SEC, request_timeout_usec)
LIMIT_NUMBER(conf_parse_idle_timeout, "idle_timeout_s", 0, 7 * 86400, USEC_PER_SEC, idle_timeout_usec)
LIMIT_NUMBER(conf_parse_history_revisions, "history_revisions", 0, HISTORY_REVISIONS_MAX, 1,
             history_revisions)
LIMIT_NUMBER(conf_parse_history_age, "history_max_age_days", 0, 36500, 86400 * USEC_PER_SEC,
             history_max_age_usec)
#undef MIB

static int conf_parse_log_level(ConfParser *p, const char *value)
{
        int level = log_level_from_string(value);

        /* emerg and alert are for the whole system, not for one daemon's chatter. */
        if (level < LOG_CRIT) {
                conf_report(p,
                            "log_level must be one of debug, info, notice, warning, err, crit; got '%.*s%s'",
                            QUOTE(value));
                return -EINVAL;
        }
        p->config->log_level = level;
        return 0;
}

/* A buffer size for getpwnam_r()/getgrnam_r(); they say -ERANGE when it is too small. */
static size_t conf_nss_buffer_size(int name)
{
        long n = sysconf(name);

        return n > 0 && n < 1024 * 1024 ? (size_t)n : 1024;
}

/* 0 and *ret, -ESRCH if there is no such user, other -errno if the lookup failed. */
static int conf_lookup_user(const char *name, uid_t *ret)
{
        size_t size = conf_nss_buffer_size(_SC_GETPW_R_SIZE_MAX);

        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                struct passwd pw, *result = NULL;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = getpwnam_r(name, &pw, buf, size, &result);
                if (r == ERANGE && size < 1024 * 1024) {
                        size *= 2;
                        continue;
                }
                if (r == 0 && !result)
                        return -ESRCH;
                if (r != 0)
                        return -r;
                *ret = pw.pw_uid;
                return 0;
        }
}

static int conf_lookup_group(const char *name, gid_t *ret)
{
        size_t size = conf_nss_buffer_size(_SC_GETGR_R_SIZE_MAX);

        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                struct group gr, *result = NULL;
                int r;

                if (!buf)
                        return -ENOMEM;
                r = getgrnam_r(name, &gr, buf, size, &result);
                if (r == ERANGE && size < 1024 * 1024) {
                        size *= 2;
                        continue;
                }
                if (r == 0 && !result)
                        return -ESRCH;
                if (r != 0)
                        return -r;
                *ret = gr.gr_gid;
                return 0;
        }
}

/* Adds uid's name, once, if the user database has one a user_id may be. */
static int conf_add_name(Config *c, uid_t uid, const char *known)
{
        size_t size = conf_nss_buffer_size(_SC_GETPW_R_SIZE_MAX);
        _cleanup_free_ char *buf = NULL;
        struct passwd pw, *result = NULL;
        UidName *names;
        char *name;

        if (config_uid_name(c, uid))
                return 0;
        if (!known) {
                for (;;) {
                        int r;

                        free(buf);
                        buf = malloc(size);
                        if (!buf)
                                return -ENOMEM;
                        r = getpwuid_r(uid, &pw, buf, size, &result);
                        if (r == ERANGE && size < 1024 * 1024) {
                                size *= 2;
                                continue;
                        }
                        if (r != 0 || !result)
                                return 0;
                        known = pw.pw_name;
                        break;
                }
        }
        if (strlen(known) > MAX_USER_ID_BYTES)
                return 0;
        names = reallocarray(c->names, c->n_names + 1, sizeof(*names));
        if (!names)
                return -ENOMEM;
        c->names = names;
        name = strdup(known);
        if (!name)
                return -ENOMEM;
        c->names[c->n_names++] = (UidName){ .uid = uid, .name = name };
        return 0;
}

int config_resolve_names(Config *c, bool have_admin_gid, gid_t admin_gid)
{
        size_t size = conf_nss_buffer_size(_SC_GETGR_R_SIZE_MAX);
        int r;

        if ((r = conf_add_name(c, 0, NULL)) < 0 || (r = conf_add_name(c, geteuid(), NULL)) < 0)
                return r;
        if (!have_admin_gid)
                return 0;
        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                struct group gr, *result = NULL;

                if (!buf)
                        return -ENOMEM;
                r = getgrgid_r(admin_gid, &gr, buf, size, &result);
                if (r == ERANGE && size < 1024 * 1024) {
                        size *= 2;
                        continue;
                }
                if (r != 0 || !result)
                        return 0;
                for (char **m = gr.gr_mem; *m; m++) {
                        uid_t uid;

                        if (conf_lookup_user(*m, &uid) == 0 && (r = conf_add_name(c, uid, *m)) < 0)
                                return r;
                }
                return 0;
        }
}

const char *config_uid_name(const Config *c, uid_t uid)
{
        for (size_t i = 0; i < c->n_names; i++)
                if (c->names[i].uid == uid)
                        return c->names[i].name;
        return NULL;
}

/* A uid or gid written as a number; (id_t)-1 means "no id" to the system calls, so it is none. */
static bool conf_parse_id(const char *s, unsigned *ret)
{
        uint64_t v;

        if (parse_uint64(s, &v) < 0 || v >= UINT32_MAX)
                return false;
        *ret = (unsigned)v;
        return true;
}

static int conf_parse_admin_group(ConfParser *p, const char *value)
{
        unsigned id;
        gid_t gid = 0;
        int r;

        r = conf_lookup_group(value, &gid);
        /* A number that names no group is taken as a gid, as chgrp(1) does. */
        if (r == -ESRCH && conf_parse_id(value, &id)) {
                gid = (gid_t)id;
                r = 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r == -ESRCH) {
                conf_report(p, "admin_group: no such group '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        if (r < 0) {
                conf_report(p, "admin_group: cannot look up group '%.*s%s': %s", QUOTE(value), strerror(-r));
                return -EINVAL;
        }
        p->config->have_admin_gid = true;
        p->config->admin_gid = gid;
        return 0;
}

static const ConfKey daemon_keys[] = {
        { "state_dir", conf_parse_state_dir },
        { "socket", conf_parse_socket },
        { "durability", conf_parse_durability },
        { "max_line_bytes", conf_parse_max_line_bytes },
        { "log_level", conf_parse_log_level },
        { "admin_group", conf_parse_admin_group },
        { "max_notebook_bytes", conf_parse_max_notebook },
        { "output_soft_limit", conf_parse_output_soft },
        { "output_hard_limit", conf_parse_output_hard },
        { "uid_buffer_limit", conf_parse_uid_buffer },
        { "buffer_limit", conf_parse_buffer },
        { "request_timeout_s", conf_parse_request_timeout },
        { "idle_timeout_s", conf_parse_idle_timeout },
        { "history_revisions", conf_parse_history_revisions },
        { "history_max_age_days", conf_parse_history_age },
};
_Static_assert(ELEMENTSOF(daemon_keys) == ELEMENTSOF(((ConfParser *)NULL)->daemon_key_lines),
               "one line slot per key");

static int conf_daemon_key(ConfParser *p, const char *key, const char *value)
{
        for (size_t i = 0; i < ELEMENTSOF(daemon_keys); i++) {
                if (!streq(key, daemon_keys[i].name))
                        continue;
                if (p->daemon_key_lines[i] > 0) {
                        conf_report(p, "%s is already set on line %u", key, p->daemon_key_lines[i]);
                        return -EINVAL;
                }
                p->daemon_key_lines[i] = p->line;
                if (!*value) {
                        conf_report(p, "%s: missing value", key);
                        return -EINVAL;
                }
                return daemon_keys[i].parse(p, value);
        }
        conf_report(p, "unknown key '%.*s%s' in section [daemon]", QUOTE(key));
        return -EINVAL;
}

/* ---- [remote] ---- */

/* Letters and digits (ASCII only, whatever the locale) and the characters in extra. */
static bool conf_chars_in(const char *s, const char *extra)
{
        for (; *s; s++) {
                char c = *s;

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr(extra, c)))
                        return false;
        }
        return true;
}

static int conf_set_string(char **field, const char *value)
{
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        free(*field);
        *field = v;
        return 0;
}

static int conf_remote_enabled(ConfParser *p, const char *value)
{
        if (streq(value, "yes") || streq(value, "true") || streq(value, "1"))
                p->config->remote.enabled = true;
        else if (streq(value, "no") || streq(value, "false") || streq(value, "0"))
                p->config->remote.enabled = false;
        else {
                conf_report(p, "enabled must be 'yes' or 'no', got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        return 0;
}

static int conf_table_name(ConfParser *p, const char *key, const char *value, char **field)
{
        size_t n = strlen(value);

        if (n < REMOTE_TABLE_MIN || n > REMOTE_TABLE_MAX || !conf_chars_in(value, "_.-")) {
                conf_report(p,
                            "%s must be a DynamoDB table name of %u to %u characters among A-Z a-z 0-9 _ "
                            ". -, got '%.*s%s'",
                            key, REMOTE_TABLE_MIN, REMOTE_TABLE_MAX, QUOTE(value));
                return -EINVAL;
        }
        return conf_set_string(field, value);
}

static int conf_remote_table(ConfParser *p, const char *value)
{
        return conf_table_name(p, "table", value, &p->config->remote.table);
}

static int conf_remote_parts_table(ConfParser *p, const char *value)
{
        return conf_table_name(p, "parts_table", value, &p->config->remote.parts_table);
}

char *remote_parts_table(const RemoteConfig *c)
{
        char *t = NULL;

        if (c->parts_table)
                return strdup(c->parts_table);
        return asprintf(&t, "%s%s", c->table, REMOTE_PARTS_SUFFIX) < 0 ? NULL : t;
}

static int conf_remote_region(ConfParser *p, const char *value)
{
        bool lower = true;

        for (const char *c = value; *c; c++)
                if (isupper((unsigned char)*c))
                        lower = false;
        /* AWS region names are lower case; the signer and the endpoint need them so. */
        if (strlen(value) > REMOTE_REGION_MAX || !lower || !conf_chars_in(value, "-")) {
                conf_report(
                        p,
                        "region must be up to %u lower-case letters, digits and '-' (such as us-east-1), "
                        "got '%.*s%s'",
                        REMOTE_REGION_MAX, QUOTE(value));
                return -EINVAL;
        }
        return conf_set_string(&p->config->remote.region, value);
}

static int conf_remote_endpoint(ConfParser *p, const char *value)
{
        const char *host = strncmp(value, "http://", 7) == 0    ? value + 7
                           : strncmp(value, "https://", 8) == 0 ? value + 8
                                                                : NULL;

        if (!host) {
                conf_report(p, "endpoint must start with http:// or https://, got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        if (strlen(value) > REMOTE_ENDPOINT_MAX) {
                conf_report(p, "endpoint is longer than %u bytes", REMOTE_ENDPOINT_MAX);
                return -EINVAL;
        }
        for (const char *s = value; *s; s++)
                if ((unsigned char)*s <= ' ' || *s == 0x7f) {
                        conf_report(p,
                                    "endpoint must not contain blanks or control characters, got '%.*s%s'",
                                    QUOTE(value));
                        return -EINVAL;
                }
        if (*host == 0 || *host == '/') {
                conf_report(p, "endpoint has no host, got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        /* User info would be signed as part of the Host header, which libcurl sends without it. */
        if (memchr(host, '@', strcspn(host, "/"))) {
                conf_report(p, "endpoint must not have user info, got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        /* The path is signed as written: a query or a fragment would make every signature wrong. */
        if (strpbrk(value, "?#")) {
                conf_report(p, "endpoint must not have a query or a fragment, got '%.*s%s'", QUOTE(value));
                return -EINVAL;
        }
        return conf_set_string(&p->config->remote.endpoint, value);
}

static int conf_remote_ca_file(ConfParser *p, const char *value)
{
        return conf_set_path(p, value, "ca_file", &p->config->remote.ca_file);
}

#define REMOTE_NUMBER(fn, key, min, max, unit, field)                                        \
        static int fn(ConfParser *p, const char *value)                                      \
        {                                                                                    \
                return conf_number(p, key, value, min, max, unit, &p->config->remote.field); \
        }
/* max_delay_ms >= debounce_ms is checked once the whole file is read. */
REMOTE_NUMBER(conf_remote_debounce, "debounce_ms", 0, 600000, USEC_PER_MSEC, debounce_usec)
REMOTE_NUMBER(conf_remote_max_delay, "max_delay_ms", 0, 3600000, USEC_PER_MSEC, max_delay_usec)
REMOTE_NUMBER(conf_remote_pull, "pull_interval_s", 0, 86400, USEC_PER_SEC, pull_interval_usec)
REMOTE_NUMBER(conf_remote_connect, "connect_timeout_ms", 100, 600000, USEC_PER_MSEC, connect_timeout_usec)
REMOTE_NUMBER(conf_remote_request, "request_timeout_ms", 100, 3600000, USEC_PER_MSEC, request_timeout_usec)
REMOTE_NUMBER(conf_remote_parts_grace, "parts_grace_s", 1, 604800, USEC_PER_SEC, parts_grace_usec)

static int conf_remote_in_flight(ConfParser *p, const char *value)
{
        uint64_t v = 0;
        int r = conf_number(p, "max_in_flight", value, 1, 256, 1, &v);

        if (r >= 0)
                p->config->remote.max_in_flight = (unsigned)v;
        return r;
}

static const ConfKey remote_keys[_REMOTE_KEY_MAX] = {
        [REMOTE_ENABLED] = { "enabled", conf_remote_enabled },
        [REMOTE_TABLE] = { "table", conf_remote_table },
        [REMOTE_REGION] = { "region", conf_remote_region },
        [REMOTE_ENDPOINT] = { "endpoint", conf_remote_endpoint },
        [REMOTE_CA_FILE] = { "ca_file", conf_remote_ca_file },
        [REMOTE_DEBOUNCE] = { "debounce_ms", conf_remote_debounce },
        [REMOTE_MAX_DELAY] = { "max_delay_ms", conf_remote_max_delay },
        [REMOTE_MAX_IN_FLIGHT] = { "max_in_flight", conf_remote_in_flight },
        [REMOTE_PULL_INTERVAL] = { "pull_interval_s", conf_remote_pull },
        [REMOTE_CONNECT_TIMEOUT] = { "connect_timeout_ms", conf_remote_connect },
        [REMOTE_REQUEST_TIMEOUT] = { "request_timeout_ms", conf_remote_request },
        [REMOTE_PARTS_TABLE] = { "parts_table", conf_remote_parts_table },
        [REMOTE_PARTS_GRACE] = { "parts_grace_s", conf_remote_parts_grace },
};

static int conf_remote_key(ConfParser *p, const char *key, const char *value)
{
        for (size_t i = 0; i < ELEMENTSOF(remote_keys); i++) {
                int r;

                if (!streq(key, remote_keys[i].name))
                        continue;
                if (p->remote_key_lines[i] > 0) {
                        conf_report(p, "%s is already set on line %u", key, p->remote_key_lines[i]);
                        return -EINVAL;
                }
                p->remote_key_lines[i] = p->line;
                if (!*value) {
                        conf_report(p, "%s: missing value", key);
                        p->remote_key_bad[i] = true;
                        return -EINVAL;
                }
                r = remote_keys[i].parse(p, value);
                if (r == -EINVAL)
                        p->remote_key_bad[i] = true;
                return r;
        }
        conf_report(p, "unknown key '%.*s%s' in section [remote]", QUOTE(key));
        return -EINVAL;
}

/* ---- [metrics] ---- */

int config_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
        char host[INET6_ADDRSTRLEN + 1];
        const char *colon, *hs, *he;
        uint64_t port;
        struct sockaddr_storage ss = {};

        if (*s == '[') {
                hs = s + 1;
                he = strchr(hs, ']');
                if (!he || he[1] != ':')
                        return -EINVAL;
                colon = he + 1;
        } else {
                hs = s;
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                he = colon;
        }
        if (he == hs || (size_t)(he - hs) >= sizeof(host))
                return -EINVAL;
        memcpy(host, hs, (size_t)(he - hs));
        host[he - hs] = 0;
        /* Digits only: no sign, no blanks, no leading zeros taken for octal by anyone. */
        if (!isdigit((unsigned char)colon[1]) || parse_uint64(colon + 1, &port) < 0 || port < 1 ||
            port > 65535)
                return -EINVAL;
        if (*s == '[') {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons((uint16_t)port);
                if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*sa);
        } else {
                struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

                sa->sin_family = AF_INET;
                sa->sin_port = htons((uint16_t)port);
                if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(*sa);
        }
        *ret = ss;
        return 0;
}

static int conf_metrics_key(ConfParser *p, const char *key, const char *value)
{
        MetricsConfig *m = &p->config->metrics;

        if (!streq(key, "listen")) {
                conf_report(p, "unknown key '%.*s%s' in section [metrics]", QUOTE(key));
                return -EINVAL;
        }
        if (p->metrics_listen_line > 0) {
                conf_report(p, "listen is already set on line %u", p->metrics_listen_line);
                return -EINVAL;
        }
        p->metrics_listen_line = p->line;
        if (!*value) {
                conf_report(p, "listen: missing value");
                return -EINVAL;
        }
        if (config_parse_listen(value, &m->addr, &m->addr_len) < 0) {
                conf_report(p,
                            "listen must be an IPv4 address and port (127.0.0.1:9464) or an IPv6 address in "
                            "brackets and port ([::1]:9464), port 1 to 65535, got '%.*s%s'",
                            QUOTE(value));
                return -EINVAL;
        }
        return conf_set_string(&m->listen, value);
}

/* Checks between [remote] keys, once the whole file is read. A key whose own value was refused
 * is left out, so that one mistake is reported once. */
static void conf_remote_check(ConfParser *p)
{
        const RemoteConfig *r = &p->config->remote;

        if (!r->parts_table && !p->remote_key_bad[REMOTE_TABLE] &&
            strlen(r->table) + strlen(REMOTE_PARTS_SUFFIX) > REMOTE_TABLE_MAX) {
                p->line = p->remote_key_lines[REMOTE_TABLE];
                conf_report(p, "table is too long to name the parts table after it (%s%s); set parts_table",
                            r->table, REMOTE_PARTS_SUFFIX);
        }
        /* A part is sent at most a request's time before the item that names it, if the item goes
         * within half the grace time of its first part (sync.c writes the parts again otherwise):
         * then no collection elsewhere can take it for unused first. */
        if (!p->remote_key_bad[REMOTE_PARTS_GRACE] && !p->remote_key_bad[REMOTE_REQUEST_TIMEOUT] &&
            r->parts_grace_usec <= 2 * r->request_timeout_usec) {
                p->line = MAX(p->remote_key_lines[REMOTE_PARTS_GRACE],
                              p->remote_key_lines[REMOTE_REQUEST_TIMEOUT]);
                conf_report(p,
                            "parts_grace_s (%" PRIu64
                            "%s) must be more than twice request_timeout_ms (%" PRIu64 " ms%s)",
                            r->parts_grace_usec / USEC_PER_SEC,
                            p->remote_key_lines[REMOTE_PARTS_GRACE] ? "" : ", the default",
                            r->request_timeout_usec / USEC_PER_MSEC,
                            p->remote_key_lines[REMOTE_REQUEST_TIMEOUT] ? "" : ", the default");
        }
        if (p->remote_key_bad[REMOTE_DEBOUNCE] || p->remote_key_bad[REMOTE_MAX_DELAY] ||
            r->max_delay_usec >= r->debounce_usec)
                return;
        /* On the line of the key that was written last: either was (the defaults agree). */
        p->line = MAX(p->remote_key_lines[REMOTE_DEBOUNCE], p->remote_key_lines[REMOTE_MAX_DELAY]);
        conf_report(p, "max_delay_ms (%" PRIu64 "%s) must not be less than debounce_ms (%" PRIu64 "%s)",
                    r->max_delay_usec / USEC_PER_MSEC,
                    p->remote_key_lines[REMOTE_MAX_DELAY] ? "" : ", the default",
                    r->debounce_usec / USEC_PER_MSEC,
                    p->remote_key_lines[REMOTE_DEBOUNCE] ? "" : ", the default");
}

/* Checks between the limits of [daemon], once the whole file is read. */
static void conf_limits_check(ConfParser *p)
{
        const Limits *l = &p->config->limits;

        p->line = 0;
        if (l->output_soft_bytes > l->output_hard_bytes)
                conf_report(p,
                            "output_soft_limit (%" PRIu64
                            ") must not be more than output_hard_limit (%" PRIu64 ")",
                            l->output_soft_bytes, l->output_hard_bytes);
        if (l->uid_buffer_bytes > l->buffer_bytes)
                conf_report(
                        p, "uid_buffer_limit (%" PRIu64 ") must not be more than buffer_limit (%" PRIu64 ")",
                        l->uid_buffer_bytes, l->buffer_bytes);
}

static bool conf_user_id_is_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > MAX_USER_ID_BYTES || !utf8_is_valid(s, n))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f || c == '/')
                        return false;
        }
        return true;
}

static void user_ids_free(char **ids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
}

/* Splits "a, b, c" into user_ids; reports every bad one. */
static int conf_parse_user_ids(ConfParser *p, char *value, char ***ret, size_t *ret_n)
{
        char **ids = NULL;
        size_t n = 0;
        bool bad = false;

        if (!*value) {
                conf_report(p, "no user_id given");
                return -EINVAL;
        }
        for (char *item = value, *next; item; item = next) {
                char *id, **grown;

                next = strchr(item, ',');
                if (next)
                        *next++ = 0;
                id = conf_strip(item);
                if (!conf_user_id_is_valid(id)) {
                        conf_report(p,
                                    "invalid user_id '%.*s%s': it must be 1 to %d bytes of UTF-8 without "
                                    "control characters or '/'",
                                    QUOTE(id), MAX_USER_ID_BYTES);
                        bad = true;
                        continue;
                }
                for (size_t i = 0; i < n; i++)
                        if (streq(ids[i], id)) {
                                conf_report(p, "user_id '%s' is listed twice", id);
                                bad = true;
                                break;
                        }
                grown = realloc(ids, (n + 1) * sizeof(*ids));
                if (!grown) {
                        user_ids_free(ids, n);
                        return -ENOMEM;
                }
                ids = grown;
                ids[n] = strdup(id);
                if (!ids[n]) {
                        user_ids_free(ids, n);
                        return -ENOMEM;
                }
                n++;
        }
        if (bad) {
                user_ids_free(ids, n);
                return -EINVAL;
        }
        *ret = ids;
        *ret_n = n;
        return 0;
}

static int conf_users_key(ConfParser *p, const char *key, char *value)
{
        Config *c = p->config;
        const UserBinding *other;
        char **ids = NULL;
        size_t n_ids = 0;
        unsigned id;
        uid_t uid = 0;
        int r, q;

        /* A name made only of digits is a uid, as everywhere else. */
        if (conf_parse_id(key, &id)) {
                uid = (uid_t)id;
                r = 0;
        } else {
                r = conf_lookup_user(key, &uid);
                if (r == -ENOMEM)
                        return r;
                if (r == -ESRCH)
                        conf_report(p, "no such user '%.*s%s'", QUOTE(key));
                else if (r < 0)
                        conf_report(p, "cannot look up user '%.*s%s': %s", QUOTE(key), strerror(-r));
        }
        if (r == 0) {
                other = config_find_uid(c, uid);
                if (other) {
                        conf_report(p, "uid %u is already bound on line %u", (unsigned)uid,
                                    p->binding_lines[other - c->bindings]);
                        r = -EINVAL;
                }
        }

        /* Check the user_ids even when the user is bad, to report everything at once. */
        q = conf_parse_user_ids(p, value, &ids, &n_ids);
        if (q == -ENOMEM)
                return q;
        if (r < 0 || q < 0) {
                user_ids_free(ids, n_ids);
                return -EINVAL;
        }

        if (c->n_bindings == p->n_bindings_alloc) {
                size_t m = p->n_bindings_alloc ? p->n_bindings_alloc * 2 : 8;
                UserBinding *b = realloc(c->bindings, m * sizeof(*b));
                unsigned *l;

                if (b)
                        c->bindings = b;
                l = b ? realloc(p->binding_lines, m * sizeof(*l)) : NULL;
                if (!l) {
                        user_ids_free(ids, n_ids);
                        return -ENOMEM;
                }
                p->binding_lines = l;
                p->n_bindings_alloc = m;
        }
        p->binding_lines[c->n_bindings] = p->line;
        c->bindings[c->n_bindings++] = (UserBinding){ .uid = uid, .user_ids = ids, .n_user_ids = n_ids };
        return 0;
}

/* Cuts a comment off: '#' after a blank starts one. A '#' inside a word is kept. */
static void conf_strip_comment(char *s)
{
        for (char *h = strchr(s, '#'); h; h = strchr(h + 1, '#'))
                if (h == s || conf_is_blank(h[-1])) {
                        *h = 0;
                        return;
                }
}

static int conf_parse_section(ConfParser *p, char *s)
{
        char *end = strchr(s, ']'), *name;

        if (!end) {
                conf_report(p, "section header without ']'");
                p->section = SECTION_UNKNOWN;
                return -EINVAL;
        }
        if (*conf_strip(end + 1)) {
                conf_report(p, "unexpected text after section header");
                p->section = SECTION_UNKNOWN;
                return -EINVAL;
        }
        *end = 0;
        name = conf_strip(s + 1);
        if (streq(name, "daemon"))
                p->section = SECTION_DAEMON;
        else if (streq(name, "users"))
                p->section = SECTION_USERS;
        else if (streq(name, "remote")) {
                p->section = SECTION_REMOTE;
                p->config->remote.present = true;
        } else if (streq(name, "metrics"))
                p->section = SECTION_METRICS;
        else {
                conf_report(p, "unknown section [%.*s%s]", QUOTE(name));
                p->section = SECTION_UNKNOWN;
                return -EINVAL;
        }
        return 0;
}

static int conf_parse_line(ConfParser *p, char *line)
{
        char *s, *eq, *key, *value;

        s = conf_strip(line);
        if (*s == '#' || *s == ';' || *s == 0)
                return 0;
        conf_strip_comment(s);
        s = conf_strip(s);

        if (*s == '[')
                return conf_parse_section(p, s);

        eq = strchr(s, '=');
        if (!eq) {
                conf_report(p, "expected 'key = value' or '[section]'");
                return -EINVAL;
        }
        *eq = 0;
        key = conf_strip(s);
        value = conf_strip(eq + 1);
        if (!*key) {
                conf_report(p, "missing key before '='");
                return -EINVAL;
        }

        switch (p->section) {
        case SECTION_NONE:
                conf_report(p, "key '%.*s%s' outside of any section", QUOTE(key));
                return -EINVAL;
        case SECTION_UNKNOWN:
                return 0;
        case SECTION_DAEMON:
                return conf_daemon_key(p, key, value);
        case SECTION_USERS:
                return conf_users_key(p, key, value);
        case SECTION_REMOTE:
                return conf_remote_key(p, key, value);
        case SECTION_METRICS:
                return conf_metrics_key(p, key, value);
        }
        return 0;
}

static void conf_parser_done(ConfParser *p)
{
        free(p->binding_lines);
}

int config_load(const char *path, ConfigErrorFunc report, void *userdata, Config **ret)
{
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_(conf_parser_done) ConfParser p = {};
        size_t size = 0;
        char *s, *end;
        int r;

        r = read_full_file(path, CONF_MAX_FILE_BYTES, &data, &size);
        if (r == -EFBIG) {
                if (report)
                        report(userdata, path, 0, "file is larger than 1 MiB (1048576 bytes)");
                return -EINVAL;
        }
        if (r < 0)
                return r;

        c = config_new();
        if (!c)
                return -ENOMEM;
        p = (ConfParser){ .path = path, .report = report, .userdata = userdata, .config = c };

        s = data;
        end = data + size;
        /* A byte order mark some editors write. */
        if (size >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3;

        while (s < end) {
                char *nl = memchr(s, '\n', (size_t)(end - s));
                size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);

                p.line++;
                s[n] = 0;
                if (n > CONF_MAX_LINE_BYTES)
                        conf_report(&p, "line is longer than %u bytes", CONF_MAX_LINE_BYTES);
                else if (strlen(s) != n)
                        conf_report(&p, "line contains a NUL byte");
                else {
                        r = conf_parse_line(&p, s);
                        if (r == -ENOMEM)
                                return r;
                }
                if (!nl)
                        break;
                s = nl + 1;
        }

        conf_remote_check(&p);
        conf_limits_check(&p);

        if (p.n_errors > 0)
                return -EINVAL;
        *ret = TAKE_PTR(c);
        return 0;
}

#define SWAP(a, b)                        \
        do {                              \
                __typeof__(a) _sw_ = (a); \
                (a) = (b);                \
                (b) = _sw_;               \
        } while (0)

static void conf_restart_check(bool differs, const char *key, ConfigRestartFunc report, void *userdata)
{
        if (differs && report)
                report(userdata, key);
}

void config_carry_restart_settings(Config *next, Config *current, ConfigRestartFunc report, void *userdata)
{
        const RemoteConfig *a = &current->remote, *b = &next->remote;

#define CHECK(differs, key) conf_restart_check((differs), (key), report, userdata)
        CHECK(!streq_ptr(next->state_dir, current->state_dir), "[daemon] state_dir");
        CHECK(!streq_ptr(next->socket_path, current->socket_path), "[daemon] socket");
        CHECK(next->durability_full != current->durability_full, "[daemon] durability");
        CHECK(next->max_line_bytes != current->max_line_bytes, "[daemon] max_line_bytes");
        CHECK(next->have_admin_gid != current->have_admin_gid ||
                      (next->have_admin_gid && next->admin_gid != current->admin_gid),
              "[daemon] admin_group");
        /* The section as a whole: adding it, removing it, or switching it on or off. */
        CHECK(a->present != b->present || a->enabled != b->enabled, "[remote]");
        /* Its keys matter only where a side syncs by it. */
        if ((a->present && a->enabled) || (b->present && b->enabled)) {
                CHECK(!streq_ptr(a->table, b->table), "[remote] table");
                CHECK(!streq_ptr(a->parts_table, b->parts_table), "[remote] parts_table");
                CHECK(a->parts_grace_usec != b->parts_grace_usec, "[remote] parts_grace_s");
                CHECK(!streq_ptr(a->region, b->region), "[remote] region");
                CHECK(!streq_ptr(a->endpoint, b->endpoint), "[remote] endpoint");
                CHECK(!streq_ptr(a->ca_file, b->ca_file), "[remote] ca_file");
                CHECK(a->debounce_usec != b->debounce_usec, "[remote] debounce_ms");
                CHECK(a->max_delay_usec != b->max_delay_usec, "[remote] max_delay_ms");
                CHECK(a->max_in_flight != b->max_in_flight, "[remote] max_in_flight");
                CHECK(a->pull_interval_usec != b->pull_interval_usec, "[remote] pull_interval_s");
                CHECK(a->connect_timeout_usec != b->connect_timeout_usec, "[remote] connect_timeout_ms");
                CHECK(a->request_timeout_usec != b->request_timeout_usec, "[remote] request_timeout_ms");
        }
        CHECK(!streq_ptr(next->metrics.listen, current->metrics.listen), "[metrics] listen");
#undef CHECK

        SWAP(next->state_dir, current->state_dir);
        SWAP(next->socket_path, current->socket_path);
        SWAP(next->durability_full, current->durability_full);
        SWAP(next->max_line_bytes, current->max_line_bytes);
        SWAP(next->have_admin_gid, current->have_admin_gid);
        SWAP(next->admin_gid, current->admin_gid);
        SWAP(next->remote, current->remote);
        SWAP(next->metrics, current->metrics);
}

char *config_default_path(void)
{
        if (geteuid() == 0)
                return strdup("/etc/notebookd/notebookd.conf");
        return xdg_dir_path("XDG_CONFIG_HOME", ".config", "notebookd/notebookd.conf");
}
