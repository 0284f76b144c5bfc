/* SPDX-License-Identifier: MIT */
#pragma once

/* The Unix socket: accepting peers, reading request lines, group commit, writing replies in
 * request order. */

#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "rpc.h"

typedef struct Server Server;

/* Binds and listens on path with the given mode. Refuses (-EADDRINUSE) if a live daemon answers
 * there, replaces a stale socket file, refuses (-EEXIST) a path that is not a socket. */
int server_bind(const char *path, mode_t mode, int *ret_fd);

/* Takes over listen_fd (bound by server_bind() or inherited through LISTEN_FDS). */
int server_new(sd_event *event, Rpc *rpc, int listen_fd, size_t max_line, gid_t admin_gid,
               bool have_admin_gid, Server **ret);
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free)

/* Stop accepting and reading, run what was received, flush replies as far as the peers take
 * them. For a clean stop. */
void server_drain(Server *s);
/* The store made more commits durable: the batches they hold are answered. */
void server_flushed(Server *s);

unsigned server_connections(Server *s);

/* Tells the peers watching the notebook (notebook.watch) that it changed: change is a
 * store_change_record(), origin "local" or "remote". Called once the change is durable. */
void server_notify_change(Server *s, const cJSON *change, const char *origin);
