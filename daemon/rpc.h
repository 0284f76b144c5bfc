/* SPDX-License-Identifier: MIT */
#pragma once

/* JSON-RPC 2.0 dispatch: one request line in, one reply line out (doc/protocol.md). The server
 * decides when transactions begin and end; rpc runs each request inside them. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "metrics.h"
#include "nb-limits.h"
#include "store.h"

/* A notebook.watch subscription: one notebook, or all of a user's (notebook_id NULL). */
typedef struct RpcWatch {
        char *user_id, *notebook_id;
} RpcWatch;

/* A connected peer, and the state of its connection that requests look at. */
typedef struct RpcPeer {
        uid_t uid;
        gid_t gid;
        pid_t pid;
        bool privileged;                          /* may act for any user_id */
        char default_user[MAX_USER_ID_BYTES + 1]; /* used when a privileged peer names no user */
        RpcWatch watches[MAX_WATCHES];            /* kept by the server (rpc_peer_apply_watch()) */
        unsigned n_watches;
        unsigned watches_pending; /* notebook.watch requests run, their replies not yet sent */
} RpcPeer;

/* Slots of the per-method counters: the methods, then "other" (unknown methods, requests that are
 * no valid request); and of the error codes: those of doc/protocol.md, then any other. */
#define RPC_METHOD_SLOTS 48
#define RPC_ERROR_SLOTS  24

/* The name of method slot i (i < rpc_method_slots()): the last is "other". */
size_t rpc_method_slots(void);
const char *rpc_method_name(size_t i);
/* The code of error slot i (i < rpc_error_slots()); 0 for the last, "any other". */
size_t rpc_error_slots(void);
int rpc_error_code(size_t i);
size_t rpc_error_slot(int code);

/* What the daemon tells about itself in daemon.status, kept up to date by the server. */
typedef struct Rpc {
        Store *store;
        const Config *config;
        const char *state_dir;
        const char *db_path;
        uint64_t started_usec; /* monotonic */
        unsigned connections;
        unsigned watches; /* notebook.watch subscriptions, all connections */
        uint64_t requests;
        uint64_t transactions;
        /* For daemon.metrics: requests and errors by method (rpc_method_name()) and error code
         * (rpc_error_code()), connections accepted, and the group commits (rpc_note_commit()). */
        uint64_t method_requests[RPC_METHOD_SLOTS];
        uint64_t method_errors[RPC_METHOD_SLOTS][RPC_ERROR_SLOTS];
        uint64_t connections_total;
        MetricsHistogram commit_seconds; /* METRICS_HISTOGRAM_SECONDS: begin to durable */
        MetricsHistogram batch_requests; /* METRICS_HISTOGRAM_COUNT: requests per transaction */
        /* Renders the daemon's metrics (daemon.metrics); NULL: none to render. */
        int (*metrics_render)(void *userdata, MetricsFormat format, char **ret_text, size_t *ret_len);
        void *metrics_userdata;
        /* The sync engine's hooks; all NULL when the daemon runs local-only. */
        void (*sync_notify)(void *userdata, const char *user_id, const char *notebook_id);
        int (*sync_status)(void *userdata, const char *user_id, cJSON *obj);
        void (*sync_pull)(void *userdata, const char *user_id); /* user_id NULL: every user */
        void *sync_userdata;
} Rpc;

typedef struct RpcReply {
        char *text; /* the reply line with its '\n', or NULL (a notification) */
        /* A request whose reply may not stand if the transaction does not commit (what it wrote,
         * or read, did not happen): rpc_reply_abort_text() makes the error to send instead. */
        bool abortable;
        bool abort_writes;
        cJSON *abort_id;
        bool failed;     /* the request failed: undo whatever it wrote */
        unsigned method; /* its slot in Rpc.method_requests */
        cJSON *changed;  /* the notebooks the request changed (store_change_record() each), for the
                          * sync engine and watchers once the transaction is durable; NULL if none */
        cJSON *watch;    /* notebook.watch/unwatch: [watching (bool), user_id, notebook_id or null]
                          * for the server to apply to the connection when it sends the reply (so
                          * that no notification comes before it); NULL otherwise */
} RpcReply;

void rpc_reply_done(RpcReply *r);
/* The reply to send instead of r->text when r->abortable and the transaction did not commit. */
char *rpc_reply_abort_text(const RpcReply *r);

/* Whether the peer may act for user_id under the current configuration (it may change on reload). */
bool rpc_peer_may_act(const Rpc *rpc, const RpcPeer *peer, const char *user_id);

/* Applies a reply's watch ([on, user_id, notebook_id or null]) to the peer's list. */
int rpc_peer_apply_watch(RpcPeer *peer, const cJSON *watch);
/* Frees the peer's watches. */
void rpc_peer_done(RpcPeer *peer);

/* Handles one request line (as framed: without '\n', and line[len] must be NUL). Returns 0 with
 * *ret filled, or -ENOMEM. */
int rpc_handle(Rpc *rpc, const RpcPeer *peer, const char *line, size_t len, RpcReply *ret);

/* An error reply with a null id, for errors found before a request could be parsed: oversize
 * lines, truncated requests. data_key/data_value add one integer to "data" (data_key may be NULL).
 * NULL on OOM. */
char *rpc_error_line(int code, const char *message, const char *data_key, long long data_value);
