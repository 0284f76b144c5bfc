/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>

#include "conf.h"
#include "nb-limits.h"
#include "tap.h"
#include "util.h"

#define MAX_ERRORS 64

typedef struct Errors {
        unsigned n;
        unsigned lines[MAX_ERRORS];
        char messages[MAX_ERRORS][1024];
        bool path_ok;
} Errors;

static char tmpdir[] = "/tmp/test-conf-XXXXXX";
static char conf_path[256];

static void collect(void *userdata, const char *path, unsigned line, const char *message)
{
        Errors *e = userdata;

        if (!streq(path, conf_path))
                e->path_ok = false;
        if (e->n < MAX_ERRORS) {
                e->lines[e->n] = line;
                snprintf(e->messages[e->n], sizeof(e->messages[e->n]), "%s", message);
        }
        e->n++;
}

static void write_file(const char *data, size_t n)
{
        FILE *f = fopen(conf_path, "we");

        if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
                perror(conf_path);
                exit(99);
        }
}

/* Loads text as a configuration; on failure *ret is left as the poison value. */
static int load_n(const char *text, size_t n, Errors *e, Config **ret)
{
        *e = (Errors){ .path_ok = true };
        *ret = (Config *)(uintptr_t)0x1;
        write_file(text, n);
        return config_load(conf_path, collect, e, ret);
}

static int load(const char *text, Errors *e, Config **ret)
{
        return load_n(text, strlen(text), e, ret);
}

/* Prints what was reported, for a test point that failed or an unexpected load result. */
static void show_errors(const Errors *e)
{
        char buf[1200];

        for (unsigned i = 0; i < e->n && i < MAX_ERRORS; i++) {
                snprintf(buf, sizeof(buf), "line %u: %s", e->lines[i], e->messages[i]);
                tap_diag(buf);
        }
}

static bool has(const char *haystack, const char *needle)
{
        return strstr(haystack, needle) != NULL;
}

/* Every [remote] default but present, which says whether the section appeared. */
static bool remote_has_defaults(const RemoteConfig *r)
{
        return r->enabled && r->table && streq(r->table, "notebooks") && !r->region && !r->endpoint &&
               !r->ca_file && r->debounce_usec == 500 * USEC_PER_MSEC &&
               r->max_delay_usec == 5 * USEC_PER_SEC && r->max_in_flight == 8 &&
               r->pull_interval_usec == 60 * USEC_PER_SEC && r->connect_timeout_usec == 5 * USEC_PER_SEC &&
               r->request_timeout_usec == 30 * USEC_PER_SEC && !r->parts_table &&
               r->parts_grace_usec == 3600 * USEC_PER_SEC;
}

static void test_defaults(void)
{
        Config *c = config_new();
        Errors e;
        int r;

        ok(c && !c->state_dir && !c->socket_path && c->durability_full &&
                   c->max_line_bytes == MAX_LINE_BYTES_DEFAULT && c->log_level == -1 && !c->have_admin_gid &&
                   c->n_bindings == 0 && !c->bindings,
           "config_new() has every default");
        ok(c && remote_has_defaults(&c->remote), "config_new() has every [remote] default");
        ok(c && !c->remote.present, "config_new(): no [remote] section");
        ok(config_free(c) == NULL, "config_free() returns NULL");
        ok(config_free(NULL) == NULL, "config_free(NULL) is fine");

        r = load("", &e, &c);
        is_int(r, 0, "empty file loads");
        ok(r == 0 && c->durability_full && c->max_line_bytes == MAX_LINE_BYTES_DEFAULT &&
                   c->log_level == -1 && c->n_bindings == 0,
           "empty file gives the defaults");
        ok(r == 0 && !c->remote.present && remote_has_defaults(&c->remote),
           "empty file: no [remote], and its defaults");
        if (r == 0)
                config_free(c);

        r = load("[daemon]\nlog_level = info\n[users]\n1000 = a\n", &e, &c);
        ok(r == 0 && !c->remote.present && remote_has_defaults(&c->remote),
           "file without [remote]: its defaults, table \"notebooks\"");
        if (r == 0)
                config_free(c);

        r = load("[remote]\n", &e, &c);
        ok(r == 0 && c->remote.present && remote_has_defaults(&c->remote),
           "empty [remote]: present, enabled, every default");
        if (r == 0)
                config_free(c);

        r = load("# only comments\n; and more\n\n   \n[daemon]\n[users]\n", &e, &c);
        is_int(r, 0, "comments and empty sections load");
        if (r == 0)
                config_free(c);
}

static void test_valid(void)
{
        static const char text[] = "\xef\xbb\xbf# notebookd.conf\n"
                                   "[daemon]\n"
                                   "state_dir = /var/lib/notebookd   # where the database lives\n"
                                   "  socket=/run/notebookd/notebookd.sock\n"
                                   "durability = normal\r\n"
                                   "max_line_bytes = 65536\n"
                                   "max_notebook_bytes = 1048576\n"
                                   "output_soft_limit = 65536\n"
                                   "output_hard_limit = 2097152\n"
                                   "uid_buffer_limit = 4194304\n"
                                   "buffer_limit = 8388608\n"
                                   "request_timeout_s = 5\n"
                                   "idle_timeout_s = 0\n"
                                   "history_revisions = 7\n"
                                   "history_max_age_days = 2\n"
                                   "log_level = debug\n"
                                   "admin_group = root\n"
                                   "; a comment\n"
                                   "[ users ]\n"
                                   "1000 = alice\n"
                                   "root = admin, ops#1 , ops-2   # two ids\n"
                                   "\tnobody\t=\tnob\n"
                                   "4000000000 = big\n";
        const UserBinding *b;
        Errors e;
        Config *c;
        int r;

        r = load(text, &e, &c);
        is_int(r, 0, "full valid file loads");
        is_int(e.n, 0, "no errors reported");
        if (r != 0) {
                show_errors(&e);
                return;
        }
        is_str(c->state_dir, "/var/lib/notebookd", "state_dir, comment cut off");
        is_str(c->socket_path, "/run/notebookd/notebookd.sock", "socket");
        ok(!c->durability_full, "durability = normal");
        is_int(c->max_line_bytes, 65536, "max_line_bytes");
        ok(c->limits.max_notebook_bytes == 1048576 && c->limits.output_soft_bytes == 65536 &&
                   c->limits.output_hard_bytes == 2097152 && c->limits.uid_buffer_bytes == 4194304 &&
                   c->limits.buffer_bytes == 8388608 && c->limits.request_timeout_usec == 5 * USEC_PER_SEC &&
                   c->limits.idle_timeout_usec == 0 && c->limits.history_revisions == 7 &&
                   c->limits.history_max_age_usec == 2 * 86400 * USEC_PER_SEC,
           "the limits");
        is_int(c->log_level, LOG_DEBUG, "log_level");
        ok(c->have_admin_gid && c->admin_gid == 0, "admin_group root is gid 0");
        is_int(c->n_bindings, 4, "four bindings");

        b = config_find_uid(c, 1000);
        ok(b && b->uid == 1000 && b->n_user_ids == 1 && streq(b->user_ids[0], "alice"), "uid 1000 = alice");
        b = config_find_uid(c, 0);
        ok(b && b->n_user_ids == 3, "root has three user_ids");
        if (b && b->n_user_ids == 3) {
                is_str(b->user_ids[0], "admin", "root: first (default) user_id");
                is_str(b->user_ids[1], "ops#1", "root: '#' inside a word is kept");
                is_str(b->user_ids[2], "ops-2", "root: third user_id");
        }
        b = config_find_uid(c, 65534);
        ok(b && b->n_user_ids == 1 && streq(b->user_ids[0], "nob"), "nobody resolves to 65534");
        b = config_find_uid(c, 4000000000u);
        ok(b && streq(b->user_ids[0], "big"), "a uid above 2^31 works");
        ok(config_find_uid(c, 1001) == NULL, "unbound uid gives NULL");
        ok(config_find_uid(NULL, 0) == NULL, "config_find_uid(NULL) gives NULL");
        config_free(c);

        r = load("[daemon]\nadmin_group = 4242\nlog_level = ERROR\nmax_line_bytes = 1073741824\n"
                 "durability = full\n",
                 &e, &c);
        is_int(r, 0, "numeric admin_group, upper-case level, largest max_line_bytes");
        if (r == 0) {
                ok(c->have_admin_gid && c->admin_gid == 4242, "admin_group 4242 is gid 4242");
                is_int(c->log_level, LOG_ERR, "log_level ERROR is err");
                is_int(c->max_line_bytes, 1024u * 1024 * 1024, "max_line_bytes 1 GiB");
                ok(c->durability_full, "durability = full");
                config_free(c);
        } else
                show_errors(&e);

        r = load("[users]\n0 = a\n[daemon]\nlog_level = crit\n[users]\n65534 = b\n", &e, &c);
        is_int(r, 0, "a section may be opened again");
        if (r == 0) {
                is_int(c->n_bindings, 2, "bindings from both [users]");
                config_free(c);
        }
}

static void test_remote(void)
{
        static const char text[] = "[daemon]\n"
                                   "log_level = info\n"
                                   "[remote]   # sync to DynamoDB\n"
                                   "enabled = yes\n"
                                   "table = nb_Prod.v-2\n"
                                   "region = eu-west-3\n"
                                   "endpoint = https://dynamodb.example.com:8443/base/path\r\n"
                                   "ca_file = /etc/notebookd/ca.pem\n"
                                   "debounce_ms = 250\n"
                                   "max_delay_ms = 2000   # at most 2 s late\n"
                                   "max_in_flight = 16\n"
                                   "pull_interval_s = 300\n"
                                   "connect_timeout_ms = 1500\n"
                                   "request_timeout_ms = 45000\n"
                                   "parts_table = nb-big\n"
                                   "parts_grace_s = 120\n"
                                   "[users]\n"
                                   "1000 = alice\n";
        char big[1200], name[256], url[1026];
        Errors e;
        Config *c;
        int r;

        r = load(text, &e, &c);
        is_int(r, 0, "[remote] with every key loads");
        is_int(e.n, 0, "[remote]: no errors reported");
        if (r != 0) {
                show_errors(&e);
                return;
        }
        ok(c->remote.present && c->remote.enabled, "[remote]: present and enabled");
        is_str(c->remote.table, "nb_Prod.v-2", "[remote]: table");
        is_str(c->remote.region, "eu-west-3", "[remote]: region");
        is_str(c->remote.endpoint, "https://dynamodb.example.com:8443/base/path",
               "[remote]: endpoint, CR cut");
        is_str(c->remote.ca_file, "/etc/notebookd/ca.pem", "[remote]: ca_file");
        is_int(c->remote.debounce_usec, 250 * USEC_PER_MSEC, "[remote]: debounce_ms in usec");
        is_int(c->remote.max_delay_usec, 2 * USEC_PER_SEC, "[remote]: max_delay_ms in usec, comment cut");
        is_int(c->remote.max_in_flight, 16, "[remote]: max_in_flight");
        is_int(c->remote.pull_interval_usec, 300 * USEC_PER_SEC, "[remote]: pull_interval_s in usec");
        is_int(c->remote.connect_timeout_usec, 1500 * USEC_PER_MSEC, "[remote]: connect_timeout_ms in usec");
        is_int(c->remote.request_timeout_usec, 45 * USEC_PER_SEC, "[remote]: request_timeout_ms in usec");
        is_str(c->remote.parts_table, "nb-big", "[remote]: parts_table");
        is_int(c->remote.parts_grace_usec, 120 * USEC_PER_SEC, "[remote]: parts_grace_s in usec");
        {
                char *t = remote_parts_table(&c->remote);

                is_str(t, "nb-big", "the parts table is the one set");
                free(t);
                c->remote.parts_table = mfree(c->remote.parts_table);
                t = remote_parts_table(&c->remote);
                is_str(t, "nb_Prod.v-2-parts", "by default, the table's name and -parts");
                free(t);
        }
        is_int(c->n_bindings, 1, "[remote] between other sections");
        config_free(c);

        /* The other end of every range, and the other spellings of enabled. */
        r = load("[remote]\nenabled = no\ntable = abc\nregion = x1\nendpoint = http://127.0.0.1:8000\n"
                 "debounce_ms = 0\nmax_delay_ms = 0\nmax_in_flight = 1\npull_interval_s = 0\n"
                 "connect_timeout_ms = 100\nrequest_timeout_ms = 100\n",
                 &e, &c);
        is_int(r, 0, "[remote] at the low ends of the ranges");
        if (r == 0) {
                ok(c->remote.present && !c->remote.enabled, "enabled = no: present, not enabled");
                is_str(c->remote.table, "abc", "table of 3 characters");
                is_str(c->remote.endpoint, "http://127.0.0.1:8000", "http:// endpoint");
                ok(c->remote.debounce_usec == 0 && c->remote.max_delay_usec == 0, "debounce 0, max_delay 0");
                is_int(c->remote.max_in_flight, 1, "max_in_flight 1");
                is_int(c->remote.pull_interval_usec, 0, "pull_interval_s 0: at start and on demand only");
                ok(c->remote.connect_timeout_usec == 100 * USEC_PER_MSEC &&
                           c->remote.request_timeout_usec == 100 * USEC_PER_MSEC,
                   "timeouts of 100 ms");
                config_free(c);
        } else
                show_errors(&e);

        r = load("[remote]\nenabled = false\ndebounce_ms = 600000\nmax_delay_ms = 3600000\nmax_in_flight = "
                 "256\n"
                 "pull_interval_s = 86400\nconnect_timeout_ms = 600000\nrequest_timeout_ms = 3600000\n"
                 "parts_grace_s = 604800\n",
                 &e, &c);
        is_int(r, 0, "[remote] at the high ends of the ranges");
        if (r == 0) {
                ok(!c->remote.enabled, "enabled = false");
                is_int(c->remote.debounce_usec, 600 * USEC_PER_SEC, "debounce_ms 600000");
                is_int(c->remote.max_delay_usec, 3600 * USEC_PER_SEC, "max_delay_ms 3600000");
                is_int(c->remote.max_in_flight, 256, "max_in_flight 256");
                is_int(c->remote.pull_interval_usec, 86400 * USEC_PER_SEC, "pull_interval_s 86400");
                is_int(c->remote.connect_timeout_usec, 600 * USEC_PER_SEC, "connect_timeout_ms 600000");
                is_int(c->remote.request_timeout_usec, 3600 * USEC_PER_SEC, "request_timeout_ms 3600000");
                config_free(c);
        } else
                show_errors(&e);

        /* max_delay_ms is checked against debounce_ms only after the whole file: equal is fine, and
         * the order they are written in does not matter. A section may be opened again. */
        r = load("[remote]\nmax_delay_ms = 700\nenabled = 1\n[daemon]\n[remote]\ndebounce_ms = 700\n", &e,
                 &c);
        is_int(r, 0, "max_delay_ms = debounce_ms, written first, in another [remote]");
        if (r == 0) {
                ok(c->remote.enabled && c->remote.max_delay_usec == c->remote.debounce_usec,
                   "max_delay_ms = debounce_ms = 700");
                config_free(c);
        } else
                show_errors(&e);

        /* The longest table name and endpoint, and one byte more. */
        memset(name, 'T', 255);
        name[255] = 0;
        snprintf(big, sizeof(big), "[remote]\ntable = %s\n", name);
        r = load(big, &e, &c);
        ok(r < 0 && e.n == 1 && strstr(e.messages[0], "too long to name the parts table after it"),
           "a table of 255 characters leaves no room for the parts table's default name");
        snprintf(big, sizeof(big), "[remote]\ntable = %s\nparts_table = %s\n", name, name);
        r = load(big, &e, &c);
        ok(r == 0 && strlen(c->remote.table) == 255, "table of 255 characters, with a parts_table");
        if (r == 0)
                config_free(c);
        else
                show_errors(&e);
        memcpy(url, "http://h/", 9);
        memset(url + 9, 'p', 1024 - 9);
        url[1024] = 0;
        snprintf(big, sizeof(big), "[remote]\nendpoint = %s\n", url);
        r = load(big, &e, &c);
        ok(r == 0 && strlen(c->remote.endpoint) == 1024, "endpoint of 1024 bytes");
        if (r == 0)
                config_free(c);
        else
                show_errors(&e);
        url[1024] = 'p';
        url[1025] = 0;
        snprintf(big, sizeof(big), "[remote]\nendpoint = %s\n", url);
        r = load(big, &e, &c);
        if (!ok(r == -EINVAL && e.n == 1 && e.lines[0] == 2 && has(e.messages[0], "longer than 1024"),
                "endpoint of 1025 bytes refused"))
                show_errors(&e);
}

typedef struct ErrorCase {
        const char *text;
        unsigned line;
        const char *needle; /* expected in the message */
        const char *what;
} ErrorCase;

static const ErrorCase error_cases[] = {
        { "[nope]\nkey = 1\n", 1, "unknown section", "unknown section, its keys not reported" },
        { "[daemon\n", 1, "]", "section header without ']'" },
        { "[daemon] x\n", 1, "after section", "text after a section header" },
        { "[daemon]\nfoo = 1\n", 2, "unknown key 'foo'", "unknown key" },
        { "state_dir = /x\n", 1, "outside", "key outside a section" },
        { "[daemon]\njust words\n", 2, "key = value", "line without '='" },
        { "[daemon]\n = /x\n", 2, "missing key", "empty key" },
        { "[daemon]\nstate_dir =\n", 2, "missing value", "empty value" },
        { "[daemon]\nstate_dir = var/lib\n", 2, "absolute", "relative state_dir" },
        { "[daemon]\nsocket = run/nb.sock\n", 2, "absolute", "relative socket" },
        { "[daemon]\nsocket = /run/"
          "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
          "789"
          ".sock\n",
          2, "too long for a Unix socket", "socket path too long for sun_path" },
        { "[daemon]\ndurability = fast\n", 2, "durability", "bad durability" },
        { "[daemon]\nmax_line_bytes = 65535\n", 2, "max_line_bytes", "max_line_bytes below the minimum" },
        { "[daemon]\nmax_line_bytes = 1073741825\n", 2, "max_line_bytes",
          "max_line_bytes above the maximum" },
        { "[daemon]\nmax_line_bytes = 64k\n", 2, "max_line_bytes", "max_line_bytes not a number" },
        { "[daemon]\nmax_line_bytes = -1\n", 2, "max_line_bytes", "max_line_bytes negative" },
        { "[daemon]\nmax_line_bytes = 99999999999999999999999\n", 2, "max_line_bytes",
          "max_line_bytes overflow" },
        { "[daemon]\nmax_notebook_bytes = 1000\n", 2, "max_notebook_bytes must be a number from 65536",
          "max_notebook_bytes below the minimum" },
        { "[daemon]\nrequest_timeout_s = 0\n", 2, "request_timeout_s must be a number from 1 to 3600",
          "request_timeout_s of 0" },
        { "[daemon]\nidle_timeout_s = 1w\n", 2, "idle_timeout_s", "idle_timeout_s not a number" },
        { "[daemon]\nhistory_revisions = 10001\n", 2, "history_revisions must be a number from 0 to 10000",
          "history_revisions above the maximum" },
        { "[daemon]\nhistory_max_age_days = 36501\n", 2,
          "history_max_age_days must be a number from 0 to 36500",
          "history_max_age_days above the maximum" },
        { "[daemon]\noutput_soft_limit = 2097152\noutput_hard_limit = 1048576\n", 0,
          "output_soft_limit (2097152) must not be more than output_hard_limit (1048576)",
          "soft over hard" },
        { "[daemon]\nuid_buffer_limit = 536870912\n", 0,
          "uid_buffer_limit (536870912) must not be more than buffer_limit (268435456)",
          "uid budget over the total (the default)" },
        { "[daemon]\nlog_level = loud\n", 2, "log_level", "bad log_level" },
        { "[daemon]\nlog_level = emerg\n", 2, "log_level", "log_level emerg refused" },
        { "[daemon]\nadmin_group = no-such-group-nbd\n", 2, "no such group",
          "admin_group that does not resolve" },
        { "[daemon]\nlog_level = info\nlog_level = info\n", 3, "already set on line 2", "duplicate key" },
        { "[users]\nno-such-user-nbd = a\n", 2, "no such user", "user name that does not resolve" },
        { "[users]\n1000 =\n", 2, "no user_id", "empty user_id list" },
        { "[users]\n1000 = a,,b\n", 2, "invalid user_id ''", "empty user_id in a list" },
        { "[users]\n1000 = a,\n", 2, "invalid user_id ''", "trailing comma" },
        { "[users]\n1000 = a/b\n", 2, "invalid user_id", "user_id with '/'" },
        { "[users]\n1000 = a\tb\n", 2, "invalid user_id", "user_id with a control character" },
        { "[users]\n1000 = a\x7f\n", 2, "invalid user_id", "user_id with DEL" },
        { "[users]\n1000 = \xc3\x28\n", 2, "invalid user_id", "user_id that is not UTF-8" },
        { "[users]\n1000 = "
          "01234567890123456789012345678901234567890123456789012345678901234\n",
          2, "invalid user_id", "user_id of 65 bytes" },
        { "[users]\n1000 = a, b, a\n", 2, "listed twice", "user_id twice in one list" },
        { "[users]\n0 = a\nroot = b\n", 3, "uid 0 is already bound on line 2",
          "uid bound twice (number, name)" },
        { "[users]\n1000 = a\n1000 = b\n", 3, "already bound on line 2", "uid bound twice" },
        { "[users]\n4294967295 = a\n", 2, "no such user", "uid -1 is not a uid" },
        { "[users]\n99999999999 = a\n", 2, "no such user", "uid out of range" },
        { "[remote]\nbogus = 1\n", 2, "unknown key 'bogus' in section [remote]", "unknown [remote] key" },
        { "[remote]\ntable =\n", 2, "table: missing value", "[remote] key without a value" },
        { "[remote]\ntable = abc\ntable = def\n", 3, "already set on line 2", "[remote] key twice" },
        { "[remote]\ndebounce_ms = 1\n[daemon]\n[remote]\ndebounce_ms = 1\n", 5, "already set on line 2",
          "[remote] key twice, in two [remote] sections" },
        { "[remote]\nenabled = maybe\n", 2, "enabled must be 'yes' or 'no', got 'maybe'", "bad enabled" },
        { "[remote]\nenabled = Yes\n", 2, "enabled", "enabled is case-sensitive" },
        { "[remote]\ntable = ab\n", 2, "table must be", "table of 2 characters" },
        { "[remote]\ntable = "
          "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
          "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
          "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
          "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
          "\n",
          2, "table must be", "table of 256 characters" },
        { "[remote]\ntable = my table\n", 2, "table must be", "table with a space" },
        { "[remote]\ntable = notes/2\n", 2, "got 'notes/2'", "table with '/'" },
        { "[remote]\ntable = caf\xc3\xa9s\n", 2, "table must be", "table with a non-ASCII letter" },
        { "[remote]\nregion = us_east_1\n", 2, "region must be", "region with '_'" },
        { "[remote]\nregion = us east\n", 2, "region must be", "region with a space" },
        { "[remote]\nregion = "
          "r0123456789012345678901234567890123456789012345678901234567890123\n",
          2, "region must be", "region of 65 characters" },
        { "[remote]\nendpoint = 127.0.0.1:8000\n", 2, "http:// or https://", "endpoint without a scheme" },
        { "[remote]\nendpoint = ftp://example.com\n", 2, "http:// or https://",
          "endpoint with another scheme" },
        { "[remote]\nendpoint = HTTP://example.com\n", 2, "http:// or https://",
          "endpoint scheme in capitals" },
        { "[remote]\nendpoint = http://\n", 2, "no host", "endpoint without a host" },
        { "[remote]\nendpoint = https:///path\n", 2, "no host", "endpoint with an empty host" },
        { "[remote]\nendpoint = http://a b\n", 2, "blanks or control", "endpoint with a space" },
        { "[remote]\nendpoint = http://a\tb\n", 2, "blanks or control", "endpoint with a tab" },
        { "[remote]\nendpoint = http://a\rb\n", 2, "blanks or control", "endpoint with a CR inside" },
        { "[remote]\nendpoint = http://a/?x=1\n", 2, "query", "endpoint with a query" },
        { "[remote]\nendpoint = http://a/#frag\n", 2, "fragment", "endpoint with a fragment" },
        { "[remote]\nendpoint = http://127.0.0.1@example.com/\n", 2, "user info",
          "endpoint with user info" },
        { "[remote]\nca_file = ca.pem\n", 2, "ca_file must be an absolute path", "relative ca_file" },
        { "[remote]\ndebounce_ms = 600001\n", 2, "debounce_ms must be a number from 0 to 600000",
          "debounce_ms above the maximum" },
        { "[remote]\ndebounce_ms = -1\n", 2, "debounce_ms", "debounce_ms negative" },
        { "[remote]\ndebounce_ms = 1.5\n", 2, "debounce_ms", "debounce_ms not whole" },
        { "[remote]\nmax_delay_ms = 3600001\n", 2, "max_delay_ms must be a number from 0 to 3600000",
          "max_delay_ms above the maximum" },
        { "[remote]\nmax_delay_ms = 5s\n", 2, "max_delay_ms", "max_delay_ms with a unit" },
        { "[remote]\nmax_in_flight = 0\n", 2, "max_in_flight must be a number from 1 to 256",
          "max_in_flight 0" },
        { "[remote]\nmax_in_flight = 257\n", 2, "max_in_flight", "max_in_flight 257" },
        { "[remote]\nmax_in_flight = 99999999999999999999999\n", 2, "max_in_flight",
          "max_in_flight overflow" },
        { "[remote]\npull_interval_s = 86401\n", 2, "pull_interval_s must be a number from 0 to 86400",
          "pull_interval_s above the maximum" },
        { "[remote]\nconnect_timeout_ms = 99\n", 2, "connect_timeout_ms must be a number from 100 to 600000",
          "connect_timeout_ms below the minimum" },
        { "[remote]\nconnect_timeout_ms = 600001\n", 2, "connect_timeout_ms", "connect_timeout_ms too big" },
        { "[remote]\nrequest_timeout_ms = 99\n", 2,
          "request_timeout_ms must be a number from 100 to 3600000",
          "request_timeout_ms below the minimum" },
        { "[remote]\nrequest_timeout_ms = 3600001\n", 2, "request_timeout_ms",
          "request_timeout_ms too big" },
        { "[remote]\nparts_grace_s = 0\n", 2, "parts_grace_s must be a number from 1 to 604800",
          "parts_grace_s 0" },
        { "[remote]\nparts_grace_s = 604801\n", 2, "parts_grace_s", "parts_grace_s above a week" },
        { "[remote]\nparts_grace_s = 60\nrequest_timeout_ms = 30000\n", 3,
          "parts_grace_s (60) must be more than twice request_timeout_ms (30000 ms)",
          "a grace time not above twice the request timeout" },
        { "[remote]\nrequest_timeout_ms = 1800000\n", 2, "parts_grace_s (3600, the default)",
          "a request timeout of half the default grace time" },
        { "[remote]\nparts_table = a b\n", 2, "parts_table must be a DynamoDB table name",
          "parts_table with a blank" },
        { "[remote]\nparts_table = ab\n", 2, "parts_table", "parts_table of 2 characters" },
        { "[remote]\ndebounce_ms = 1000\nmax_delay_ms = 999\n", 3,
          "max_delay_ms (999) must not be less than debounce_ms (1000)", "max_delay_ms < debounce_ms" },
        { "[remote]\nmax_delay_ms = 999\ndebounce_ms = 1000\n", 3, "max_delay_ms (999)",
          "max_delay_ms < debounce_ms, on the later line" },
        { "[remote]\ndebounce_ms = 6000\n", 2, "max_delay_ms (5000, the default)",
          "debounce_ms above the default max_delay_ms" },
        { "[remote]\nmax_delay_ms = 100\n", 2, "debounce_ms (500, the default)",
          "max_delay_ms below the default debounce_ms" },
        { "[remote]\nmax_delay_ms = 100\ndebounce_ms = soon\n", 3, "debounce_ms must be",
          "a refused debounce_ms is not compared" },
        { "[remote]\ndebounce_ms = 6000\nmax_delay_ms = 1h\n", 3, "max_delay_ms must be",
          "a refused max_delay_ms is not compared" },
        { "[remote]\ndebounce_ms = 6000\nmax_delay_ms =\n", 3, "missing value",
          "an empty max_delay_ms is not compared" },
};

static void test_errors(void)
{
        Errors e;
        Config *c;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(error_cases); i++) {
                const ErrorCase *t = &error_cases[i];

                r = load(t->text, &e, &c);
                ok(r == -EINVAL && c == (Config *)(uintptr_t)0x1 && e.n == 1 && e.lines[0] == t->line &&
                           has(e.messages[0], t->needle) && e.path_ok,
                   "%s: one error on line %u", t->what, t->line);
                if (e.n != 1 || e.lines[0] != t->line || !has(e.messages[0], t->needle))
                        show_errors(&e);
        }

        /* Many problems in one file: every one reported, each on its line, in file order. */
        {
                static const char text[] = "top = 1\n"                         /* 1 */
                                           "[daemon]\n"                        /* 2 */
                                           "state_dir = relative\n"            /* 3 */
                                           "socket = rel.sock\n"               /* 4 */
                                           "durability = fast\n"               /* 5 */
                                           "max_line_bytes = 10\n"             /* 6 */
                                           "log_level = loud\n"                /* 7 */
                                           "admin_group = no-such-group-nbd\n" /* 8 */
                                           "bogus = 1\n"                       /* 9 */
                                           "durability = full\n"               /* 10 */
                                           "# fine\n"                          /* 11 */
                                           "[users]\n"                         /* 12 */
                                           "no-such-user-nbd = a\n"            /* 13 */
                                           "1000 =\n"                          /* 14 */
                                           "1001 = ok, bad/id\n"               /* 15 */
                                           "0 = r\n"                           /* 16 */
                                           "root = r2\n"                       /* 17 */
                                           "[nope]\n"                          /* 18 */
                                           "ignored = x\n"                     /* 19 */
                                           "[users]\n"                         /* 20 */
                                           "garbage\n";                        /* 21 */
                static const struct {
                        unsigned line;
                        const char *needle;
                } want[] = {
                        { 1, "outside" },
                        { 3, "absolute" },
                        { 4, "absolute" },
                        { 5, "durability" },
                        { 6, "max_line_bytes" },
                        { 7, "log_level" },
                        { 8, "no such group" },
                        { 9, "unknown key" },
                        { 10, "already set on line 5" },
                        { 13, "no such user" },
                        { 14, "no user_id" },
                        { 15, "invalid user_id 'bad/id'" },
                        { 17, "already bound on line 16" },
                        { 18, "unknown section" },
                        { 21, "key = value" },
                };
                bool right = true;

                r = load(text, &e, &c);
                ok(r == -EINVAL && c == (Config *)(uintptr_t)0x1, "many errors: -EINVAL, *ret untouched");
                is_int(e.n, ELEMENTSOF(want), "many errors: all reported in one load");
                for (size_t i = 0; i < ELEMENTSOF(want); i++)
                        if (i >= e.n || e.lines[i] != want[i].line || !has(e.messages[i], want[i].needle)) {
                                printf("# want line %u: %s\n", want[i].line, want[i].needle);
                                right = false;
                        }
                ok(right, "many errors: each on its line, in order");
                if (!right)
                        show_errors(&e);
        }

        /* The same for [remote], and the check between keys comes last, on its line. */
        {
                static const char text[] = "[remote]\n"                        /* 1 */
                                           "enabled = perhaps\n"               /* 2 */
                                           "table = x\n"                       /* 3 */
                                           "region = a.b\n"                    /* 4 */
                                           "endpoint = localhost:8000\n"       /* 5 */
                                           "ca_file = ./ca.pem\n"              /* 6 */
                                           "max_delay_ms = 10\n"               /* 7 */
                                           "max_in_flight = 1000\n"            /* 8 */
                                           "pull_interval_s = 1d\n"            /* 9 */
                                           "connect_timeout_ms = 0\n"          /* 10 */
                                           "request_timeout_ms = 9999999999\n" /* 11 */
                                           "token = secret\n"                  /* 12 */
                                           "[daemon]\n"                        /* 13 */
                                           "[remote]\n"                        /* 14 */
                                           "table = notebooks\n"               /* 15 */
                                           "debounce_ms = 20\n"                /* 16 */
                                           "enabled = no\n";                   /* 17 */
                static const struct {
                        unsigned line;
                        const char *needle;
                } want[] = {
                        { 2, "enabled" },
                        { 3, "table" },
                        { 4, "region" },
                        { 5, "endpoint" },
                        { 6, "ca_file" },
                        { 8, "max_in_flight" },
                        { 9, "pull_interval_s" },
                        { 10, "connect_timeout_ms" },
                        { 11, "request_timeout_ms" },
                        { 12, "unknown key 'token'" },
                        { 15, "already set on line 3" },
                        { 17, "already set on line 2" },
                        { 16, "max_delay_ms (10) must not be less than debounce_ms (20)" },
                };
                bool right = true;

                r = load(text, &e, &c);
                ok(r == -EINVAL && c == (Config *)(uintptr_t)0x1,
                   "many [remote] errors: -EINVAL, *ret untouched");
                is_int(e.n, ELEMENTSOF(want), "many [remote] errors: all reported in one load");
                for (size_t i = 0; i < ELEMENTSOF(want); i++)
                        if (i >= e.n || e.lines[i] != want[i].line || !has(e.messages[i], want[i].needle)) {
                                printf("# want line %u: %s\n", want[i].line, want[i].needle);
                                right = false;
                        }
                ok(right, "many [remote] errors: each on its line, the check between keys last");
                if (!right)
                        show_errors(&e);
        }
}

static void test_limits(void)
{
        size_t big = 1024 * 1024 + 1;
        char *text = malloc(big + 1024);
        Errors e;
        Config *c;
        int r;

        /* A comment line of exactly 64 KiB is fine; one byte more is not. */
        memset(text, '#', 65536);
        memcpy(text + 65536, "\n[daemon]\n", 11);
        r = load(text, &e, &c);
        is_int(r, 0, "line of 65536 bytes accepted");
        if (r == 0)
                config_free(c);

        memset(text, '#', 65537);
        memcpy(text + 65537, "\n[daemon]\nfoo = 1\n", 19);
        r = load(text, &e, &c);
        if (!ok(r == -EINVAL && e.n == 2 && e.lines[0] == 1 && has(e.messages[0], "longer than 65536") &&
                        e.lines[1] == 3,
                "line of 65537 bytes refused, parsing goes on"))
                show_errors(&e);

        /* A file of exactly 1 MiB is fine; one byte more is refused whole. */
        for (size_t i = 0; i < big; i += 1024) {
                memset(text + i, '#', 1023);
                text[i + 1023] = '\n';
        }
        r = load_n(text, big - 1, &e, &c);
        is_int(r, 0, "file of 1 MiB accepted");
        if (r == 0)
                config_free(c);
        r = load_n(text, big, &e, &c);
        if (!ok(r == -EINVAL && e.n == 1 && e.lines[0] == 0 && has(e.messages[0], "larger than 1 MiB"),
                "file of 1 MiB + 1 refused with one error on line 0"))
                show_errors(&e);

        r = load_n("[daemon]\nstate_dir = /a\0b\nfoo = 1\n", 34, &e, &c);
        if (!ok(r == -EINVAL && e.n == 2 && e.lines[0] == 2 && has(e.messages[0], "NUL") && e.lines[1] == 3,
                "NUL byte refused, parsing goes on"))
                show_errors(&e);

        free(text);
}

static void test_missing(void)
{
        Config *c = (Config *)(uintptr_t)0x1;
        Errors e = { .path_ok = true };
        char path[300];

        snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
        is_int(config_load(path, collect, &e, &c), -ENOENT, "missing file: -ENOENT");
        ok(e.n == 0 && c == (Config *)(uintptr_t)0x1, "missing file: nothing reported, *ret untouched");
        is_int(config_load(tmpdir, collect, &e, &c), -EISDIR, "directory: -EISDIR");
        ok(e.n == 0, "directory: nothing reported");
        snprintf(path, sizeof(path), "%s/fifo.conf", tmpdir);
        if (mkfifo(path, 0600) == 0) {
                is_int(config_load(path, collect, &e, &c), -EBADF,
                       "a FIFO: -EBADF, without waiting for a writer");
                unlink(path);
        }

        /* A NULL report function is allowed. */
        write_file("[nope]\n", 7);
        is_int(config_load(conf_path, NULL, NULL, &c), -EINVAL, "errors without a report function");
}

typedef struct Restarts {
        unsigned n;
        char keys[32][64];
} Restarts;

static void collect_restart(void *userdata, const char *key)
{
        Restarts *r = userdata;

        if (r->n < ELEMENTSOF(r->keys))
                snprintf(r->keys[r->n], sizeof(r->keys[r->n]), "%s", key);
        r->n++;
}

static bool restarts_has(const Restarts *r, const char *key)
{
        for (unsigned i = 0; i < r->n && i < ELEMENTSOF(r->keys); i++)
                if (streq(r->keys[i], key))
                        return true;
        return false;
}

static void test_metrics(void)
{
        static const char *const bad[] = {
                "localhost:9464", "127.0.0.1",        "127.0.0.1:",     "127.0.0.1:0",    "127.0.0.1:65536",
                "127.0.0.1:+80",  "127.0.0.1:80 ",    ":9464",          "::1:9464",       "[::1]9464",
                "[::1]:",         "[127.0.0.1]:9464", "300.1.2.3:9464", "[fe80::1%lo]:1",
        };
        struct sockaddr_storage ss;
        socklen_t len;
        Config *c = NULL;
        Errors e;
        int r;

        r = load("[metrics]\nlisten = 127.0.0.1:9464   # Prometheus\n", &e, &c);
        is_int(r, 0, "[metrics] listen loads");
        if (r == 0) {
                const struct sockaddr_in *sa = (const struct sockaddr_in *)&c->metrics.addr;

                is_str(c->metrics.listen, "127.0.0.1:9464", "listen: as written, comment cut");
                ok(sa->sin_family == AF_INET && ntohs(sa->sin_port) == 9464 &&
                           ntohl(sa->sin_addr.s_addr) == 0x7f000001 && c->metrics.addr_len == sizeof(*sa),
                   "listen: an IPv4 address and port");
                config_free(c);
        }
        r = load("[daemon]\n", &e, &c);
        ok(r == 0 && !c->metrics.listen, "no [metrics]: no listener");
        if (r == 0)
                config_free(c);
        ok(config_parse_listen("[::1]:65535", &ss, &len) == 0 && ss.ss_family == AF_INET6 &&
                   ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == 65535 &&
                   len == sizeof(struct sockaddr_in6),
           "listen: [::1]:65535");
        ok(config_parse_listen("0.0.0.0:1", &ss, &len) == 0 && ss.ss_family == AF_INET, "listen: 0.0.0.0:1");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                is_int(config_parse_listen(bad[i], &ss, &len), -EINVAL, "listen: '%s' is refused", bad[i]);

        r = load("[metrics]\nlisten = localhost:9464\n", &e, &c);
        ok(r == -EINVAL && e.n == 1 && e.lines[0] == 2 && strstr(e.messages[0], "listen must be") &&
                   strstr(e.messages[0], "'localhost:9464'"),
           "a host name: one error on its line, naming the key and the value");
        r = load("[metrics]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\nport = 3\nlisten =\n", &e, &c);
        ok(r == -EINVAL && e.n == 3 && strstr(e.messages[0], "listen is already set on line 2") &&
                   strstr(e.messages[1], "unknown key 'port' in section [metrics]") &&
                   strstr(e.messages[2], "already set"),
           "listen twice, an unknown key: each reported");
}

/* A reload: what applies live comes from the new file, the rest stays and is reported. */
static void test_carry_restart_settings(void)
{
        Config *cur = NULL, *next = NULL;
        Restarts rs = {};
        Errors e;
        int r;

        r = load("[daemon]\nstate_dir = /a\nsocket = /a/s\nlog_level = info\nadmin_group = 0\n"
                 "[users]\n1000 = alice\n[remote]\ntable = one\nendpoint = http://127.0.0.1:1\n",
                 &e, &cur);
        is_int(r, 0, "carry: the configuration in effect loads");
        r = load("[daemon]\nstate_dir = /b\nsocket = /a/s\ndurability = normal\nmax_line_bytes = 65536\n"
                 "log_level = debug\n[users]\n1000 = alice, bob\n1001 = carol\n"
                 "[remote]\ntable = two\nendpoint = http://127.0.0.1:1\ndebounce_ms = 0\n",
                 &e, &next);
        is_int(r, 0, "carry: the new file loads");
        if (!cur || !next || cur == (Config *)(uintptr_t)0x1 || next == (Config *)(uintptr_t)0x1)
                return;

        config_carry_restart_settings(next, cur, collect_restart, &rs);
        ok(restarts_has(&rs, "[daemon] state_dir") && restarts_has(&rs, "[daemon] durability") &&
                   restarts_has(&rs, "[daemon] max_line_bytes") &&
                   restarts_has(&rs, "[daemon] admin_group") && restarts_has(&rs, "[remote] table") &&
                   restarts_has(&rs, "[remote] debounce_ms"),
           "carry: every changed restart-only setting is reported");
        ok(!restarts_has(&rs, "[daemon] socket") && !restarts_has(&rs, "[remote] endpoint") &&
                   !restarts_has(&rs, "[remote]") && !restarts_has(&rs, "[daemon] log_level"),
           "carry: unchanged and live settings are not reported");
        is_int(rs.n, 6, "carry: six settings need a restart");
        ok(streq_ptr(next->state_dir, "/a") && next->durability_full &&
                   next->max_line_bytes == MAX_LINE_BYTES_DEFAULT && next->have_admin_gid &&
                   next->admin_gid == 0 && streq_ptr(next->remote.table, "one") &&
                   next->remote.debounce_usec == 500 * USEC_PER_MSEC,
           "carry: the result keeps the restart-only settings in effect");
        ok(next->log_level == LOG_DEBUG && next->n_bindings == 2 && next->bindings[0].n_user_ids == 2,
           "carry: the result has the new log level and [users]");
        ok(streq_ptr(cur->state_dir, "/b") && streq_ptr(cur->remote.table, "two") && !cur->durability_full,
           "carry: the old configuration is left with the new file's restart-only values");
        config_free(cur);
        config_free(next);

        /* [metrics] listen needs a restart. */
        r = load("[metrics]\nlisten = 127.0.0.1:1\n", &e, &cur);
        r = r ?: load("[metrics]\nlisten = 127.0.0.1:2\n", &e, &next);
        if (r == 0) {
                rs = (Restarts){};
                config_carry_restart_settings(next, cur, collect_restart, &rs);
                ok(rs.n == 1 && restarts_has(&rs, "[metrics] listen") &&
                           streq_ptr(next->metrics.listen, "127.0.0.1:1"),
                   "carry: a new [metrics] listen needs a restart, and is not taken");
                config_free(cur);
                config_free(next);
        }

        /* Adding [remote], and an identical file. */
        r = load("[users]\n1000 = a\n", &e, &cur);
        r = r ?: load("[users]\n1000 = b\n[remote]\n", &e, &next);
        is_int(r, 0, "carry: both load");
        if (r != 0)
                return;
        rs = (Restarts){};
        config_carry_restart_settings(next, cur, collect_restart, &rs);
        ok(rs.n == 1 && restarts_has(&rs, "[remote]"), "carry: a new [remote] section needs a restart");
        ok(!next->remote.present, "carry: and is not taken");
        config_free(cur);
        config_free(next);

        /* A [remote] that is off on both sides: its keys change nothing. */
        r = load("[remote]\nenabled = no\ntable = one\n", &e, &cur);
        r = r ?: load("[remote]\nenabled = no\ntable = two\n", &e, &next);
        if (r == 0) {
                rs = (Restarts){};
                config_carry_restart_settings(next, cur, collect_restart, &rs);
                is_int(rs.n, 0, "carry: keys of a [remote] that is off on both sides are not reported");
                config_free(cur);
                config_free(next);
        }

        r = load("[daemon]\nsocket = /s\n", &e, &cur);
        r = r ?: load("[daemon]\nsocket = /s\n", &e, &next);
        if (r == 0) {
                rs = (Restarts){};
                config_carry_restart_settings(next, cur, collect_restart, &rs);
                is_int(rs.n, 0, "carry: the same file reports nothing");
                config_carry_restart_settings(next, cur, NULL, NULL);
                ok(streq_ptr(next->socket_path, "/s"), "carry: report may be NULL");
                config_free(cur);
                config_free(next);
        }
}

int main(void)
{
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 99;
        }
        snprintf(conf_path, sizeof(conf_path), "%s/notebookd.conf", tmpdir);

        test_defaults();
        test_valid();
        test_remote();
        test_errors();
        test_limits();
        test_missing();
        test_carry_restart_settings();
        test_metrics();

        unlink(conf_path);
        rmdir(tmpdir);
        return tap_done();
}
