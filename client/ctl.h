/* SPDX-License-Identifier: MIT */
#pragma once

/* notebookctl's exit codes, documented in --help and notebookctl(1). */
enum {
        EXIT_OK = 0,
        EXIT_DAEMON = 1, /* an error the daemon (or DynamoDB) reported, other than below; a table that
                          * does not fit; a local failure */
        EXIT_USAGE = 2,
        EXIT_TRANSPORT = 3, /* cannot connect, connection lost, unreadable reply */
        EXIT_NOT_FOUND = 4, /* -32010; a table that does not exist */
        EXIT_CONFLICT = 5,  /* -32011 */
        EXIT_DENIED = 6,    /* -32012; credentials refused by DynamoDB */
};

/* Prints "notebookctl: " and the message on stderr; returns EXIT_DAEMON. */
int local_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
