/* SPDX-License-Identifier: MIT */
#pragma once

/* Logging. Helpers return negative errno and never log; the caller that decides logs once, with
 * log_*_errno(), which also sets errno so that "%m" prints the error.
 *
 * Where records go: when standard error is the journal's stream (JOURNAL_STREAM names its device
 * and inode, as systemd sets it for a service logging to the journal), each record is sent to
 * journald as one datagram of its native protocol, with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
 * CODE_FILE/CODE_LINE/CODE_FUNC, ERRNO when an error is given, and the caller's own fields.
 * Otherwise, or when journald cannot be reached, a plain line goes to standard error.
 *
 * Structured fields:
 *
 *   log_notebook(LOG_NOTICE, 0, user_id, notebook_id, "conflict", "Notebook %s is in conflict.", id);
 *   log_struct(LOG_INFO, 0, LOG_FIELDS({ "USER_ID", uid }, { "REMOTE_TABLE", table }), "Synced %s.", id);
 *
 * Keys are upper-case letters, digits and '_', not starting with '_' or a digit (journald's rule);
 * a field whose value is NULL is left out. On standard error only the message is written. Never
 * pass a secret, in a field or in the message: logs are readable by more people than the daemon's
 * credentials are. */

#include <stdbool.h>
#include <syslog.h>

#include "util.h"

typedef struct LogField {
        const char *key;
        const char *value; /* NULL: the field is left out */
} LogField;

/* A list of fields for log_struct(), ended by the macro: LOG_FIELDS({ "KEY", value }, ...). */
#define LOG_FIELDS(...) ((const LogField[]){ __VA_ARGS__, { NULL, NULL } })

/* The program named in every record (SYSLOG_IDENTIFIER, the stderr prefix): "notebookd" unless
 * another program using this code says otherwise. name must outlive the logging. */
void log_set_ident(const char *name);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parses "debug", "info", "notice", "warning", "err" (or "error"), "crit"; -EINVAL otherwise. */
int log_level_from_string(const char *s);
/* "debug", "info", ...; "?" for a number that is no level. */
const char *log_level_to_string(int level);

/* Decides again where records go, from JOURNAL_STREAM and standard error (the first record decides
 * if this was never called). */
void log_open(void);
/* The socket journal records are sent to (default /run/systemd/journal/socket); NULL restores the
 * default. For tests, which bind a datagram socket of their own. Takes effect at log_open(). */
void log_set_journal_socket(const char *path);
/* True when records go to the journal. */
bool log_to_journal(void);

int log_internal(int level, int error, const char *fmt, ...) _printf_(3, 4);
int log_internal_full(int level, int error, const char *file, int line, const char *func,
                      const LogField *fields, const char *fmt, ...) _printf_(7, 8);

#define log_struct(level, error, fields, ...)                                                              \
        ({                                                                                                 \
                int _l_ = (level), _e_ = (error);                                                          \
                _l_ <= log_get_max_level()                                                                 \
                        ? log_internal_full(_l_, _e_, __FILE__, __LINE__, __func__, (fields), __VA_ARGS__) \
                        : -(_e_ < 0 ? -_e_ : _e_);                                                         \
        })

/* A record about one notebook: USER_ID, NOTEBOOK_ID and SYNC_STATE (each may be NULL). */
#define log_notebook(level, error, user_id, notebook_id, sync_state, ...)                 \
        log_struct(level, error,                                                          \
                   LOG_FIELDS({ "USER_ID", (user_id) }, { "NOTEBOOK_ID", (notebook_id) }, \
                              { "SYNC_STATE", (sync_state) }),                            \
                   __VA_ARGS__)

#define log_full_errno(level, error, ...) log_struct(level, error, NULL, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
