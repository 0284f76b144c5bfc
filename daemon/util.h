/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers shared by every module: automatic cleanup, ownership hand-over, time. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _fallthrough_  __attribute__((fallthrough))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* free(p), then NULL: for p = mfree(p). */
static inline void *mfree(void *p)
{
        free(p);
        return NULL;
}
#define _warn_unused_ __attribute__((warn_unused_result))

#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Hand ownership of *p to the caller and leave NULL behind, so the cleanup handler does nothing. */
#define TAKE_PTR(p)                       \
        ({                                \
                __typeof__(p) _tp_ = (p); \
                (p) = NULL;               \
                _tp_;                     \
        })

#define TAKE_FD(fd)              \
        ({                       \
                int _tf_ = (fd); \
                (fd) = -1;       \
                _tf_;            \
        })

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                *fd = -1;
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

static inline bool startswith(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define USEC_PER_SEC  ((uint64_t)1000000)
#define USEC_PER_MSEC ((uint64_t)1000)

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);

/* Formats a realtime timestamp as ISO 8601 UTC with milliseconds, e.g. 2025-12-31T09:55:00.123Z.
 * buf must hold at least TIMESTAMP_MAX bytes. */
#define TIMESTAMP_MAX 32
char *format_timestamp(char buf[static TIMESTAMP_MAX], uint64_t usec);
/* Reads what format_timestamp() writes: 0, or -EINVAL for anything else. */
int parse_timestamp(const char *s, uint64_t *ret_usec);

/* A random number below n (0 when n is 0), for backoff jitter: not for secrets. */
uint64_t random_below(uint64_t n);
/* Writes a random RFC 4122 version 4 UUID (36 characters and a NUL) into buf. */
#define UUID_STRING_MAX 37
int uuid_v4_string(char buf[static UUID_STRING_MAX]);

/* Validates UTF-8 strictly (no overlongs, no surrogates, nothing above U+10FFFF). */
bool utf8_is_valid(const char *s, size_t n);

/* Parses a whole decimal unsigned number; -EINVAL for anything else, -ERANGE on overflow. */
int parse_uint64(const char *s, uint64_t *ret);

int mkdir_parents(const char *path, mode_t mode);

/* Reads a whole file of at most max bytes: -EFBIG when larger, -EISDIR for a directory, -EBADF
 * for anything but a regular file or a character device (a FIFO would block the caller). *ret is
 * NUL-terminated; *ret_size (may be NULL) its length. Buffers given up on the way are wiped: the
 * file may hold a secret. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* A growing string, always NUL-terminated. A failed allocation is remembered (oom) and checked once,
 * when the string is used. */
typedef struct Buf {
        char *p;
        size_t len, alloc;
        bool oom;
} Buf;
void buf_put(Buf *b, const char *s, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_putc(Buf *b, char c);
/* The string, "" for one never written to, or NULL after a failed allocation. */
const char *buf_str(const Buf *b);
void buf_done(Buf *b);

/* $var/leaf when var names an absolute directory, else $HOME/fallback/leaf (fallback may be NULL:
 * no fallback); NULL when neither applies or on OOM. For the XDG base directories. */
char *xdg_dir_path(const char *var, const char *fallback, const char *leaf);

/* A hash map from strings (copied) to pointers (not owned), for lookups that must stay constant
 * time however many entries there are. Open addressing with linear probing; removal shifts the
 * run back, so no tombstones accumulate. */
typedef struct StrMap {
        struct StrMapEntry {
                char *key;
                void *value;
        } * entries;
        size_t size, used;
} StrMap;
/* 0 added, 1 replaced an existing key's value, -ENOMEM. */
int strmap_put(StrMap *m, const char *key, void *value);
void *strmap_get(const StrMap *m, const char *key);
/* The value that was there, or NULL. */
void *strmap_remove(StrMap *m, const char *key);
void strmap_done(StrMap *m);

/* At most one event per interval passes (a log line, say); the others are counted. */
typedef struct RateLimit {
        uint64_t last; /* monotonic µs of the last one that passed, 0: none yet */
        unsigned suppressed;
} RateLimit;
/* Whether this one passes; if so, *ret_suppressed is how many were held back since the last. */
bool ratelimit_pass(RateLimit *rl, uint64_t interval_usec, unsigned *ret_suppressed);
