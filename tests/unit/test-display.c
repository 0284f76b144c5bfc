/* SPDX-License-Identifier: MIT */
/* display: what notebookctl escapes before a terminal sees it, in lines, blocks and JSON. */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "display.h"
#include "tap.h"
#include "util.h"

/* The columns of text that has nothing left to escape: one per code point. */
static size_t text_columns(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char)*s & 0xc0) != 0x80;
        return n;
}

static void line_is(const char *in, const char *want, const char *desc)
{
        _cleanup_free_ char *got = display_escape(in, DISPLAY_LINE);

        is_str(got, want, "line: %s", desc);
        is_int(display_width(in, DISPLAY_LINE), got ? text_columns(got) : 0, "line: %s: width as written",
               desc);
}

/* No byte of s is a control (but tab and newline, with layout), a separator or a bidirectional
 * control. */
static bool clean(const char *s, bool layout)
{
        static const char *const bad[] = { "\xc2\x80",     "\xc2\x85",     "\xc2\x9b",     "\xc2\x9f",
                                           "\xd8\x9c",     "\xe2\x80\x8e", "\xe2\x80\x8f", "\xe2\x80\xa8",
                                           "\xe2\x80\xa9", "\xe2\x80\xaa", "\xe2\x80\xae", "\xe2\x81\xa6",
                                           "\xe2\x81\xa9" };

        for (const char *p = s; *p; p++)
                if (((unsigned char)*p < 0x20 && !(layout && (*p == '\t' || *p == '\n'))) || *p == 0x7f)
                        return false;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (strstr(s, bad[i]))
                        return false;
        return true;
}

static void test_line(void)
{
        line_is("plain name", "plain name", "plain text as it is");
        line_is("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x93\x93", "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x93\x93",
                "UTF-8 letters and emoji as they are");
        line_is("a\\nb \\x1b", "a\\nb \\x1b", "backslashes as they are");
        line_is("\x1b]0;title\x07", "\\x1b]0;title\\x07", "ESC and BEL");
        line_is("a\tb\nc\rd", "a\\tb\\nc\\rd", "tab, newline and carriage return");
        line_is("\x01\x1f\x7f", "\\x01\\x1f\\x7f", "other C0 controls and DEL");
        line_is("\xc2\x80\xc2\x85\xc2\x9b\xc2\x9f", "\\u0080\\u0085\\u009b\\u009f", "C1 controls");
        line_is("\xc2\xa0\xc2\xa9", "\xc2\xa0\xc2\xa9", "U+00A0 and U+00A9: not C1, as they are");
        line_is("a\xe2\x80\xa8"
                "b\xe2\x80\xa9",
                "a\\u2028b\\u2029", "line and paragraph separators");
        line_is("\xd8\x9c\xe2\x80\x8e\xe2\x80\x8f", "\\u061c\\u200e\\u200f", "ALM, LRM, RLM");
        line_is("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad\xe2\x80\xae",
                "\\u202a\\u202b\\u202c\\u202d\\u202e", "LRE, RLE, PDF, LRO, RLO");
        line_is("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", "\\u2066\\u2067\\u2068\\u2069",
                "LRI, RLI, FSI, PDI");
        line_is("\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5", "\xe2\x80\x8d\xe2\x80\xaf\xe2\x81\xa5",
                "U+200D, U+202F, U+2065 next to them: as they are");
        line_is("x\x9by", "x\\x9by", "a lone 0x9b (8-bit CSI) as a byte escape");
        line_is("\xc0\x9b\xe0\x80\x9b", "\\xc0\\x9b\\xe0\\x80\\x9b", "overlong forms of ESC: byte escapes");
        line_is("\xed\xa0\x80", "\\xed\\xa0\\x80", "a surrogate: byte escapes");
        line_is("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", "beyond U+10FFFF: byte escapes");
        line_is("end\xe2\x80", "end\\xe2\\x80", "a sequence cut short at the end");
        line_is("", "", "empty");
}

static void test_block(void)
{
        _cleanup_free_ char *a = display_escape("def f():\n\treturn 1\r\n\x1b[2J", DISPLAY_BLOCK);
        _cleanup_free_ char *b = display_escape("x\xe2\x80\xa8y\xe2\x80\xaez\xc2\x85", DISPLAY_BLOCK);

        is_str(a, "def f():\n\treturn 1\\r\n\\x1b[2J", "block: tab and newline kept, CR and ESC escaped");
        is_str(b, "x\\u2028y\\u202ez\\u0085", "block: separators, bidi and C1 escaped");
        is_int(display_width("a\tb", DISPLAY_BLOCK), 3, "block: a tab counts one column");
}

static void test_put(void)
{
        const char *in = "id\x1b[31m\xe2\x80\xae\xe2\x80\xa8"
                         "end\n";
        _cleanup_free_ char *want = display_escape(in, DISPLAY_LINE);
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f) {
                ok(0, "open_memstream");
                return;
        }
        display_put(f, in, DISPLAY_LINE);
        fclose(f);
        is_str(buf, want, "display_put() writes what display_escape() returns");
        ok(buf && clean(buf, false), "and nothing raw");
        free(buf);
}

/* display_json() keeps the value: the text parses to what the original parses to. */
static void json_same(const char *in, const char *desc)
{
        _cleanup_free_ char *out = display_json(in);
        cJSON *a = cJSON_Parse(in), *b = out ? cJSON_Parse(out) : NULL;

        ok(a && b && cJSON_Compare(a, b, true), "json: %s: the same value", desc);
        ok(out && clean(out, true), "json: %s: no raw control, separator or bidi control", desc);
        cJSON_Delete(a);
        cJSON_Delete(b);
}

static void test_json(void)
{
        _cleanup_free_ char *plain = display_json("{\n\t\"a\":\t\"caf\xc3\xa9 \\u001b\"\n}");
        _cleanup_free_ char *bad = display_json("[\"x\x9by\"]");
        _cleanup_free_ char *esc = display_json("[\"\x7f\xc2\x9b\xe2\x80\xa8\xe2\x80\xae\xe2\x81\xa6\"]");
        cJSON *v = cJSON_CreateObject();

        is_str(plain, "{\n\t\"a\":\t\"caf\xc3\xa9 \\u001b\"\n}",
               "json: layout, letters and escapes as they are");
        is_str(esc, "[\"\\u007f\\u009b\\u2028\\u202e\\u2066\"]",
               "json: DEL, C1, U+2028 and bidi as \\u escapes");
        is_str(bad, "[\"x\\ufffdy\"]", "json: a byte that is not UTF-8 as \\ufffd");
        json_same("[\"\x7f\xc2\x85\xe2\x80\xa9\xd8\x9c\xe2\x80\x8f\xe2\x80\xab\xe2\x81\xa9\"]",
                  "every kind");
        if (v && cJSON_AddStringToObject(v, "name\xe2\x80\xae", "a\x1b[2J\xe2\x80\xa8\xc2\x9b\tb") &&
            cJSON_AddNumberToObject(v, "n", 9007199254740991.0)) {
                _cleanup_free_ char *pretty = cJSON_Print(v), *flat = cJSON_PrintUnformatted(v);

                json_same(pretty ? pretty : "", "cJSON_Print() of an object with them in a key and a value");
                json_same(flat ? flat : "", "cJSON_PrintUnformatted() of it");
        } else
                ok(0, "build the object");
        cJSON_Delete(v);
}

int main(void)
{
        test_line();
        test_block();
        test_put();
        test_json();
        return tap_done();
}
