/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's side of the service manager's notification protocol (sd_notify(3)): READY=1 once
 * it serves, a one-line STATUS= kept current, the watchdog kept by the event loop, RELOADING=1
 * and READY=1 around a reload, STOPPING=1. Without NOTIFY_SOCKET every message is a no-op. */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

/* How often the status line is recomputed; it is sent only when its text changed. */
#define SERVICE_STATUS_REFRESH_USEC (2 * USEC_PER_SEC)

typedef struct Service Service;

/* Writes the current status line (one line, no newline) into buf and returns buf. */
typedef const char *(*ServiceStatusFunc)(void *userdata, char *buf, size_t size);

/* Sets up the watchdog on event when the service manager asks for one (WATCHDOG_USEC, and
 * WATCHDOG_PID if set must be our pid): the loop itself sends WATCHDOG=1 at about half the period,
 * so a loop that hangs is caught. The status timer starts at service_ready(). */
int service_new(sd_event *event, ServiceStatusFunc status, void *userdata, Service **ret);
Service *service_free(Service *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Service *, service_free)

/* The watchdog period the service manager asked for; 0 without a watchdog. */
uint64_t service_watchdog_usec(const Service *s);

/* READY=1 with the status line; from now on the status is kept current. */
void service_ready(Service *s);
/* Sends STATUS= if the line changed since it was last sent. */
void service_update_status(Service *s);
/* RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants); service_ready() ends the reload. */
void service_reloading(Service *s);
/* STOPPING=1 with a status line of the caller's; no more status updates. */
void service_stopping(Service *s, const char *status);
