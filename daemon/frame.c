/* SPDX-License-Identifier: MIT */
#include <assert.h>

#include "frame.h"
#include "nb-limits.h"
#include "util.h"

/* The most we offer to read(2) at once, and the slack the buffer may have past a full line. */
#define FRAME_READ_CHUNK     (64u * 1024)
#define FRAME_INITIAL_BYTES  (4u * 1024)
#define FRAME_READ_MIN_BYTES 512
/* An idle connection gives back a buffer that a long line made bigger than this. */
#define FRAME_KEEP_BYTES (1024u * 1024)

/* Returned lines must stay in place until the next call, and moving the rest down after every
 * line would make a burst of small pipelined lines quadratic. So f->start only advances past
 * them, and they are dropped lazily, when frame_reader_space() needs their room:
 *
 *   f->buf          f->buf + f->start   f->buf + f->len   f->buf + f->alloc
 *   | returned lines | unreturned data   | free            |
 */

static size_t frame_max_alloc(const FrameReader *f)
{
        /* A whole line, its newline, and one read more; a limit near SIZE_MAX must not wrap. */
        if (f->max_line > SIZE_MAX / 2)
                return SIZE_MAX / 2;
        return f->max_line + 1 + FRAME_READ_CHUNK;
}

void frame_reader_init(FrameReader *f, size_t max_line)
{
        *f = (FrameReader){ .max_line = max_line };
}

void frame_reader_done(FrameReader *f)
{
        free(f->buf);
        *f = (FrameReader){ .max_line = f->max_line };
}

/* Moves the unreturned bytes to the start of the buffer. */
static void frame_compact(FrameReader *f)
{
        if (f->start == 0)
                return;
        memmove(f->buf, f->buf + f->start, f->len - f->start);
        f->len -= f->start;
        f->scanned -= f->start;
        f->start = 0;
}

static int frame_resize(FrameReader *f, size_t total)
{
        char *p;

        assert(total >= f->len);
        p = realloc(f->buf, total);
        if (!p)
                return -ENOMEM;
        f->buf = p;
        f->alloc = total;
        return 0;
}

int frame_reader_space(FrameReader *f, char **ret_ptr, size_t *ret_size)
{
        size_t max = frame_max_alloc(f);
        int r;

        /* Give back what one long line made us allocate once the connection is idle again. */
        if (f->buf && f->start == f->len && f->alloc > FRAME_KEEP_BYTES) {
                free(f->buf);
                f->buf = NULL;
                f->alloc = f->len = f->start = f->scanned = 0;
        }
        if (!f->buf) {
                r = frame_resize(f, FRAME_INITIAL_BYTES < max ? FRAME_INITIAL_BYTES : max);
                if (r < 0)
                        return r;
        }
        if (f->alloc - f->len >= FRAME_READ_CHUNK)
                goto done;

        /* A caller that takes every line before reading again leaves only the start of one line
         * here, and after this move it stays at the front until it is returned: every byte is
         * moved at most once. */
        frame_compact(f);

        /* Grow geometrically once the buffer is more than half full (a long line is arriving), so
         * that it costs a logarithmic number of reallocations, up to the cap. */
        if (f->alloc - f->len < f->len || f->alloc - f->len < FRAME_READ_MIN_BYTES) {
                size_t total = f->alloc;

                if (total < max) {
                        r = frame_resize(f, total > max / 2 ? max : total * 2);
                        if (r < 0)
                                return r;
                }
        }

done:
        /* Only possible if the caller reads again without taking the lines it already has. */
        if (f->alloc == f->len)
                return -ENOBUFS;
        *ret_ptr = f->buf + f->len;
        *ret_size = f->alloc - f->len;
        return 0;
}

void frame_reader_commit(FrameReader *f, size_t n)
{
        assert(n <= f->alloc - f->len);
        f->len += n;
}

static bool frame_is_blank_char(char c)
{
        return c == ' ' || c == '\t' || c == '\r';
}

static bool frame_is_blank(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!frame_is_blank_char(s[i]))
                        return false;
        return true;
}

/* Forgets every unreturned byte. The returned lines stay where they are until the next read. */
static void frame_drop_all(FrameReader *f)
{
        f->start = f->scanned = f->len;
}

/* Takes n bytes (a line and its newline) off the front of the unreturned ones. */
static void frame_advance(FrameReader *f, size_t n)
{
        f->start += n;
        f->scanned = f->start;
}

int frame_reader_next(FrameReader *f, const char **ret_line, size_t *ret_len)
{
        for (;;) {
                char *line, *nl;
                size_t n, avail = f->len - f->start;

                if (avail == 0)
                        return 0;

                nl = memchr(f->buf + f->scanned, '\n', f->len - f->scanned);
                if (!nl) {
                        f->scanned = f->len;
                        if (f->discarding) {
                                frame_drop_all(f);
                                return 0;
                        }
                        /* With one byte more than the limit the line may still end in "\r\n". */
                        if (avail > f->max_line + 1 ||
                            (avail == f->max_line + 1 && f->buf[f->len - 1] != '\r')) {
                                frame_drop_all(f);
                                f->discarding = true;
                                return -EMSGSIZE;
                        }
                        return 0;
                }

                line = f->buf + f->start;
                n = (size_t)(nl - line);
                frame_advance(f, n + 1);

                if (f->discarding) {
                        /* The tail of a line already reported as too long. */
                        f->discarding = false;
                        continue;
                }
                if (n > 0 && line[n - 1] == '\r')
                        n--;
                if (n > f->max_line)
                        return -EMSGSIZE;
                if (frame_is_blank(line, n))
                        continue;

                line[n] = 0;
                *ret_line = line;
                *ret_len = n;
                return 1;
        }
}

bool frame_reader_has_partial(const FrameReader *f)
{
        /* Whatever follows the last newline, unless it is only blanks. */
        for (size_t i = f->len; i > f->start; i--) {
                if (f->buf[i - 1] == '\n')
                        return false;
                if (!frame_is_blank_char(f->buf[i - 1]))
                        return true;
        }
        return false;
}

/* Length of the UTF-8 sequence at s (n bytes available), or 0 if it is not a valid one: no
 * overlong forms, no UTF-16 surrogates, nothing past U+10FFFF (RFC 3629, table 3-7 of Unicode). */
static size_t utf8_sequence_length(const unsigned char *s, size_t n)
{
        unsigned char c = s[0], lo = 0x80, hi = 0xbf;
        size_t len;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0; /* overlong below U+0800 */
                else if (c == 0xed)
                        hi = 0x9f; /* surrogates U+D800..U+DFFF */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90; /* overlong below U+10000 */
                else if (c == 0xf4)
                        hi = 0x8f; /* past U+10FFFF */
        } else
                return 0;

        if (n < len || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t k = 2; k < len; k++)
                if (s[k] < 0x80 || s[k] > 0xbf)
                        return 0;
        return len;
}

int frame_check_line(const char *line, size_t len, unsigned max_depth)
{
        const unsigned char *s = (const unsigned char *)line;
        bool in_string = false, escaped = false;
        unsigned depth = 0;
        size_t i = 0, values = 0;

        while (i < len) {
                unsigned char c = s[i];

                if (c == 0)
                        return -EILSEQ;
                if (c >= 0x80) {
                        size_t k = utf8_sequence_length(s + i, len - i);
                        if (k == 0)
                                return -EILSEQ;
                        /* Not ASCII, so it is neither structure nor an escape's first byte. */
                        escaped = false;
                        i += k;
                        continue;
                }

                if (escaped) {
                        /* c is the character after a backslash; only \u0000 would yield a NUL. */
                        escaped = false;
                        if (c == 'u' && len - i > 4 && memcmp(s + i + 1, "0000", 4) == 0)
                                return -EILSEQ;
                } else if (in_string) {
                        if (c == '\\')
                                escaped = true;
                        else if (c == '"')
                                in_string = false;
                } else if (c == '"')
                        in_string = true;
                else if (c == '[' || c == '{') {
                        if (++depth > max_depth)
                                return -ELOOP;
                } else if ((c == ']' || c == '}') && depth > 0)
                        depth--;
                /* Each value costs the parser a node of some 64 bytes whatever its text: bound their
                 * number, which is at most one more than the commas and openings. */
                if ((c == ',' || c == '[' || c == '{') && !in_string && ++values > MAX_JSON_VALUES)
                        return -E2BIG;
                i++;
        }
        return 0;
}
