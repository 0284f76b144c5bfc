/* SPDX-License-Identifier: MIT */
#pragma once

/* The daemon's life: configuration, store, socket, sync engine, service manager; reload on
 * SIGHUP, clean stop on SIGTERM. main.c parses the command line and calls in here. */

#include <stdbool.h>

/* Exit statuses, as notebookd(8) documents them. */
#define EXIT_FAILED_START 1 /* also: --check-config found a problem */
#define EXIT_USAGE        2

/* What the command line said; NULL and -1 for what it did not. */
typedef struct DaemonArgs {
        const char *state_dir;
        const char *socket_path;
        const char *config_path;
        int durability; /* -1 unset, 0 normal, 1 full */
        int log_level;  /* -1 unset */
        bool check_config;
} DaemonArgs;

/* --check-config: reports every problem of the configuration; returns the exit status. */
int daemon_check_config(const DaemonArgs *a);

/* Runs the daemon until it is stopped; returns the exit status. */
int daemon_run(const DaemonArgs *a);
