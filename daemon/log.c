/* SPDX-License-Identifier: MIT */
#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "log.h"

#define JOURNAL_SOCKET_DEFAULT "/run/systemd/journal/socket"
#define LOG_MESSAGE_MAX        2048
/* Our own fields (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_*, ERRNO) and the caller's. */
#define JOURNAL_FIELDS_MAX 24
#define JOURNAL_KEY_MAX    64 /* journald refuses longer field names */
/* A stalled journald must not stop the event loop for long: past this, the record goes to stderr. */
#define JOURNAL_SEND_TIMEOUT_USEC (2 * USEC_PER_SEC)

static int max_level = LOG_INFO;
static const char *ident = "notebookd";

/* Where records go: -1 not decided yet, 0 standard error, 1 the journal. */
static int journal_state = -1;
static int journal_fd = -1;
static struct sockaddr_un journal_addr;
static char journal_path[sizeof(journal_addr.sun_path)] = JOURNAL_SOCKET_DEFAULT;
static bool stderr_is_journal;
static uint64_t journal_stalled_until; /* monotonic: until then, records that do not fit go to stderr */

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_ident(const char *name)
{
        ident = name;
}

void log_set_max_level(int level)
{
        max_level = level;
}

int log_get_max_level(void)
{
        return max_level;
}

int log_level_from_string(const char *s)
{
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

const char *log_level_to_string(int level)
{
        return level >= 0 && (size_t)level < ELEMENTSOF(level_names) ? level_names[level] : "?";
}

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects standard output and
 * error to; the variable is inherited by children whose stderr may be something else, so only a
 * match with what stderr is now counts (sd_journal_stream_fd(3)). */
static bool log_stderr_is_journal_stream(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int n = 0;

        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != 0)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_journal_socket(const char *path)
{
        snprintf(journal_path, sizeof(journal_path), "%s", path ? path : JOURNAL_SOCKET_DEFAULT);
}

void log_open(void)
{
        closep(&journal_fd);
        stderr_is_journal = log_stderr_is_journal_stream();
        journal_state = 0;
        if (!stderr_is_journal)
                return;

        journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (journal_fd < 0)
                return;
        /* Blocking, as journald means a client to be (a full queue is waited out rather than records
         * lost), but not forever. */
        (void)setsockopt(journal_fd, SOL_SOCKET, SO_SNDTIMEO,
                         &(struct timeval){ .tv_sec = JOURNAL_SEND_TIMEOUT_USEC / USEC_PER_SEC },
                         sizeof(struct timeval));
        journal_addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(journal_addr.sun_path, journal_path, sizeof(journal_path));
        journal_state = 1;
}

bool log_to_journal(void)
{
        if (journal_state < 0)
                log_open();
        return journal_state == 1;
}

/* One record in journald's native protocol: "KEY=value\n" per field, or, for a value holding a
 * newline, "KEY\n", its length as 64-bit little-endian, the value and "\n" (systemd's
 * JOURNAL_NATIVE_PROTOCOL). The iovecs point into the caller's strings: nothing is copied. */
typedef struct JournalRecord {
        struct iovec iov[JOURNAL_FIELDS_MAX * 5];
        uint64_t lengths[JOURNAL_FIELDS_MAX];
        size_t n_iov, n_fields;
} JournalRecord;

static bool log_key_is_valid(const char *key)
{
        size_t n = strlen(key);

        if (n == 0 || n > JOURNAL_KEY_MAX || key[0] == '_' || (key[0] >= '0' && key[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= '0' && key[i] <= '9') || key[i] == '_'))
                        return false;
        return true;
}

static void journal_iov(JournalRecord *r, const void *p, size_t n)
{
        r->iov[r->n_iov++] = (struct iovec){ .iov_base = (void *)p, .iov_len = n };
}

static void journal_add(JournalRecord *r, const char *key, const char *value)
{
        size_t n = strlen(value);

        if (r->n_fields >= JOURNAL_FIELDS_MAX)
                return;
        journal_iov(r, key, strlen(key));
        if (memchr(value, '\n', n)) {
                r->lengths[r->n_fields] = htole64((uint64_t)n);
                journal_iov(r, "\n", 1);
                journal_iov(r, &r->lengths[r->n_fields], sizeof(uint64_t));
        } else
                journal_iov(r, "=", 1);
        journal_iov(r, value, n);
        journal_iov(r, "\n", 1);
        r->n_fields++;
}

static int journal_send(int level, int error, const char *file, int line, const char *func,
                        const LogField *fields, const char *msg)
{
        JournalRecord r = {};
        char priority[4], code_line[16], errno_text[16];
        struct msghdr mh = {
                .msg_name = &journal_addr,
                .msg_namelen = sizeof(journal_addr),
        };

        snprintf(priority, sizeof(priority), "%d", level & LOG_PRIMASK);
        journal_add(&r, "MESSAGE", msg);
        journal_add(&r, "PRIORITY", priority);
        journal_add(&r, "SYSLOG_IDENTIFIER", ident);
        if (file) {
                snprintf(code_line, sizeof(code_line), "%d", line);
                journal_add(&r, "CODE_FILE", file);
                journal_add(&r, "CODE_LINE", code_line);
        }
        if (func)
                journal_add(&r, "CODE_FUNC", func);
        if (error > 0) {
                snprintf(errno_text, sizeof(errno_text), "%d", error);
                journal_add(&r, "ERRNO", errno_text);
        }
        for (const LogField *f = fields; f && f->key; f++)
                if (f->value && log_key_is_valid(f->key))
                        journal_add(&r, f->key, f->value);

        mh.msg_iov = r.iov;
        mh.msg_iovlen = r.n_iov;
        /* After one record waited out the timeout, journald is stalled: for a second, records that
         * do not fit at once are not waited for, so that a burst cannot hold the loop (and its
         * watchdog) for the timeout each. */
        if (sendmsg(journal_fd, &mh,
                    MSG_NOSIGNAL | (now_monotonic_usec() < journal_stalled_until ? MSG_DONTWAIT : 0)) < 0) {
                int e = errno;

                if (e == EAGAIN || e == EWOULDBLOCK)
                        journal_stalled_until = now_monotonic_usec() + USEC_PER_SEC;
                return -e;
        }
        return 0;
}

/* The message with control characters escaped ("\\n", "\\xNN"): text that came from a peer or a
 * server (an id, an error message) cannot start a line of its own, with a level of its own. */
static const char *escape_controls(const char *msg, char *buf, size_t size)
{
        size_t n = 0;

        for (const unsigned char *p = (const unsigned char *)msg; *p && n + 5 < size; p++) {
                if (*p == '\n')
                        n += (size_t)snprintf(buf + n, size - n, "\\n");
                else if (*p < 0x20 && *p != '\t')
                        n += (size_t)snprintf(buf + n, size - n, "\\x%02x", *p);
                else if (*p == 0x7f)
                        n += (size_t)snprintf(buf + n, size - n, "\\x7f");
                else
                        buf[n++] = (char)*p;
        }
        buf[n] = 0;
        return buf;
}

static void log_write_stderr(int level, const char *raw)
{
        char buf[LOG_MESSAGE_MAX * 4];
        const char *msg = escape_controls(raw, buf, sizeof(buf));

        /* To the journal's stream a "<N>" prefix carries the level; on a terminal the level is
         * spelled out for warnings and worse only, so routine lines stay readable. */
        if (stderr_is_journal)
                fprintf(stderr, "<%d>%s\n", level & LOG_PRIMASK, msg);
        else if ((level & LOG_PRIMASK) <= LOG_WARNING)
                fprintf(stderr, "%s: %s: %s\n", ident, level_names[level & LOG_PRIMASK], msg);
        else
                fprintf(stderr, "%s: %s\n", ident, msg);
}

static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                        const LogField *fields, const char *fmt, va_list ap) _printf_(7, 0);
static int log_dispatch(int level, int error, const char *file, int line, const char *func,
                        const LogField *fields, const char *fmt, va_list ap)
{
        int saved = errno;
        char msg[LOG_MESSAGE_MAX];

        if (error < 0)
                error = -error;
        /* Let "%m" print the error we were given, not whatever errno happens to hold. */
        errno = error;
        vsnprintf(msg, sizeof(msg), fmt, ap);

        /* A record journald did not take (it is not running, or is stalled) still goes out, through
         * the stream. */
        if (!log_to_journal() || journal_send(level, error, file, line, func, fields, msg) < 0)
                log_write_stderr(level, msg);
        errno = saved;
        return -error;
}

int log_internal_full(int level, int error, const char *file, int line, const char *func,
                      const LogField *fields, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_dispatch(level, error, file, line, func, fields, fmt, ap);
        va_end(ap);
        return r;
}

int log_internal(int level, int error, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = log_dispatch(level, error, NULL, 0, NULL, NULL, fmt, ap);
        va_end(ap);
        return r;
}
