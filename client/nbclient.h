/* SPDX-License-Identifier: MIT */
#pragma once

/* libnbclient: a small synchronous client for notebookd's JSON-RPC 2.0 protocol (doc/protocol.md).
 *
 * One NbClient is one connection. Use it from one thread at a time. Every function returns 0 (or
 * a count) on success and a negative errno on failure:
 *
 *   -EREMOTEIO   the daemon answered with a JSON-RPC error; the NbError holds it. The connection
 *                is fine and can be used further.
 *   -EMSGSIZE    a reply line was longer than the reply limit (NB_CLIENT_MAX_REPLY_BYTES)
 *   -EPROTO      a reply was not a valid JSON-RPC 2.0 reply
 *   -ECONNRESET  the daemon closed the connection (cleanly or not) while a reply was expected
 *   -ETIMEDOUT   a timeout set with nb_client_set_timeout() passed
 *   other        errno of the failed system call (connect(): -ENOENT, -ECONNREFUSED, -EACCES...)
 *
 * After any transport error (anything but 0 and -EREMOTEIO from a call, send or receive) the
 * connection is dead: later calls fail with -ENOTCONN. Close it with nb_client_free(). */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Replies can carry whole notebooks (1000 cells of up to ~10 MiB each in theory), so the
 * limit is generous; it only guards against a runaway peer. */
#define NB_CLIENT_MAX_REPLY_BYTES ((size_t)256 * 1024 * 1024)

/* The return value of a call that got a JSON-RPC error reply. */
#define NB_CLIENT_EREMOTE (-EREMOTEIO)

/* Error codes of doc/protocol.md. */
enum {
        NB_ERROR_PARSE = -32700,
        NB_ERROR_INVALID_REQUEST = -32600,
        NB_ERROR_METHOD_NOT_FOUND = -32601,
        NB_ERROR_INVALID_PARAMS = -32602,
        NB_ERROR_INTERNAL = -32603,
        NB_ERROR_LINE_TOO_LONG = -32000,
        NB_ERROR_TOO_DEEP = -32001,
        NB_ERROR_BAD_UTF8 = -32002,
        NB_ERROR_TRUNCATED = -32003,
        NB_ERROR_NOT_FOUND = -32010,
        NB_ERROR_CONFLICT = -32011,
        NB_ERROR_ACCESS_DENIED = -32012,
        NB_ERROR_TOO_LARGE = -32013,
        NB_ERROR_EXISTS = -32014,
        NB_ERROR_STORAGE = -32020,
};

typedef struct NbClient NbClient;

/* A JSON-RPC error object as the daemon sent it. Initialise with NB_ERROR_INIT (or zero it), release
 * with nb_error_done(); a function that fills it releases what it held before. */
typedef struct NbError {
        int code;
        char *message; /* never NULL once filled */
        cJSON *data;   /* error.data, or NULL */
} NbError;
#define NB_ERROR_INIT         \
        {                     \
                0, NULL, NULL \
        }

void nb_error_done(NbError *e);

/* The socket to use when none is given: $NOTEBOOKD_SOCKET if set and not empty; for root
 * /run/notebookd/notebookd.sock; otherwise $XDG_RUNTIME_DIR/notebookd/notebookd.sock, or
 * /run/user/UID/notebookd/notebookd.sock without XDG_RUNTIME_DIR. Returns a new string (free()
 * it), or NULL when out of memory. */
char *nb_default_socket_path(void);

/* Connects to the daemon's Unix stream socket at path. */
int nb_client_connect(const char *path, NbClient **ret);
/* Wraps an already connected stream socket (the client owns fd from then on, even on failure). */
int nb_client_new_from_fd(int fd, NbClient **ret);
/* Closes the connection. Takes NULL; returns NULL. */
NbClient *nb_client_free(NbClient *c);

/* Limits how long one send or receive may wait for the socket: msec < 0 waits forever (the
 * default). */
void nb_client_set_timeout(NbClient *c, int msec);
/* Changes the longest reply line accepted (default NB_CLIENT_MAX_REPLY_BYTES; at least 64). */
void nb_client_set_max_reply(NbClient *c, size_t bytes);
/* Requests sent and not yet answered. */
unsigned nb_client_in_flight(const NbClient *c);

/* Sends one request and waits for its reply. params is a JSON object or NULL and is taken over
 * (deleted) in every case. On 0, *ret_result (if ret_result is not NULL) holds the result, which
 * the caller deletes. On -EREMOTEIO, *err (if not NULL) holds the daemon's error.
 * Replies to earlier pipelined requests that arrive first are kept for nb_client_recv(). */
int nb_client_call(NbClient *c, const char *method, cJSON *params, cJSON **ret_result, NbError *err);

/* Pipelining: nb_client_send() writes one request without waiting (params taken as above) and
 * stores its id (1, 2, 3, ... per connection) in *ret_id if not NULL. While it writes, it also
 * reads what the daemon sends, so a long pipeline cannot deadlock with the daemon.
 * nb_client_recv() waits for the next reply; *ret_id gets the id of the request it answers. It
 * returns 0 with *ret_result, or -EREMOTEIO with *err, as nb_client_call() does; -EALREADY when no
 * request is in flight. Match replies by id: an error the daemon could not tie to a request (a line
 * too long) answers the oldest request in flight, as the daemon replies in request order; a reply
 * to no request in flight is a protocol error (-EPROTO). */
int nb_client_send(NbClient *c, const char *method, cJSON *params, uint64_t *ret_id);
int nb_client_recv(NbClient *c, uint64_t *ret_id, cJSON **ret_result, NbError *err);

/* Notifications from the daemon (notebook.changed, after notebook.watch): waits for the next one
 * (within the timeout) and returns the whole message, {"jsonrpc", "method", "params"}, for the
 * caller to delete. Notifications that arrive while a call waits are kept for here, at most
 * NB_CLIENT_MAX_NOTIFICATIONS (the oldest go first); replies that arrive here are kept for
 * nb_client_recv(). */
#define NB_CLIENT_MAX_NOTIFICATIONS 4096
int nb_client_next_notification(NbClient *c, cJSON **ret_msg);
