/* SPDX-License-Identifier: MIT */
/* Feeds the input through a FrameReader in pieces and compares what comes out with a plain model
 * of the framing rules; runs frame_check_line() on the lines and on the whole input. */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "util.h"

/* FRAME_READ_CHUNK in frame.c. */
#define READ_SLACK (64u * 1024)

typedef struct Events {
        char *buf;
        size_t len, alloc;
} Events;

static void events_add(Events *e, char kind, const char *line, size_t n)
{
        size_t need = e->len + 1 + sizeof(n) + n;

        if (need > e->alloc) {
                e->alloc = need * 2;
                e->buf = realloc(e->buf, e->alloc);
                fuzz_check(e->buf);
        }
        e->buf[e->len++] = kind;
        memcpy(e->buf + e->len, &n, sizeof(n));
        e->len += sizeof(n);
        if (n > 0)
                memcpy(e->buf + e->len, line, n);
        e->len += n;
}

static bool is_blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

/* The framing rules of frame.h, on the whole input at once. Returns whether a partial line is
 * left at the end. */
static bool model(const char *s, size_t n, size_t max_line, Events *e)
{
        size_t start = 0;

        for (;;) {
                const char *nl = memchr(s + start, '\n', n - start);
                size_t len;

                if (!nl) {
                        len = n - start;
                        if (len > max_line + 1 || (len == max_line + 1 && s[n - 1] != '\r')) {
                                events_add(e, '!', NULL, 0);
                                return false;
                        }
                        return !is_blank(s + start, len);
                }
                len = (size_t)(nl - (s + start));
                if (len > 0 && s[start + len - 1] == '\r')
                        len--;
                if (len > max_line)
                        events_add(e, '!', NULL, 0);
                else if (!is_blank(s + start, len))
                        events_add(e, 'L', s + start, len);
                start = (size_t)(nl - s) + 1;
        }
}

static void check_line(const char *s, size_t n, unsigned depth)
{
        int r = frame_check_line(s, n, depth);
        bool bad_bytes = !utf8_is_valid(s, n) || memchr(s, 0, n);

        fuzz_check(r == 0 || r == -EILSEQ || r == -ELOOP);
        if (r == 0)
                fuzz_check(!bad_bytes);
        if (bad_bytes)
                fuzz_check(r != 0);
        /* Without a depth limit only the bytes matter. */
        r = frame_check_line(s, n, (unsigned)-1);
        fuzz_check(r != -ELOOP);
        if (bad_bytes)
                fuzz_check(r == -EILSEQ);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Events want = {}, got = {};
        size_t max_line, n;
        const char *s;
        uint32_t pieces;
        unsigned depth;
        bool partial;
        FrameReader f;

        if (size < 3) {
                check_line((const char *)data, size, 1);
                return 0;
        }
        /* Small limits reach every edge quickly, larger ones make the buffer grow; the first bytes
         * pick the limits and the read sizes. */
        max_line = data[0] & 0x80 ? 1u + (data[0] & 0x7fu) * 97u : 1u + data[0] % 48u;
        depth = data[1] % 8;
        pieces = (uint32_t)data[2] * 2654435761u + 1;
        s = (const char *)data + 3;
        n = size - 3;

        partial = model(s, n, max_line, &want);

        frame_reader_init(&f, max_line);
        for (size_t done = 0; done < n;) {
                const char *line;
                size_t room, k, len;
                char *p;
                int r;

                fuzz_check(frame_reader_space(&f, &p, &room) == 0 && room > 0);
                pieces = pieces * 1103515245u + 12345u;
                k = (pieces >> 16) % 4 == 0 ? n - done : 1 + (pieces >> 16) % 23;
                if (k > n - done)
                        k = n - done;
                if (k > room)
                        k = room;
                memcpy(p, s + done, k);
                frame_reader_commit(&f, k);
                done += k;
                fuzz_check(f.alloc <= max_line + 1 + READ_SLACK);

                while ((r = frame_reader_next(&f, &line, &len)) != 0) {
                        if (r == -EMSGSIZE) {
                                events_add(&got, '!', NULL, 0);
                                continue;
                        }
                        fuzz_check(r == 1);
                        fuzz_check(len > 0 && len <= max_line && line[len] == 0 && !memchr(line, '\n', len));
                        events_add(&got, 'L', line, len);
                        check_line(line, len, depth);
                }
        }
        fuzz_check(frame_reader_has_partial(&f) == partial);
        fuzz_check(got.len == want.len && (got.len == 0 || memcmp(got.buf, want.buf, got.len) == 0));
        frame_reader_done(&f);

        check_line(s, n, depth);

        free(want.buf);
        free(got.buf);
        return 0;
}
