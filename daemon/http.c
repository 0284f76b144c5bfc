/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "http.h"
#include "log.h"

/* libcurl stops reusing a connection idle this long. Servers close idle connections after a
 * while (AWS's load balancers after about a minute); a connection found dead at reuse costs a
 * reconnect anyway, but one that dies just as a request goes out costs a resend. */
#define MAX_IDLE_CONN_SEC 50
#define TCP_KEEPIDLE_SEC  30
#define TCP_KEEPINTVL_SEC 15

typedef struct HttpSocket HttpSocket;

/* One socket that libcurl asked us to watch. */
struct HttpSocket {
        HttpSocket *prev, *next;
        Http *http;
        sd_event_source *source;
};

struct HttpRequest {
        HttpRequest *prev, *next;
        Http *http;
        CURL *easy;
        bool added;       /* to the multi handle */
        bool in_callback; /* finished: cancel is a no-op */
        struct curl_slist *headers;
        char *body;
        char *response;
        size_t response_len, response_alloc;
        bool too_big;
        HttpAnswerHeaders answer;
        char error_text[CURL_ERROR_SIZE];
        HttpDoneFunc cb;
        void *userdata;
};

struct Http {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source *defer; /* drains finished transfers, outside of libcurl's callbacks */
        HttpOptions options;
        char *ca_file;
        HttpRequest *requests;
        HttpSocket *sockets;
        unsigned n_requests, opened;
        bool freeing;
};

/* CURLcode to negative errno, at the border (STYLE.md habit 2). */
static int curl_code_to_errno(CURLcode c, long os_errno, bool *ret_tls_verify)
{
        *ret_tls_verify = false;
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTDOWN;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
                *ret_tls_verify = true;
                return -EPROTO;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_USE_SSL_FAILED:
                return -EPROTO;
        case CURLE_WRITE_ERROR:
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EPROTONOSUPPORT;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_WEIRD_SERVER_REPLY:
                return -EBADMSG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* ---- the loop glue ------------------------------------------------------------------------- */

static void http_schedule_drain(Http *h)
{
        (void)sd_event_source_set_enabled(h->defer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        HttpSocket *sock = userdata;
        Http *h = sock->http; /* sock may be gone once libcurl has acted */
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void)curl_multi_socket_action(h->multi, fd, action, &running);
        http_schedule_drain(h);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Http *h = userdata;
        int running;

        (void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_schedule_drain(h);
        return 0;
}

static void http_socket_free(HttpSocket *sock)
{
        Http *h = sock->http;

        if (sock->prev)
                sock->prev->next = sock->next;
        else
                h->sockets = sock->next;
        if (sock->next)
                sock->next->prev = sock->prev;
        sd_event_source_disable_unref(sock->source);
        free(sock);
}

/* libcurl says which sockets to watch for what. Runs inside libcurl: only bookkeeping here. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp)
{
        Http *h = userdata;
        HttpSocket *sock = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (sock) {
                        http_socket_free(sock);
                        (void)curl_multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (sock) {
                r = sd_event_source_set_io_events(sock->source, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(sock->source, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }
        sock = calloc(1, sizeof(*sock));
        if (!sock)
                return -1;
        sock->http = h;
        r = sd_event_add_io(h->event, &sock->source, fd, events, on_io, sock);
        if (r < 0) {
                free(sock);
                return -1;
        }
        (void)sd_event_source_set_description(sock->source, "http-socket");
        sock->next = h->sockets;
        if (h->sockets)
                h->sockets->prev = sock;
        h->sockets = sock;
        if (curl_multi_assign(h->multi, fd, sock) != CURLM_OK) {
                http_socket_free(sock);
                return -1;
        }
        return 0;
}

/* libcurl wants to be called back after timeout_ms (-1: never). Runs inside libcurl. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userdata)
{
        Http *h = userdata;
        uint64_t now;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_now(h->event, CLOCK_MONOTONIC, &now) < 0)
                now = now_monotonic_usec();
        if (sd_event_source_set_time(h->timer, now + (uint64_t)timeout_ms * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static curl_socket_t open_cb(void *userdata, curlsocktype purpose, struct curl_sockaddr *addr)
{
        Http *h = userdata;
        int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);

        if (fd < 0)
                return CURL_SOCKET_BAD;
        h->opened++;
        return fd;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void request_free(HttpRequest *r)
{
        Http *h = r->http;

        if (r->prev)
                r->prev->next = r->next;
        else
                h->requests = r->next;
        if (r->next)
                r->next->prev = r->prev;
        h->n_requests--;
        if (r->easy) {
                if (r->added)
                        (void)curl_multi_remove_handle(h->multi, r->easy);
                curl_easy_cleanup(r->easy);
        }
        /* Headers carry session tokens, and the answers of the metadata services carry secrets:
         * nothing of them stays behind in freed memory. */
        for (struct curl_slist *l = r->headers; l; l = l->next)
                explicit_bzero(l->data, strlen(l->data));
        curl_slist_free_all(r->headers);
        free(r->body);
        if (r->response)
                explicit_bzero(r->response, r->response_alloc);
        free(r->response);
        free(r);
}

static void request_finish(HttpRequest *r, CURLcode code)
{
        HttpResult res = {
                .body = r->response ? r->response : "",
                .body_len = r->response_len,
                .request_id = r->answer.request_id,
                .content_type = r->answer.content_type,
                .date = r->answer.date,
                .error_text = r->error_text,
        };
        curl_off_t sent = 0, total = 0;
        long os_errno = 0;

        (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
        (void)curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent);
        (void)curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
        (void)curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total);
        res.total_usec = total > 0 ? (uint64_t)total : 0;
        if (code == CURLE_WRITE_ERROR && !r->too_big)
                res.error = -ENOMEM; /* write_cb refuses only over the cap or without memory */
        else
                res.error = curl_code_to_errno(code, os_errno, &res.tls_verify_failed);
        /* Once a byte of the request is out, or an answer was being received, the server may
         * have acted on it: the caller must treat the outcome as unknown. */
        res.maybe_sent = res.error == 0 || sent > 0 || code == CURLE_RECV_ERROR ||
                         code == CURLE_GOT_NOTHING || code == CURLE_PARTIAL_FILE || r->too_big;
        if (res.error < 0)
                res.status = 0;
        else
                res.error_text = "";
        if (res.error < 0 && !r->error_text[0])
                snprintf(r->error_text, sizeof(r->error_text), "%s", curl_easy_strerror(code));
        if (r->too_big)
                snprintf(r->error_text, sizeof(r->error_text), "answer larger than %zu bytes",
                         r->http->options.max_body_bytes);

        /* Give the connection back to the cache before the callback, which may start the next
         * request on it. */
        (void)curl_multi_remove_handle(r->http->multi, r->easy);
        r->added = false;
        r->in_callback = true;
        r->cb(&res, r->userdata);
        request_free(r);
}

static int on_drain(sd_event_source *s, void *userdata)
{
        Http *h = userdata;
        CURLMsg *msg;
        int left;

        /* A callback may cancel another finished request: libcurl drops the queued message of a
         * handle removed from the multi handle, so every message read here is still valid. */
        while ((msg = curl_multi_info_read(h->multi, &left))) {
                HttpRequest *r = NULL;
                CURLcode code = msg->data.result;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r) == CURLE_OK && r)
                        request_finish(r, code);
        }
        return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userdata)
{
        HttpRequest *r = userdata;
        size_t len = size * n;

        if (len > r->http->options.max_body_bytes - r->response_len) {
                r->too_big = true;
                return 0;
        }
        if (r->response_len + len + 1 > r->response_alloc) {
                size_t want = MAX(MAX(r->response_alloc * 2, (size_t)4096), r->response_len + len + 1);
                char *q;

                want = MIN(want, r->http->options.max_body_bytes + 1);
                q = realloc(r->response, want);
                if (!q)
                        return 0;
                r->response = q;
                r->response_alloc = want;
        }
        memcpy(r->response + r->response_len, p, len);
        r->response_len += len;
        r->response[r->response_len] = 0;
        return len;
}

/* Copies the value of a "Name: value" line into buf if the name is name. */
static bool header_take(const char *line, size_t len, const char *name, char *buf, size_t size)
{
        size_t n = strlen(name), start, end;

        if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
                return false;
        start = n + 1;
        end = len;
        while (start < end && (line[start] == ' ' || line[start] == '\t'))
                start++;
        while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' ' ||
                               line[end - 1] == '\t'))
                end--;
        snprintf(buf, size, "%.*s", (int)MIN(end - start, size - 1), line + start);
        return true;
}

void http_answer_header(HttpAnswerHeaders *h, const char *line, size_t len)
{
        /* A new status line (after a 100 Continue, or a resend) starts a new set of headers. */
        if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
                h->request_id[0] = h->content_type[0] = h->date[0] = 0;
                return;
        }
        if (!header_take(line, len, "x-amzn-requestid", h->request_id, sizeof(h->request_id)) &&
            !(h->request_id[0] == 0 &&
              header_take(line, len, "x-amz-request-id", h->request_id, sizeof(h->request_id))) &&
            !header_take(line, len, "content-type", h->content_type, sizeof(h->content_type)))
                (void)header_take(line, len, "date", h->date, sizeof(h->date));
}

static size_t header_cb(char *p, size_t size, size_t n, void *userdata)
{
        HttpRequest *r = userdata;

        http_answer_header(&r->answer, p, size * n);
        return size * n;
}

static bool token_valid(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
                        return false;
        return true;
}

static bool header_value_valid(const char *s)
{
        return s && !strpbrk(s, "\r\n");
}

static bool spec_has_header(const HttpRequestSpec *spec, const char *name)
{
        for (size_t i = 0; i < spec->n_headers; i++)
                if (strcasecmp(spec->headers[i].name, name) == 0)
                        return true;
        return false;
}

static int slist_add(struct curl_slist **l, const char *s)
{
        struct curl_slist *n = curl_slist_append(*l, s);

        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int request_headers(HttpRequest *r, const HttpRequestSpec *spec, bool with_body)
{
        int k;

        for (size_t i = 0; i < spec->n_headers; i++) {
                const HttpHeader *hd = &spec->headers[i];
                _cleanup_free_ char *line = NULL;

                if (!token_valid(hd->name) || !header_value_valid(hd->value))
                        return -EINVAL;
                /* "Name:" would tell libcurl to drop the header; "Name;" sends it empty. */
                if (asprintf(&line, *hd->value ? "%s: %s" : "%s;", hd->name, hd->value) < 0) {
                        line = NULL;
                        return -ENOMEM;
                }
                k = slist_add(&r->headers, line);
                explicit_bzero(line, strlen(line));
                if (k < 0)
                        return k;
        }
        /* No "Expect: 100-continue" round trip before a body, and no made-up content type. */
        if (!spec_has_header(spec, "Expect")) {
                k = slist_add(&r->headers, "Expect:");
                if (k < 0)
                        return k;
        }
        if (with_body && !spec_has_header(spec, "Content-Type")) {
                k = slist_add(&r->headers, "Content-Type:");
                if (k < 0)
                        return k;
        }
        return 0;
}

static long usec_to_msec_ceil(uint64_t usec)
{
        uint64_t ms = (usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC;

        return ms > (uint64_t)LONG_MAX ? LONG_MAX : (long)ms;
}

#define SETOPT(e, opt, val)                                          \
        do {                                                         \
                if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) \
                        return -EINVAL;                              \
        } while (0)

static int request_setup(HttpRequest *r, const HttpRequestSpec *spec, const char *method, bool with_body)
{
        Http *h = r->http;
        CURL *e = r->easy;
        uint64_t connect = spec->connect_timeout_usec ?: h->options.connect_timeout_usec;
        uint64_t total = spec->total_timeout_usec ?: h->options.total_timeout_usec;
        uint64_t low_speed_sec = (h->options.low_speed_time_usec + USEC_PER_SEC - 1) / USEC_PER_SEC;

        SETOPT(e, CURLOPT_URL, spec->url);
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
        SETOPT(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
        SETOPT(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        SETOPT(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
        SETOPT(e, CURLOPT_HTTPHEADER, r->headers);
        SETOPT(e, CURLOPT_PRIVATE, r);
        SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(e, CURLOPT_WRITEDATA, r);
        SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(e, CURLOPT_HEADERDATA, r);
        SETOPT(e, CURLOPT_ERRORBUFFER, r->error_text);
        SETOPT(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
        SETOPT(e, CURLOPT_OPENSOCKETDATA, h);
        SETOPT(e, CURLOPT_NOSIGNAL, 1L);
        /* Never through a proxy named by the environment: the endpoint is what was configured,
         * and the request carries credentials. */
        SETOPT(e, CURLOPT_PROXY, "");
        SETOPT(e, CURLOPT_NOPROXY, "*");
        SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(e, CURLOPT_TCP_KEEPIDLE, (long)TCP_KEEPIDLE_SEC);
        SETOPT(e, CURLOPT_TCP_KEEPINTVL, (long)TCP_KEEPINTVL_SEC);
        SETOPT(e, CURLOPT_MAXAGE_CONN, (long)MAX_IDLE_CONN_SEC);
        SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (h->ca_file)
                SETOPT(e, CURLOPT_CAINFO, h->ca_file);
        SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, usec_to_msec_ceil(connect));
        SETOPT(e, CURLOPT_TIMEOUT_MS, usec_to_msec_ceil(total));
        SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, (long)h->options.low_speed_limit);
        SETOPT(e, CURLOPT_LOW_SPEED_TIME, (long)MIN(low_speed_sec, (uint64_t)LONG_MAX));
        /* Refuses a declared Content-Length over the cap before reading it; write_cb catches the
         * rest. */
        SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->options.max_body_bytes);

        if (streq(method, "HEAD") && !with_body)
                SETOPT(e, CURLOPT_NOBODY, 1L);
        else if (streq(method, "GET") && !with_body)
                SETOPT(e, CURLOPT_HTTPGET, 1L);
        else {
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
                SETOPT(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
                if (!streq(method, "POST"))
                        SETOPT(e, CURLOPT_CUSTOMREQUEST, method);
        }
        return 0;
}

int http_request(Http *h, const HttpRequestSpec *spec, HttpDoneFunc cb, void *userdata, HttpRequest **ret)
{
        const char *method;
        HttpRequest *r;
        bool with_body;
        int k;

        if (!h || !spec || !spec->url || !cb || (spec->body_len > 0 && !spec->body) ||
            (spec->n_headers > 0 && !spec->headers))
                return -EINVAL;
        if (h->freeing)
                return -ESHUTDOWN;
        method = spec->method ? spec->method : spec->body_len > 0 ? "POST" : "GET";
        if (!token_valid(method))
                return -EINVAL;
        with_body = !(streq(method, "GET") || streq(method, "HEAD")) || spec->body_len > 0;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->http = h;
        r->cb = cb;
        r->userdata = userdata;
        r->next = h->requests;
        if (h->requests)
                h->requests->prev = r;
        h->requests = r;
        h->n_requests++;

        k = -ENOMEM;
        r->easy = curl_easy_init();
        if (!r->easy)
                goto fail;
        if (spec->body_len > 0) {
                r->body = malloc(spec->body_len);
                if (!r->body)
                        goto fail;
                memcpy(r->body, spec->body, spec->body_len);
        }
        k = request_headers(r, spec, with_body);
        if (k < 0)
                goto fail;
        k = request_setup(r, spec, method, with_body);
        if (k < 0)
                goto fail;
        /* Starts nothing yet: libcurl asks for a timer, and the transfer begins from the loop. */
        if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
                k = -EIO;
                goto fail;
        }
        r->added = true;
        if (ret)
                *ret = r;
        return 0;
fail:
        request_free(r);
        return k;
}

void http_request_cancel(HttpRequest *r)
{
        if (!r || r->in_callback)
                return;
        request_free(r);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int http_new(sd_event *event, const HttpOptions *options, Http **ret)
{
        _cleanup_(http_freep) Http *h = NULL;
        static bool initialised;
        int r;

        if (!event || !ret)
                return -EINVAL;
        if (!initialised) {
                const curl_version_info_data *v;

                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                initialised = true;
                /* Without an asynchronous resolver, curl looks names up inside the call that drives
                 * the transfers: every client of the daemon would wait for DNS. */
                v = curl_version_info(CURLVERSION_NOW);
                if (!(v->features & CURL_VERSION_ASYNCHDNS))
                        log_warning("libcurl %s resolves host names synchronously: each DNS lookup of the "
                                    "DynamoDB endpoint stops the daemon until it ends. Use a libcurl built "
                                    "with the threaded resolver or c-ares (Debian's is).",
                                    v->version);
        }
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->options = options ? *options : (HttpOptions){ 0 };
        if (!h->options.connect_timeout_usec)
                h->options.connect_timeout_usec = HTTP_DEFAULT_CONNECT_TIMEOUT_USEC;
        if (!h->options.total_timeout_usec)
                h->options.total_timeout_usec = HTTP_DEFAULT_TOTAL_TIMEOUT_USEC;
        if (!h->options.low_speed_limit)
                h->options.low_speed_limit = HTTP_DEFAULT_LOW_SPEED_LIMIT;
        if (!h->options.low_speed_time_usec)
                h->options.low_speed_time_usec = HTTP_DEFAULT_LOW_SPEED_TIME_USEC;
        if (!h->options.max_body_bytes)
                h->options.max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
        if (h->options.ca_file) {
                h->ca_file = strdup(h->options.ca_file);
                if (!h->ca_file)
                        // cppcheck-suppress memleak ; h is freed by its cleanup handler
                        return -ENOMEM;
        }
        h->options.ca_file = h->ca_file;

        r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, 0, 1, on_timer, h);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(h->timer, "http-timer");
        r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        r = sd_event_add_defer(event, &h->defer, on_drain, h);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(h->defer, "http-drain");
        r = sd_event_source_set_enabled(h->defer, SD_EVENT_OFF);
        if (r < 0)
                return r;

        h->multi = curl_multi_init();
        if (!h->multi)
                return -ENOMEM;
        if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
                return -EIO;
        *ret = TAKE_PTR(h);
        return 0;
}

Http *http_free(Http *h)
{
        if (!h)
                return NULL;
        h->freeing = true;
        /* Each owner hears once more, so that it can release what it keeps for the request. A
         * callback may cancel other requests: take them one at a time from the head. */
        while (h->requests) {
                HttpRequest *r = h->requests;
                HttpResult res = {
                        .error = -ECANCELED,
                        .body = "",
                        .request_id = "",
                        .content_type = "",
                        .date = "",
                        .error_text = "cancelled",
                };

                if (r->added) {
                        (void)curl_multi_remove_handle(h->multi, r->easy);
                        r->added = false;
                }
                r->in_callback = true;
                r->cb(&res, r->userdata);
                request_free(r);
        }
        /* Closes the cached connections, which takes their sockets out of socket_cb's list. */
        if (h->multi)
                (void)curl_multi_cleanup(h->multi);
        while (h->sockets)
                http_socket_free(h->sockets);
        sd_event_source_disable_unref(h->timer);
        sd_event_source_disable_unref(h->defer);
        sd_event_unref(h->event);
        free(h->ca_file);
        free(h);
        return NULL;
}

unsigned http_connections_opened(const Http *h)
{
        return h ? h->opened : 0;
}

unsigned http_requests_pending(const Http *h)
{
        return h ? h->n_requests : 0;
}
