/* SPDX-License-Identifier: MIT */
/* log: journald's native protocol to a datagram socket of the test's own (no journald needed),
 * the JOURNAL_STREAM check, the plain stderr lines, and the fallback when journald is gone. */
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "log.h"
#include "tap.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-log-XXXXXX";
static char journal_path[sizeof(((struct sockaddr_un *)NULL)->sun_path)], stderr_path[256];
static int journal_fd = -1;

/* The value of key in a native-protocol datagram (either form), or NULL; the n-th occurrence. */
static char *field(const char *buf, size_t n, const char *key, unsigned nth)
{
        size_t klen = strlen(key);
        const char *p = buf, *end = buf + n;

        while (p < end) {
                const char *eq = memchr(p, '=', (size_t)(end - p)), *nl = memchr(p, '\n', (size_t)(end - p));
                const char *value;
                uint64_t len;
                bool match;

                if (!nl)
                        return NULL; /* every field ends in a newline */
                if (eq && eq < nl) {
                        match = (size_t)(eq - p) == klen && memcmp(p, key, klen) == 0;
                        value = eq + 1;
                        len = (uint64_t)(nl - value);
                        p = nl + 1;
                } else {
                        /* KEY\n, 64-bit little-endian length, value, \n */
                        match = (size_t)(nl - p) == klen && memcmp(p, key, klen) == 0;
                        if ((size_t)(end - nl) < 1 + sizeof(uint64_t))
                                return NULL;
                        memcpy(&len, nl + 1, sizeof(len));
                        len = le64toh(len);
                        value = nl + 1 + sizeof(uint64_t);
                        if (len >= (uint64_t)(end - value) || value[len] != '\n')
                                return NULL;
                        p = value + len + 1;
                }
                if (match && nth-- == 0)
                        return strndup(value, (size_t)len);
        }
        return NULL;
}

/* One datagram, or -1 when none is waiting. */
static ssize_t receive(char *buf, size_t size)
{
        return recv(journal_fd, buf, size, MSG_DONTWAIT);
}

static bool field_is(const char *buf, size_t n, const char *key, const char *want)
{
        _cleanup_free_ char *v = field(buf, n, key, 0);

        if (!streq_ptr(v, want))
                printf("# %s: got \"%s\", want \"%s\"\n", key, v ? v : "(none)", want ? want : "(none)");
        return streq_ptr(v, want);
}

static void set_journal_stream(void)
{
        struct stat st;
        char v[64];

        if (fstat(STDERR_FILENO, &st) < 0)
                abort();
        snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", v, 1);
}

/* What was written to stderr since the test redirected it. */
static char *stderr_text(void)
{
        static char buf[16384];
        FILE *f;
        size_t n;

        fflush(stderr);
        f = fopen(stderr_path, "re");
        if (!f)
                return strcpy(buf, "");
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = 0;
        fclose(f);
        return buf;
}

static void test_journal(void)
{
        char buf[8192];
        ssize_t n;
        int line, r;

        set_journal_stream();
        log_set_journal_socket(journal_path);
        log_open();
        ok(log_to_journal(), "stderr is the journal stream: records go to the journal");

        line = __LINE__ + 1;
        log_notebook(LOG_NOTICE, 0, "alice", "nb-1", "conflict", "Notebook %s is in conflict.", "nb-1");
        n = receive(buf, sizeof(buf));
        ok(n > 0, "log_notebook(): one datagram");
        if (n <= 0)
                return;
        ok(field_is(buf, (size_t)n, "MESSAGE", "Notebook nb-1 is in conflict."), "MESSAGE");
        ok(field_is(buf, (size_t)n, "PRIORITY", "5"), "PRIORITY=5 (notice)");
        ok(field_is(buf, (size_t)n, "SYSLOG_IDENTIFIER", "notebookd"), "SYSLOG_IDENTIFIER=notebookd");
        ok(field_is(buf, (size_t)n, "USER_ID", "alice"), "USER_ID");
        ok(field_is(buf, (size_t)n, "NOTEBOOK_ID", "nb-1"), "NOTEBOOK_ID");
        ok(field_is(buf, (size_t)n, "SYNC_STATE", "conflict"), "SYNC_STATE");
        ok(field_is(buf, (size_t)n, "CODE_FUNC", "test_journal"), "CODE_FUNC");
        {
                _cleanup_free_ char *file = field(buf, (size_t)n, "CODE_FILE", 0);
                _cleanup_free_ char *l = field(buf, (size_t)n, "CODE_LINE", 0);

                ok(file && strstr(file, "test-log.c"), "CODE_FILE names this file (%s)",
                   file ? file : "none");
                ok(l && atoi(l) == line, "CODE_LINE is the line of the call (%s)", l ? l : "none");
        }
        ok(!field(buf, (size_t)n, "ERRNO", 0), "no ERRNO without an error");
        ok(receive(buf, sizeof(buf)) < 0, "one record, one datagram");

        r = log_error_errno(-ENOENT, "Cannot open %s: %m", "/nowhere");
        is_int(r, -ENOENT, "log_error_errno() returns the error");
        n = receive(buf, sizeof(buf));
        ok(n > 0 && field_is(buf, (size_t)n, "MESSAGE", "Cannot open /nowhere: No such file or directory"),
           "%%m prints the error given");
        ok(n > 0 && field_is(buf, (size_t)n, "ERRNO", "2"), "ERRNO=2");
        ok(n > 0 && field_is(buf, (size_t)n, "PRIORITY", "3"), "PRIORITY=3 (err)");
        ok(n > 0 && !field(buf, (size_t)n, "NOTEBOOK_ID", 0), "plain log_*(): no notebook fields");

        /* Values with a newline take the length-prefixed form; a NULL value and bad keys are left
         * out. */
        log_struct(LOG_INFO, 0,
                   LOG_FIELDS({ "NOTEBOOK_ID", "two\nlines" }, { "USER_ID", NULL }, { "lower", "x" },
                              { "_PID", "1" }, { "9LIVES", "x" }, { "REMOTE_TABLE", "notebooks" }),
                   "first\nsecond");
        n = receive(buf, sizeof(buf));
        ok(n > 0 && field_is(buf, (size_t)n, "MESSAGE", "first\nsecond"),
           "a message with a newline, binary-safe");
        ok(n > 0 && field_is(buf, (size_t)n, "NOTEBOOK_ID", "two\nlines"),
           "a field with a newline, binary-safe");
        ok(n > 0 && field_is(buf, (size_t)n, "REMOTE_TABLE", "notebooks"), "a field of the caller's own");
        ok(n > 0 && !field(buf, (size_t)n, "USER_ID", 0), "a field whose value is NULL is left out");
        ok(n > 0 && !field(buf, (size_t)n, "lower", 0) && !field(buf, (size_t)n, "_PID", 0) &&
                   !field(buf, (size_t)n, "9LIVES", 0),
           "keys journald would refuse are left out");
        ok(n > 0 && !field(buf, (size_t)n, "PRIORITY", 1), "PRIORITY once");

        log_set_max_level(LOG_INFO);
        log_debug("not wanted");
        ok(receive(buf, sizeof(buf)) < 0, "below the level: nothing sent");
        log_set_max_level(LOG_DEBUG);
        log_debug("wanted now");
        n = receive(buf, sizeof(buf));
        ok(n > 0 && field_is(buf, (size_t)n, "PRIORITY", "7"), "at debug level: sent, PRIORITY=7");
        log_set_max_level(LOG_INFO);

        /* journald gone: the record still goes out, through the stream, with its level. */
        close(journal_fd);
        journal_fd = -1;
        unlink(journal_path);
        log_warning("journald is away");
        ok(strstr(stderr_text(), "<4>journald is away\n") != NULL,
           "journald unreachable: \"<4>message\" on stderr");
}

static void test_stderr(void)
{
        setenv("JOURNAL_STREAM", "1:1", 1);
        log_open();
        ok(!log_to_journal(), "JOURNAL_STREAM of another file: not the journal");
        log_info("plain %d", 42);
        log_warning_errno(-EACCES, "careful: %m");
        ok(strstr(stderr_text(), "notebookd: plain 42\n") != NULL, "info: \"notebookd: message\"");
        ok(strstr(stderr_text(), "notebookd: warning: careful: Permission denied\n") != NULL,
           "warning: the level spelled out");
        log_notebook(LOG_INFO, 0, "bob", "nb-2", "synced", "Synced %s.", "nb-2");
        ok(strstr(stderr_text(), "notebookd: Synced nb-2.\n") != NULL, "fields: only the message on stderr");
        log_warning("Sync: %s refused: %s", "evil\n<0>FORGED", "bad\r\x01");
        ok(strstr(stderr_text(), "notebookd: warning: Sync: evil\\n<0>FORGED refused: bad\\x0d\\x01\n") !=
                   NULL,
           "text from outside cannot start a line of its own: control characters are escaped");
        ok(strstr(stderr_text(), "\n<0>FORGED") == NULL, "no forged line");

        setenv("JOURNAL_STREAM", "12:34x", 1);
        log_open();
        ok(!log_to_journal(), "malformed JOURNAL_STREAM: not the journal");
        unsetenv("JOURNAL_STREAM");
        log_open();
        ok(!log_to_journal(), "no JOURNAL_STREAM: not the journal");
}

static void test_levels(void)
{
        static const char *const names[] = { "crit", "err", "warning", "notice", "info", "debug" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                is_str(log_level_to_string(log_level_from_string(names[i])), names[i], "level %s round trip",
                       names[i]);
        is_int(log_level_from_string("ERROR"), LOG_ERR, "\"error\" in any case is err");
        is_int(log_level_from_string("loud"), -EINVAL, "unknown level refused");
        is_str(log_level_to_string(42), "?", "no such level");
}

int main(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, saved_stderr;

        if (!mkdtemp(tmpdir))
                return 99;
        snprintf(journal_path, sizeof(journal_path), "%s/journal", tmpdir);
        snprintf(stderr_path, sizeof(stderr_path), "%s/stderr", tmpdir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", journal_path);
        journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (journal_fd < 0 || bind(journal_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return 99;

        /* stderr to a file: its device and inode stand for journald's stream. */
        fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        saved_stderr = dup(STDERR_FILENO);
        if (fd < 0 || saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0)
                return 99;
        close(fd);

        test_journal();
        test_stderr();
        test_levels();

        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        if (journal_fd >= 0)
                close(journal_fd);
        unlink(journal_path);
        unlink(stderr_path);
        rmdir(tmpdir);
        return tap_done();
}
