/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "frame.h"
#include "nb-limits.h"
#include "tap.h"
#include "util.h"

/* FRAME_READ_CHUNK in frame.c: how far past a full line the buffer may grow. */
#define READ_SLACK (64u * 1024)

typedef struct Feed {
        char log[4096]; /* "[line]" per line, "!" per -EMSGSIZE, "?" for anything unexpected */
        size_t n_lines;
        size_t n_too_long;
        size_t max_alloc;
        bool alloc_ok;
        bool terminated_ok; /* every line NUL-terminated, without '\n' */
} Feed;

static void feed_log(Feed *fd, const char *s, size_t n)
{
        size_t used = strlen(fd->log);

        if (used + n + 1 < sizeof(fd->log)) {
                memcpy(fd->log + used, s, n);
                fd->log[used + n] = 0;
        }
}

static void feed_drain(FrameReader *f, Feed *fd)
{
        const char *line;
        size_t len;
        int r;

        while ((r = frame_reader_next(f, &line, &len)) != 0) {
                if (r == 1) {
                        fd->n_lines++;
                        if (line[len] != 0 || memchr(line, '\n', len))
                                fd->terminated_ok = false;
                        if (fd->n_lines <= 64) {
                                feed_log(fd, "[", 1);
                                feed_log(fd, line, len);
                                feed_log(fd, "]", 1);
                        }
                } else if (r == -EMSGSIZE) {
                        fd->n_too_long++;
                        feed_log(fd, "!", 1);
                } else {
                        feed_log(fd, "?", 1);
                        return;
                }
        }
}

/* Sends data through f in pieces of at most piece bytes, taking lines after each piece. */
static void feed(FrameReader *f, Feed *fd, const char *data, size_t n, size_t piece)
{
        size_t done = 0;

        while (done < n) {
                char *p;
                size_t size, k;

                if (frame_reader_space(f, &p, &size) < 0 || size == 0) {
                        feed_log(fd, "?", 1);
                        return;
                }
                k = n - done;
                if (k > size)
                        k = size;
                if (k > piece)
                        k = piece;
                memcpy(p, data + done, k);
                frame_reader_commit(f, k);
                done += k;
                if (f->alloc > fd->max_alloc)
                        fd->max_alloc = f->alloc;
                if (f->alloc > f->max_line + 1 + READ_SLACK)
                        fd->alloc_ok = false;
                feed_drain(f, fd);
        }
}

static void feed_init(Feed *fd)
{
        *fd = (Feed){ .alloc_ok = true, .terminated_ok = true };
}

/* Feeds s in pieces of every size from 1 to 7 and as a whole; the log must always be want. */
static void check_feed(size_t max_line, const char *s, const char *want, const char *what)
{
        bool same = true;
        char first[4096] = "";

        for (size_t piece = 1; piece <= 8; piece++) {
                FrameReader f;
                Feed fd;

                frame_reader_init(&f, max_line);
                feed_init(&fd);
                feed(&f, &fd, s, strlen(s), piece == 8 ? SIZE_MAX : piece);
                if (piece == 1)
                        snprintf(first, sizeof(first), "%s", fd.log);
                else if (!streq(first, fd.log))
                        same = false;
                if (!fd.terminated_ok)
                        same = false;
                frame_reader_done(&f);
        }
        is_str(first, want, "%s", what);
        ok(same, "%s: same result for every piece size", what);
}

static void test_framing(void)
{
        check_feed(64, "{\"a\":1}\n{\"b\":2}\n", "[{\"a\":1}][{\"b\":2}]", "two lines");
        check_feed(64, "a\r\nb\r\n", "[a][b]", "CRLF");
        check_feed(64, "a\r\r\n", "[a\r]", "only one CR removed");
        check_feed(64, "\n\n\r\n  \t\r\n x\n\n", "[ x]", "blank lines skipped");
        check_feed(64, "a\rb\n", "[a\rb]", "CR inside a line kept");
        check_feed(8, "12345678\n", "[12345678]", "line of exactly the limit");
        check_feed(8, "12345678\r\n", "[12345678]", "line of exactly the limit with CRLF");
        check_feed(8, "123456789\nnext\n", "![next]", "limit + 1 rejected once, next line intact");
        check_feed(8, "123456789\r\nnext\n", "![next]", "limit + 1 with CRLF rejected once");
        check_feed(8, "1234567890123456789012345678901234567890\nnext\r\n", "![next]",
                   "much too long rejected once");
        check_feed(8, "12345678\r\r\nnext\n", "![next]", "limit + CR + CRLF rejected");
        check_feed(8, "a\n123456789\nb\n123456789012\nc\n", "[a]![b]![c]",
                   "two long lines among short ones");
        check_feed(8, "        \t\nx\n", "![x]", "over-long blank line still counts as too long");
        check_feed(8, "123456789", "!", "over-long partial line reported before its newline");
        check_feed(8, "12345678\r", "", "limit + CR is not yet too long");
}

static void test_many_lines(void)
{
        const size_t n = 20000;
        size_t size = n * 16, len = 0;
        char *data = malloc(size);
        FrameReader f;
        Feed fd;
        bool right = true;

        for (size_t i = 0; i < n; i++)
                len += (size_t)snprintf(data + len, size - len, "{\"id\":%zu}\n", i);

        /* All at once: the reader gets as much as it offers room for. */
        frame_reader_init(&f, 1024);
        feed_init(&fd);
        feed(&f, &fd, data, len, SIZE_MAX);
        is_int(fd.n_lines, n, "%zu pipelined lines in large reads", n);
        ok(fd.terminated_ok, "every line NUL-terminated without newline");
        frame_reader_done(&f);

        /* Lines checked one by one, in reads that end mid-line. */
        frame_reader_init(&f, 1024);
        for (size_t off = 0, i = 0; off < len;) {
                const char *line;
                size_t size_room, k, l;
                char *p, want[32];
                int r;

                if (frame_reader_space(&f, &p, &size_room) < 0) {
                        right = false;
                        break;
                }
                k = len - off < 1000 ? len - off : 1000;
                k = k < size_room ? k : size_room;
                memcpy(p, data + off, k);
                frame_reader_commit(&f, k);
                off += k;
                while ((r = frame_reader_next(&f, &line, &l)) == 1) {
                        snprintf(want, sizeof(want), "{\"id\":%zu}", i++);
                        if (!streq(line, want) || l != strlen(want))
                                right = false;
                }
                if (r != 0)
                        right = false;
        }
        ok(right, "pipelined lines in 1000-byte reads come back in order");
        ok(!frame_reader_has_partial(&f), "nothing left over");
        ok(f.alloc <= 2 * 4096, "buffer stays small for small lines (%zu)", f.alloc);
        frame_reader_done(&f);
        free(data);
}

static void test_partial(void)
{
        FrameReader f;
        Feed fd;

        frame_reader_init(&f, 64);
        feed_init(&fd);
        ok(!frame_reader_has_partial(&f), "empty reader has no partial line");
        feed(&f, &fd, "abc", 3, SIZE_MAX);
        ok(frame_reader_has_partial(&f), "half a line is partial");
        feed(&f, &fd, "\n", 1, SIZE_MAX);
        ok(!frame_reader_has_partial(&f), "completed line is not partial");
        feed(&f, &fd, " \r\t", 3, SIZE_MAX);
        ok(!frame_reader_has_partial(&f), "blanks after the last line are not partial");
        feed(&f, &fd, "{\"x\"", 4, SIZE_MAX);
        ok(frame_reader_has_partial(&f), "blanks then text are partial");
        is_str(fd.log, "[abc]", "lines so far");
        frame_reader_done(&f);

        frame_reader_init(&f, 4);
        feed_init(&fd);
        feed(&f, &fd, "0123456789", 10, SIZE_MAX);
        ok(!frame_reader_has_partial(&f), "a line being skipped for its length is not partial");
        is_str(fd.log, "!", "it was reported");
        frame_reader_done(&f);
}

static void test_huge_line(void)
{
        const size_t max_line = MAX_LINE_BYTES_MIN, huge = 4 * 1024 * 1024;
        char *data = malloc(huge + 16);
        FrameReader f;
        Feed fd;

        memset(data, 'x', huge);
        memcpy(data + huge, "\nafter\n", 7);

        frame_reader_init(&f, max_line);
        feed_init(&fd);
        feed(&f, &fd, data, huge + 7, 1);
        is_str(fd.log, "![after]", "4 MiB line in 1-byte reads: rejected once, next line intact");
        ok(fd.alloc_ok, "buffer never beyond max_line + 1 + read size (max %zu)", fd.max_alloc);
        frame_reader_done(&f);

        /* A line just under the limit in 1-byte reads: finding its end must not rescan it. */
        memset(data, 'y', huge);
        data[huge] = '\n';
        frame_reader_init(&f, huge);
        feed_init(&fd);
        feed(&f, &fd, data, huge + 1, 1);
        is_int(fd.n_lines, 1, "4 MiB line at the limit in 1-byte reads accepted");
        ok(fd.alloc_ok && fd.max_alloc >= huge, "buffer grew to the line and not beyond (%zu)",
           fd.max_alloc);
        ok(!frame_reader_has_partial(&f), "nothing left over");

        /* Once idle, a reader that held a long line gives the memory back. */
        {
                char *p;
                size_t size;

                ok(frame_reader_space(&f, &p, &size) == 0 && f.alloc < 1024 * 1024,
                   "idle reader shrinks its buffer (%zu)", f.alloc);
        }
        frame_reader_done(&f);
        ok(f.buf == NULL && f.len == 0 && f.alloc == 0, "done frees everything");
        free(data);
}

static void test_check_line(void)
{
        static const struct {
                const char *s;
                size_t len; /* 0: strlen(s) */
                unsigned depth;
                int want;
                const char *what;
        } cases[] = {
                { "{\"a\":[1,2,{\"b\":null}]}", 0, 64, 0, "plain JSON" },
                { "{\"k\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}", 0, 64, 0,
                  "2-, 3- and 4-byte UTF-8, U+10FFFF" },
                { "\"\xc0\xaf\"", 0, 64, -EILSEQ, "overlong 2-byte (C0 AF)" },
                { "\"\xc1\xbf\"", 0, 64, -EILSEQ, "overlong 2-byte (C1 BF)" },
                { "\"\xe0\x80\xaf\"", 0, 64, -EILSEQ, "overlong 3-byte" },
                { "\"\xf0\x80\x80\xaf\"", 0, 64, -EILSEQ, "overlong 4-byte" },
                { "\"\xed\xa0\x80\"", 0, 64, -EILSEQ, "surrogate U+D800" },
                { "\"\xed\xbf\xbf\"", 0, 64, -EILSEQ, "surrogate U+DFFF" },
                { "\"\xed\x9f\xbf\"", 0, 64, 0, "U+D7FF is fine" },
                { "\"\xf4\x90\x80\x80\"", 0, 64, -EILSEQ, "past U+10FFFF" },
                { "\"\xf5\x80\x80\x80\"", 0, 64, -EILSEQ, "F5 lead byte" },
                { "\"\xff\"", 0, 64, -EILSEQ, "FF byte" },
                { "\"\x80\"", 0, 64, -EILSEQ, "lone continuation byte" },
                { "\"\xe2\x82\"", 0, 64, -EILSEQ, "truncated sequence inside the line" },
                { "\"\xe2\x82", 0, 64, -EILSEQ, "truncated sequence at the end of the line" },
                { "\xf0\x9f\x98", 0, 64, -EILSEQ, "truncated 4-byte sequence" },
                { "{\"a\":\"x\0y\"}", 11, 64, -EILSEQ, "raw NUL in a string" },
                { "{\"a\":1}\0", 8, 64, -EILSEQ, "raw NUL outside strings" },
                { "{\"a\":\"\\u0000\"}", 0, 64, -EILSEQ, "\\u0000 in a string" },
                { "{\"a\":\"x\\u0000y\"}", 0, 64, -EILSEQ, "\\u0000 in the middle of a string" },
                { "{\"a\":\"\\\\u0000\"}", 0, 64, 0, "\\\\u0000 is a backslash and text" },
                { "{\"a\":\"\\\\\\u0000\"}", 0, 64, -EILSEQ, "\\\\\\u0000 is a backslash and a NUL" },
                { "{\"a\":\"\\u00000\"}", 0, 64, -EILSEQ, "\\u0000 followed by a digit" },
                { "{\"a\":\"\\u0001\\u0100\"}", 0, 64, 0, "other \\u escapes are fine" },
                { "{\"a\":\"\\u000", 0, 64, 0, "cut-off \\u000 is left to the parser" },
                { "[[[]]]", 0, 3, 0, "depth exactly the limit" },
                { "[[[[]]]]", 0, 3, -ELOOP, "depth limit + 1" },
                { "{\"a\":{\"b\":{\"c\":{}}}}", 0, 3, -ELOOP, "objects count as well" },
                { "[{}][{}][{}]", 0, 2, 0, "depth goes back down" },
                { "[\"[[[[{{{{\"]", 0, 1, 0, "brackets in strings ignored" },
                { "[\"\\\"[[[[\"]", 0, 1, 0, "escaped quote does not end the string" },
                { "[\"\\\\\",[[]]]", 0, 2, -ELOOP, "escaped backslash does end the string" },
                { "]]]][[", 0, 2, 0, "stray closers do not go negative" },
                { "", 0, 0, 0, "empty line" },
                { "{}", 0, 0, -ELOOP, "max_depth 0 allows no nesting" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
                is_int(frame_check_line(cases[i].s, len, cases[i].depth), cases[i].want, "check_line: %s",
                       cases[i].what);
        }

        /* The full default depth, and one more. */
        {
                char deep[2 * (MAX_JSON_DEPTH + 1) + 1];
                size_t n = 0;

                for (int i = 0; i < MAX_JSON_DEPTH; i++)
                        deep[n++] = '[';
                for (int i = 0; i < MAX_JSON_DEPTH; i++)
                        deep[n++] = ']';
                is_int(frame_check_line(deep, n, MAX_JSON_DEPTH), 0, "check_line: %d levels",
                       MAX_JSON_DEPTH);
                n = 0;
                for (int i = 0; i <= MAX_JSON_DEPTH; i++)
                        deep[n++] = '{';
                is_int(frame_check_line(deep, n, MAX_JSON_DEPTH), -ELOOP, "check_line: %d levels",
                       MAX_JSON_DEPTH + 1);
        }

        /* Against utf8_is_valid() on 4-byte strings around every lead byte and boundary. */
        {
                static const unsigned char tails[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f,
                                                       0x90, 0x9f, 0xa0, 0xbf, 0xc0 };
                bool agree = true;

                for (unsigned c0 = 0; c0 <= 0xff; c0++)
                        for (unsigned c1 = 0; c1 <= 0xff; c1++)
                                for (size_t i = 0; i < ELEMENTSOF(tails); i++)
                                        for (size_t k = 0; k < ELEMENTSOF(tails); k++) {
                                                char b[4] = { (char)c0, (char)c1, (char)tails[i],
                                                              (char)tails[k] };
                                                bool valid = utf8_is_valid(b, 4) && !memchr(b, 0, 4);
                                                int r = frame_check_line(b, 4, 64);

                                                if (valid ? r != 0 : r != -EILSEQ)
                                                        agree = false;
                                        }
                ok(agree, "check_line agrees with utf8_is_valid on 4-byte strings");
        }
}

int main(void)
{
        test_framing();
        test_many_lines();
        test_partial();
        test_huge_line();
        test_check_line();
        return tap_done();
}
