/* SPDX-License-Identifier: MIT */
/* Runs a fuzz target without libFuzzer, as TAP: first every file of the target's corpus, one test
 * point each (the seeds, and the inputs that once found a bug), then NB_FUZZ_ITERATIONS (default
 * 2000) inputs made from a fixed seed, one test point per batch. Files given as arguments are run
 * instead, one test point each, to replay a crash. The same inputs every run, so a failure can be
 * reproduced; NB_FUZZ_SEED picks other ones.
 *
 * The corpus is NB_FUZZ_CORPUS, else $NB_SRCDIR/tests/fuzz/corpus/NAME (make check sets NB_SRCDIR);
 * the dictionary NB_FUZZ_DICT, else $NB_SRCDIR/tests/fuzz/NAME.dict, in libFuzzer's format: the
 * same files libFuzzer starts from (make fuzz). The corpus files are the seeds the inputs are
 * mutated from, the dictionary's words are spliced in. With neither variable set (the binary run
 * by hand) inputs are made from a small alphabet only. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
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

/* An input to start from, or a fragment to splice in; may hold NUL bytes. */
typedef struct Word {
        const uint8_t *p;
        size_t n;
} Word;

typedef struct Words {
        Word *v;
        size_t n, alloc;
} Words;

static Words seeds, dictionary;

static void words_add(Words *w, const void *p, size_t n)
{
        if (w->n == w->alloc) {
                w->alloc = w->alloc ? w->alloc * 2 : 64;
                w->v = realloc(w->v, w->alloc * sizeof(*w->v));
                if (!w->v)
                        abort();
        }
        w->v[w->n++] = (Word){ p, n };
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
                if (dictionary.n) {
                        const Word *w = &dictionary.v[rng_below(dictionary.n)];
                        insert(buf, size, pos, w->p, w->n);
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
                if (seeds.n) {
                        const Word *s = &seeds.v[rng_below(seeds.n)];
                        size_t from = rng_below(s->n + 1);
                        insert(buf, size, pos, s->p + from, rng_below(s->n - from + 1));
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
        const Word *seed;

        if (seeds.n == 0 || rng_below(5) == 0) {
                static const char alphabet[] = "[]{}\"\\u0 \r\n\t#;=,/az19\xc3\xa9";
                *size = rng_below(rng_below(8) ? 256 : 8192);
                for (size_t i = 0; i < *size; i++)
                        buf[i] = rng_below(4) ? (uint8_t)alphabet[rng_below(sizeof(alphabet) - 1)]
                                              : (uint8_t)rng();
                return;
        }

        seed = &seeds.v[rng_below(seeds.n)];
        *size = seed->n < FUZZ_MAX_INPUT ? seed->n : FUZZ_MAX_INPUT;
        memcpy(buf, seed->p, *size);
        for (size_t n = rng_below(8); n > 0; n--)
                mutate(buf, size);
}

/* The whole file, in a new buffer (one more byte than its size, for a NUL). */
static int read_input(const char *path, uint8_t **ret, size_t *ret_size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t n = 0, alloc = 4096;
        uint8_t *buf = NULL;
        ssize_t k;

        if (fd < 0)
                return -errno;
        for (;;) {
                uint8_t *p = n + 1 >= alloc || !buf ? realloc(buf, alloc *= 2) : buf;

                if (!p) {
                        free(buf);
                        close(fd);
                        return -ENOMEM;
                }
                buf = p;
                k = read(fd, buf + n, alloc - n - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        k = k < 0 ? -errno : 0;
        close(fd);
        if (k < 0) {
                free(buf);
                return (int)k;
        }
        buf[n] = 0;
        *ret = buf;
        *ret_size = n;
        return 0;
}

static int hex_digit(char c)
{
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
}

/* A libFuzzer dictionary: one entry a line, [name=]"value" with \\, \" and \xNN escapes; blank
 * lines and # comments. Returns 0, or the number of the first bad line (-1: unreadable). */
static long dict_load(const char *path, Words *w)
{
        static uint8_t *text; /* the words point into it: kept for good */
        size_t size;
        long line = 0;
        char *p, *next;

        if (read_input(path, &text, &size) < 0)
                return -1;
        for (p = (char *)text; p; p = next) {
                uint8_t *out;
                size_t n = 0;

                line++;
                next = strchr(p, '\n');
                if (next)
                        *next++ = 0;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p || *p == '#')
                        continue;
                while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                       *p == '_')
                        p++;
                if (*p == '=')
                        p++;
                if (*p++ != '"')
                        return line;
                /* Unescaping only shortens: the value is written over the text it came from. */
                out = (uint8_t *)p;
                for (; *p && *p != '"'; p++) {
                        if (*p != '\\') {
                                out[n++] = (uint8_t)*p;
                                continue;
                        }
                        p++;
                        if (*p == '\\' || *p == '"')
                                out[n++] = (uint8_t)*p;
                        else if (*p == 'x' && hex_digit(p[1]) >= 0 && hex_digit(p[2]) >= 0) {
                                out[n++] = (uint8_t)(hex_digit(p[1]) * 16 + hex_digit(p[2]));
                                p += 2;
                        } else
                                return line;
                }
                if (*p != '"')
                        return line;
                for (p++; *p == ' ' || *p == '\t' || *p == '\r'; p++)
                        ;
                if (*p)
                        return line;
                words_add(w, out, n);
        }
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of a directory, sorted, as "dir/name". -errno if it cannot be read. */
static int corpus_list(const char *dir, char ***ret, size_t *ret_n)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        char **v = NULL;
        size_t n = 0;

        if (!d)
                return -errno;
        while ((e = readdir(d))) {
                struct stat st;
                char *path;

                if (e->d_name[0] == '.')
                        continue;
                if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
                        abort();
                if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
                        free(path);
                        continue;
                }
                v = realloc(v, (n + 1) * sizeof(*v));
                if (!v)
                        abort();
                v[n++] = path;
        }
        closedir(d);
        if (n > 0)
                qsort(v, n, sizeof(*v), name_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* Runs one file as a test point; with keep, it becomes a seed as well. */
static void run_file(const char *name, unsigned long point, const char *path, bool keep)
{
        uint8_t *buf;
        size_t n;

        if (read_input(path, &buf, &n) < 0) {
                printf("not ok %lu - %s: cannot read %s\n", point, name, path);
                fflush(stdout);
                return;
        }
        current = buf;
        current_size = n;
        printf("%sok %lu - %s %s\n", LLVMFuzzerTestOneInput(buf, n) == 0 ? "" : "not ", point, name, path);
        fflush(stdout);
        if (keep)
                words_add(&seeds, buf, n);
        else
                free(buf);
}

/* $var, else $NB_SRCDIR/tests/fuzz/leaf; NULL when neither is set. */
static char *input_path(const char *var, const char *leaf)
{
        const char *v = getenv(var), *src = getenv("NB_SRCDIR");
        char *path;

        if (v && *v)
                return strdup(v);
        if (!src || !*src)
                return NULL;
        if (asprintf(&path, "%s/tests/fuzz/%s", src, leaf) < 0)
                abort();
        return path;
}

int main(int argc, char **argv)
{
        static uint8_t buf[FUZZ_MAX_INPUT];
        const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        const char *e = getenv("NB_FUZZ_ITERATIONS");
        unsigned long iterations = e ? strtoul(e, NULL, 10) : 2000, batches, point = 0;
        char leaf[128], *corpus_dir, *dict_path, **files = NULL;
        size_t n_files = 0;
        int corpus_error = 0, failed = 0;

        snprintf(crash_path, sizeof(crash_path), "crash-%.40s.bin", name);
        signal(SIGABRT, on_abort);

        if (argc > 1) {
                printf("1..%d\n", argc - 1);
                for (int i = 1; i < argc; i++)
                        run_file(name, (unsigned long)i, argv[i], false);
                return 0;
        }

        e = getenv("NB_FUZZ_SEED");
        rng_state = e ? strtoull(e, NULL, 0) : FUZZ_SEED;
        if (rng_state == 0)
                rng_state = FUZZ_SEED;

        snprintf(leaf, sizeof(leaf), "corpus/%.100s", name);
        corpus_dir = input_path("NB_FUZZ_CORPUS", leaf);
        snprintf(leaf, sizeof(leaf), "%.100s.dict", name);
        dict_path = input_path("NB_FUZZ_DICT", leaf);
        if (corpus_dir)
                corpus_error = corpus_list(corpus_dir, &files, &n_files);

        batches = (iterations + FUZZ_BATCH - 1) / FUZZ_BATCH;
        printf("1..%lu\n", batches + !!dict_path + (corpus_error < 0 ? 1 : n_files));
        if (!corpus_dir)
                printf("# no corpus and no dictionary file: NB_SRCDIR is not set\n");
        fflush(stdout);

        if (dict_path) {
                long line = dict_load(dict_path, &dictionary);

                if (line == 0)
                        printf("ok %lu - %s: dictionary %s\n", ++point, name, dict_path);
                else if (line < 0)
                        printf("not ok %lu - %s: cannot read the dictionary %s\n", ++point, name, dict_path);
                else
                        printf("not ok %lu - %s: %s:%ld: not a dictionary entry\n", ++point, name, dict_path,
                               line);
                failed += line != 0;
        }
        if (corpus_error < 0) {
                printf("not ok %lu - %s: cannot read the corpus %s: %s\n", ++point, name, corpus_dir,
                       strerror(-corpus_error));
                failed++;
        }
        for (size_t i = 0; i < n_files; i++) {
                run_file(name, ++point, files[i], true);
                free(files[i]);
        }
        free(files);
        free(corpus_dir);
        free(dict_path);

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
                printf("%sok %lu - %s: inputs %lu to %lu\n", bad ? "not " : "", ++point, name, first + 1,
                       last);
                fflush(stdout);
        }
        return failed ? 1 : 0;
}

#endif
