/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "frame.h"
#include "log.h"
#include "model.h"
#include "server.h"

/* Bytes read from one peer per pass, so one busy peer cannot hold up the others. */
#define READ_BUDGET_BYTES (1024u * 1024)
/* Ready connections taken from the epoll set per pass (more wait for the next pass). */
#define PASS_EVENTS 256
/* How long a stop waits for peers to take the replies they are owed. */
#define DRAIN_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* Output buffer a connection keeps between replies; a larger one is freed once sent. */
#define OUT_KEEP_BYTES (64u * 1024)
/* Refused connections are logged at most this often, each kind (a peer may knock in a loop). */
#define REFUSAL_LOG_USEC (10 * USEC_PER_SEC)
/* A failed BEGIN (the database locked by another process) is retried after this long. */
#define BEGIN_RETRY_USEC (100 * USEC_PER_MSEC)
/* A batch that has run this long commits, and the loop looks at the connections before the next
 * one: a few costly requests of one peer do not keep the others waiting for all of them. */
#define BATCH_TIME_USEC (10 * USEC_PER_MSEC)
/* How often the connections are looked at for the request and idle timeouts. */
#define SWEEP_USEC (1 * USEC_PER_SEC)

typedef struct Conn Conn;
typedef struct Held Held;

/* What the connections of one uid hold: counted against MAX_CONNECTIONS_PER_UID and the
 * uid_buffer_limit. Requests run one uid after another, and within a uid one connection after
 * another, so that no uid waits behind all of another's. */
typedef struct UidUsage {
        struct UidUsage *next;
        uid_t uid;
        unsigned n_conns;
        uint64_t bytes;
        Conn *ready_head, **ready_tail; /* its connections with requests that may run */
        struct UidUsage *ready_next;    /* next in the server's list of uids with such connections */
        bool in_ready;
} UidUsage;

/* A request line waiting for the next group commit, or a reply made without one. */
typedef struct Request {
        struct Request *next;
        Conn *conn;
        char *line; /* NULL when reply is already made */
        size_t len;
        char *reply;
        size_t reply_bytes; /* of the reply made, once the request ran */
} Request;

struct Conn {
        Server *server;
        Conn *prev, *next;
        int fd;
        uint32_t events; /* what the server's epoll set waits for on fd (0: not in the set) */
        Conn *touched;   /* next in the server's list of connections to look at after a pass */
        bool in_touched;
        Request *rq_head, **rq_tail; /* its requests waiting to run, in the order sent */
        Conn *ready_next;            /* next in its uid's list of connections with requests to run */
        bool in_ready;
        RpcPeer peer;
        FrameReader frame;
        char *out; /* replies not yet written */
        size_t out_len, out_off, out_alloc;
        unsigned pending; /* requests queued or running, not yet answered */
        /* Memory held for the peer, counted against the limits (conn_account()): request lines
         * queued, replies made but waiting for their commit to be durable, and the two buffers. */
        size_t queued_bytes, held_bytes, accounted;
        UidUsage *usage;
        uint64_t line_since; /* when the half request now buffered began (0: none), while read */
        uint64_t send_since; /* when the peer last took reply bytes, or began to owe them */
        uint64_t last_io;    /* when bytes last moved either way */
        bool eof;            /* the peer will send nothing more */
        bool dead;           /* the socket failed or was shut; drop whatever is left */
        bool notes_lost;     /* notifications were left out: say so once the backlog is sent */
};

struct Server {
        sd_event *event;
        Rpc *rpc;
        int listen_fd;
        sd_event_source *listen_io;
        int epoll_fd; /* every connection; one loop source for all of them */
        sd_event_source *conns_io;
        sd_event_source *batch; /* runs what was queued outside a pass over the connections */
        sd_event_source *retry;
        sd_event_source *resume; /* runs the rest of the queue after a batch that took long */
        size_t max_line;
        bool have_admin_gid;
        gid_t admin_gid;
        bool draining;
        int reserve_fd; /* kept open to be closed when accept() runs out of descriptors */
        /* Refusals are logged at most once per REFUSAL_LOG_USEC each, with how many were not. */
        RateLimit emfile_log, conn_cap_log, uid_cap_log, drop_log;
        sd_event_source *sweep; /* request and idle timeouts, while there are connections */
        UidUsage *uids;
        uint64_t bytes; /* held for every connection */
        Conn *conns;
        Conn *touched; /* connections that read, got replies, ended or failed since the last pass */
        unsigned n_conns;
        /* Uids with requests to run: a batch takes one of each in turn. */
        UidUsage *ready_head, **ready_tail;
        unsigned queued; /* requests received and not yet answered */
        /* Batches run, whose replies wait until their commit is on disk, in the order they ran. */
        Held *held_head, **held_tail;
};

/* A batch that ran: its requests and their replies, which go out once the store says that its
 * commit (and every one before it) is durable. */
struct Held {
        Held *next;
        uint64_t seq;   /* store_durable() must reach this */
        uint64_t start; /* monotonic: when its transaction began, for the commit latency */
        bool committed;
        Request *requests;
        unsigned n;
        RpcReply replies[]; /* one per request, as many as the batch may hold */
};

/* ---- binding ------------------------------------------------------------------------------- */

int server_bind(const char *path, mode_t mode, int *ret_fd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct stat st;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        if (lstat(path, &st) == 0) {
                _cleanup_close_ int probe = -1;

                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return -errno;
                if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return -EADDRINUSE;
                if (errno != ECONNREFUSED && errno != ENOENT)
                        return -errno;
                /* Nobody listens: a socket left behind by a daemon that died. */
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
        } else if (errno != ENOENT)
                return -errno;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* The mode is set at bind time through the umask, so there is no moment when the socket
         * is more open than asked. */
        old_umask = umask(~mode & 0777);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- connections --------------------------------------------------------------------------- */

static const Limits *server_limits(const Server *s)
{
        return s->rpc->config ? &s->rpc->config->limits : &limits_default;
}

/* The usage of uid, with one more connection counted; NULL on OOM. */
static UidUsage *uid_usage_get(Server *s, uid_t uid)
{
        UidUsage *u;

        for (u = s->uids; u; u = u->next)
                if (u->uid == uid)
                        break;
        if (!u) {
                u = calloc(1, sizeof(*u));
                if (!u)
                        return NULL;
                u->uid = uid;
                u->ready_tail = &u->ready_head;
                u->next = s->uids;
                s->uids = u;
        }
        u->n_conns++;
        return u;
}

static void uid_usage_put(Server *s, UidUsage *u)
{
        if (--u->n_conns > 0)
                return;
        for (UidUsage **p = &s->uids; *p; p = &(*p)->next)
                if (*p == u) {
                        *p = u->next;
                        break;
                }
        free(u);
}

/* Reply bytes the peer has not taken yet, sent or waiting for their commit. */
static size_t conn_owed(const Conn *c)
{
        return c->out_len - c->out_off + c->held_bytes;
}

/* Brings the counts of what the connection holds up to date (after its buffers changed). */
static void conn_account(Conn *c)
{
        size_t now = c->frame.alloc + c->out_alloc + c->queued_bytes + c->held_bytes;

        c->server->bytes += now - c->accounted; /* unsigned: wraps back when smaller */
        c->usage->bytes += now - c->accounted;
        c->accounted = now;
}

static void conn_free(Conn *c)
{
        Server *s = c->server;

        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_conns--;
        s->rpc->connections = s->n_conns;
        if (c->events)
                (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        closep(&c->fd);
        frame_reader_done(&c->frame);
        s->rpc->watches -= c->peer.n_watches;
        rpc_peer_done(&c->peer);
        free(c->out);
        c->out_alloc = 0;
        conn_account(c);
        uid_usage_put(s, c->usage);
        free(c);
}

/* Frees a connection once nothing refers to it and nothing is left to say. Called from the
 * batch step, never from the connection's own handler. */
static void conn_maybe_free(Conn *c)
{
        /* Still listed to be looked at: it is, later in the pass. */
        if (c->pending > 0 || c->in_touched)
                return;
        if (c->dead || (c->eof && c->out_off == c->out_len))
                conn_free(c);
}

static void server_schedule(Server *s);

/* Marks a connection to be looked at once the pass is over (flushed, read further, freed). */
static void conn_touch(Conn *c)
{
        if (c->in_touched)
                return;
        c->in_touched = true;
        c->touched = c->server->touched;
        c->server->touched = c;
}

/* Disconnects a peer that went past a limit, and gives back at once what was held for it: its
 * buffers, its queued request lines (they will not run) and its replies waiting for a commit (the
 * writes they answer stand; only the answers are lost, as when a peer hangs up). */
static void conn_drop(Conn *c, const char *fmt, ...) _printf_(2, 3);
static void conn_drop(Conn *c, const char *fmt, ...)
{
        Server *s = c->server;
        unsigned more;

        if (ratelimit_pass(&s->drop_log, REFUSAL_LOG_USEC, &more)) {
                char why[256];
                va_list ap;

                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                log_warning("Disconnecting pid %d uid %u: %s (%u more disconnected since the last such "
                            "message).",
                            (int)c->peer.pid, (unsigned)c->peer.uid, why, more);
        }
        c->dead = true;
        free(c->out);
        c->out = NULL;
        c->out_len = c->out_off = c->out_alloc = 0;
        frame_reader_done(&c->frame);
        for (Request *q = c->rq_head; q; q = q->next) {
                q->line = mfree(q->line);
                q->reply = mfree(q->reply);
        }
        c->queued_bytes = 0;
        for (Held *h = s->held_head; h; h = h->next) {
                Request *q = h->requests;

                for (unsigned i = 0; i < h->n; i++, q = q->next)
                        if (q->conn == c) {
                                h->replies[i].text = mfree(h->replies[i].text);
                                h->replies[i].abortable = false;
                                q->reply_bytes = 0;
                        }
        }
        c->held_bytes = 0;
        conn_account(c);
        conn_touch(c);
        server_schedule(s);
}

/* The unprivileged connection to disconnect when usage (NULL: all peers) holds too much: the one
 * holding the most of the uid that holds the most. Not simply the biggest connection, which may
 * be a client reading one large reply while many small connections of others add up. */
static Conn *server_biggest(Server *s, const UidUsage *usage)
{
        Conn *big = NULL;

        for (Conn *c = s->conns; c; c = c->next) {
                if (c->dead || c->peer.privileged || (usage && c->usage != usage))
                        continue;
                if (!big || c->usage->bytes > big->usage->bytes ||
                    (c->usage == big->usage && c->accounted > big->accounted))
                        big = c;
        }
        return big;
}

/* After what c holds grew: past its own hard limit it is disconnected; past the budget of its uid
 * or of all peers, the biggest unprivileged connections are, until it is met again (privileged
 * peers count, but are never disconnected for it). */
static void conn_enforce(Conn *c)
{
        Server *s = c->server;
        const Limits *l = server_limits(s);
        Conn *big;

        conn_account(c);
        if (c->dead || c->peer.privileged)
                ;
        else if (conn_owed(c) > l->output_hard_bytes)
                conn_drop(c, "%zu bytes of replies not read, over output_hard_limit (%" PRIu64 ")",
                          conn_owed(c), l->output_hard_bytes);
        else
                while (c->usage->bytes > l->uid_buffer_bytes && (big = server_biggest(s, c->usage)))
                        conn_drop(big,
                                  "its uid's connections hold %" PRIu64
                                  " bytes, over uid_buffer_limit (%" PRIu64 "); this one holds %zu",
                                  c->usage->bytes, l->uid_buffer_bytes, big->accounted);
        while (s->bytes > l->buffer_bytes && (big = server_biggest(s, NULL)))
                conn_drop(big,
                          "connections hold %" PRIu64 " bytes, over buffer_limit (%" PRIu64
                          "); this one holds %zu",
                          s->bytes, l->buffer_bytes, big->accounted);
}

/* Whether the peer's requests wait: it has more unread replies than output_soft_limit. When it
 * has read them, the touched pass puts it back in turn (conn_make_ready()). A stop runs all. */
static bool conn_blocked(const Conn *c)
{
        return !c->dead && !c->server->draining &&
               conn_owed(c) > server_limits(c->server)->output_soft_bytes;
}

/* Whether more of the peer's requests are read: not while it has too many unanswered or too much
 * unread reply (it must read before it may send more), nor once it ended, failed, or the daemon
 * stops. */
static bool conn_may_read(const Conn *c)
{
        return !c->dead && !c->eof && !c->server->draining && c->pending < MAX_PIPELINED && !conn_blocked(c);
}

static void conn_update_events(Conn *c)
{
        Server *s = c->server;
        uint32_t events = 0;
        int r;

        /* A dead peer leaves the set: epoll reports hang-ups even when not asked, and it must not
         * keep the loop busy until it is freed. */
        if (conn_may_read(c))
                events |= EPOLLIN;
        if (!c->dead && c->out_off < c->out_len)
                events |= EPOLLOUT;
        if (events == c->events)
                return;
        /* A half request is timed while it is read: not while the peer may not send. */
        if ((events & EPOLLIN) && !(c->events & EPOLLIN) && c->line_since)
                c->line_since = now_monotonic_usec();
        if (events == 0)
                r = epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        else
                r = epoll_ctl(s->epoll_fd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
                              &(struct epoll_event){ .events = events, .data.ptr = c });
        if (r < 0) {
                log_warning_errno(-errno, "Cannot watch the connection of pid %d: %m", (int)c->peer.pid);
                c->dead = true;
                if (c->events)
                        (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                c->events = 0;
                conn_touch(c);
                server_schedule(s);
                return;
        }
        c->events = events;
}

#define CHANGES_LOST_LINE "{\"jsonrpc\":\"2.0\",\"method\":\"notebook.changes_lost\",\"params\":{}}\n"

static int conn_append(Conn *c, const char *text);

static void conn_flush(Conn *c)
{
        for (;;) {
                ssize_t n;

                /* The backlog that made notifications be left out is sent: say they were. */
                if (c->notes_lost && c->out_off == c->out_len && !c->dead &&
                    conn_append(c, CHANGES_LOST_LINE) >= 0)
                        c->notes_lost = false;
                if (c->dead || c->out_off == c->out_len)
                        break;
                n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        /* The peer went away: what it did not read is lost to it, not to the store.
                         * The next pass frees it (this may be outside one: a notification). */
                        c->dead = true;
                        conn_touch(c);
                        server_schedule(c->server);
                        break;
                }
                c->out_off += (size_t)n;
                c->send_since = c->last_io = now_monotonic_usec();
        }
        if (c->out_off == c->out_len) {
                c->out_off = c->out_len = 0;
                /* Give back what one large reply (a page of a list) made the buffer grow to once it
                 * is sent: an idle connection keeps at most OUT_KEEP_BYTES, however many there are. */
                if (c->out_alloc > OUT_KEEP_BYTES) {
                        free(c->out);
                        c->out = NULL;
                        c->out_alloc = 0;
                }
        }
        conn_account(c);
}

static int conn_append(Conn *c, const char *text)
{
        size_t n = strlen(text);

        if (c->dead || n == 0)
                return 0;
        if (c->out_off == c->out_len) {
                c->out_off = c->out_len = 0;
                c->send_since = now_monotonic_usec();
        }
        if (c->out_len + n > c->out_alloc) {
                size_t want = MAX(c->out_alloc * 2, c->out_len + n);
                char *p;

                /* Reclaim what was already sent before growing. */
                if (c->out_off > 0) {
                        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
                        c->out_len -= c->out_off;
                        c->out_off = 0;
                }
                if (c->out_len + n > c->out_alloc) {
                        p = realloc(c->out, want);
                        if (!p)
                                return -ENOMEM;
                        c->out = p;
                        c->out_alloc = want;
                }
        }
        memcpy(c->out + c->out_len, text, n);
        c->out_len += n;
        conn_account(c);
        return 0;
}

/* conn_append() for a reply made in a buffer of its own (*text, n bytes): a large one becomes
 * the output buffer if nothing else waits there, rather than be copied. */
static int conn_append_reply(Conn *c, char **text, size_t n)
{
        if (c->dead || n <= OUT_KEEP_BYTES || c->out_off < c->out_len)
                return conn_append(c, *text);
        free(c->out);
        c->out = TAKE_PTR(*text);
        c->out_off = 0;
        c->out_len = c->out_alloc = n;
        c->send_since = now_monotonic_usec();
        conn_account(c);
        return 0;
}

static void server_schedule(Server *s)
{
        sd_event_source_set_enabled(s->batch, SD_EVENT_ONESHOT);
}

static void uid_make_ready(Server *s, UidUsage *u)
{
        if (u->in_ready || !u->ready_head)
                return;
        u->in_ready = true;
        u->ready_next = NULL;
        *s->ready_tail = u;
        s->ready_tail = &u->ready_next;
}

/* Puts the connection in its uid's turn if it has requests that may run. */
static void conn_make_ready(Conn *c)
{
        UidUsage *u = c->usage;

        if (c->in_ready || !c->rq_head || conn_blocked(c))
                return;
        c->in_ready = true;
        c->ready_next = NULL;
        *u->ready_tail = c;
        u->ready_tail = &c->ready_next;
        uid_make_ready(c->server, u);
        server_schedule(c->server);
}

/* A request line refused before it could run (too long, truncated): counted as a request of no
 * method, with its error. */
static void server_count_refused(Server *s, int code)
{
        size_t other = rpc_method_slots() - 1;

        s->rpc->method_requests[other]++;
        s->rpc->method_errors[other][rpc_error_slot(code)]++;
}

static int queue_push(Server *s, Conn *c, const char *line, size_t len, char *reply)
{
        Request *q = calloc(1, sizeof(*q));

        if (!q) {
                free(reply);
                return -ENOMEM;
        }
        q->conn = c;
        q->reply = reply;
        if (line) {
                q->line = malloc(len + 1);
                if (!q->line) {
                        free(q);
                        return -ENOMEM;
                }
                memcpy(q->line, line, len);
                q->line[len] = 0;
                q->len = len;
                c->queued_bytes += len + 1;
        }
        *c->rq_tail = q;
        c->rq_tail = &q->next;
        conn_make_ready(c);
        s->queued++;
        c->pending++;
        server_schedule(s);
        return 0;
}

/* Moves complete lines from the peer's buffer to the queue, as far as its pipelining limit, and
 * times the half request left in the buffer from when the last whole one was taken. */
static int conn_take_lines(Conn *c)
{
        bool took = false;
        int r = 0;

        while (c->pending < MAX_PIPELINED) {
                const char *line;
                size_t len;

                r = frame_reader_next(&c->frame, &line, &len);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE) {
                        char *reply = rpc_error_line(RPC_LINE_TOO_LONG, "The request line is too long.",
                                                     "limit", (long long)c->frame.max_line);
                        if (!reply || queue_push(c->server, c, NULL, 0, reply) < 0)
                                return -ENOMEM;
                        server_count_refused(c->server, RPC_LINE_TOO_LONG);
                        took = true;
                        r = 0;
                        continue;
                }
                if (r >= 0)
                        r = queue_push(c->server, c, line, len, NULL);
                if (r < 0)
                        break;
                took = true;
        }
        if (!frame_reader_mid_line(&c->frame))
                c->line_since = 0;
        else if (took || c->line_since == 0)
                c->line_since = now_monotonic_usec();
        return r;
}

static int conn_on_eof(Conn *c)
{
        c->eof = true;
        if (frame_reader_has_partial(&c->frame)) {
                /* Half a request, then the peer stopped sending: answer if it still reads. */
                char *reply = rpc_error_line(RPC_TRUNCATED,
                                             "The connection ended in the middle of a request.", NULL, 0);
                if (!reply)
                        return -ENOMEM;
                server_count_refused(c->server, RPC_TRUNCATED);
                return queue_push(c->server, c, NULL, 0, reply);
        }
        /* Nothing queued: it is freed after the pass, not from here. */
        return 0;
}

/* Reads what the peer sent (its complete requests join the queue) and writes what it is owed. */
static void conn_on_io(Conn *c, uint32_t revents)
{
        size_t budget = READ_BUDGET_BYTES;
        int r = 0;

        conn_touch(c);
        if (revents & EPOLLOUT)
                conn_flush(c);

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                while (!c->eof && !c->dead && budget > 0 && c->pending < MAX_PIPELINED) {
                        size_t space, want;
                        char *p;
                        ssize_t n;

                        r = frame_reader_space(&c->frame, &p, &space);
                        if (r < 0)
                                break;
                        want = MIN(space, budget);
                        n = recv(c->fd, p, want, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno != EAGAIN)
                                        c->dead = true;
                                break;
                        }
                        if (n == 0) {
                                r = conn_take_lines(c);
                                if (r >= 0)
                                        r = conn_on_eof(c);
                                break;
                        }
                        frame_reader_commit(&c->frame, (size_t)n);
                        c->last_io = now_monotonic_usec();
                        budget -= (size_t)n;
                        r = conn_take_lines(c);
                        /* Less than asked for: the socket is most likely empty, and if not, epoll
                         * says so in the next pass. Saves a recv() that would only fail. */
                        if (r < 0 || (size_t)n < want)
                                break;
                }
        }
        if (r < 0) {
                log_warning_errno(r, "Dropping connection of pid %d: %m", (int)c->peer.pid);
                c->dead = true;
        }
        conn_enforce(c);
}

/* Who the peer is, and whether it may act for any user. */
static void peer_identify(Server *s, int fd, RpcPeer *p)
{
        struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                log_warning_errno(-errno, "Cannot read peer credentials: %m");
        p->uid = cred.uid;
        p->gid = cred.gid;
        p->pid = cred.pid;
        p->privileged = cred.uid == 0 || cred.uid == geteuid();

        if (!p->privileged && s->have_admin_gid) {
                gid_t groups[256];
                socklen_t glen = sizeof(groups);

                if (cred.gid == s->admin_gid)
                        p->privileged = true;
                else if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
                        for (size_t i = 0; i < glen / sizeof(gid_t); i++)
                                if (groups[i] == s->admin_gid)
                                        p->privileged = true;
        }
        if (p->privileged) {
                /* Looked up at start and reload, off the loop (config_resolve_names()). */
                const char *name = s->rpc->config ? config_uid_name(s->rpc->config, cred.uid) : NULL;

                if (name)
                        strcpy(p->default_user, name);
        }
}

/* How many connections an unprivileged uid may hold: fewer when no user_id is bound to it. */
static unsigned uid_cap(Server *s, uid_t uid)
{
        const UserBinding *b = s->rpc->config ? config_find_uid(s->rpc->config, uid) : NULL;

        return b && b->n_user_ids > 0 ? MAX_CONNECTIONS_PER_UID : MAX_CONNECTIONS_STATUS_ONLY;
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Server *s = userdata;

        for (;;) {
                _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                bool got;
                Conn *c;
                int r;

                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if ((errno == EMFILE || errno == ENFILE) && s->reserve_fd >= 0) {
                                /* Out of descriptors: the pending peer would keep the listening
                                 * socket readable and the loop spinning. Spend the reserve to take
                                 * it off the queue and close it, then take the reserve back. */
                                unsigned more;

                                if (ratelimit_pass(&s->emfile_log, REFUSAL_LOG_USEC, &more))
                                        log_warning_errno(
                                                -errno,
                                                "Out of file descriptors, refusing connections "
                                                "(%u more refused since the last such message): %m",
                                                more);
                                closep(&s->reserve_fd);
                                cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                                got = cfd >= 0;
                                closep(&cfd);
                                s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                                /* EMFILE comes before the queue is looked at: stop when it is empty. */
                                if (got)
                                        continue;
                                return 0;
                        }
                        if (errno != EAGAIN)
                                log_warning_errno(-errno, "accept() failed: %m");
                        return 0;
                }
                c = calloc(1, sizeof(*c));
                if (!c)
                        return log_oom(), 0;
                c->server = s;
                c->fd = -1;
                c->rq_tail = &c->rq_head;
                peer_identify(s, cfd, &c->peer);
                /* The last RESERVED_CONNECTIONS are kept for privileged peers, so that root and
                 * the service manager get in whatever other users hold. */
                if (s->n_conns >=
                    (c->peer.privileged ? MAX_CONNECTIONS : MAX_CONNECTIONS - RESERVED_CONNECTIONS)) {
                        unsigned more;

                        if (ratelimit_pass(&s->conn_cap_log, REFUSAL_LOG_USEC, &more))
                                log_warning(
                                        "Too many connections (%u), refusing one of uid %u (%u more refused "
                                        "since the last such message).",
                                        s->n_conns, (unsigned)c->peer.uid, more);
                        free(c);
                        continue;
                }
                c->usage = uid_usage_get(s, c->peer.uid);
                if (!c->usage) {
                        free(c);
                        return log_oom(), 0;
                }
                /* One local user may not take every connection from the others; one that may
                 * only read the status needs a few. */
                if (!c->peer.privileged && c->usage->n_conns > uid_cap(s, c->peer.uid)) {
                        unsigned more;

                        if (ratelimit_pass(&s->uid_cap_log, REFUSAL_LOG_USEC, &more))
                                log_warning("uid %u has %u connections, refusing one more (%u more refused "
                                            "since the last such message).",
                                            (unsigned)c->peer.uid, uid_cap(s, c->peer.uid), more);
                        uid_usage_put(s, c->usage);
                        free(c);
                        continue;
                }
                r = epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, cfd,
                              &(struct epoll_event){ .events = EPOLLIN, .data.ptr = c });
                if (r < 0) {
                        uid_usage_put(s, c->usage);
                        free(c);
                        log_warning_errno(-errno, "Cannot watch a new connection: %m");
                        continue;
                }
                c->last_io = now_monotonic_usec();
                if (s->n_conns == 0) {
                        (void)sd_event_source_set_time_relative(s->sweep, SWEEP_USEC);
                        (void)sd_event_source_set_enabled(s->sweep, SD_EVENT_ON);
                }
                frame_reader_init(&c->frame, s->max_line);
                c->events = EPOLLIN;
                c->fd = TAKE_FD(cfd);
                c->next = s->conns;
                if (s->conns)
                        s->conns->prev = c;
                s->conns = c;
                s->n_conns++;
                s->rpc->connections = s->n_conns;
                s->rpc->connections_total++;
                log_debug("Connection from pid %d uid %u.", (int)c->peer.pid, (unsigned)c->peer.uid);
        }
}

/* ---- watches ------------------------------------------------------------------------------- */

/* Whether the peer watches the notebook. A watch the peer may no longer hold (its [users] binding
 * changed on reload) is dropped. */
static bool conn_watches(Server *s, Conn *c, const char *user_id, const char *notebook_id)
{
        bool found = false;

        for (unsigned i = 0; i < c->peer.n_watches;) {
                const RpcWatch *w = &c->peer.watches[i];

                if (!streq(w->user_id, user_id) || (w->notebook_id && !streq(w->notebook_id, notebook_id))) {
                        i++;
                        continue;
                }
                if (rpc_peer_may_act(s->rpc, &c->peer, user_id)) {
                        found = true;
                        i++;
                        continue;
                }
                free(c->peer.watches[i].user_id);
                free(c->peer.watches[i].notebook_id);
                c->peer.watches[i] = c->peer.watches[--c->peer.n_watches];
                s->rpc->watches--;
        }
        return found;
}

/* The notebook.changed notification for a change record (store_change_record()): the notebook's
 * revision as the change left it, whether it was deleted, and whether the change was made here or
 * came from the remote. */
static char *change_line(const cJSON *change, const char *origin)
{
        _cleanup_(cJSON_Deletep) cJSON *msg = cJSON_CreateObject();
        cJSON *params;

        if (!msg || !cJSON_AddStringToObject(msg, "jsonrpc", "2.0") ||
            !cJSON_AddStringToObject(msg, "method", "notebook.changed") ||
            !(params = cJSON_AddObjectToObject(msg, "params")) ||
            !cJSON_AddItemToObject(params, "user_id",
                                   cJSON_Duplicate(cJSON_GetArrayItem(change, 0), false)) ||
            !cJSON_AddItemToObject(params, "notebook_id",
                                   cJSON_Duplicate(cJSON_GetArrayItem(change, 1), false)) ||
            !cJSON_AddItemToObject(params, "revision",
                                   cJSON_Duplicate(cJSON_GetArrayItem(change, 2), false)) ||
            !cJSON_AddItemToObject(params, "deleted",
                                   cJSON_Duplicate(cJSON_GetArrayItem(change, 3), false)) ||
            !cJSON_AddStringToObject(params, "origin", origin))
                return NULL;
        return model_json_print(msg, true);
}

void server_notify_change(Server *s, const cJSON *change, const char *origin)
{
        const char *user_id = cJSON_GetArrayItem(change, 0)->valuestring,
                   *notebook_id = cJSON_GetArrayItem(change, 1)->valuestring;
        _cleanup_free_ char *line = NULL;

        for (Conn *c = s->conns; c; c = c->next) {
                if (c->dead || !conn_watches(s, c, user_id, notebook_id))
                        continue;
                if (!line && !(line = change_line(change, origin))) {
                        log_warning("Cannot tell watchers that %s changed.", notebook_id);
                        return;
                }
                /* A watcher that does not keep up is not buffered for without end: past the backlog
                 * limit its notifications are left out, and it is told so once it has caught up. */
                if (c->out_len - c->out_off > MAX_NOTIFY_BACKLOG)
                        c->notes_lost = true;
                else if (conn_append(c, line) < 0) {
                        log_oom();
                        c->dead = true;
                        conn_touch(c);
                        server_schedule(s);
                } else {
                        conn_flush(c);
                        conn_enforce(c);
                }
                conn_update_events(c);
        }
}

/* ---- group commit -------------------------------------------------------------------------- */

/* Timeouts, looked at once a second: a peer that sent half a request, or left replies unread, for
 * request_timeout_s is disconnected; one with nothing pending, nothing owed and no watch is
 * closed after idle_timeout_s. A peer's request that is running, or waiting for its commit to be
 * durable, is the daemon's delay, not the peer's: it is not timed. */
static int on_sweep(sd_event_source *source, uint64_t usec, void *userdata)
{
        Server *s = userdata;
        const Limits *l = server_limits(s);
        uint64_t now = now_monotonic_usec();

        for (Conn *c = s->conns; c; c = c->next) {
                if (c->dead)
                        continue;
                if ((c->events & EPOLLIN) && c->line_since && now - c->line_since > l->request_timeout_usec)
                        conn_drop(c, "half a request for more than request_timeout_s (%" PRIu64 ")",
                                  l->request_timeout_usec / USEC_PER_SEC);
                else if (c->out_off < c->out_len && now - c->send_since > l->request_timeout_usec)
                        conn_drop(c, "replies not read for more than request_timeout_s (%" PRIu64 ")",
                                  l->request_timeout_usec / USEC_PER_SEC);
                else if (l->idle_timeout_usec && c->pending == 0 && conn_owed(c) == 0 && !c->line_since &&
                         c->peer.n_watches == 0 && c->peer.watches_pending == 0 &&
                         now - c->last_io > l->idle_timeout_usec) {
                        log_debug("Closing the idle connection of pid %d uid %u.", (int)c->peer.pid,
                                  (unsigned)c->peer.uid);
                        c->dead = true;
                        conn_touch(c);
                        server_schedule(s);
                }
        }
        if (s->n_conns > 0)
                (void)sd_event_source_set_time(source, usec + SWEEP_USEC);
        else
                (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
        return 0;
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata)
{
        Server *s = userdata;

        server_schedule(s);
        return 0;
}

/* Sends the replies of a batch in queue order (each connection's request order), and tells the
 * sync engine and the watchers what its requests changed. */
static void held_deliver(Server *s, Held *h)
{
        Request *q = h->requests;
        int r;

        for (unsigned i = 0; i < h->n; i++) {
                Request *next = q->next;
                RpcReply *rep = &h->replies[i];
                _cleanup_free_ char *abort = NULL;
                const char *text = rep->text;

                if (!h->committed && rep->abortable) {
                        s->rpc->method_errors[rep->method][rpc_error_slot(RPC_STORAGE)]++;
                        if (!(text = abort = rpc_reply_abort_text(rep))) {
                                log_oom();
                                q->conn->dead = true;
                        }
                }
                if (rep->watch) {
                        Conn *c = q->conn;
                        unsigned before = c->peer.n_watches;

                        if (cJSON_IsTrue(cJSON_GetArrayItem(rep->watch, 0)))
                                c->peer.watches_pending--;
                        /* From now on, with the reply: no notification comes before it. */
                        if (h->committed && rpc_peer_apply_watch(&c->peer, rep->watch) < 0) {
                                log_oom();
                                c->dead = true;
                        }
                        s->rpc->watches = s->rpc->watches - before + c->peer.n_watches;
                }
                q->conn->held_bytes -= q->reply_bytes;
                if (!text)
                        r = 0;
                else if (text == rep->text)
                        r = conn_append_reply(q->conn, &rep->text, q->reply_bytes);
                else
                        r = conn_append(q->conn, text);
                if (r < 0) {
                        log_oom();
                        q->conn->dead = true;
                }
                rep->text = mfree(rep->text);
                conn_account(q->conn);
                conn_touch(q->conn);
                if (h->committed && rep->changed) {
                        const cJSON *pair;

                        cJSON_ArrayForEach(pair, rep->changed)
                        {
                                if (s->rpc->sync_notify)
                                        s->rpc->sync_notify(s->rpc->sync_userdata,
                                                            cJSON_GetArrayItem(pair, 0)->valuestring,
                                                            cJSON_GetArrayItem(pair, 1)->valuestring);
                                server_notify_change(s, pair, "local");
                        }
                }
                rpc_reply_done(rep);
                q->conn->pending--;
                s->queued--;
                free(q->line);
                free(q->reply);
                free(q);
                q = next;
        }
        free(h);
}

/* Delivers the batches whose commits are on disk. A failed sync leaves nothing after it durable:
 * the daemon stops without answering (its restart recovers what the disk kept). */
static void server_release(Server *s)
{
        uint64_t durable, now = 0;
        int r = store_durable(s->rpc->store, &durable);

        if (r < 0) {
                if (s->held_head) {
                        log_error_errno(r,
                                        "Cannot sync the database to disk: %m. Stopping without answering "
                                        "the requests not known to be stored.");
                        (void)sd_event_exit(s->event, r);
                }
                return;
        }
        while (s->held_head && s->held_head->seq <= durable) {
                Held *h = s->held_head;

                s->held_head = h->next;
                if (!s->held_head)
                        s->held_tail = &s->held_head;
                /* From begin to on disk: how long the batch's replies waited for the commit. */
                if (now == 0)
                        now = now_monotonic_usec();
                metrics_histogram_observe(&s->rpc->commit_seconds,
                                          (double)(now - MIN(now, h->start)) / (double)USEC_PER_SEC);
                held_deliver(s, h);
        }
}

/* Takes the first request of c. */
static Request *conn_pop_request(Conn *c)
{
        Request *q = c->rq_head;

        c->rq_head = q->next;
        if (!c->rq_head)
                c->rq_tail = &c->rq_head;
        q->next = NULL;
        return q;
}

/* The next request to run: of the next uid in turn, of its next connection in turn. A connection
 * that went past output_soft_limit since it was put in turn leaves it. */
static Request *server_next_request(Server *s)
{
        UidUsage *u;

        while ((u = s->ready_head)) {
                Conn *c = u->ready_head;
                Request *q = NULL;

                s->ready_head = u->ready_next;
                if (!s->ready_head)
                        s->ready_tail = &s->ready_head;
                u->in_ready = false;
                u->ready_head = c->ready_next;
                if (!u->ready_head)
                        u->ready_tail = &u->ready_head;
                c->in_ready = false;
                if (!conn_blocked(c))
                        q = conn_pop_request(c);
                if (q && c->rq_head) {
                        c->in_ready = true;
                        c->ready_next = NULL;
                        *u->ready_tail = c;
                        u->ready_tail = &c->ready_next;
                }
                uid_make_ready(s, u);
                if (q)
                        return q;
        }
        return NULL;
}

/* Runs what is queued: the requests of one loop pass (at most MAX_BATCH_REQUESTS, and as many as
 * run in BATCH_TIME_USEC) share one transaction, taken one of each connection in turn. Their
 * replies are held until the commit is on disk (server_release()), while the loop goes on with the
 * next requests. A batch is on the held list while it runs, so that a peer disconnected for its
 * size in the middle of it gives back its replies at once. */
static int server_run_batch(Server *s)
{
        while (s->ready_head) {
                Held *h = calloc(1, sizeof(*h) + MIN(s->queued, MAX_BATCH_REQUESTS) * sizeof(RpcReply));
                uint64_t start = now_monotonic_usec();
                Request **tail, *q;
                bool lost = false, over = false;
                int r;

                if (!h)
                        return log_oom();
                r = store_begin(s->rpc->store);
                if (r < 0) {
                        log_warning_errno(r, "Cannot begin a transaction, retrying: %s",
                                          store_errmsg(s->rpc->store));
                        free(h);
                        return r;
                }
                h->start = start;
                *s->held_tail = h;
                s->held_tail = &h->next;
                tail = &h->requests;
                while (h->n < MAX_BATCH_REQUESTS && !over && (q = server_next_request(s))) {
                        RpcReply *rep = &h->replies[h->n++];
                        Conn *c = q->conn;

                        *tail = q;
                        tail = &q->next;
                        if (!q->line) {
                                rep->text = TAKE_PTR(q->reply);
                                continue;
                        }
                        /* rpc_handle() counts the request under its method; one that cannot run
                         * at all counts under "other". */
                        rep->method = (unsigned)rpc_method_slots() - 1;
                        r = store_savepoint(s->rpc->store);
                        if (r >= 0)
                                r = rpc_handle(s->rpc, &c->peer, q->line, q->len, rep);
                        else
                                s->rpc->method_requests[rep->method]++;
                        /* Applied when the reply goes (held_deliver()); counted now against the
                         * limit, for the next requests of the connection. */
                        if (r >= 0 && rep->watch && cJSON_IsTrue(cJSON_GetArrayItem(rep->watch, 0)))
                                c->peer.watches_pending++;
                        if (r < 0) {
                                unsigned method = rep->method;

                                rpc_reply_done(rep);
                                rep->text = rpc_error_line(RPC_INTERNAL_ERROR, "Internal error.", NULL, 0);
                                rep->failed = true;
                                rep->method = method;
                                s->rpc->method_errors[method][rpc_error_slot(RPC_INTERNAL_ERROR)]++;
                        }
                        if (rep->failed)
                                r = store_rollback_to(s->rpc->store);
                        else
                                r = store_release(s->rpc->store);
                        c->queued_bytes -= q->len + 1;
                        q->line = mfree(q->line);
                        q->reply_bytes = rep->text ? strlen(rep->text) : 0;
                        c->held_bytes += q->reply_bytes;
                        conn_enforce(c);
                        if (r < 0 || !store_in_transaction(s->rpc->store)) {
                                /* SQLite gave up the whole transaction (disk full, I/O error), or the
                                 * savepoint could not be closed: no write of this batch stands. Stop
                                 * here; the rest of the queue waits for a new transaction. */
                                lost = true;
                                break;
                        }
                        /* A stop runs everything received at once. */
                        over = !s->draining && now_monotonic_usec() - start > BATCH_TIME_USEC;
                }

                r = lost ? -EIO : store_commit_deferred(s->rpc->store, &h->seq);
                h->committed = r >= 0;
                if (!h->committed) {
                        log_error_errno(r, "Commit failed, %u requests answered with an error: %s", h->n,
                                        store_errmsg(s->rpc->store));
                        store_rollback(s->rpc->store);
                        h->seq = 0; /* errors: they only wait for the batches before them */
                }
                s->rpc->transactions++;
                metrics_histogram_observe(&s->rpc->batch_requests, h->n);
                /* The rest runs after the loop has looked at the connections again: from a timer,
                 * since sd-event polls for I/O before it dispatches one, not before a defer source. */
                if (over && s->ready_head) {
                        (void)sd_event_source_set_time(s->resume, 1);
                        (void)sd_event_source_set_enabled(s->resume, SD_EVENT_ONESHOT);
                        break;
                }
        }
        return 0;
}

/* Runs what is queued, then looks at every connection that read, got replies, ended or failed:
 * its replies are sent, requests it already sent join the queue if it is under its pipelining
 * limit again, and it is freed once it is done. */
static void server_pass(Server *s)
{
        int r;

        r = server_run_batch(s);
        if (r < 0 && s->ready_head)
                sd_event_source_set_time_relative(s->retry, BEGIN_RETRY_USEC),
                        sd_event_source_set_enabled(s->retry, SD_EVENT_ONESHOT);
        server_release(s);

        while (s->touched) {
                Conn *c = s->touched;

                s->touched = c->touched;
                c->in_touched = false;
                conn_flush(c);
                conn_make_ready(c);
                if (conn_may_read(c) && conn_take_lines(c) < 0)
                        c->dead = true;
                conn_update_events(c);
                conn_maybe_free(c);
        }
}

void server_flushed(Server *s)
{
        server_pass(s);
}

static int on_batch(sd_event_source *source, void *userdata)
{
        server_pass(userdata);
        return 0;
}

static int on_resume(sd_event_source *source, uint64_t usec, void *userdata)
{
        server_pass(userdata);
        return 0;
}

/* A pass over the connections: every peer that is ready is read (and written) first, so what
 * they sent in the meantime runs in one transaction; then the replies go out. */
static int on_conns(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        struct epoll_event events[PASS_EVENTS];
        Server *s = userdata;
        int n;

        n = epoll_wait(s->epoll_fd, events, PASS_EVENTS, 0);
        if (n < 0 && errno != EINTR)
                log_warning_errno(-errno, "epoll_wait() failed: %m");
        for (int i = 0; i < n; i++)
                conn_on_io(events[i].data.ptr, events[i].events);
        server_pass(s);
        /* Nothing is left for the batch source that requests of this pass may have scheduled. */
        if (!s->ready_head)
                sd_event_source_set_enabled(s->batch, SD_EVENT_OFF);
        return 0;
}

int server_new(sd_event *event, Rpc *rpc, int listen_fd, size_t max_line, gid_t admin_gid,
               bool have_admin_gid, Server **ret)
{
        _cleanup_(server_freep) Server *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->rpc = rpc;
        s->listen_fd = -1;
        s->epoll_fd = -1;
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        s->max_line = max_line;
        s->admin_gid = admin_gid;
        s->have_admin_gid = have_admin_gid;
        s->ready_tail = &s->ready_head;
        s->held_tail = &s->held_head;

        /* An inherited socket may be blocking; accept() in the loop must never wait. */
        r = fcntl(listen_fd, F_GETFL);
        if (r < 0 || fcntl(listen_fd, F_SETFL, r | O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(event, &s->listen_io, listen_fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        s->listen_fd = listen_fd;
        /* The connections have an epoll set of their own, one source in the loop: a pass reads
         * every ready peer before anything runs, which sd-event (one source per iteration) would
         * not guarantee if each connection were a source. */
        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epoll_fd < 0)
                return -errno;
        r = sd_event_add_io(event, &s->conns_io, s->epoll_fd, EPOLLIN, on_conns, s);
        if (r < 0)
                return r;
        r = sd_event_add_defer(event, &s->batch, on_batch, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->batch, SD_EVENT_OFF);
        r = sd_event_add_time_relative(event, &s->retry, CLOCK_MONOTONIC, BEGIN_RETRY_USEC, 0, on_retry, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->retry, SD_EVENT_OFF);
        r = sd_event_add_time(event, &s->resume, CLOCK_MONOTONIC, 1, 0, on_resume, s);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(s->resume, SD_EVENT_OFF);
        r = sd_event_add_time_relative(event, &s->sweep, CLOCK_MONOTONIC, SWEEP_USEC, USEC_PER_SEC / 4,
                                       on_sweep, s);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
        *ret = TAKE_PTR(s);
        return 0;
}

void server_drain(Server *s)
{
        uint64_t deadline = now_monotonic_usec() + DRAIN_TIMEOUT_USEC;

        s->draining = true;
        sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
        /* Requests already received are run and answered; nothing more is read. */
        for (Conn *c = s->conns; c; c = c->next)
                conn_touch(c);
        /* The first pass puts in turn the requests of peers that waited for being behind in
         * reading; the second runs them too. */
        server_pass(s);
        server_pass(s);
        /* What ran is answered once it is on disk: wait for that here. */
        if (s->held_head) {
                int r = store_flush_now(s->rpc->store);

                if (r < 0)
                        log_error_errno(r, "Cannot sync the database to disk: %m.");
                server_pass(s);
        }

        /* The replies are owed: wait (the loop is ending anyway) until every peer took them, or
         * the deadline passed for those that do not read. */
        for (;;) {
                struct pollfd fds[64];
                nfds_t n = 0;
                uint64_t now = now_monotonic_usec();

                for (Conn *c = s->conns; c && n < ELEMENTSOF(fds); c = c->next) {
                        conn_flush(c);
                        if (!c->dead && c->out_off < c->out_len)
                                fds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
                }
                if (n == 0 || now >= deadline)
                        break;
                (void)poll(fds, n, (int)MIN((deadline - now) / USEC_PER_MSEC + 1, 100u));
        }
}

Server *server_free(Server *s)
{
        if (!s)
                return NULL;
        for (Conn *c = s->conns; c; c = c->next)
                while (c->rq_head) {
                        Request *q = conn_pop_request(c);

                        free(q->line);
                        free(q->reply);
                        free(q);
                }
        /* Batches whose commit never reached the disk: their peers get no answer. */
        while (s->held_head) {
                Held *h = s->held_head;
                Request *q = h->requests;

                s->held_head = h->next;
                for (unsigned i = 0; i < h->n; i++) {
                        Request *next = q->next;

                        rpc_reply_done(&h->replies[i]);
                        free(q->line);
                        free(q->reply);
                        free(q);
                        q = next;
                }
                free(h);
        }
        while (s->conns)
                conn_free(s->conns);
        sd_event_source_disable_unref(s->listen_io);
        sd_event_source_disable_unref(s->conns_io);
        closep(&s->epoll_fd);
        sd_event_source_disable_unref(s->batch);
        sd_event_source_disable_unref(s->retry);
        sd_event_source_disable_unref(s->sweep);
        sd_event_source_disable_unref(s->resume);
        closep(&s->listen_fd);
        closep(&s->reserve_fd);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

unsigned server_connections(Server *s)
{
        return s->n_conns;
}
