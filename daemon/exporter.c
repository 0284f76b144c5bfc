/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "exporter.h"
#include "log.h"

/* ---- the families -------------------------------------------------------------------------- */

static void render_requests(MetricsText *t, const Rpc *rpc)
{
        char labels[128];

        metrics_family(t, "notebookd_requests", METRICS_COUNTER,
                       "Requests received on the socket, by method (\"other\": unknown methods and lines "
                       "that are no valid request).");
        for (size_t i = 0; i < rpc_method_slots(); i++) {
                snprintf(labels, sizeof(labels), "method=\"%s\"", rpc_method_name(i));
                metrics_counter(t, "notebookd_requests", labels, (double)rpc->method_requests[i]);
        }
        /* Only the pairs seen: every method by every code would be hundreds of zeros. */
        metrics_family(t, "notebookd_request_errors", METRICS_COUNTER,
                       "Requests answered with an error, by method and JSON-RPC error code "
                       "(doc/protocol.md, Errors); code \"other\" for any code not listed there.");
        for (size_t i = 0; i < rpc_method_slots(); i++)
                for (size_t k = 0; k < rpc_error_slots(); k++) {
                        int code = rpc_error_code(k);

                        if (rpc->method_errors[i][k] == 0)
                                continue;
                        if (code != 0)
                                snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%d\"",
                                         rpc_method_name(i), code);
                        else
                                snprintf(labels, sizeof(labels), "method=\"%s\",code=\"other\"",
                                         rpc_method_name(i));
                        metrics_counter(t, "notebookd_request_errors", labels,
                                        (double)rpc->method_errors[i][k]);
                }
        metrics_family(t, "notebookd_commit_duration_seconds", METRICS_HISTOGRAM,
                       "Group-commit transactions of requests: from BEGIN until the commit is on disk and "
                       "the replies go out.");
        metrics_histogram(t, "notebookd_commit_duration_seconds", NULL, &rpc->commit_seconds);
        metrics_family(t, "notebookd_commit_batch_requests", METRICS_HISTOGRAM,
                       "Requests per group-commit transaction.");
        metrics_histogram(t, "notebookd_commit_batch_requests", NULL, &rpc->batch_requests);
        metrics_gauge_family(t, "notebookd_connections", "Client connections open on the socket.",
                             rpc->connections);
        /* Not notebookd_connections_total: OpenMetrics would name that counter's family as the gauge. */
        metrics_counter_family(t, "notebookd_connections_accepted",
                               "Client connections accepted since the start.",
                               (double)rpc->connections_total);
        metrics_gauge_family(t, "notebookd_watches", "notebook.watch subscriptions, all connections.",
                             rpc->watches);
}

static void render_store(MetricsText *t, const Rpc *rpc)
{
        StoreStats st;

        /* Two counts the database keeps current: reading them costs the same at any size. */
        if (store_stats(rpc->store, &st) < 0)
                return;
        metrics_gauge_family(t, "notebookd_notebooks", "Live notebooks, all users.", (double)st.notebooks);
        metrics_gauge_family(t, "notebookd_users", "Provisioned users.", (double)st.users);
}

static void render_sync(MetricsText *t, Sync *sync)
{
        SyncMetrics m;
        char labels[64];

        sync_metrics(sync, &m);
        metrics_gauge_family(t, "notebookd_sync_online",
                             "1 while the last exchange with DynamoDB succeeded.", m.online);
        metrics_family(t, "notebookd_sync_pushes", METRICS_COUNTER,
                       "Writes of notebooks to DynamoDB (PutItem or DeleteItem of the item), by outcome: "
                       "success, conflict (the condition failed: the table moved on), retryable_error, "
                       "error (refused for good).");
        for (SyncPushOutcome o = 0; o < _SYNC_PUSH_MAX; o++) {
                snprintf(labels, sizeof(labels), "outcome=\"%s\"", sync_push_outcome_name(o));
                metrics_counter(t, "notebookd_sync_pushes", labels, (double)m.pushes[o]);
        }
        metrics_family(t, "notebookd_sync_pulls", METRICS_COUNTER,
                       "Pulls of one user's notebooks from DynamoDB, by outcome: complete or failed.");
        metrics_counter(t, "notebookd_sync_pulls", "outcome=\"complete\"", (double)m.pulls_complete);
        metrics_counter(t, "notebookd_sync_pulls", "outcome=\"failed\"", (double)m.pulls_failed);
        metrics_counter_family(t, "notebookd_sync_pulled_notebooks",
                               "Versions of notebooks that pulls took in from DynamoDB.", (double)m.pulled);
        metrics_family(t, "notebookd_sync_retries", METRICS_COUNTER,
                       "Failed requests tried again: kind \"request\" by the standard retry mode (within "
                       "a few seconds), \"backoff\" left to the loop-level backoff (an outage).");
        metrics_counter(t, "notebookd_sync_retries", "kind=\"request\"", (double)m.retries_request);
        metrics_counter(t, "notebookd_sync_retries", "kind=\"backoff\"", (double)m.retries_backoff);
        metrics_counter_family(t, "notebookd_sync_merges", "Three-way merges with another device's version.",
                               (double)m.merges);
        metrics_counter_family(t, "notebookd_sync_conflicts",
                               "Conflicts the merges found (a cell or field changed on both sides), "
                               "resolved or not.",
                               (double)m.conflicts);
        metrics_gauge_family(t, "notebookd_sync_pending_notebooks",
                             "Notebooks with changes waiting to be pushed.", m.pending);
        metrics_gauge_family(t, "notebookd_sync_error_notebooks",
                             "Notebooks whose push is refused until something changes (credentials, the "
                             "table, the item).",
                             m.errors);
        metrics_gauge_family(t, "notebookd_sync_in_flight_notebooks", "Notebooks being pushed right now.",
                             m.in_flight);
        metrics_counter_family(t, "notebookd_sync_parts_written", "Parts of big notebooks written.",
                               (double)m.parts_written);
        metrics_counter_family(t, "notebookd_sync_parts_fetched", "Parts of big notebooks fetched.",
                               (double)m.parts_fetched);
        metrics_counter_family(t, "notebookd_sync_parts_deleted", "Parts of big notebooks deleted.",
                               (double)m.parts_deleted);

        metrics_family(t, "notebookd_dynamodb_request_duration_seconds", METRICS_HISTOGRAM,
                       "DynamoDB requests, from sending to the answer (or the failure of the exchange), by "
                       "operation.");
        for (RemoteOp op = 0; op < _REMOTE_OP_MAX; op++) {
                snprintf(labels, sizeof(labels), "operation=\"%s\"", remote_op_name(op));
                metrics_histogram(t, "notebookd_dynamodb_request_duration_seconds", labels,
                                  &m.remote->seconds[op]);
        }
        metrics_family(t, "notebookd_dynamodb_requests", METRICS_COUNTER,
                       "DynamoDB requests by operation and outcome: ok, retryable_error (5xx), throttled, "
                       "conditional_check_failed, validation_error, auth_error, no_answer (connection "
                       "failed, timed out); only the pairs seen so far.");
        for (RemoteOp op = 0; op < _REMOTE_OP_MAX; op++)
                for (unsigned o = 0; o < REMOTE_OUTCOMES; o++) {
                        char both[128];

                        if (m.remote->outcomes[op][o] == 0)
                                continue;
                        snprintf(both, sizeof(both), "operation=\"%s\",outcome=\"%s\"", remote_op_name(op),
                                 remote_outcome_name(o));
                        metrics_counter(t, "notebookd_dynamodb_requests", both,
                                        (double)m.remote->outcomes[op][o]);
                }
        metrics_family(t, "notebookd_dynamodb_consumed_capacity_units", METRICS_COUNTER,
                       "Capacity units DynamoDB reported the answers consumed (ReturnConsumedCapacity), by "
                       "operation.");
        for (RemoteOp op = 0; op < _REMOTE_OP_MAX; op++) {
                snprintf(labels, sizeof(labels), "operation=\"%s\"", remote_op_name(op));
                metrics_counter(t, "notebookd_dynamodb_consumed_capacity_units", labels,
                                m.remote->capacity_units[op]);
        }
}

/* Resident memory from /proc/self/statm (its second field, in pages); -1 if unreadable. */
static double resident_bytes(void)
{
        _cleanup_close_ int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        char buf[128];
        unsigned long long size, resident;
        ssize_t n;

        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -1;
        buf[n] = 0;
        if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
                return -1;
        return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void render_process(MetricsText *t, const ExporterSources *src)
{
        struct rusage ru;
        double rss = resident_bytes();

        metrics_family(t, "notebookd_build_info", METRICS_GAUGE,
                       "The daemon's version, as a label; always 1.");
        metrics_gauge(t, "notebookd_build_info", "version=\"" PACKAGE_VERSION "\"", 1);
        metrics_gauge_family(t, "notebookd_start_time_seconds",
                             "When the daemon started, in seconds since the epoch.",
                             (double)(src->start_realtime_usec / USEC_PER_SEC));
        if (getrusage(RUSAGE_SELF, &ru) == 0)
                metrics_counter_family(t, "process_cpu_seconds",
                                       "User and system CPU time spent, in seconds.",
                                       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        if (rss >= 0)
                metrics_gauge_family(t, "process_resident_memory_bytes", "Resident memory size in bytes.",
                                     rss);
}

int exporter_render(const ExporterSources *src, MetricsFormat format, char **ret, size_t *ret_len)
{
        MetricsText t = { .format = format };
        int r;

        render_process(&t, src);
        render_requests(&t, src->rpc);
        render_store(&t, src->rpc);
        if (src->sync)
                render_sync(&t, src->sync);
        r = metrics_text_finish(&t, ret, ret_len);
        metrics_text_done(&t);
        return r;
}

/* ---- the HTTP listener --------------------------------------------------------------------- */

/* A scraper sends one short request; what does not fit is no scrape. */
#define EXPORTER_HEAD_MAX_BYTES 8192
/* Connections at once: Prometheus needs one; beyond, new ones are closed at once. */
#define EXPORTER_MAX_CONNECTIONS 8
/* The whole exchange, request in and answer out, or the connection is closed. */
#define EXPORTER_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* Out of file descriptors: accepting waits this long instead of spinning on the listen socket. */
#define EXPORTER_ACCEPT_PAUSE_USEC (1 * USEC_PER_SEC)
#define EXPORTER_LOG_USEC          (60 * USEC_PER_SEC)

typedef struct ExpConn ExpConn;

struct Exporter {
        sd_event *event;
        int fd;
        sd_event_source *listen, *pause;
        ExpConn *conns;
        unsigned n_conns;
        ExporterRenderFunc render;
        void *userdata;
        RateLimit refused_log;
};

struct ExpConn {
        Exporter *exporter;
        ExpConn *next, *prev;
        int fd;
        sd_event_source *io, *timer;
        char head[EXPORTER_HEAD_MAX_BYTES];
        size_t head_len;
        char *out;
        size_t out_len, out_done;
        bool draining; /* answered: reading what the client still sends until it closes */
};

static void conn_free(ExpConn *c)
{
        Exporter *e = c->exporter;

        if (c->prev)
                c->prev->next = c->next;
        else
                e->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        e->n_conns--;
        /* sd-event lets a source be released from its own callback. */
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        if (c->fd >= 0)
                close(c->fd);
        free(c->out);
        free(c);
}

static int conn_answer(ExpConn *c, const char *status, const char *content_type, const char *extra,
                       const char *body, size_t body_len, bool head_only)
{
        char *out = NULL;
        int n;

        n = asprintf(&out,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n"
                     "Cache-Control: no-store\r\n\r\n",
                     status, content_type, body_len, extra ? extra : "");
        if (n < 0)
                return -ENOMEM;
        if (!head_only && body_len > 0) {
                char *all = realloc(out, (size_t)n + body_len);

                if (!all) {
                        free(out);
                        return -ENOMEM;
                }
                memcpy(all + n, body, body_len);
                out = all;
                n += (int)body_len;
        }
        c->out = out;
        c->out_len = (size_t)n;
        c->out_done = 0;
        return sd_event_source_set_io_events(c->io, EPOLLOUT);
}

static int conn_error(ExpConn *c, const char *status, const char *extra)
{
        char body[128];
        int n = snprintf(body, sizeof(body), "%s\n", status + 4); /* the reason phrase */

        return conn_answer(c, status, "text/plain; charset=utf-8", extra, body, (size_t)n, false);
}

/* The request head is complete (or too large): the answer. */
static int conn_respond(ExpConn *c, bool too_large)
{
        Exporter *e = c->exporter;
        MetricsHttpRequest req;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        if (too_large)
                return conn_error(c, "431 Request Header Fields Too Large", NULL);
        metrics_http_parse(c->head, c->head_len, &req);
        switch (req.verdict) {
        case METRICS_HTTP_OK:
                break;
        case METRICS_HTTP_NOT_FOUND:
                return conn_error(c, "404 Not Found", NULL);
        case METRICS_HTTP_NOT_ALLOWED:
                return conn_error(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
        case METRICS_HTTP_BAD_VERSION:
                return conn_error(c, "505 HTTP Version Not Supported", NULL);
        default:
                return conn_error(c, "400 Bad Request", NULL);
        }
        r = e->render(e->userdata, req.format, &text, &len);
        if (r < 0)
                return conn_error(c, "500 Internal Server Error", NULL);
        return conn_answer(c, "200 OK",
                           req.format == METRICS_FORMAT_OPENMETRICS ? METRICS_CONTENT_TYPE_OPENMETRICS
                                                                    : METRICS_CONTENT_TYPE_TEXT,
                           NULL, text, len, req.head);
}

/* Where the head ends (after its blank line), or 0. */
static size_t head_end(const char *p, size_t len)
{
        for (size_t i = 0; i + 1 < len; i++) {
                if (p[i] == '\n' && p[i + 1] == '\n')
                        return i + 2;
                if (i + 3 < len && memcmp(p + i, "\r\n\r\n", 4) == 0)
                        return i + 4;
        }
        return 0;
}

static int on_conn_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        ExpConn *c = userdata;
        ssize_t n;

        (void)source;
        if (c->draining) {
                char sink[4096];

                n = read(fd, sink, sizeof(sink));
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        conn_free(c);
                return 0;
        }
        if (c->out) {
                if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return 0;
                n = send(fd, c->out + c->out_done, c->out_len - c->out_done, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR)
                                conn_free(c);
                        return 0;
                }
                c->out_done += (size_t)n;
                if (c->out_done < c->out_len)
                        return 0;
                /* All sent: end our side, and read until the client closes (closing with unread
                 * bytes would reset the connection and could lose the answer on its way). */
                (void)shutdown(fd, SHUT_WR);
                c->draining = true;
                if (sd_event_source_set_io_events(c->io, EPOLLIN) < 0)
                        conn_free(c);
                return 0;
        }
        n = read(fd, c->head + c->head_len, sizeof(c->head) - c->head_len);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        conn_free(c);
                return 0;
        }
        if (n == 0) {
                conn_free(c); /* gone before it asked for anything */
                return 0;
        }
        c->head_len += (size_t)n;
        if (head_end(c->head, c->head_len) > 0 || c->head_len == sizeof(c->head)) {
                if (conn_respond(c, head_end(c->head, c->head_len) == 0) < 0)
                        conn_free(c);
        }
        return 0;
}

static int on_conn_timeout(sd_event_source *source, uint64_t usec, void *userdata)
{
        ExpConn *c = userdata;

        (void)source;
        (void)usec;
        log_debug("Metrics: closing a connection that did not finish its exchange in time.");
        conn_free(c);
        return 0;
}

static void exporter_accept_pause(Exporter *e)
{
        (void)sd_event_source_set_enabled(e->listen, SD_EVENT_OFF);
        (void)sd_event_source_set_time_relative(e->pause, EXPORTER_ACCEPT_PAUSE_USEC);
        (void)sd_event_source_set_enabled(e->pause, SD_EVENT_ONESHOT);
}

static int on_pause_end(sd_event_source *source, uint64_t usec, void *userdata)
{
        Exporter *e = userdata;

        (void)source;
        (void)usec;
        (void)sd_event_source_set_enabled(e->listen, SD_EVENT_ON);
        return 0;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Exporter *e = userdata;
        unsigned suppressed;

        (void)source;
        (void)revents;
        for (;;) {
                _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                ExpConn *c;
                int r;

                if (cfd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                if (ratelimit_pass(&e->refused_log, EXPORTER_LOG_USEC, &suppressed))
                                        log_warning_errno(-errno, "Metrics: cannot accept a connection: %m");
                                exporter_accept_pause(e);
                        }
                        return 0; /* EAGAIN, or a connection that went away meanwhile */
                }
                if (e->n_conns >= EXPORTER_MAX_CONNECTIONS) {
                        if (ratelimit_pass(&e->refused_log, EXPORTER_LOG_USEC, &suppressed))
                                log_warning(
                                        "Metrics: %u connections open, refusing another (%u more refused "
                                        "since the last message).",
                                        e->n_conns, suppressed);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c)
                        return log_oom(), 0;
                c->exporter = e;
                c->fd = -1;
                r = sd_event_add_io(e->event, &c->io, cfd, EPOLLIN, on_conn_io, c);
                if (r >= 0)
                        r = sd_event_add_time_relative(e->event, &c->timer, CLOCK_MONOTONIC,
                                                       EXPORTER_TIMEOUT_USEC, 0, on_conn_timeout, c);
                if (r < 0) {
                        sd_event_source_disable_unref(c->io);
                        free(c);
                        log_warning_errno(r, "Metrics: cannot watch a connection: %m");
                        continue;
                }
                c->fd = TAKE_FD(cfd);
                c->next = e->conns;
                if (e->conns)
                        e->conns->prev = c;
                e->conns = c;
                e->n_conns++;
        }
}

/* A listening TCP socket bound to addr: its fd, or a negative errno. */
static int listen_on(const struct sockaddr *addr, socklen_t addr_len)
{
        static const int one = 1;
        _cleanup_(closep) int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        /* [::] means IPv6 only: 0.0.0.0 is said separately. */
        if (addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, addr, addr_len) < 0 || listen(fd, 16) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int exporter_new(sd_event *event, const struct sockaddr *addr, socklen_t addr_len, ExporterRenderFunc render,
                 void *userdata, Exporter **ret)
{
        _cleanup_(exporter_freep) Exporter *e = NULL;
        _cleanup_close_ int fd = listen_on(addr, addr_len);
        int r;

        if (fd < 0)
                return fd;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->fd = TAKE_FD(fd);
        e->event = sd_event_ref(event);
        e->render = render;
        e->userdata = userdata;
        r = sd_event_add_io(event, &e->listen, e->fd, EPOLLIN, on_accept, e);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(event, &e->pause, CLOCK_MONOTONIC, EXPORTER_ACCEPT_PAUSE_USEC, 0,
                                       on_pause_end, e);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(e->pause, SD_EVENT_OFF);
        *ret = TAKE_PTR(e);
        return 0;
}

Exporter *exporter_free(Exporter *e)
{
        if (!e)
                return NULL;
        while (e->conns)
                conn_free(e->conns);
        sd_event_source_disable_unref(e->listen);
        sd_event_source_disable_unref(e->pause);
        if (e->fd >= 0)
                close(e->fd);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}
