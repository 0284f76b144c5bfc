/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"

/* The code point of the UTF-8 sequence at s and its length, or 0 when s does not start a valid
 * one (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, cut short). */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret)
{
        uint32_t c, min;
        size_t n;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0)
                n = 2, c = s[0] & 0x1f, min = 0x80;
        else if ((s[0] & 0xf0) == 0xe0)
                n = 3, c = s[0] & 0x0f, min = 0x800;
        else if ((s[0] & 0xf8) == 0xf0)
                n = 4, c = s[0] & 0x07, min = 0x10000;
        else
                return 0;
        /* A NUL ends the string here and fails this test: no read past it. */
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return n;
}

static bool escaped(uint32_t c, DisplayMode mode)
{
        if (c < 0x20)
                return !(mode == DISPLAY_BLOCK && (c == '\t' || c == '\n'));
        return (c >= 0x7f && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
               (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* Reads one character (or one invalid byte) at s: its length goes to *len, and the escape that
 * stands for it to buf, whose length is returned; 0 when it is shown as it is. */
static size_t escape_next(const char *s, DisplayMode mode, char buf[static 8], size_t *len)
{
        uint32_t c;

        *len = utf8_decode((const unsigned char *)s, &c);
        if (*len == 0) {
                *len = 1;
                return (size_t)snprintf(buf, 8, "\\x%02x", (unsigned char)*s);
        }
        if (!escaped(c, mode))
                return 0;
        switch (c) {
        case '\t':
                return (size_t)snprintf(buf, 8, "\\t");
        case '\n':
                return (size_t)snprintf(buf, 8, "\\n");
        case '\r':
                return (size_t)snprintf(buf, 8, "\\r");
        default:
                if (c < 0x80)
                        return (size_t)snprintf(buf, 8, "\\x%02x", (unsigned)c);
                return (size_t)snprintf(buf, 8, "\\u%04x", (unsigned)c);
        }
}

void display_put(FILE *f, const char *s, DisplayMode mode)
{
        while (*s) {
                const char *run = s;
                char buf[8];
                size_t len, n = 0;

                /* The characters shown as they are go out in one write. */
                while (*s && (n = escape_next(s, mode, buf, &len)) == 0)
                        s += len;
                fwrite(run, 1, (size_t)(s - run), f);
                if (!*s)
                        break;
                fwrite(buf, 1, n, f);
                s += len;
        }
}

char *display_escape(const char *s, DisplayMode mode)
{
        size_t size = strlen(s);
        char *ret, *p;

        /* An escape is at most four times as long as what it stands for: \xHH for one byte. */
        if (size > (SIZE_MAX - 1) / 4)
                return NULL;
        ret = p = malloc(size * 4 + 1);
        if (!ret)
                return NULL;
        while (*s) {
                char buf[8];
                size_t len, n = escape_next(s, mode, buf, &len);

                if (n > 0)
                        memcpy(p, buf, n), p += n;
                else
                        memcpy(p, s, len), p += len;
                s += len;
        }
        *p = 0;
        return ret;
}

size_t display_width(const char *s, DisplayMode mode)
{
        size_t w = 0;

        while (*s) {
                char buf[8];
                size_t len, n = escape_next(s, mode, buf, &len);

                w += n > 0 ? n : 1;
                s += len;
        }
        return w;
}

char *display_json(const char *json)
{
        size_t size = strlen(json);
        const char *s = json;
        char *ret, *p;

        /* At most six times as long: \u007f for DEL, \ufffd for one bad byte. */
        if (size > (SIZE_MAX - 1) / 6)
                return NULL;
        ret = p = malloc(size * 6 + 1);
        if (!ret)
                return NULL;
        while (*s) {
                uint32_t c;
                size_t len = utf8_decode((const unsigned char *)s, &c);

                /* C0 controls are never raw in a string that cJSON printed; outside strings they
                 * are its layout (tab, newline). */
                if (len == 0) {
                        p += sprintf(p, "\\ufffd");
                        len = 1;
                } else if (c >= 0x20 && escaped(c, DISPLAY_LINE))
                        p += sprintf(p, "\\u%04x", (unsigned)c);
                else
                        memcpy(p, s, len), p += len;
                s += len;
        }
        *p = 0;
        return ret;
}
