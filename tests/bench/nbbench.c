/* SPDX-License-Identifier: MIT */

/* nbbench: load generator for notebookd's benchmark (tests/bench/bench.py).
 *
 *   nbbench --socket PATH --notebook ID --cell ID [--user U] [--clients K] [--pipeline P]
 *           [--seconds S] [--warmup S] [--method update|get|status]
 *
 * K connections in one process (one thread, epoll), each keeping P requests in flight for S
 * seconds after a warm-up: cell.update of the given cell (its code set to a short new string per
 * request; every client edits the same cell, as one user typing into one notebook from several
 * tabs would not, but the store's work is the same), notebook.get of the notebook, or
 * daemon.status. Requests are preformatted lines; a reply is only checked for being a result, so
 * the client costs little of the machine it shares with the daemon.
 *
 * Prints one line of key=value pairs:
 *   requests=N seconds=S rate=R p50_ms=X p99_ms=Y per_commit=C
 * per_commit is the daemon's requests per transaction over the measured window (from
 * daemon.status). Exit status 0, or 1 when the daemon answered with an error or went away. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS  1024
#define MAX_PIPELINE 64
#define MIN_(a, b)   ((a) < (b) ? (a) : (b))

typedef struct Client {
        int fd;
        unsigned in_flight;
        uint64_t sent_ns[MAX_PIPELINE]; /* ring: when each request in flight was sent */
        unsigned head;
        uint64_t next_id;
        char in[1 << 16];
        size_t in_len;
        size_t skip; /* bytes of an over-long reply still to be dropped */
} Client;

typedef struct Options {
        const char *socket_path, *user, *notebook, *cell;
        enum { METHOD_UPDATE, METHOD_GET, METHOD_STATUS } method;
        long clients, pipeline;
        double seconds, warmup;
} Options;

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int connect_to(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -1;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -1;
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

/* One synchronous call on a blocking socket: the reply line, or NULL. */
static char *call(int fd, const char *line)
{
        size_t len = 0, alloc = 4096;
        char *buf = malloc(alloc);

        if (!buf || write_all(fd, line, strlen(line)) < 0)
                goto fail;
        for (;;) {
                ssize_t k;
                char *nl;

                if (len + 1 >= alloc) {
                        char *p = realloc(buf, alloc *= 2);
                        if (!p)
                                goto fail;
                        buf = p;
                }
                k = recv(fd, buf + len, alloc - len - 1, 0);
                if (k <= 0)
                        goto fail;
                len += (size_t)k;
                buf[len] = 0;
                nl = strchr(buf, '\n');
                if (nl) {
                        *nl = 0;
                        return buf;
                }
        }
fail:
        free(buf);
        return NULL;
}

/* The daemon's request and transaction counters. */
static int read_counters(int fd, double *requests, double *transactions)
{
        char *reply = call(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n");
        const char *p, *q;

        if (!reply)
                return -1;
        p = strstr(reply, "\"requests\":");
        q = strstr(reply, "\"transactions\":");
        if (!p || !q) {
                free(reply);
                return -1;
        }
        *requests = strtod(p + strlen("\"requests\":"), NULL);
        *transactions = strtod(q + strlen("\"transactions\":"), NULL);
        free(reply);
        return 0;
}

static size_t format_request(const Options *o, Client *c, unsigned k, char *buf, size_t size)
{
        char user[200] = "";
        int n;

        if (o->user)
                snprintf(user, sizeof(user), "\"user_id\":\"%s\",", o->user);
        if (o->method == METHOD_GET)
                n = snprintf(buf, size,
                             "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
                             ",\"method\":\"notebook.get\",\"params\":{%s\"notebook_id\":\"%s\"}}\n",
                             c->next_id, user, o->notebook);
        else if (o->method == METHOD_STATUS)
                n = snprintf(buf, size,
                             "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"daemon.status\"}\n",
                             c->next_id);
        else
                n = snprintf(buf, size,
                             "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64
                             ",\"method\":\"cell.update\",\"params\":{%s\"notebook_id\":\"%s\",\"cell_id\":"
                             "\"%s\","
                             "\"code\":\"x = %u * %" PRIu64 "\"}}\n",
                             c->next_id, user, o->notebook, o->cell, k, c->next_id);
        c->next_id++;
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static int send_more(const Options *o, Client *c, unsigned k)
{
        char buf[MAX_PIPELINE * 512];
        size_t len = 0;
        uint64_t t = now_ns();

        while (c->in_flight < (unsigned)o->pipeline) {
                size_t n = format_request(o, c, k, buf + len, sizeof(buf) - len);

                if (n == 0)
                        return -1;
                len += n;
                c->sent_ns[(c->head + c->in_flight) % MAX_PIPELINE] = t;
                c->in_flight++;
        }
        return len > 0 ? write_all(c->fd, buf, len) : 0;
}

/* Takes the replies that arrived; each one's latency goes to lat (when recording). */
static int take_replies(Client *c, uint64_t **lat, size_t *n_lat, size_t *alloc_lat, bool record)
{
        uint64_t t = now_ns();
        ssize_t k = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        size_t start = 0;

        if (k < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (k == 0) {
                fprintf(stderr, "nbbench: the daemon closed a connection\n");
                return -1;
        }
        c->in_len += (size_t)k;
        for (size_t i = 0; i < c->in_len; i++) {
                if (c->in[i] != '\n')
                        continue;
                if (c->skip == 0) {
                        /* {"jsonrpc":"2.0","id":N,"result":... or ,"error":... */
                        const char *comma = memchr(c->in + start + 20, ',', i - start - 20);

                        if (!comma || strncmp(comma, ",\"result\"", 9) != 0) {
                                fprintf(stderr, "nbbench: error reply: %.*s\n", (int)MIN_(i - start, 400),
                                        c->in + start);
                                return -1;
                        }
                }
                c->skip = 0;
                if (c->in_flight == 0)
                        return -1;
                if (record) {
                        if (*n_lat == *alloc_lat) {
                                uint64_t *p =
                                        realloc(*lat, (*alloc_lat = *alloc_lat * 2 + 4096) * sizeof(**lat));
                                if (!p)
                                        return -1;
                                *lat = p;
                        }
                        (*lat)[(*n_lat)++] = t - c->sent_ns[c->head];
                }
                c->head = (c->head + 1) % MAX_PIPELINE;
                c->in_flight--;
                start = i + 1;
        }
        if (start == 0 && c->in_len == sizeof(c->in)) {
                /* A reply longer than the buffer (notebook.get of a big notebook): checked by its
                 * start, the rest dropped up to its newline. */
                const char *comma = memchr(c->in + 20, ',', 64);

                if (c->skip == 0 && (!comma || strncmp(comma, ",\"result\"", 9) != 0))
                        return -1;
                c->skip = 1;
                c->in_len = 0;
                return 0;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        return 0;
}

static void usage(FILE *f)
{
        fputs("Usage: nbbench --socket PATH --notebook ID [--cell ID] [--user U] [--clients K]\n"
              "               [--pipeline P] [--seconds S] [--warmup S] [--method update|get|status]\n",
              f);
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "user", required_argument, NULL, 'u' },
                { "notebook", required_argument, NULL, 'n' },
                { "cell", required_argument, NULL, 'c' },
                { "clients", required_argument, NULL, 'k' },
                { "pipeline", required_argument, NULL, 'p' },
                { "seconds", required_argument, NULL, 't' },
                { "warmup", required_argument, NULL, 'w' },
                { "method", required_argument, NULL, 'm' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        Options o = { .clients = 8, .pipeline = 1, .seconds = 5, .warmup = 1, .cell = "c" };
        uint64_t *lat = NULL, t0, t_measure, t_end;
        size_t n_lat = 0, alloc_lat = 0;
        double req0, tx0, req1, tx1;
        Client *clients;
        int ep, status_fd, opt;
        bool failed = false;

        while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (opt) {
                case 's':
                        o.socket_path = optarg;
                        break;
                case 'u':
                        o.user = optarg;
                        break;
                case 'n':
                        o.notebook = optarg;
                        break;
                case 'c':
                        o.cell = optarg;
                        break;
                case 'k':
                        o.clients = strtol(optarg, NULL, 10);
                        break;
                case 'p':
                        o.pipeline = strtol(optarg, NULL, 10);
                        break;
                case 't':
                        o.seconds = strtod(optarg, NULL);
                        break;
                case 'w':
                        o.warmup = strtod(optarg, NULL);
                        break;
                case 'm':
                        if (strcmp(optarg, "update") == 0)
                                o.method = METHOD_UPDATE;
                        else if (strcmp(optarg, "get") == 0)
                                o.method = METHOD_GET;
                        else if (strcmp(optarg, "status") == 0)
                                o.method = METHOD_STATUS;
                        else {
                                usage(stderr);
                                return 2;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!o.socket_path || !o.notebook || o.clients < 1 || o.clients > MAX_CLIENTS || o.pipeline < 1 ||
            o.pipeline > MAX_PIPELINE || o.seconds <= 0 || o.warmup < 0) {
                usage(stderr);
                return 2;
        }

        status_fd = connect_to(o.socket_path);
        ep = epoll_create1(EPOLL_CLOEXEC);
        clients = calloc((size_t)o.clients, sizeof(*clients));
        if (status_fd < 0 || ep < 0 || !clients) {
                perror("nbbench: set-up");
                return 2;
        }
        for (long k = 0; k < o.clients; k++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };

                clients[k].fd = connect_to(o.socket_path);
                clients[k].next_id = 1;
                if (clients[k].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, clients[k].fd, &ev) < 0) {
                        perror("nbbench: connect");
                        return 2;
                }
        }

        t0 = now_ns();
        t_measure = t0 + (uint64_t)(o.warmup * 1e9);
        t_end = t_measure + (uint64_t)(o.seconds * 1e9);
        req0 = tx0 = -1;
        for (long k = 0; k < o.clients && !failed; k++)
                failed = send_more(&o, &clients[k], (unsigned)k) < 0;
        while (!failed) {
                struct epoll_event evs[256];
                uint64_t t = now_ns();
                int n;

                if (req0 < 0 && t >= t_measure && read_counters(status_fd, &req0, &tx0) < 0)
                        failed = true;
                if (t >= t_end)
                        break;
                n = epoll_wait(ep, evs, 256, 100);
                for (int i = 0; i < n && !failed; i++) {
                        unsigned k = evs[i].data.u32;

                        failed = take_replies(&clients[k], &lat, &n_lat, &alloc_lat, req0 >= 0) < 0 ||
                                 send_more(&o, &clients[k], k) < 0;
                }
        }
        if (failed || read_counters(status_fd, &req1, &tx1) < 0) {
                fprintf(stderr, "nbbench: failed\n");
                return 1;
        }
        qsort(lat, n_lat, sizeof(*lat), cmp_u64);
        printf("requests=%zu seconds=%.3f rate=%.0f p50_ms=%.3f p99_ms=%.3f per_commit=%.2f\n", n_lat,
               o.seconds, (double)n_lat / o.seconds, n_lat ? lat[n_lat / 2] / 1e6 : 0.0,
               n_lat ? lat[(size_t)((double)n_lat * 0.99)] / 1e6 : 0.0,
               tx1 > tx0 ? (req1 - req0 - 1) / (tx1 - tx0) : 0.0);
        free(lat);
        free(clients);
        return 0;
}
