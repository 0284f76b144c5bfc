/* SPDX-License-Identifier: MIT */
#pragma once

/* How notebookctl shows text that is not its own (names, ids, code and outputs from the daemon,
 * answers from a DynamoDB endpoint) on a terminal: no character of it may drive the terminal
 * (C0 and C1 controls, DEL), break a line the layout did not break (U+2028, U+2029) or reorder
 * what is shown (the bidirectional controls U+061C, U+200E-F, U+202A-E, U+2066-9). Those are
 * written as escapes: \t, \n and \r, \xHH for the other C0 controls and DEL, \uHHHH for the
 * others, and \xHH for each byte that is not part of valid UTF-8 (a terminal may take a lone
 * 0x9b for a C1 CSI). Backslashes stay as they are: code is full of them. */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum DisplayMode {
        DISPLAY_LINE,  /* within one line (a name, an id, a message): every control is escaped */
        DISPLAY_BLOCK, /* a block of lines (code, stdout): tab and newline are its layout, kept */
} DisplayMode;

/* Writes s to f, escaped. */
void display_put(FILE *f, const char *s, DisplayMode mode);

/* s escaped, in a new string; NULL on OOM. */
char *display_escape(const char *s, DisplayMode mode);

/* Columns that display_put() takes for s on one line: one per code point it writes. */
size_t display_width(const char *s, DisplayMode mode);

/* JSON text (as cJSON prints it, UTF-8) with DEL, the C1 controls, U+2028, U+2029 and the
 * bidirectional controls inside its strings written as \uHHHH escapes, and any byte that is not
 * valid UTF-8 as \ufffd. Valid JSON stays valid, and parses to the same value. NULL on OOM. */
char *display_json(const char *json);
