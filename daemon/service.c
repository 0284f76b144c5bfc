/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "service.h"

#define SERVICE_STATUS_MAX 512

struct Service {
        sd_event *event;
        sd_event_source *status_timer;
        ServiceStatusFunc status;
        void *userdata;
        uint64_t watchdog_usec;
        char last_status[SERVICE_STATUS_MAX];
        bool stopping;
};

/* Status lines come from our own counters and sync state, but a newline would start a new
 * assignment in the notification: keep it one line. */
static void service_one_line(char *s)
{
        for (; *s; s++)
                if (*s == '\n' || *s == '\r')
                        *s = ' ';
}

static const char *service_status_now(Service *s, char *buf, size_t size)
{
        buf[0] = 0;
        if (s->status)
                s->status(s->userdata, buf, size);
        service_one_line(buf);
        return buf;
}

static int on_status_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        Service *s = userdata;

        service_update_status(s);
        (void)sd_event_source_set_time_relative(source, SERVICE_STATUS_REFRESH_USEC);
        return 0;
}

int service_new(sd_event *event, ServiceStatusFunc status, void *userdata, Service **ret)
{
        _cleanup_(service_freep) Service *s = NULL;
        uint64_t usec = 0;
        int r;

        /* sd-event reads WATCHDOG_USEC and WATCHDOG_PID itself and pings from the loop: a ping sent
         * by a timer of ours could not tell a live loop from a stuck one any better. */
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return r;
        if (r > 0 && sd_watchdog_enabled(false, &usec) <= 0)
                usec = 0;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->status = status;
        s->userdata = userdata;
        s->watchdog_usec = usec;

        r = sd_event_add_time_relative(event, &s->status_timer, CLOCK_MONOTONIC, SERVICE_STATUS_REFRESH_USEC,
                                       USEC_PER_SEC / 10, on_status_timer, s);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(s->status_timer, SD_EVENT_OFF);
        *ret = TAKE_PTR(s);
        return 0;
}

Service *service_free(Service *s)
{
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->status_timer);
        if (s->event && s->watchdog_usec)
                (void)sd_event_set_watchdog(s->event, false);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

uint64_t service_watchdog_usec(const Service *s)
{
        return s->watchdog_usec;
}

void service_ready(Service *s)
{
        char buf[SERVICE_STATUS_MAX];

        service_status_now(s, buf, sizeof(buf));
        (void)sd_notifyf(false, "READY=1\nSTATUS=%s", buf);
        memcpy(s->last_status, buf, sizeof(buf));
        if (!s->stopping) {
                (void)sd_event_source_set_time_relative(s->status_timer, SERVICE_STATUS_REFRESH_USEC);
                (void)sd_event_source_set_enabled(s->status_timer, SD_EVENT_ON);
        }
}

void service_update_status(Service *s)
{
        char buf[SERVICE_STATUS_MAX];

        if (s->stopping)
                return;
        service_status_now(s, buf, sizeof(buf));
        if (streq(buf, s->last_status))
                return;
        (void)sd_notifyf(false, "STATUS=%s", buf);
        memcpy(s->last_status, buf, sizeof(buf));
}

void service_reloading(Service *s)
{
        (void)sd_notifyf(false,
                         "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading the configuration.",
                         now_monotonic_usec());
        snprintf(s->last_status, sizeof(s->last_status), "Reloading the configuration.");
}

void service_stopping(Service *s, const char *status)
{
        char buf[SERVICE_STATUS_MAX];

        snprintf(buf, sizeof(buf), "%s", status);
        service_one_line(buf);
        s->stopping = true;
        (void)sd_event_source_set_enabled(s->status_timer, SD_EVENT_OFF);
        (void)sd_notifyf(false, "STOPPING=1\nSTATUS=%s", buf);
        memcpy(s->last_status, buf, sizeof(buf));
}
