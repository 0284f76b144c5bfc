/* SPDX-License-Identifier: MIT */

/* libnbclient: framing (one JSON object per line), request ids, reply matching. The socket is
 * non-blocking and every wait is a poll(), so that a send can drain replies while it waits for
 * room (a deep pipeline must not deadlock with a daemon that stops reading us until we read) and
 * so that timeouts are exact. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "json-print.h"
#include "nbclient.h"

/* The cleanup macros are util.h's (header only: the client links no daemon code). */
#include "util.h"

static inline void cjson_deletep(cJSON **p)
{
        cJSON_Delete(*p);
}

#define READ_CHUNK_BYTES  ((size_t)64 * 1024)
#define MIN_REPLY_LIMIT   ((size_t)64)
#define MAX_SAFE_JSON_INT ((uint64_t)1 << 53) /* ids are sent as JSON numbers, i.e. doubles */

/* A reply read while nb_client_call() waited for another one, handed out by nb_client_recv(); or
 * a notification, handed out by nb_client_next_notification(). */
typedef struct Reply {
        struct Reply *next;
        uint64_t id;
        cJSON *msg; /* the whole, validated reply object */
} Reply;

struct NbClient {
        int fd;
        int timeout_msec;
        size_t max_reply;
        uint64_t next_id;
        uint64_t *unanswered; /* ids of the requests in flight, oldest first */
        size_t in_flight, unanswered_alloc;
        int dead; /* 0, or the error that broke the connection */
        bool eof; /* the peer closed its sending side */

        /* Input buffer: bytes [start, len) are unread; no '\n' in [start, scanned). */
        char *buf;
        size_t start, len, scanned, cap;

        Reply *queue_head, *queue_tail;
        Reply *notes_head, *notes_tail;
        unsigned n_notes;
};

void nb_error_done(NbError *e)
{
        if (!e)
                return;
        free(e->message);
        cJSON_Delete(e->data);
        *e = (NbError)NB_ERROR_INIT;
}

char *nb_default_socket_path(void)
{
        const char *e = getenv("NOTEBOOKD_SOCKET");
        const char *xdg;
        char *p;

        if (e && *e)
                return strdup(e);
        if (geteuid() == 0)
                return strdup("/run/notebookd/notebookd.sock");
        xdg = getenv("XDG_RUNTIME_DIR");
        /* A relative XDG_RUNTIME_DIR is invalid per the XDG spec; ignore it as systemd does. */
        if (xdg && xdg[0] == '/') {
                if (asprintf(&p, "%s/notebookd/notebookd.sock", xdg) < 0)
                        return NULL;
        } else if (asprintf(&p, "/run/user/%u/notebookd/notebookd.sock", (unsigned)geteuid()) < 0)
                return NULL;
        return p;
}

int nb_client_new_from_fd(int fd, NbClient **ret)
{
        NbClient *c;
        int flags;

        if (fd < 0 || !ret)
                return -EINVAL;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        c->timeout_msec = -1;
        c->max_reply = NB_CLIENT_MAX_REPLY_BYTES;
        c->next_id = 1;
        *ret = c;
        return 0;
}

int nb_client_connect(const char *path, NbClient **ret)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n;
        int fd;

        if (!path || !*path || !ret)
                return -EINVAL;
        n = strlen(path);
        if (n >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, n);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                /* An interrupted connect() goes on in the background: wait for its outcome
                 * instead of calling connect() again (which would say EALREADY). */
                if (r == -EINTR) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        socklen_t sl = sizeof(int);
                        int soerr = 0;

                        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                                ;
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                soerr = errno;
                        r = -soerr;
                }
                if (r < 0) {
                        close(fd);
                        return r;
                }
        }
        return nb_client_new_from_fd(fd, ret);
}

static void list_push(Reply **head, Reply **tail, Reply *q)
{
        q->next = NULL;
        if (*tail)
                (*tail)->next = q;
        else
                *head = q;
        *tail = q;
}

static Reply *list_pop(Reply **head, Reply **tail)
{
        Reply *q = *head;

        if (q) {
                *head = q->next;
                if (!*head)
                        *tail = NULL;
        }
        return q;
}

/* Appends a message (taken, deleted on failure) to a list. */
static int list_keep(Reply **head, Reply **tail, uint64_t id, cJSON *msg)
{
        Reply *q = calloc(1, sizeof(*q));

        if (!q) {
                cJSON_Delete(msg);
                return -ENOMEM;
        }
        q->id = id;
        q->msg = msg;
        list_push(head, tail, q);
        return 0;
}

static void list_clear(Reply **head, Reply **tail)
{
        Reply *q;

        while ((q = list_pop(head, tail))) {
                cJSON_Delete(q->msg);
                free(q);
        }
}

NbClient *nb_client_free(NbClient *c)
{
        if (!c)
                return NULL;
        list_clear(&c->queue_head, &c->queue_tail);
        list_clear(&c->notes_head, &c->notes_tail);
        free(c->unanswered);
        if (c->fd >= 0)
                close(c->fd);
        free(c->buf);
        free(c);
        return NULL;
}

void nb_client_set_timeout(NbClient *c, int msec)
{
        if (c)
                c->timeout_msec = msec < 0 ? -1 : msec;
}

void nb_client_set_max_reply(NbClient *c, size_t bytes)
{
        if (c)
                c->max_reply = bytes < MIN_REPLY_LIMIT ? MIN_REPLY_LIMIT : bytes;
}

unsigned nb_client_in_flight(const NbClient *c)
{
        return c ? (unsigned)c->in_flight : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Waiting */

static int64_t now_msec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_from_now(const NbClient *c)
{
        return c->timeout_msec < 0 ? -1 : now_msec() + c->timeout_msec;
}

/* poll() until an event in events, the deadline (-1: none) or an error. Returns revents. */
static int wait_fd(int fd, short events, int64_t deadline)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int t = -1, n;

                if (deadline >= 0) {
                        int64_t left = deadline - now_msec();
                        if (left <= 0)
                                return -ETIMEDOUT;
                        t = left > INT_MAX ? INT_MAX : (int)left;
                }
                n = poll(&p, 1, t);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n > 0)
                        return p.revents;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Input buffer */

/* Makes room for at least one more byte if the limit allows. Returns the free space (0: the buffer
 * holds max_reply + 1 bytes already, which is enough to tell whether a line is too long). */
static ssize_t buf_make_room(NbClient *c)
{
        size_t limit = c->max_reply + 1, want;
        char *p;

        if (c->start > 0 && (c->start == c->len || c->len == c->cap)) {
                memmove(c->buf, c->buf + c->start, c->len - c->start);
                c->len -= c->start;
                c->scanned -= c->start;
                c->start = 0;
        }
        if (c->len < c->cap)
                return (ssize_t)(c->cap - c->len);
        if (c->cap >= limit)
                return 0;
        want = c->cap < READ_CHUNK_BYTES ? READ_CHUNK_BYTES : c->cap * 2;
        if (want > limit)
                want = limit;
        p = realloc(c->buf, want);
        if (!p)
                return -ENOMEM;
        c->buf = p;
        c->cap = want;
        return (ssize_t)(c->cap - c->len);
}

/* One read() into the buffer, without waiting. Returns bytes read, 0 at EOF (and sets eof),
 * -EAGAIN if nothing is there, -ENOBUFS if the buffer is full. */
static ssize_t buf_read_once(NbClient *c)
{
        ssize_t room = buf_make_room(c), n;

        if (room < 0)
                return room;
        if (room == 0)
                return -ENOBUFS;
        do
                n = read(c->fd, c->buf + c->len, (size_t)room);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (n == 0)
                c->eof = true;
        c->len += (size_t)n;
        return n;
}

/* Waits for the next complete line. On success *ret_line points into the buffer (valid until the
 * next read) and *ret_len excludes the '\n'. */
static int buf_read_line(NbClient *c, const char **ret_line, size_t *ret_len, int64_t deadline)
{
        for (;;) {
                char *nl =
                        c->scanned < c->len ? memchr(c->buf + c->scanned, '\n', c->len - c->scanned) : NULL;
                ssize_t n;
                int r;

                if (nl) {
                        size_t end = (size_t)(nl - c->buf);

                        *ret_line = c->buf + c->start;
                        *ret_len = end - c->start;
                        if (*ret_len > c->max_reply)
                                return -EMSGSIZE;
                        c->start = c->scanned = end + 1;
                        return 0;
                }
                c->scanned = c->len;
                /* Never trust a length from the peer: refuse as soon as the line is over the limit,
                 * before buffering any more of it. */
                if (c->len - c->start > c->max_reply)
                        return -EMSGSIZE;
                if (c->eof)
                        return -ECONNRESET;

                n = buf_read_once(c);
                if (n >= 0)
                        continue;
                if (n != -EAGAIN)
                        return n == -EPIPE ? -ECONNRESET : (int)n;
                r = wait_fd(c->fd, POLLIN, deadline);
                if (r < 0)
                        return r;
        }
}

/* ---------------------------------------------------------------------------------------------
 * Replies */

/* Checks that msg is a JSON-RPC 2.0 reply; a notification from the daemon (method, no id) gives 1
 * and is to be skipped. */
static int reply_validate(const cJSON *msg, uint64_t *ret_id)
{
        const cJSON *v, *id, *result, *error;

        if (!cJSON_IsObject(msg))
                return -EPROTO;
        v = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0)
                return -EPROTO;
        id = cJSON_GetObjectItemCaseSensitive(msg, "id");
        if (!id && cJSON_GetObjectItemCaseSensitive(msg, "method"))
                return 1;
        if (cJSON_IsNull(id))
                *ret_id = 0;
        else if (cJSON_IsNumber(id) && id->valuedouble >= 1 && id->valuedouble < (double)MAX_SAFE_JSON_INT &&
                 id->valuedouble == (double)(uint64_t)id->valuedouble)
                *ret_id = (uint64_t)id->valuedouble;
        else
                return -EPROTO;

        result = cJSON_GetObjectItemCaseSensitive(msg, "result");
        error = cJSON_GetObjectItemCaseSensitive(msg, "error");
        if (!!result == !!error)
                return -EPROTO;
        if (error) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
                const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");

                if (!cJSON_IsObject(error) || !cJSON_IsNumber(code) || !cJSON_IsString(message) ||
                    code->valuedouble < INT_MIN || code->valuedouble > INT_MAX ||
                    code->valuedouble != (double)(int)code->valuedouble)
                        return -EPROTO;
        } else if (*ret_id == 0)
                return -EPROTO; /* a result must answer some request */
        return 0;
}

/* A reply arrived for *id: it is no longer in flight. An error the daemon could not tie to a
 * request (id 0: say, a line too long) answers the oldest request in flight, since the daemon
 * answers in request order. -EPROTO for a reply to nothing. */
static int unanswered_take(NbClient *c, uint64_t *id)
{
        size_t i = 0;

        if (c->in_flight == 0)
                return -EPROTO;
        if (*id == 0)
                *id = c->unanswered[0];
        else
                while (i < c->in_flight && c->unanswered[i] != *id)
                        i++;
        if (i == c->in_flight)
                return -EPROTO;
        memmove(c->unanswered + i, c->unanswered + i + 1, (c->in_flight - i - 1) * sizeof(uint64_t));
        c->in_flight--;
        return 0;
}

/* Keeps a notification for nb_client_next_notification(); the oldest go when too many wait. */
static int note_keep(NbClient *c, cJSON *msg)
{
        Reply *q;
        int r = list_keep(&c->notes_head, &c->notes_tail, 0, msg);

        if (r < 0)
                return r;
        if (++c->n_notes > NB_CLIENT_MAX_NOTIFICATIONS) {
                q = list_pop(&c->notes_head, &c->notes_tail);
                cJSON_Delete(q->msg);
                free(q);
                c->n_notes--;
        }
        return 0;
}

/* Reads the next reply (skipping blank lines; daemon notifications are kept aside). With for_note,
 * returns 1 as soon as a notification was kept. Any failure here kills the connection: after a
 * bad line we no longer know which reply belongs to which request. */
static int reply_read(NbClient *c, bool for_note, uint64_t *ret_id, cJSON **ret_msg)
{
        int64_t deadline = deadline_from_now(c);

        for (;;) {
                _cleanup_(cjson_deletep) cJSON *msg = NULL;
                const char *line = NULL;
                size_t len = 0;
                int r;

                r = buf_read_line(c, &line, &len, deadline);
                if (r < 0)
                        return r;
                if (len > 0 && line[len - 1] == '\r')
                        len--;
                if (len == 0)
                        continue;
                msg = cJSON_ParseWithLength(line, len);
                if (!msg)
                        return -EPROTO;
                r = reply_validate(msg, ret_id);
                if (r < 0)
                        return r;
                if (r > 0) {
                        r = note_keep(c, TAKE_PTR(msg));
                        if (r < 0)
                                return r;
                        if (for_note)
                                return 1;
                        continue;
                }
                r = unanswered_take(c, ret_id);
                if (r < 0)
                        return r;
                *ret_msg = TAKE_PTR(msg);
                return 0;
        }
}

/* Hands a validated reply to the caller; deletes msg. */
static int reply_deliver(cJSON *msg, cJSON **ret_result, NbError *err)
{
        _cleanup_(cjson_deletep) cJSON *m = msg;
        cJSON *error;

        error = cJSON_GetObjectItemCaseSensitive(m, "error");
        if (!error) {
                if (ret_result)
                        *ret_result = cJSON_DetachItemFromObjectCaseSensitive(m, "result");
                return 0;
        }
        if (err) {
                char *s = strdup(cJSON_GetObjectItemCaseSensitive(error, "message")->valuestring);

                if (!s)
                        return -ENOMEM;
                nb_error_done(err);
                err->code = (int)cJSON_GetObjectItemCaseSensitive(error, "code")->valuedouble;
                err->message = s;
                err->data = cJSON_DetachItemFromObjectCaseSensitive(error, "data");
        }
        return NB_CLIENT_EREMOTE;
}

/* A failed read leaves the connection unusable (a reply was lost, or we no longer know where the
 * next one starts), except for a timeout: the partial line stays buffered for the next try. */
static int client_fail(NbClient *c, int r)
{
        if (r != -ETIMEDOUT)
                c->dead = r;
        return r;
}

/* ---------------------------------------------------------------------------------------------
 * Requests */

static int write_all(NbClient *c, const char *p, size_t n)
{
        int64_t deadline = deadline_from_now(c);

        while (n > 0) {
                ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
                short events;
                int r;

                if (k > 0) {
                        p += k;
                        n -= (size_t)k;
                        continue;
                }
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                        return errno == EPIPE ? -ECONNRESET : -errno;

                /* The socket is full. Read what the daemon sends meanwhile: it may be waiting for
                 * us to take its replies before it reads more of our requests. */
                events = POLLOUT;
                if (!c->eof && buf_make_room(c) > 0)
                        events |= POLLIN;
                r = wait_fd(c->fd, events, deadline);
                if (r < 0)
                        return r;
                if (r & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t m = buf_read_once(c);
                        if (m < 0 && m != -EAGAIN && m != -ENOBUFS)
                                return (int)m;
                }
        }
        return 0;
}

int nb_client_send(NbClient *c, const char *method, cJSON *params, uint64_t *ret_id)
{
        _cleanup_(cjson_deletep) cJSON *p = params, *req = NULL;
        _cleanup_(freep) char *text = NULL;
        uint64_t id;
        size_t n;
        int r;

        if (!c || !method || (p && !cJSON_IsObject(p)))
                return -EINVAL;
        if (c->dead)
                return -ENOTCONN;
        if (c->next_id >= MAX_SAFE_JSON_INT)
                return -EOVERFLOW;

        id = c->next_id;
        req = cJSON_CreateObject();
        if (!req || !cJSON_AddStringToObject(req, "jsonrpc", "2.0") ||
            !cJSON_AddNumberToObject(req, "id", (double)id) ||
            !cJSON_AddStringToObject(req, "method", method))
                return -ENOMEM;
        if (p)
                cJSON_AddItemToObject(req, "params", TAKE_PTR(p));
        /* Numbers digit for digit (cJSON's printer rounds some), and the line's '\n'. */
        text = json_print(req, true);
        if (!text)
                return -ENOMEM;
        n = strlen(text);

        if (c->in_flight == c->unanswered_alloc) {
                size_t want = MAX(c->unanswered_alloc * 2, (size_t)16);
                uint64_t *ids = realloc(c->unanswered, want * sizeof(uint64_t));

                if (!ids)
                        return -ENOMEM;
                c->unanswered = ids;
                c->unanswered_alloc = want;
        }
        /* Whatever stopped the write, part of the line may be out: the stream is no longer
         * framed, so the connection is done for. */
        r = write_all(c, text, n);
        if (r < 0) {
                c->dead = r;
                return r;
        }
        c->next_id++;
        c->unanswered[c->in_flight++] = id;
        if (ret_id)
                *ret_id = id;
        return 0;
}

int nb_client_recv(NbClient *c, uint64_t *ret_id, cJSON **ret_result, NbError *err)
{
        cJSON *msg;
        uint64_t id;

        if (!c)
                return -EINVAL;
        if (c->queue_head) {
                Reply *q = list_pop(&c->queue_head, &c->queue_tail);

                id = q->id;
                msg = q->msg;
                free(q);
        } else {
                if (c->dead)
                        return -ENOTCONN;
                if (c->in_flight == 0)
                        return -EALREADY;
                int r = reply_read(c, false, &id, &msg);
                if (r < 0)
                        return client_fail(c, r);
        }
        if (ret_id)
                *ret_id = id;
        return reply_deliver(msg, ret_result, err);
}

int nb_client_call(NbClient *c, const char *method, cJSON *params, cJSON **ret_result, NbError *err)
{
        uint64_t want, id;
        int r;

        r = nb_client_send(c, method, params, &want);
        if (r < 0)
                return r;
        for (;;) {
                cJSON *msg;

                r = reply_read(c, false, &id, &msg);
                if (r < 0)
                        return client_fail(c, r);
                if (id == want)
                        return reply_deliver(msg, ret_result, err);

                r = list_keep(&c->queue_head, &c->queue_tail, id, msg);
                if (r < 0)
                        return client_fail(c, r);
        }
}

int nb_client_next_notification(NbClient *c, cJSON **ret_msg)
{
        for (;;) {
                Reply *q = list_pop(&c->notes_head, &c->notes_tail);
                cJSON *msg;
                uint64_t id;
                int r;

                if (q) {
                        c->n_notes--;
                        *ret_msg = q->msg;
                        free(q);
                        return 0;
                }
                if (c->dead)
                        return -ENOTCONN;
                r = reply_read(c, true, &id, &msg);
                if (r < 0)
                        return client_fail(c, r);
                if (r > 0)
                        continue;
                /* A reply to a request in flight: kept for nb_client_recv(). */
                r = list_keep(&c->queue_head, &c->queue_tail, id, msg);
                if (r < 0)
                        return client_fail(c, r);
        }
}
