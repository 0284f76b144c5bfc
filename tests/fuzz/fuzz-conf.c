/* SPDX-License-Identifier: MIT */
/* Writes the input to a file and loads it as notebookd.conf: every load either succeeds without a
 * report or fails with at least one, and what it loads obeys the documented limits. */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"
#include "nb-limits.h"
#include "util.h"

typedef struct Reports {
        unsigned n;
        unsigned max_line;
        const char *path;
} Reports;

static void on_error(void *userdata, const char *path, unsigned line, const char *message)
{
        Reports *r = userdata;

        fuzz_check(streq(path, r->path));
        fuzz_check(line <= r->max_line);
        fuzz_check(message && *message);
        r->n++;
}

static char conf_path[] = "/tmp/fuzz-conf-XXXXXX";

static void remove_conf(void)
{
        unlink(conf_path);
}

/* Letters, digits and the characters in extra only. */
static bool only(const char *s, const char *extra)
{
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr(extra, *s)))
                        return false;
        return true;
}

static void fuzz_check_remote(const RemoteConfig *r)
{
        size_t n;

        fuzz_check(r->table);
        n = strlen(r->table);
        fuzz_check(n >= 3 && n <= 255 && only(r->table, "_.-"));
        fuzz_check(!r->region || (*r->region && strlen(r->region) <= 64 && only(r->region, "-")));
        if (r->endpoint) {
                const char *host = strncmp(r->endpoint, "http://", 7) == 0    ? r->endpoint + 7
                                   : strncmp(r->endpoint, "https://", 8) == 0 ? r->endpoint + 8
                                                                              : NULL;

                fuzz_check(host && *host && *host != '/' && strlen(r->endpoint) <= 1024);
                fuzz_check(!memchr(host, '@', strcspn(host, "/")));
                for (const char *s = r->endpoint; *s; s++)
                        fuzz_check((unsigned char)*s > ' ' && *s != 0x7f && *s != '?' && *s != '#');
        }
        fuzz_check(!r->ca_file || r->ca_file[0] == '/');
        fuzz_check(r->enabled || r->present); /* only the section can turn it off */
        fuzz_check(r->debounce_usec <= 600000 * USEC_PER_MSEC && r->debounce_usec % USEC_PER_MSEC == 0);
        fuzz_check(r->max_delay_usec >= r->debounce_usec && r->max_delay_usec <= 3600000 * USEC_PER_MSEC);
        fuzz_check(r->max_in_flight >= 1 && r->max_in_flight <= 256);
        fuzz_check(r->pull_interval_usec <= 86400 * USEC_PER_SEC &&
                   r->pull_interval_usec % USEC_PER_SEC == 0);
        fuzz_check(r->connect_timeout_usec >= 100 * USEC_PER_MSEC &&
                   r->connect_timeout_usec <= 600000 * USEC_PER_MSEC);
        fuzz_check(r->request_timeout_usec >= 100 * USEC_PER_MSEC &&
                   r->request_timeout_usec <= 3600000 * USEC_PER_MSEC);
}

static void check_config(const Config *c)
{
        fuzz_check(!c->state_dir || c->state_dir[0] == '/');
        fuzz_check(!c->socket_path || c->socket_path[0] == '/');
        fuzz_check(c->max_line_bytes >= MAX_LINE_BYTES_MIN && c->max_line_bytes <= 1024u * 1024 * 1024);
        fuzz_check(c->log_level >= -1 && c->log_level <= 7);
        fuzz_check_remote(&c->remote);
        for (size_t i = 0; i < c->n_bindings; i++) {
                const UserBinding *b = &c->bindings[i];

                fuzz_check(config_find_uid(c, b->uid) == b); /* no uid twice */
                fuzz_check(b->n_user_ids > 0);
                for (size_t k = 0; k < b->n_user_ids; k++) {
                        size_t len = strlen(b->user_ids[k]);
                        fuzz_check(len > 0 && len <= MAX_USER_ID_BYTES && !strchr(b->user_ids[k], '/'));
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int fd = -1;
        Reports reports = { .path = conf_path, .max_line = 1 };
        Config *c = NULL;
        int r;

        if (fd < 0) {
                fd = mkstemp(conf_path);
                fuzz_check(fd >= 0);
                atexit(remove_conf);
        }
        fuzz_check(ftruncate(fd, 0) == 0);
        fuzz_check(pwrite(fd, data, size, 0) == (ssize_t)size);
        for (size_t i = 0; i < size; i++)
                reports.max_line += data[i] == '\n';

        r = config_load(conf_path, on_error, &reports, &c);
        if (r == 0) {
                fuzz_check(reports.n == 0 && c);
                check_config(c);
                config_free(c);
        } else {
                fuzz_check(r == -EINVAL && reports.n > 0 && !c);
        }
        return 0;
}
