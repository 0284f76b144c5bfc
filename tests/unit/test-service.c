/* SPDX-License-Identifier: MIT */
/* service: the sd_notify messages, read from a NOTIFY_SOCKET of the test's own; the watchdog kept
 * by a running loop (and stopped when WATCHDOG_PID names another process). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "service.h"
#include "tap.h"
#include "util.h"

#define WATCHDOG_USEC (200 * USEC_PER_MSEC)

static char tmpdir[] = "/tmp/test-service-XXXXXX";
static char notify_path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
static int notify_fd = -1;

typedef struct Messages {
        unsigned n;
        char text[256][512];
        uint64_t at[256];
} Messages;

static void drain(Messages *m)
{
        char buf[512];
        ssize_t n;

        while ((n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
                buf[n] = 0;
                if (m->n < ELEMENTSOF(m->text)) {
                        memcpy(m->text[m->n], buf, (size_t)n + 1);
                        m->at[m->n] = now_monotonic_usec();
                }
                m->n++;
        }
}

/* The index of the first message from index from that starts with prefix, or -1. */
static int find(const Messages *m, unsigned from, const char *prefix)
{
        for (unsigned i = from; i < m->n && i < ELEMENTSOF(m->text); i++)
                if (strncmp(m->text[i], prefix, strlen(prefix)) == 0)
                        return (int)i;
        return -1;
}

static unsigned count(const Messages *m, const char *text)
{
        unsigned k = 0;

        for (unsigned i = 0; i < m->n && i < ELEMENTSOF(m->text); i++)
                k += streq(m->text[i], text);
        return k;
}

static const char *status_text = "Serving A";

static const char *status(void *userdata, char *buf, size_t size)
{
        unsigned *calls = userdata;

        (*calls)++;
        snprintf(buf, size, "%s", status_text);
        return buf;
}

/* Runs the loop for usec, collecting what arrives on the notification socket meanwhile. */
static void run_for(sd_event *e, uint64_t usec, Messages *m)
{
        uint64_t end = now_monotonic_usec() + usec;

        while (now_monotonic_usec() < end) {
                (void)sd_event_run(e, 10 * USEC_PER_MSEC);
                drain(m);
        }
}

static void test_protocol(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(service_freep) Service *s = NULL;
        Messages *m = calloc(1, sizeof(*m));
        unsigned calls = 0, wd, max_gap = 0;
        int i, r, last = -1;

        setenv("NOTIFY_SOCKET", notify_path, 1);
        setenv("WATCHDOG_USEC", "200000", 1);
        unsetenv("WATCHDOG_PID");
        if (!m || sd_event_new(&e) < 0)
                abort();
        r = service_new(e, status, &calls, &s);
        is_int(r, 0, "service_new()");
        if (r < 0) {
                free(m);
                return;
        }
        is_int(service_watchdog_usec(s), WATCHDOG_USEC, "the watchdog period is WATCHDOG_USEC");

        service_ready(s);
        drain(m);
        i = find(m, 0, "READY=1");
        ok(i >= 0, "READY=1 sent");
        ok(i >= 0 && streq(m->text[i], "READY=1\nSTATUS=Serving A"), "READY=1 comes with the status line");

        /* The loop keeps the watchdog: sd-event pings from its iterations, at most every quarter of
         * the period, and wakes up for it after half to three quarters of the period when idle. */
        run_for(e, 1200 * USEC_PER_MSEC, m);
        wd = count(m, "WATCHDOG=1");
        ok(wd >= 5 && wd <= 26, "WATCHDOG=1 every 50-150 ms while the loop runs (%u in 1.2 s)", wd);
        for (unsigned k = 0; k < m->n && k < ELEMENTSOF(m->text); k++)
                if (streq(m->text[k], "WATCHDOG=1")) {
                        if (last >= 0)
                                max_gap = MAX(max_gap, (unsigned)((m->at[k] - m->at[last]) / USEC_PER_MSEC));
                        last = (int)k;
                }
        /* At most three quarters of the period apart; the rest is slack for a loaded machine. */
        ok(max_gap < 3 * WATCHDOG_USEC / 2 / USEC_PER_MSEC,
           "pings well within the period (longest gap %u ms)", max_gap);

        /* Nothing changed: no STATUS=. */
        calls = 0;
        m->n = 0;
        service_update_status(s);
        drain(m);
        ok(calls == 1 && find(m, 0, "STATUS=") < 0, "an unchanged status is not sent again");
        status_text = "Serving B";
        service_update_status(s);
        drain(m);
        i = find(m, 0, "STATUS=");
        ok(i >= 0 && streq(m->text[i], "STATUS=Serving B"), "a changed status is sent");

        /* The refresh timer finds a change by itself. */
        status_text = "Serving C\nwith a newline";
        m->n = 0;
        run_for(e, SERVICE_STATUS_REFRESH_USEC + 500 * USEC_PER_MSEC, m);
        i = find(m, 0, "STATUS=");
        ok(i >= 0 && streq(m->text[i], "STATUS=Serving C with a newline"),
           "the timer sends a changed status, on one line");

        m->n = 0;
        service_reloading(s);
        service_ready(s);
        drain(m);
        i = find(m, 0, "RELOADING=1\nMONOTONIC_USEC=");
        ok(i >= 0, "RELOADING=1 with MONOTONIC_USEC");
        ok(i >= 0 && find(m, (unsigned)i + 1, "READY=1\n") > i, "then READY=1");

        m->n = 0;
        service_stopping(s, "Stopping now.");
        drain(m);
        i = find(m, 0, "STOPPING=1");
        ok(i >= 0 && streq(m->text[i], "STOPPING=1\nSTATUS=Stopping now."), "STOPPING=1 with its status");
        status_text = "Serving D";
        m->n = 0;
        service_update_status(s);
        run_for(e, SERVICE_STATUS_REFRESH_USEC + 300 * USEC_PER_MSEC, m);
        ok(find(m, 0, "STATUS=") < 0, "no status updates once stopping");
        s = service_free(s);
        free(m);
}

static void test_other_pid(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(service_freep) Service *s = NULL;
        Messages *m = calloc(1, sizeof(*m));
        unsigned calls = 0;
        char pid[32];

        /* The watchdog is for the service's main process; a child that inherited the variables
         * must not ping for it. */
        snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
        setenv("WATCHDOG_PID", pid, 1);
        if (!m || sd_event_new(&e) < 0 || service_new(e, status, &calls, &s) < 0)
                abort();
        is_int(service_watchdog_usec(s), 0, "WATCHDOG_PID of another process: no watchdog");
        service_ready(s);
        run_for(e, 500 * USEC_PER_MSEC, m);
        ok(find(m, 0, "READY=1") >= 0 && count(m, "WATCHDOG=1") == 0, "READY=1 but no WATCHDOG=1");
        s = service_free(s);
        free(m);

        unsetenv("WATCHDOG_PID");
        unsetenv("WATCHDOG_USEC");
        unsetenv("NOTIFY_SOCKET");
        e = sd_event_unref(e);
        if (sd_event_new(&e) < 0 || service_new(e, status, &calls, &s) < 0)
                abort();
        service_ready(s);
        service_stopping(s, "x");
        ok(service_watchdog_usec(s) == 0, "without a service manager everything is a no-op");
}

int main(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (!mkdtemp(tmpdir))
                return 99;
        snprintf(notify_path, sizeof(notify_path), "%s/notify", tmpdir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (notify_fd < 0 || bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return 99;
        log_set_max_level(LOG_WARNING);

        test_protocol();
        test_other_pid();

        close(notify_fd);
        unlink(notify_path);
        rmdir(tmpdir);
        return tap_done();
}
