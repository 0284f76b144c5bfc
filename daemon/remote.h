/* SPDX-License-Identifier: MIT */
#pragma once

/* The DynamoDB client: one JSON-protocol call (X-Amz-Target DynamoDB_20120810.<target>) at a
 * time per caller, with credentials from creds.c, signed by sigv4.c, sent by http.c, and its
 * outcome classified by ddb.c. Asynchronous: nothing here blocks the event loop. */

#include <stdbool.h>
#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "ddb.h"
#include "metrics.h"
#include "util.h"

typedef struct Remote Remote;

typedef struct RemoteReply {
        int error;           /* 0, or a negative errno when no HTTP answer came (-ECANCELED at shutdown) */
        bool maybe_sent;     /* with error: the request may have reached the remote */
        long status;         /* HTTP status */
        DdbErrorClass cls;   /* DDB_OK or what kind of failure */
        const char *message; /* for people: what went wrong; never a secret */
        const char *type;    /* DynamoDB's error type, e.g. "ResourceNotFoundException", or "" */
        cJSON *body;         /* the parsed answer (DDB_OK) or NULL */
} RemoteReply;

/* owner and userdata are the caller's; the reply and its body are valid during the call only. */
typedef void (*RemoteFunc)(void *owner, void *userdata, RemoteReply *reply);

int remote_new(sd_event *event, const RemoteConfig *conf, Remote **ret);

/* Splits an endpoint (scheme://host[:port][/path]) into what is sent and signed: the URL with a
 * path, host[:port] for the Host header, and the path ("/" when it has none). -EINVAL for one
 * without a host, with user info, a query, a fragment, blanks or control characters (an endpoint
 * from AWS_ENDPOINT_URL has not been through notebookd.conf's checks), -ENOMEM. Pure. */
int remote_endpoint_parse(const char *endpoint, char **ret_url, char **ret_host, char **ret_path);
/* Cancels what is in flight: each callback runs once more with -ECANCELED. */
Remote *remote_free(Remote *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Remote *, remote_free)

/* Sends body (serialised now; the caller keeps it) to target, once credentials are at hand. On
 * success the callback runs once, later, never from inside this call (missing credentials come
 * back as a DDB_AUTH reply); a negative return (-ENOMEM) means no callback will run. */
int remote_call(Remote *r, const char *target, const cJSON *body, RemoteFunc cb, void *owner,
                void *userdata);

/* The same, sent once delay_usec have passed (a retry's backoff); remote_free() cancels it too. */
int remote_call_after(Remote *r, uint64_t delay_usec, const char *target, const cJSON *body, RemoteFunc cb,
                      void *owner, void *userdata);

/* What the requests cost, by operation (remote_op_name()), for the daemon's metrics. */
typedef enum RemoteOp {
        REMOTE_OP_GET_ITEM,
        REMOTE_OP_PUT_ITEM,
        REMOTE_OP_DELETE_ITEM,
        REMOTE_OP_QUERY,
        REMOTE_OP_OTHER,
        _REMOTE_OP_MAX,
} RemoteOp;

/* The outcomes of a request: the classes of ddb.h, then no answer at all (connection, timeout). */
#define REMOTE_NO_ANSWER (DDB_AUTH + 1)
#define REMOTE_OUTCOMES  (REMOTE_NO_ANSWER + 1)

typedef struct RemoteStats {
        /* From sending to the answer (or to the failure of the exchange), each HTTP request. */
        MetricsHistogram seconds[_REMOTE_OP_MAX];
        /* The capacity units DynamoDB said the answers consumed (ReturnConsumedCapacity=TOTAL). */
        double capacity_units[_REMOTE_OP_MAX];
        uint64_t capacity_reports[_REMOTE_OP_MAX]; /* answers that said */
        /* Requests by how they ended: a DdbErrorClass, or REMOTE_NO_ANSWER (remote_outcome_name()). */
        uint64_t outcomes[_REMOTE_OP_MAX][REMOTE_OUTCOMES];
} RemoteStats;

const char *remote_op_name(RemoteOp op);
const char *remote_outcome_name(unsigned outcome);
const RemoteStats *remote_stats(Remote *r);

const char *remote_endpoint(Remote *r);
const char *remote_region(Remote *r);
