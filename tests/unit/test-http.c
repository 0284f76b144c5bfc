/* SPDX-License-Identifier: MIT */
/* http.c against small HTTP/1.1 and HTTPS servers of the test's own on 127.0.0.1 (threads in this
 * process). Nothing here reaches any other address: the proxy variables set below point at a
 * closed loopback port, and http.c must ignore them anyway. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http.h"
#include "tap.h"

/* ---- the test's server ----------------------------------------------------------------------- */

typedef struct Server {
        int fd, port;
        SSL_CTX *tls; /* NULL: plain HTTP */
        atomic_int accepted;
        pthread_mutex_t lock;
        char last[8192]; /* the last request's head and body */
} Server;

typedef struct Conn {
        Server *server;
        int fd;
        SSL *ssl;
} Conn;

static ssize_t conn_recv(Conn *c, char *buf, size_t n)
{
        if (c->ssl) {
                int k = SSL_read(c->ssl, buf, (int)n);
                return k > 0 ? k : -1;
        }
        return recv(c->fd, buf, n, 0);
}

static bool conn_send(Conn *c, const char *buf, size_t n)
{
        if (c->ssl)
                return SSL_write(c->ssl, buf, (int)n) == (int)n;
        return send(c->fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static bool conn_printf(Conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool conn_printf(Conn *c, const char *fmt, ...)
{
        char buf[16384];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        return n >= 0 && (size_t)n < sizeof(buf) && conn_send(c, buf, (size_t)n);
}

/* Answers one request; false: close the connection. The path picks the behaviour. */
static bool serve_one(Conn *c, const char *method, const char *path, const char *body, size_t body_len)
{
        char big[1001];

        if (streq(path, "/ok"))
                return conn_printf(
                        c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nx-amzn-RequestId: REQ-1\r\n"
                           "Date: Tue, 01 Dec 2026 10:00:00 GMT\r\nContent-Length: 5\r\n\r\nhello");
        if (streq(path, "/echo"))
                return conn_printf(c,
                                   "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                                   "X-Method: %s\r\nContent-Length: %zu\r\n\r\n%.*s",
                                   method, body_len, (int)body_len, body);
        if (streq(path, "/missing"))
                return conn_printf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
        if (streq(path, "/redirect"))
                return conn_printf(c, "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n");
        if (streq(path, "/close-after")) {
                /* Answers as if keeping the connection, then closes it: an idle close. */
                conn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye");
                return false;
        }
        if (streq(path, "/hangup"))
                return false;
        if (streq(path, "/slow")) {
                sleep(3);
                return conn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
        }
        memset(big, 'x', 1000);
        big[1000] = 0;
        if (streq(path, "/big"))
                return conn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%s", big);
        if (streq(path, "/bigchunked")) {
                if (!conn_printf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
                        return false;
                for (int i = 0; i < 10; i++)
                        if (!conn_printf(c, "64\r\n%.100s\r\n", big))
                                return false;
                return conn_printf(c, "0\r\n\r\n");
        }
        if (streq(path, "/trickle")) {
                if (!conn_printf(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"))
                        return false;
                for (int i = 0; i < 20; i++) {
                        usleep(300 * 1000);
                        if (!conn_send(c, "x", 1))
                                return false;
                }
                return true;
        }
        return conn_printf(c, "HTTP/1.1 500 Unknown\r\nContent-Length: 0\r\n\r\n");
}

/* Connection threads still running: main waits for them before exiting, since OpenSSL's exit-time
 * cleanup must not run under a thread that is still inside SSL_accept(). */
static atomic_int active_conns;

static void *serve_conn(void *arg)
{
        Conn *c = arg;
        char buf[65536];
        size_t len = 0;

        if (c->server->tls) {
                c->ssl = SSL_new(c->server->tls);
                if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_accept(c->ssl) != 1)
                        goto done;
        }
        for (;;) {
                char *end, *cl, method[16] = "", path[256] = "";
                size_t head, clen = 0;
                ssize_t n;
                bool keep;

                while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
                        if (len >= sizeof(buf) - 1)
                                goto done;
                        n = conn_recv(c, buf + len, sizeof(buf) - len - 1);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                        buf[len] = 0;
                }
                head = (size_t)(end - buf) + 4;
                *end = 0;
                cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl)
                        clen = strtoul(cl + 17, NULL, 10);
                *end = '\r';
                if (clen > sizeof(buf) - 1 - head)
                        goto done;
                while (len < head + clen) {
                        n = conn_recv(c, buf + len, sizeof(buf) - len - 1);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                }
                buf[len] = 0;
                sscanf(buf, "%15s %255s", method, path);
                pthread_mutex_lock(&c->server->lock);
                snprintf(c->server->last, sizeof(c->server->last), "%.*s", (int)(head + clen), buf);
                pthread_mutex_unlock(&c->server->lock);

                keep = serve_one(c, method, path, buf + head, clen);
                memmove(buf, buf + head + clen, len - head - clen);
                len -= head + clen;
                if (!keep)
                        break;
        }
done:
        if (c->ssl) {
                SSL_shutdown(c->ssl);
                SSL_free(c->ssl);
        }
        close(c->fd);
        free(c);
        atomic_fetch_sub(&active_conns, 1);
        return NULL;
}

static void *serve(void *arg)
{
        Server *s = arg;

        for (;;) {
                pthread_t t;
                Conn *c;
                int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0)
                        continue;
                atomic_fetch_add(&s->accepted, 1);
                c = calloc(1, sizeof(*c));
                c->server = s;
                c->fd = fd;
                atomic_fetch_add(&active_conns, 1);
                if (pthread_create(&t, NULL, serve_conn, c) != 0) {
                        atomic_fetch_sub(&active_conns, 1);
                        close(fd);
                        free(c);
                        continue;
                }
                pthread_detach(t);
        }
        return NULL;
}

/* Binds 127.0.0.1 on a port of the kernel's choice. */
static int loopback_listen(int *ret_port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
                abort();
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static void server_start(Server *s, SSL_CTX *tls)
{
        pthread_t t;

        s->fd = loopback_listen(&s->port);
        s->tls = tls;
        pthread_mutex_init(&s->lock, NULL);
        if (listen(s->fd, 64) < 0 || pthread_create(&t, NULL, serve, s) != 0)
                abort();
        pthread_detach(t);
}

static void server_last(Server *s, char *buf, size_t size)
{
        pthread_mutex_lock(&s->lock);
        snprintf(buf, size, "%s", s->last);
        pthread_mutex_unlock(&s->lock);
}

/* A port on which nobody listens. */
static int closed_port(void)
{
        int port, fd = loopback_listen(&port);

        close(fd);
        return port;
}

/* ---- certificates ---------------------------------------------------------------------------- */

static EVP_PKEY *key_new(void)
{
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
        EVP_PKEY *key = NULL;

        if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 ||
            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) <= 0 ||
            EVP_PKEY_keygen(ctx, &key) <= 0)
                abort();
        EVP_PKEY_CTX_free(ctx);
        return key;
}

static void cert_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || !X509_add_ext(x, ext, -1))
                abort();
        X509_EXTENSION_free(ext);
}

/* A CA (issuer NULL: self-signed) or a server certificate for 127.0.0.1 signed by issuer. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
        static long serial = 1;
        X509 *x = X509_new();
        X509_NAME *name;

        if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key))
                abort();
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
        cert_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
        if (issuer) {
                cert_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                cert_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
                cert_ext(x, issuer, NID_ext_key_usage, "serverAuth");
                cert_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1");
                cert_ext(x, issuer, NID_authority_key_identifier, "keyid");
        } else {
                cert_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
                cert_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        }
        if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
                abort();
        return x;
}

static void cert_write(X509 *x, const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f || !PEM_write_X509(f, x) || fclose(f) != 0)
                abort();
}

/* ---- the client side ------------------------------------------------------------------------- */

typedef struct Outcome {
        int calls;
        HttpResult r;
        char body[2048];
        char request_id[128], content_type[128], date[128];
} Outcome;

static void on_done(const HttpResult *r, void *userdata)
{
        Outcome *o = userdata;

        o->calls++;
        o->r = *r;
        snprintf(o->body, sizeof(o->body), "%s", r->body);
        snprintf(o->request_id, sizeof(o->request_id), "%s", r->request_id);
        snprintf(o->content_type, sizeof(o->content_type), "%s", r->content_type);
        snprintf(o->date, sizeof(o->date), "%s", r->date);
        o->r.body = o->r.request_id = o->r.content_type = o->r.date = o->r.error_text = NULL;
}

static void run_until(sd_event *e, const int *calls, uint64_t max_usec)
{
        uint64_t until = now_monotonic_usec() + max_usec;

        while (*calls == 0 && now_monotonic_usec() < until)
                sd_event_run(e, 50 * USEC_PER_MSEC);
}

static void run_for(sd_event *e, uint64_t usec)
{
        uint64_t until = now_monotonic_usec() + usec;

        while (now_monotonic_usec() < until)
                sd_event_run(e, 10 * USEC_PER_MSEC);
}

static char url_buf[256];
static const char *url(const char *scheme, int port, const char *path)
{
        snprintf(url_buf, sizeof(url_buf), "%s://127.0.0.1:%d%s", scheme, port, path);
        return url_buf;
}

/* Runs one request to its end (10 s at most). */
static Outcome fetch(sd_event *e, Http *h, const HttpRequestSpec *spec)
{
        Outcome o = { 0 };
        int k = http_request(h, spec, on_done, &o, NULL);

        if (k < 0) {
                o.r.error = k;
                o.calls = -1;
                return o;
        }
        ok(o.calls == 0, "%s %s: the callback does not run inside http_request()",
           spec->method ? spec->method : "GET", spec->url);
        run_until(e, &o.calls, 10 * USEC_PER_SEC);
        return o;
}

static Outcome get(sd_event *e, Http *h, int port, const char *path)
{
        return fetch(e, h, &(HttpRequestSpec){ .url = url("http", port, path) });
}

static void cancel_other(const HttpResult *r, void *userdata)
{
        HttpRequest **other = userdata;

        http_request_cancel(*other);
        *other = NULL;
}

static void test_plain(sd_event *e, Server *s)
{
        _cleanup_(http_freep) Http *h = NULL;
        char last[8192];
        Outcome o;
        int a0;

        is_int(http_new(e, NULL, &h), 0, "http_new with defaults");

        o = get(e, h, s->port, "/ok");
        ok(o.calls == 1 && o.r.error == 0 && o.r.status == 200, "GET: 200 (error %d)", o.r.error);
        is_str(o.body, "hello", "GET: body");
        is_str(o.request_id, "REQ-1", "GET: x-amzn-RequestId");
        is_str(o.content_type, "text/plain", "GET: Content-Type");
        is_str(o.date, "Tue, 01 Dec 2026 10:00:00 GMT", "GET: Date");
        ok(o.r.maybe_sent, "an answer means the request arrived");
        ok(o.r.total_usec > 0 && o.r.total_usec < 5 * USEC_PER_SEC, "total time measured (%" PRIu64 " us)",
           o.r.total_usec);

        {
                const char body[] = "{\"TableName\":\"notebooks\"}";
                HttpHeader hd[] = {
                        { "Content-Type", "application/x-amz-json-1.0" },
                        { "X-Amz-Target", "DynamoDB_20120810.PutItem" },
                        { "X-Empty", "" },
                };

                o = fetch(e, h,
                          &(HttpRequestSpec){ .method = "POST",
                                              .url = url("http", s->port, "/echo"),
                                              .headers = hd,
                                              .n_headers = ELEMENTSOF(hd),
                                              .body = body,
                                              .body_len = strlen(body) });
                ok(o.calls == 1 && o.r.status == 200, "POST: 200");
                is_str(o.body, body, "POST: the body went and came back");
                is_str(o.content_type, "application/x-amz-json-1.0", "POST: the answer's Content-Type");
                server_last(s, last, sizeof(last));
                ok(strncmp(last, "POST /echo HTTP/1.1\r\n", 21) == 0, "POST: request line");
                ok(strstr(last, "\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\n") != NULL,
                   "POST: header sent");
                ok(strstr(last, "\r\nX-Empty:") != NULL, "POST: a header with an empty value is sent");
                ok(strstr(last, "\r\nContent-Type: application/x-amz-json-1.0\r\n") != NULL,
                   "POST: the given Content-Type");
                ok(!strcasestr(last, "\r\nExpect:"), "POST: no Expect: 100-continue");
        }

        o = fetch(e, h, &(HttpRequestSpec){ .method = "PUT", .url = url("http", s->port, "/echo") });
        server_last(s, last, sizeof(last));
        ok(o.calls == 1 && o.r.status == 200 && strncmp(last, "PUT /echo HTTP/1.1\r\n", 20) == 0,
           "PUT without a body");
        ok(strcasestr(last, "\r\nContent-Length: 0\r\n") && !strcasestr(last, "\r\nContent-Type:"),
           "PUT: Content-Length 0 and no made-up Content-Type");

        o = get(e, h, s->port, "/missing");
        ok(o.calls == 1 && o.r.error == 0 && o.r.status == 404,
           "an HTTP error status is an answer, not an error");
        o = get(e, h, s->port, "/redirect");
        ok(o.calls == 1 && o.r.error == 0 && o.r.status == 302, "a redirect is not followed");

        is_int(atomic_load(&s->accepted), 1, "six requests in a row: the server saw one connection");
        is_int(http_connections_opened(h), 1, "and http.c opened one");

        /* The server closes a kept-alive connection while it is idle. */
        a0 = atomic_load(&s->accepted);
        o = get(e, h, s->port, "/close-after");
        ok(o.calls == 1 && o.r.status == 200, "an answer, then the server closes the idle connection");
        run_for(e, 100 * USEC_PER_MSEC);
        o = get(e, h, s->port, "/ok");
        ok(o.calls == 1 && o.r.error == 0 && o.r.status == 200,
           "the next request reconnects and succeeds (%d)", o.r.error);
        is_int(atomic_load(&s->accepted), a0 + 1, "on a new connection");
        o = get(e, h, s->port, "/ok");
        is_int(atomic_load(&s->accepted), a0 + 1, "which is then reused");

        /* Accepted, then closed without an answer. */
        o = get(e, h, s->port, "/hangup");
        ok(o.calls == 1 && o.r.error == -ECONNRESET, "no answer at all: -ECONNRESET (got %d)", o.r.error);
        ok(o.r.maybe_sent, "and the request may have been applied");
        is_int(o.r.status, 0, "no status");

        o = get(e, h, closed_port(), "/ok");
        ok(o.calls == 1 && o.r.error == -ECONNREFUSED, "connection refused: -ECONNREFUSED (got %d)",
           o.r.error);
        ok(!o.r.maybe_sent, "and the request surely did not arrive");

        {
                uint64_t t0 = now_monotonic_usec(), dt;

                o = fetch(e, h,
                          &(HttpRequestSpec){ .url = url("http", s->port, "/slow"),
                                              .total_timeout_usec = 500 * USEC_PER_MSEC });
                dt = now_monotonic_usec() - t0;
                ok(o.calls == 1 && o.r.error == -ETIMEDOUT,
                   "over the request's total timeout: -ETIMEDOUT (got %d)", o.r.error);
                ok(o.r.maybe_sent, "sent, so the outcome is unknown");
                ok(dt >= 450 * USEC_PER_MSEC && dt < 2 * USEC_PER_SEC, "after about 0.5 s (%" PRIu64 " ms)",
                   dt / USEC_PER_MSEC);
        }

        o = fetch(e, h, &(HttpRequestSpec){ .url = "ftp://127.0.0.1:1/x" });
        ok(o.calls == 1 && o.r.error == -EPROTONOSUPPORT, "ftp:// refused: -EPROTONOSUPPORT (got %d)",
           o.r.error);
        ok(!o.r.maybe_sent, "and nothing was sent");

        {
                HttpHeader bad[] = { { "X-Bad", "a\r\nInjected: 1" } };
                HttpHeader bad_name[] = { { "X Bad:", "a" } };
                Outcome never = { 0 };

                is_int(http_request(h,
                                    &(HttpRequestSpec){ .url = url("http", s->port, "/ok"),
                                                        .headers = bad,
                                                        .n_headers = 1 },
                                    on_done, &never, NULL),
                       -EINVAL, "a header value with CR LF is refused");
                is_int(http_request(h,
                                    &(HttpRequestSpec){ .url = url("http", s->port, "/ok"),
                                                        .headers = bad_name,
                                                        .n_headers = 1 },
                                    on_done, &never, NULL),
                       -EINVAL, "a bad header name is refused");
                is_int(http_request(
                               h, &(HttpRequestSpec){ .method = "GE T", .url = url("http", s->port, "/ok") },
                               on_done, &never, NULL),
                       -EINVAL, "a bad method is refused");
                run_for(e, 50 * USEC_PER_MSEC);
                is_int(never.calls, 0, "and no callback runs for a refused request");
        }

        /* Cancel: the callback never runs; another request goes on unhindered. */
        {
                Outcome cancelled = { 0 }, other = { 0 };
                HttpRequest *req = NULL, *victim = NULL;

                is_int(http_request(h, &(HttpRequestSpec){ .url = url("http", s->port, "/slow") }, on_done,
                                    &cancelled, &req),
                       0, "a slow request starts");
                run_for(e, 100 * USEC_PER_MSEC);
                http_request_cancel(req);
                is_int(http_requests_pending(h), 0, "cancelled: nothing pending");
                o = get(e, h, s->port, "/ok");
                ok(o.calls == 1 && o.r.status == 200, "a request after a cancel works");

                /* One callback cancels another request. */
                is_int(http_request(h, &(HttpRequestSpec){ .url = url("http", s->port, "/slow") }, on_done,
                                    &other, &victim),
                       0, "another slow request");
                is_int(http_request(h, &(HttpRequestSpec){ .url = url("http", s->port, "/ok") },
                                    cancel_other, &victim, NULL),
                       0, "and one whose callback cancels it");
                run_for(e, 300 * USEC_PER_MSEC);
                ok(victim == NULL, "the canceller ran");
                run_for(e, 100 * USEC_PER_MSEC);
                is_int(cancelled.calls + other.calls, 0, "no callback of a cancelled request ran");
                is_int(http_requests_pending(h), 0, "nothing pending");
                http_request_cancel(NULL);
        }

        {
                Outcome pending = { 0 };

                http_request(h, &(HttpRequestSpec){ .url = url("http", s->port, "/slow") }, on_done,
                             &pending, NULL);
                run_for(e, 50 * USEC_PER_MSEC);
                h = http_free(h);
                ok(pending.calls == 1 && pending.r.error == -ECANCELED,
                   "http_free() tells what is in flight: -ECANCELED");
        }
}

static void test_limits(sd_event *e, Server *s)
{
        _cleanup_(http_freep) Http *h = NULL;
        Outcome o;
        uint64_t t0, dt;

        is_int(http_new(e,
                        &(HttpOptions){ .max_body_bytes = 500,
                                        .total_timeout_usec = 400 * USEC_PER_MSEC,
                                        .low_speed_limit = 1000,
                                        .low_speed_time_usec = 1 * USEC_PER_SEC },
                        &h),
               0, "http_new with a 500-byte cap, 0.4 s total timeout");
        o = get(e, h, s->port, "/big");
        ok(o.calls == 1 && o.r.error == -EFBIG, "an answer over the cap (Content-Length): -EFBIG (got %d)",
           o.r.error);
        o = get(e, h, s->port, "/bigchunked");
        ok(o.calls == 1 && o.r.error == -EFBIG, "an answer over the cap (chunked): -EFBIG (got %d)",
           o.r.error);
        ok(o.r.maybe_sent, "an answer came, so the request arrived");
        o = get(e, h, s->port, "/ok");
        ok(o.calls == 1 && o.r.status == 200, "a small answer passes");

        t0 = now_monotonic_usec();
        o = get(e, h, s->port, "/slow");
        dt = now_monotonic_usec() - t0;
        ok(o.calls == 1 && o.r.error == -ETIMEDOUT, "the Http's total timeout: -ETIMEDOUT (got %d)",
           o.r.error);
        ok(dt < 2 * USEC_PER_SEC, "in time (%" PRIu64 " ms)", dt / USEC_PER_MSEC);

        /* A trickle of 3 bytes/s under a limit of 1000 bytes/s for 1 s. */
        t0 = now_monotonic_usec();
        o = fetch(e, h,
                  &(HttpRequestSpec){ .url = url("http", s->port, "/trickle"),
                                      .total_timeout_usec = 8 * USEC_PER_SEC });
        dt = now_monotonic_usec() - t0;
        ok(o.calls == 1 && o.r.error == -ETIMEDOUT, "too slow: -ETIMEDOUT (got %d)", o.r.error);
        ok(dt < 4 * USEC_PER_SEC, "by the low-speed limit, not the total timeout (%" PRIu64 " ms)",
           dt / USEC_PER_MSEC);
}

static void test_tls(sd_event *e, const char *dir)
{
        char ca_path[512], wrong_path[512], missing_path[512];
        EVP_PKEY *ca_key = key_new(), *wrong_key = key_new(), *leaf_key = key_new();
        X509 *ca = cert_new(ca_key, "notebookd test CA", NULL, NULL);
        X509 *wrong = cert_new(wrong_key, "notebookd test CA", NULL, NULL); /* same name, other key */
        X509 *leaf = cert_new(leaf_key, "127.0.0.1", ca, ca_key);
        SSL_CTX *tls = SSL_CTX_new(TLS_server_method());
        static Server s;
        Outcome o;

        snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", dir);
        snprintf(wrong_path, sizeof(wrong_path), "%s/wrong.pem", dir);
        snprintf(missing_path, sizeof(missing_path), "%s/missing.pem", dir);
        cert_write(ca, ca_path);
        cert_write(wrong, wrong_path);
        if (!tls || SSL_CTX_use_certificate(tls, leaf) != 1 || SSL_CTX_use_PrivateKey(tls, leaf_key) != 1)
                abort();
        server_start(&s, tls);

        {
                _cleanup_(http_freep) Http *h = NULL;

                is_int(http_new(e, &(HttpOptions){ .ca_file = ca_path }, &h), 0,
                       "http_new with the right CA");
                o = fetch(e, h, &(HttpRequestSpec){ .url = url("https", s.port, "/ok") });
                ok(o.calls == 1 && o.r.error == 0 && o.r.status == 200,
                   "HTTPS with the right CA: 200 (error %d)", o.r.error);
                is_str(o.body, "hello", "HTTPS: body");
                o = fetch(e, h, &(HttpRequestSpec){ .url = url("https", s.port, "/ok") });
                is_int(http_connections_opened(h), 1, "HTTPS: the connection is reused");
        }
        {
                _cleanup_(http_freep) Http *h = NULL;

                is_int(http_new(e, &(HttpOptions){ .ca_file = wrong_path }, &h), 0,
                       "http_new with a wrong CA");
                o = fetch(e, h, &(HttpRequestSpec){ .url = url("https", s.port, "/ok") });
                ok(o.calls == 1 && o.r.error == -EPROTO, "HTTPS with a wrong CA: -EPROTO (got %d)",
                   o.r.error);
                ok(o.r.tls_verify_failed, "the verification flag is set");
                ok(!o.r.maybe_sent, "and the request was not sent");
        }
        {
                _cleanup_(http_freep) Http *h = NULL;

                is_int(http_new(e, NULL, &h), 0, "http_new with the system's CA store");
                o = fetch(e, h, &(HttpRequestSpec){ .url = url("https", s.port, "/ok") });
                ok(o.calls == 1 && o.r.error == -EPROTO && o.r.tls_verify_failed,
                   "a certificate the system does not trust fails verification (got %d)", o.r.error);
        }
        {
                _cleanup_(http_freep) Http *h = NULL;

                is_int(http_new(e, &(HttpOptions){ .ca_file = missing_path }, &h), 0,
                       "http_new with a CA file that does not exist");
                o = fetch(e, h, &(HttpRequestSpec){ .url = url("https", s.port, "/ok") });
                ok(o.calls == 1 && o.r.error == -EPROTO,
                   "a missing CA file: -EPROTO, never unverified (got %d)", o.r.error);
                ok(!o.r.maybe_sent, "nothing sent");
        }
        unlink(ca_path);
        unlink(wrong_path);
        X509_free(ca);
        X509_free(wrong);
        X509_free(leaf);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(wrong_key);
        EVP_PKEY_free(leaf_key);
}

/* The test's TLS server threads may still hold OpenSSL state when the process exits; that state
 * is theirs, not http.c's. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
        return "leak:libcrypto.so\nleak:libssl.so\n";
}

int main(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char dir[] = "/tmp/test-http.XXXXXX", proxy[64];
        static Server plain;

        signal(SIGPIPE, SIG_IGN);
        /* Proxies from the environment must be ignored: these would refuse every connection. */
        snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", closed_port());
        setenv("http_proxy", proxy, 1);
        setenv("HTTPS_PROXY", proxy, 1);
        setenv("https_proxy", proxy, 1);
        setenv("ALL_PROXY", proxy, 1);
        unsetenv("NO_PROXY");
        unsetenv("no_proxy");

        if (!mkdtemp(dir) || sd_event_new(&e) < 0)
                abort();
        server_start(&plain, NULL);
        test_plain(e, &plain);
        test_limits(e, &plain);
        test_tls(e, dir);
        rmdir(dir);
        for (int i = 0; i < 500 && atomic_load(&active_conns) > 0; i++)
                usleep(10000);
        return tap_done();
}
