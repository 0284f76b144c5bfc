/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

static uint64_t clock_usec(clockid_t id)
{
        struct timespec ts;

        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_realtime_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

uint64_t now_monotonic_usec(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}

char *format_timestamp(char buf[static TIMESTAMP_MAX], uint64_t usec)
{
        time_t sec = (time_t)(usec / USEC_PER_SEC);
        struct tm tm;

        gmtime_r(&sec, &tm);
        size_t n;

        n = strftime(buf, TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, TIMESTAMP_MAX - n, ".%03uZ", (unsigned)(usec % USEC_PER_SEC / 1000) % 1000u);
        return buf;
}

int parse_timestamp(const char *s, uint64_t *ret_usec)
{
        struct tm tm = {};
        unsigned ms;
        int n = 0;
        time_t t;

        if (!s ||
            sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
            n != 24 || s[n] || tm.tm_year < 1970 || ms > 999)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret_usec = (uint64_t)t * USEC_PER_SEC + ms * USEC_PER_MSEC;
        return 0;
}

int uuid_v4_string(char buf[static UUID_STRING_MAX])
{
        uint8_t b[16];
        size_t got = 0;

        while (got < sizeof(b)) {
                ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)n;
        }
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
        snprintf(buf, UUID_STRING_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}

bool utf8_is_valid(const char *str, size_t n)
{
        const uint8_t *s = (const uint8_t *)str;
        size_t i = 0;

        while (i < n) {
                uint8_t c = s[i];
                uint32_t cp;
                size_t len;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        cp = c & 0x07;
                } else
                        return false;
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                /* Reject overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
                if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

int parse_uint64(const char *s, uint64_t *ret)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        *ret = v;
        return 0;
}

int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

char *xdg_dir_path(const char *var, const char *fallback, const char *leaf)
{
        const char *base = getenv(var), *home = getenv("HOME");
        char *p = NULL;

        if (base && base[0] == '/')
                return asprintf(&p, "%s/%s", base, leaf) < 0 ? NULL : p;
        if (fallback && home && home[0] == '/')
                return asprintf(&p, "%s/%s/%s", home, fallback, leaf) < 0 ? NULL : p;
        return NULL;
}

void buf_put(Buf *b, const char *s, size_t n)
{
        if (b->oom)
                return;
        if (b->len + n + 1 > b->alloc) {
                size_t want = MAX(b->alloc * 2, b->len + n + 64);
                char *p = realloc(b->p, want);

                if (!p) {
                        b->oom = true;
                        return;
                }
                b->p = p;
                b->alloc = want;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

void buf_puts(Buf *b, const char *s)
{
        buf_put(b, s, strlen(s));
}

void buf_putc(Buf *b, char c)
{
        buf_put(b, &c, 1);
}

const char *buf_str(const Buf *b)
{
        return b->oom ? NULL : b->p ? b->p : "";
}

void buf_done(Buf *b)
{
        free(b->p);
        *b = (Buf){ 0 };
}

static void wipe_free(char *p, size_t n)
{
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        char *buf = NULL;
        size_t size = 0, alloc = 0;
        struct stat st;
        int r = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
                return -EBADF;
        for (;;) {
                ssize_t n;

                if (size == alloc) {
                        /* One byte past the limit tells a file at the limit from a bigger one. */
                        size_t m = MIN(alloc ? alloc * 2 : 4096, max + 1);
                        char *grown;

                        if (m == alloc) {
                                r = -EFBIG;
                                break;
                        }
                        grown = malloc(m + 1);
                        if (!grown) {
                                r = -ENOMEM;
                                break;
                        }
                        if (buf)
                                memcpy(grown, buf, size);
                        wipe_free(buf, alloc);
                        buf = grown;
                        alloc = m;
                }
                n = read(fd, buf + size, alloc - size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                size += (size_t)n;
        }
        if (r == 0 && size > max)
                r = -EFBIG;
        if (r < 0) {
                wipe_free(buf, alloc);
                return r;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[size] = 0;
        *ret = buf;
        if (ret_size)
                *ret_size = size;
        return 0;
}

static size_t strmap_hash(const char *key)
{
        /* FNV-1a: short keys, no adversary with a say in them beyond what their owner may name. */
        uint64_t h = 14695981039346656037u;

        for (const unsigned char *p = (const unsigned char *)key; *p; p++)
                h = (h ^ *p) * 1099511628211u;
        return (size_t)h;
}

static struct StrMapEntry *strmap_slot(const StrMap *m, const char *key)
{
        size_t i = strmap_hash(key) & (m->size - 1);

        while (m->entries[i].key && !streq(m->entries[i].key, key))
                i = (i + 1) & (m->size - 1);
        return &m->entries[i];
}

static int strmap_grow(StrMap *m)
{
        StrMap n = { .size = m->size ? m->size * 2 : 16 };

        n.entries = calloc(n.size, sizeof(*n.entries));
        if (!n.entries)
                return -ENOMEM;
        for (size_t i = 0; i < m->size; i++)
                if (m->entries[i].key)
                        *strmap_slot(&n, m->entries[i].key) = m->entries[i];
        n.used = m->used;
        free(m->entries);
        *m = n;
        return 0;
}

int strmap_put(StrMap *m, const char *key, void *value)
{
        struct StrMapEntry *e;

        if ((m->used + 1) * 2 > m->size && strmap_grow(m) < 0)
                return -ENOMEM;
        e = strmap_slot(m, key);
        if (e->key) {
                e->value = value;
                return 1;
        }
        e->key = strdup(key);
        if (!e->key)
                return -ENOMEM;
        e->value = value;
        m->used++;
        return 0;
}

void *strmap_get(const StrMap *m, const char *key)
{
        return m->size ? strmap_slot(m, key)->value : NULL;
}

void *strmap_remove(StrMap *m, const char *key)
{
        struct StrMapEntry *e;
        size_t i, j;
        void *value;

        if (!m->size)
                return NULL;
        e = strmap_slot(m, key);
        if (!e->key)
                return NULL;
        value = e->value;
        free(e->key);
        *e = (struct StrMapEntry){ 0 };
        m->used--;
        /* Move back every entry of the run after the hole that may no longer be found past it. */
        i = (size_t)(e - m->entries);
        for (j = (i + 1) & (m->size - 1); m->entries[j].key; j = (j + 1) & (m->size - 1)) {
                size_t home = strmap_hash(m->entries[j].key) & (m->size - 1);

                /* Entry j stays if its home lies cyclically in (i, j]. */
                if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                        continue;
                m->entries[i] = m->entries[j];
                m->entries[j] = (struct StrMapEntry){ 0 };
                i = j;
        }
        return value;
}

void strmap_done(StrMap *m)
{
        for (size_t i = 0; i < m->size; i++)
                free(m->entries[i].key);
        free(m->entries);
        *m = (StrMap){ 0 };
}

bool ratelimit_pass(RateLimit *rl, uint64_t interval_usec, unsigned *ret_suppressed)
{
        uint64_t now = now_monotonic_usec();

        if (rl->last != 0 && now - rl->last < interval_usec) {
                rl->suppressed++;
                return false;
        }
        rl->last = now;
        *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}

uint64_t random_below(uint64_t n)
{
        uint64_t r = 0;

        if (n == 0)
                return 0;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
                r = now_monotonic_usec() * 2654435761u;
        return r % n;
}
