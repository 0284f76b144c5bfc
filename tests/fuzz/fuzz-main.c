/* SPDX-License-Identifier: MIT */
/* Runs a fuzz target without libFuzzer: NB_FUZZ_ITERATIONS (default 2000) inputs made from a
 * fixed seed, as TAP, one test point per batch. Files given as arguments are run instead, one
 * test point each, to replay a crash. The same inputs every run, so a failure can be reproduced;
 * NB_FUZZ_SEED picks other ones. */

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define FUZZ_BATCH     100
#define FUZZ_MAX_INPUT (64u * 1024)
#define FUZZ_SEED      UINT64_C(0x6e6f7465626f6f6b) /* "notebook" */

void fuzz_fail(const char *file, int line, const char *what)
{
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
        abort();
}

#ifndef NB_LIBFUZZER

/* UBSan only prints and goes on by default; a fuzz run must stop at the first finding. Both
 * sanitizers abort() rather than exit, so that on_abort() saves the input. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
        return "halt_on_error=1:abort_on_error=1:print_stacktrace=1";
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
        return "abort_on_error=1";
}

static uint64_t rng_state;

static uint64_t rng(void)
{
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static size_t rng_below(size_t n)
{
        return n ? (size_t)(rng() % n) : 0;
}

/* The input being run, written out if the target aborts, so it can be replayed. */
static const uint8_t *current;
static size_t current_size;
static char crash_path[64];

static void on_abort(int sig)
{
        int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        if (fd >= 0) {
                (void)!write(fd, current, current_size);
                close(fd);
                (void)!write(STDOUT_FILENO, "# input saved in ", 17);
                (void)!write(STDOUT_FILENO, crash_path, strlen(crash_path));
                (void)!write(STDOUT_FILENO, "\n", 1);
        }
        signal(sig, SIG_DFL);
        raise(sig);
}

static size_t count_strings(const char *const *v)
{
        size_t n = 0;

        while (v[n])
                n++;
        return n;
}

static const uint8_t interesting[] = { 0x00, '\n', '\r', ' ',  '\t', '"',  '\\', '[',  ']',  '{',
                                       '}',  '#',  ';',  '=',  ',',  '/',  'u',  '0',  0x7f, 0x80,
                                       0xbf, 0xc0, 0xc2, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };

/* Inserts n bytes at pos, within FUZZ_MAX_INPUT. */
static void insert(uint8_t *buf, size_t *size, size_t pos, const void *p, size_t n)
{
        if (*size + n > FUZZ_MAX_INPUT)
                n = FUZZ_MAX_INPUT - *size;
        memmove(buf + pos + n, buf + pos, *size - pos);
        memcpy(buf + pos, p, n);
        *size += n;
}

static void mutate(uint8_t *buf, size_t *size)
{
        size_t n_dict = count_strings(fuzz_dictionary), n_seeds = count_strings(fuzz_seeds);
        size_t pos = rng_below(*size + 1), len;
        uint8_t b;

        switch (rng_below(10)) {
        case 0: /* flip a bit */
                if (*size)
                        buf[rng_below(*size)] ^= (uint8_t)(1u << rng_below(8));
                break;
        case 1: /* set a byte to something that matters to a parser */
                if (*size)
                        buf[rng_below(*size)] = interesting[rng_below(sizeof(interesting))];
                break;
        case 2: /* insert a random byte */
                b = (uint8_t)rng();
                insert(buf, size, pos, &b, 1);
                break;
        case 3: /* insert a dictionary word */
                if (n_dict) {
                        const char *w = fuzz_dictionary[rng_below(n_dict)];
                        insert(buf, size, pos, w, strlen(w));
                }
                break;
        case 4: /* delete a range */
                len = rng_below(*size - pos + 1);
                if (rng_below(4))
                        len = len % 8;
                memmove(buf + pos, buf + pos + len, *size - pos - len);
                *size -= len;
                break;
        case 5: /* duplicate a range, many times (long lines, deep nesting) */
                if (*size) {
                        size_t from = rng_below(*size), times = 1 + rng_below(rng_below(4) ? 4 : 512);
                        uint8_t copy[64];

                        len = 1 + rng_below(*size - from < sizeof(copy) ? *size - from : sizeof(copy));
                        memcpy(copy, buf + from, len);
                        while (times-- > 0 && *size < FUZZ_MAX_INPUT)
                                insert(buf, size, pos, copy, len);
                }
                break;
        case 6: /* splice in part of a seed */
                if (n_seeds) {
                        const char *s = fuzz_seeds[rng_below(n_seeds)];
                        size_t from = rng_below(strlen(s) + 1);
                        insert(buf, size, pos, s + from, rng_below(strlen(s) - from + 1));
                }
                break;
        case 7: /* a run of one byte, up to a few KiB (long lines) */
        {
                static uint8_t run[8192];

                len = rng_below(rng_below(4) ? 64 : sizeof(run));
                memset(run, rng_below(2) ? 'x' : interesting[rng_below(sizeof(interesting))], len);
                insert(buf, size, pos, run, len);
        } break;
        case 8: /* truncate */
                *size = pos;
                break;
        default: /* swap two bytes */
                if (*size >= 2) {
                        size_t i = rng_below(*size), k = rng_below(*size);
                        b = buf[i];
                        buf[i] = buf[k];
                        buf[k] = b;
                }
                break;
        }
}

/* One input: usually a seed mutated a few times, sometimes bytes from a small alphabet. */
static void generate(uint8_t *buf, size_t *size)
{
        size_t n_seeds = count_strings(fuzz_seeds);

        if (n_seeds == 0 || rng_below(5) == 0) {
                static const char alphabet[] = "[]{}\"\\u0 \r\n\t#;=,/az19\xc3\xa9";
                *size = rng_below(rng_below(8) ? 256 : 8192);
                for (size_t i = 0; i < *size; i++)
                        buf[i] = rng_below(4) ? (uint8_t)alphabet[rng_below(sizeof(alphabet) - 1)]
                                              : (uint8_t)rng();
                return;
        }

        const char *seed = fuzz_seeds[rng_below(n_seeds)];
        *size = strlen(seed);
        if (*size > FUZZ_MAX_INPUT)
                *size = FUZZ_MAX_INPUT;
        memcpy(buf, seed, *size);
        for (size_t n = rng_below(8); n > 0; n--)
                mutate(buf, size);
}

static int run_files(const char *name, int argc, char **argv)
{
        printf("1..%d\n", argc - 1);
        fflush(stdout);
        for (int i = 1; i < argc; i++) {
                static uint8_t buf[16u * 1024 * 1024];
                int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
                ssize_t n = 0, k = 0;

                while (fd >= 0 && (size_t)n < sizeof(buf) &&
                       (k = read(fd, buf + n, sizeof(buf) - (size_t)n)) > 0)
                        n += k;
                if (fd >= 0)
                        close(fd);
                if (fd < 0 || k < 0) {
                        printf("not ok %d - %s: cannot read %s\n", i, name, argv[i]);
                        continue;
                }
                current = buf;
                current_size = (size_t)n;
                printf("%sok %d - %s %s\n", LLVMFuzzerTestOneInput(buf, (size_t)n) == 0 ? "" : "not ", i,
                       name, argv[i]);
                fflush(stdout);
        }
        return 0;
}

int main(int argc, char **argv)
{
        static uint8_t buf[FUZZ_MAX_INPUT];
        const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        const char *e = getenv("NB_FUZZ_ITERATIONS");
        unsigned long iterations = e ? strtoul(e, NULL, 10) : 2000, batches;
        int failed = 0;

        snprintf(crash_path, sizeof(crash_path), "crash-%.40s.bin", name);
        signal(SIGABRT, on_abort);

        if (argc > 1)
                return run_files(name, argc, argv);

        e = getenv("NB_FUZZ_SEED");
        rng_state = e ? strtoull(e, NULL, 0) : FUZZ_SEED;
        if (rng_state == 0)
                rng_state = FUZZ_SEED;

        batches = (iterations + FUZZ_BATCH - 1) / FUZZ_BATCH;
        printf("1..%lu\n", batches);
        fflush(stdout);
        for (unsigned long b = 0; b < batches; b++) {
                unsigned long first = b * FUZZ_BATCH, last = first + FUZZ_BATCH;
                int bad = 0;

                if (last > iterations)
                        last = iterations;
                for (unsigned long i = first; i < last; i++) {
                        generate(buf, &current_size);
                        current = buf;
                        if (LLVMFuzzerTestOneInput(buf, current_size) != 0)
                                bad++;
                }
                failed += bad > 0;
                printf("%sok %lu - %s: inputs %lu to %lu\n", bad ? "not " : "", b + 1, name, first + 1,
                       last);
                fflush(stdout);
        }
        return failed ? 1 : 0;
}

#endif
