/* SPDX-License-Identifier: MIT */
#pragma once

/* Limits on what a peer may send. Every one is checked before anything is allocated for the
 * value it bounds; doc/protocol.md lists them for clients. */

#define MAX_LINE_BYTES_DEFAULT      (16u * 1024 * 1024) /* one request line, newline excluded */
#define MAX_LINE_BYTES_MIN          (64u * 1024)
#define MAX_JSON_VALUES             (1000u * 1000u) /* arrays, objects and scalars in one request */
#define MAX_JSON_DEPTH              64              /* nesting of arrays and objects in one request */
#define MAX_ID_BYTES                128             /* notebook_id, cell_id */
#define MAX_USER_ID_BYTES           64              /* leaves room for "blank-" and "demo-" prefixes */
#define MAX_NAME_BYTES              1024
#define MAX_CONN_STRING_BYTES       4096
#define MAX_CODE_BYTES              (1024u * 1024)
#define MAX_STDOUT_BYTES            (1024u * 1024)
#define MAX_ERROR_BYTES             (64u * 1024)
#define MAX_OUTPUTS                 64                 /* outputs per cell */
#define MAX_OUTPUTS_BYTES           (8u * 1024 * 1024) /* serialized outputs of one cell */
#define MAX_MIME_TYPE_BYTES         255
#define MAX_VARS                    1024 /* names in reads or in writes */
#define MAX_VAR_BYTES               256
#define MAX_CELLS                   1000                /* cells per notebook */
#define MAX_NOTEBOOK_BYTES_DEFAULT  (16u * 1024 * 1024) /* names, code and outputs of one notebook */
#define MAX_CONNECTIONS             1024
#define RESERVED_CONNECTIONS        32  /* of MAX_CONNECTIONS, only for privileged peers (root, admins) */
#define MAX_CONNECTIONS_PER_UID     256 /* for a uid that is not privileged (root, the daemon's, admin) */
#define MAX_CONNECTIONS_STATUS_ONLY 4   /* for a uid bound to no user_id: it may only read daemon.status */
#define MAX_PIPELINED               64  /* unanswered requests per connection before it is no longer read */
#define MAX_WATCHES                 64  /* notebook.watch subscriptions per connection */
#define MAX_NOTIFY_BACKLOG          (1024u * 1024) /* unsent bytes past which notifications are left out */
#define MAX_BATCH_REQUESTS          256            /* requests that share one transaction */
#define MAX_CONFLICTS_LISTED        10000          /* conflicts one sync.conflicts or sync.resolve handles */
#define MAX_LIST_PAGE               1000         /* notebooks in one notebook.list reply, and its default */
#define MAX_LIST_CURSOR_BYTES       (16u * 1024) /* a notebook.list cursor (the daemon's are far shorter) */
#define HISTORY_REVISIONS_DEFAULT   100          /* revisions of each notebook kept for restore */
#define HISTORY_REVISIONS_MAX       10000
#define HISTORY_AGE_DAYS_DEFAULT    30   /* and for at most this long */
#define MAX_HISTORY_LISTED          1000 /* entries in one notebook.history reply */
