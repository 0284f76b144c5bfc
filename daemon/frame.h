/* SPDX-License-Identifier: MIT */
#pragma once

/* Line framing of the protocol (one JSON object per line) and the checks a line passes before
 * the JSON parser sees it. Nothing here allocates more than the configured line limit. */

#include <stdbool.h>
#include <stddef.h>

typedef struct FrameReader {
        char *buf;       /* the allocation: returned lines, then bytes not yet returned */
        size_t start;    /* offset in buf of the first byte not yet returned as a line */
        size_t len;      /* bytes used in buf (returned or not); buf[start..len) is unreturned */
        size_t alloc;    /* bytes allocated in buf, never more than max_line + 1 + read size */
        size_t scanned;  /* offset in buf up to which buf[start..] was searched for '\n' */
        size_t max_line; /* longest line accepted, newline excluded */
        bool discarding; /* skipping the rest of an oversize line */
} FrameReader;

void frame_reader_init(FrameReader *f, size_t max_line);
void frame_reader_done(FrameReader *f);

/* Returns where up to *ret_size bytes (never 0) may be written (read(2) into it), growing the
 * buffer as needed, at most to the line limit. Follow with frame_reader_commit(). Errors:
 *   -ENOMEM
 *   -ENOBUFS  the buffer is full of complete lines the caller has not taken with
 *             frame_reader_next(); never happens to a caller that takes every line between reads */
int frame_reader_space(FrameReader *f, char **ret_ptr, size_t *ret_size);
void frame_reader_commit(FrameReader *f, size_t n);

/* Takes the next complete line out of the buffer.
 *   1         ret_line, ret_len is a line (newline and a trailing '\r' removed, NUL-terminated in
 *             place); valid until the next call on f
 *   0         no complete line yet
 *   -EMSGSIZE the current line is longer than max_line: reported once per line; its bytes are
 *             dropped up to and including the next newline, then lines are returned again
 * Blank lines are skipped. */
int frame_reader_next(FrameReader *f, const char **ret_line, size_t *ret_len);

/* True if bytes are buffered that were not returned as lines, or an oversize line is being
 * skipped: after frame_reader_next() returned 0, a request is half received. Constant time. */
static inline bool frame_reader_mid_line(const FrameReader *f)
{
        return f->len > f->start || f->discarding;
}

/* True if bytes are buffered that do not yet form a complete line (half a line at hang-up). */
bool frame_reader_has_partial(const FrameReader *f);

/* Checks a line before JSON parsing:
 *   0         fine
 *   -EILSEQ   invalid UTF-8, a raw NUL byte, or a \u0000 escape inside a string
 *   -ELOOP    arrays/objects nested deeper than max_depth
 *   -E2BIG    more than MAX_JSON_VALUES values (each costs the parser a node)
 * It does not otherwise validate JSON (the parser does). */
int frame_check_line(const char *line, size_t len, unsigned max_depth);
