/* SPDX-License-Identifier: MIT */
/* http.c against a small HTTP/1.1 server of the test's own on 127.0.0.1. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#include "http.h"
#include "tap.h"

static int server_fd = -1, server_port;
static volatile int accepted;

/* Serves one connection: keep-alive, Content-Length bodies; the path picks the behaviour. */
static void *serve_conn(void *arg)
{
        int fd = (int)(intptr_t)arg;
        char buf[65536];
        size_t len = 0;

        for (;;) {
                char *end, *cl, path[256] = "", resp[70000], body[65536] = "";
                size_t head, clen = 0;
                ssize_t n;

                while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
                        n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                        buf[len] = 0;
                }
                head = (size_t)(end - buf) + 4;
                cl = strcasestr(buf, "content-length:");
                if (cl && cl < end)
                        clen = strtoul(cl + 15, NULL, 10);
                while (len < head + clen) {
                        n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                }
                sscanf(buf, "%*s %255s", path);
                memcpy(body, buf + head, clen);
                body[clen] = 0;
                memmove(buf, buf + head + clen, len - head - clen);
                len -= head + clen;

                if (streq(path, "/close"))
                        goto done;
                if (streq(path, "/slow"))
                        sleep(2);
                if (streq(path, "/big")) {
                        memset(body, 'x', 1000);
                        body[1000] = 0;
                }
                n = snprintf(resp, sizeof(resp),
                             "HTTP/1.1 %s\r\nContent-Length: %zu\r\nx-amzn-RequestId: REQ-%s\r\n\r\n%s",
                             streq(path, "/missing") ? "404 Not Found" : "200 OK",
                             streq(path, "/echo") ? strlen(body) : (size_t)5, path + 1,
                             streq(path, "/echo") || streq(path, "/big") ? body : "hello");
                if (streq(path, "/big"))
                        n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%s",
                                     body);
                if (send(fd, resp, (size_t)n, MSG_NOSIGNAL) < 0)
                        goto done;
        }
done:
        close(fd);
        return NULL;
}

static void *serve(void *arg)
{
        for (;;) {
                pthread_t t;
                int fd = accept(server_fd, NULL, NULL);

                if (fd < 0)
                        return NULL;
                accepted++;
                pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd);
                pthread_detach(t);
        }
}

static void server_start(void)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        pthread_t t;

        server_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bind(server_fd, (struct sockaddr *)&sa, sizeof(sa));
        listen(server_fd, 16);
        getsockname(server_fd, (struct sockaddr *)&sa, &sl);
        server_port = ntohs(sa.sin_port);
        pthread_create(&t, NULL, serve, NULL);
        pthread_detach(t);
}

typedef struct Outcome {
        bool done;
        HttpResult r;
        char body[2048];
        char request_id[128];
} Outcome;

static void on_done(void *userdata, const HttpResult *r)
{
        Outcome *o = userdata;

        o->done = true;
        o->r = *r;
        snprintf(o->body, sizeof(o->body), "%s", r->body);
        snprintf(o->request_id, sizeof(o->request_id), "%s", r->request_id);
}

/* Runs the loop until the request finished (at most 10 s). */
static Outcome request(sd_event *e, Http *h, const char *method, const char *path, const char *body)
{
        const char *headers[] = { "Content-Type: application/x-amz-json-1.0", NULL };
        Outcome o = { 0 };
        char url[256];
        uint64_t until = now_monotonic_usec() + 10 * USEC_PER_SEC;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server_port, path);
        if (http_request(h, method, url, headers, body, body ? strlen(body) : 0, on_done, &o) < 0)
                return o;
        ok(!o.done, "%s %s: the callback does not run inside http_request()", method, path);
        while (!o.done && now_monotonic_usec() < until)
                sd_event_run(e, 100 * USEC_PER_MSEC);
        return o;
}

int main(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        Http *h = NULL;
        Outcome o;
        int closed_port;

        server_start();
        sd_event_new(&e);
        is_int(http_new(e, &(HttpOptions){ .total_timeout_usec = 1 * USEC_PER_SEC, .max_body = 500 }, &h), 0,
               "http_new");

        o = request(e, h, "GET", "/ok", NULL);
        ok(o.done && o.r.error == 0 && o.r.status == 200, "GET: 200");
        is_str(o.body, "hello", "GET: body");
        is_str(o.request_id, "REQ-ok", "GET: x-amzn-RequestId captured");
        o = request(e, h, "POST", "/echo", "{\"TableName\":\"notebooks\"}");
        ok(o.done && o.r.status == 200, "POST: 200");
        is_str(o.body, "{\"TableName\":\"notebooks\"}", "POST: the body went and came back");
        o = request(e, h, "POST", "/missing", "{}");
        ok(o.done && o.r.error == 0 && o.r.status == 404, "an HTTP error status is an answer, not an error");
        is_int(http_connections_opened(h), 1, "three requests, one connection: kept alive and reused");
        is_int(accepted, 1, "the server saw one connection");

        o = request(e, h, "POST", "/close", "{}");
        ok(o.done && o.r.error == -ECONNRESET, "no answer at all: -ECONNRESET (got %d)", o.r.error);
        ok(o.r.maybe_sent, "and the request may have been applied");
        o = request(e, h, "GET", "/ok", NULL);
        ok(o.done && o.r.status == 200, "after the server closed a connection, the next request reconnects");

        o = request(e, h, "GET", "/slow", NULL);
        ok(o.done && o.r.error == -ETIMEDOUT, "over the total timeout: -ETIMEDOUT (got %d)", o.r.error);
        o = request(e, h, "GET", "/big", NULL);
        ok(o.done && o.r.error == -EFBIG, "an answer over the size cap: -EFBIG (got %d)", o.r.error);

        /* A port nobody listens on: bind one, close it. */
        {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t sl = sizeof(sa);
                int fd = socket(AF_INET, SOCK_STREAM, 0), saved = server_port;

                bind(fd, (struct sockaddr *)&sa, sizeof(sa));
                getsockname(fd, (struct sockaddr *)&sa, &sl);
                closed_port = ntohs(sa.sin_port);
                close(fd);
                server_port = closed_port;
                o = request(e, h, "GET", "/ok", NULL);
                server_port = saved;
        }
        ok(o.done && o.r.error == -ECONNREFUSED, "connection refused: -ECONNREFUSED (got %d)", o.r.error);
        ok(!o.r.maybe_sent, "and the request surely did not arrive");

        {
                Outcome pending = { 0 };
                char url[128];

                snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", server_port);
                http_request(h, "GET", url, NULL, NULL, 0, on_done, &pending);
                sd_event_run(e, 50 * USEC_PER_MSEC);
                h = http_free(h);
                ok(pending.done && pending.r.error == -ECANCELED, "http_free() cancels what is in flight");
        }
        return tap_done();
}
