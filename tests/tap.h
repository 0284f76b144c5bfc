/* SPDX-License-Identifier: MIT */
#pragma once

/* Minimal TAP producer for the unit tests: ok()/is_int()/is_str() print one test point each and
 * tap_done() prints the plan and returns the exit status. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
        va_list ap;

        tap_count++;
        printf("%sok %d - ", cond ? "" : "not ", tap_count);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        if (!cond) {
                tap_failed++;
                printf("#   Failed at %s:%d\n", file, line);
        }
        fflush(stdout);
        return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                             \
        ({                                                                 \
                long long _g_ = (long long)(got), _w_ = (long long)(want); \
                int _r_ = ok(_g_ == _w_, __VA_ARGS__);                     \
                if (!_r_)                                                  \
                        printf("#   got %lld, want %lld\n", _g_, _w_);     \
                _r_;                                                       \
        })

#define is_str(got, want, ...)                                                        \
        ({                                                                            \
                const char *_g_ = (got), *_w_ = (want);                               \
                int _r_ = ok(_g_ && _w_ && strcmp(_g_, _w_) == 0, __VA_ARGS__);       \
                if (!_r_)                                                             \
                        printf("#   got \"%s\", want \"%s\"\n", _g_ ? _g_ : "(null)", \
                               _w_ ? _w_ : "(null)");                                 \
                _r_;                                                                  \
        })

static inline void tap_diag(const char *msg)
{
        printf("# %s\n", msg);
}

static inline int tap_done(void)
{
        printf("1..%d\n", tap_count);
        return tap_failed ? 1 : 0;
}
