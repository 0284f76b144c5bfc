/* SPDX-License-Identifier: MIT */
#include <strings.h>
#include <curl/curl.h>

#include "http.h"
#include "log.h"

#define DEFAULT_CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define DEFAULT_TOTAL_TIMEOUT_USEC   (30 * USEC_PER_SEC)
#define DEFAULT_MAX_BODY             (16u * 1024 * 1024)
#define REQUEST_ID_MAX               128

typedef struct Transfer Transfer;

struct Transfer {
        Transfer *prev, *next;
        Http *http;
        CURL *easy;
        struct curl_slist *headers;
        char *body;
        char *response;
        size_t response_len, response_alloc;
        bool too_big;
        char request_id[REQUEST_ID_MAX];
        char error_text[CURL_ERROR_SIZE];
        HttpDoneFunc cb;
        void *userdata;
};

struct Http {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        sd_event_source *defer; /* drains finished transfers outside of libcurl's callbacks */
        HttpOptions options;
        char *ca_file;
        Transfer *transfers;
        unsigned opened;
};

static int curl_errno(CURLcode c, bool *tls)
{
        *tls = false;
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
                *tls = true;
                return -EPROTO;
        case CURLE_WRITE_ERROR:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* ---- the loop glue ------------------------------------------------------------------------- */

static void http_schedule_drain(Http *h)
{
        sd_event_source_set_enabled(h->defer, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Http *h = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        curl_multi_socket_action(h->multi, fd, action, &running);
        http_schedule_drain(h);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Http *h = userdata;
        int running;

        curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_schedule_drain(h);
        return 0;
}

/* libcurl says which sockets to watch for what. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp)
{
        Http *h = userdata;
        sd_event_source *io = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (io) {
                        sd_event_source_disable_unref(io);
                        curl_multi_assign(h->multi, fd, NULL);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;
        if (io) {
                r = sd_event_source_set_io_events(io, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(io, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }
        r = sd_event_add_io(h->event, &io, fd, events, on_io, h);
        if (r < 0)
                return -1;
        curl_multi_assign(h->multi, fd, io);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userdata)
{
        Http *h = userdata;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        if (sd_event_source_set_time(h->timer, now_monotonic_usec() + (uint64_t)timeout_ms * USEC_PER_MSEC) <
                    0 ||
            sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static int open_cb(void *userdata, curlsocktype purpose, struct curl_sockaddr *addr)
{
        Http *h = userdata;
        int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);

        if (fd >= 0)
                h->opened++;
        return fd >= 0 ? fd : CURL_SOCKET_BAD;
}

/* ---- transfers ----------------------------------------------------------------------------- */

static void transfer_free(Transfer *t)
{
        Http *h = t->http;

        if (t->prev)
                t->prev->next = t->next;
        else
                h->transfers = t->next;
        if (t->next)
                t->next->prev = t->prev;
        if (t->easy) {
                curl_multi_remove_handle(h->multi, t->easy);
                curl_easy_cleanup(t->easy);
        }
        curl_slist_free_all(t->headers);
        free(t->body);
        free(t->response);
        free(t);
}

static void transfer_finish(Transfer *t, CURLcode code)
{
        HttpResult res = { .request_id = t->request_id, .error_text = t->error_text };
        curl_off_t sent = 0;
        long status = 0;

        if (code == CURLE_OK)
                curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
        res.error = code == CURLE_WRITE_ERROR && !t->too_big ? -EIO : curl_errno(code, &res.tls_failure);
        /* A failure after bytes of the request left leaves the outcome open. */
        res.maybe_sent = res.error < 0 && sent > 0;
        res.status = status;
        res.body = t->response ? t->response : "";
        res.body_len = t->response_len;
        if (res.error < 0 && !t->error_text[0])
                snprintf(t->error_text, sizeof(t->error_text), "%s", curl_easy_strerror(code));
        t->cb(t->userdata, &res);
        transfer_free(t);
}

static int on_drain(sd_event_source *s, void *userdata)
{
        Http *h = userdata;
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(h->multi, &left))) {
                Transfer *t = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
                if (t)
                        transfer_finish(t, msg->data.result);
        }
        return 0;
}

static size_t write_cb(char *p, size_t size, size_t n, void *userdata)
{
        Transfer *t = userdata;
        size_t len = size * n;

        if (t->response_len + len > t->http->options.max_body) {
                t->too_big = true;
                return 0;
        }
        if (t->response_len + len + 1 > t->response_alloc) {
                size_t want = MAX(t->response_alloc * 2, t->response_len + len + 1);
                char *q = realloc(t->response, want);

                if (!q)
                        return 0;
                t->response = q;
                t->response_alloc = want;
        }
        memcpy(t->response + t->response_len, p, len);
        t->response_len += len;
        t->response[t->response_len] = 0;
        return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *userdata)
{
        static const char name[] = "x-amzn-requestid:";
        Transfer *t = userdata;
        size_t len = size * n;

        if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
                size_t start = sizeof(name) - 1, end = len;

                while (start < end && (p[start] == ' ' || p[start] == '\t'))
                        start++;
                while (end > start && (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' '))
                        end--;
                snprintf(t->request_id, sizeof(t->request_id), "%.*s", (int)(end - start), p + start);
        }
        return len;
}

int http_request(Http *h, const char *method, const char *url, const char *const *headers, const void *body,
                 size_t body_len, HttpDoneFunc cb, void *userdata)
{
        Transfer *t = calloc(1, sizeof(*t));
        CURL *e;
        int r = -ENOMEM;

        if (!t)
                return -ENOMEM;
        t->http = h;
        t->cb = cb;
        t->userdata = userdata;
        t->next = h->transfers;
        if (h->transfers)
                h->transfers->prev = t;
        h->transfers = t;

        e = t->easy = curl_easy_init();
        if (!e)
                goto fail;
        for (const char *const *hd = headers; hd && *hd; hd++) {
                struct curl_slist *l = curl_slist_append(t->headers, *hd);

                if (!l)
                        goto fail;
                t->headers = l;
        }
        /* No "Expect: 100-continue" round trip before a body. */
        {
                struct curl_slist *l = curl_slist_append(t->headers, "Expect:");

                if (!l)
                        goto fail;
                t->headers = l;
        }
        if (body_len > 0) {
                t->body = malloc(body_len);
                if (!t->body)
                        goto fail;
                memcpy(t->body, body, body_len);
        }
        r = -EINVAL;
        if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_HEADERDATA, t) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error_text) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
            /* Never through a proxy from the environment: the endpoint is what was configured. */
            curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_NOPROXY, "*") != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
            (h->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK) ||
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                             (long)(h->options.connect_timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(h->options.total_timeout_usec / USEC_PER_MSEC)) !=
                    CURLE_OK ||
            /* A connection that trickles: under 1 byte/s for 10 s is given up. */
            curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 10L) != CURLE_OK)
                goto fail;
        if (body_len > 0 || strcmp(method, "GET") != 0) {
                if (curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body ? t->body : "") != CURLE_OK ||
                    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK)
                        goto fail;
        }
        if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
                r = -EIO;
                goto fail;
        }
        return 0;
fail:
        transfer_free(t);
        return r;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int http_new(sd_event *event, const HttpOptions *options, Http **ret)
{
        _cleanup_(http_freep) Http *h = NULL;
        static bool initialised;
        int r;

        if (!initialised) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                initialised = true;
        }
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->options = options ? *options : (HttpOptions){ 0 };
        if (!h->options.connect_timeout_usec)
                h->options.connect_timeout_usec = DEFAULT_CONNECT_TIMEOUT_USEC;
        if (!h->options.total_timeout_usec)
                h->options.total_timeout_usec = DEFAULT_TOTAL_TIMEOUT_USEC;
        if (!h->options.max_body)
                h->options.max_body = DEFAULT_MAX_BODY;
        h->multi = curl_multi_init();
        if (!h->multi || (h->options.ca_file && !(h->ca_file = strdup(h->options.ca_file))))
                // cppcheck-suppress memleak ; h is freed by its cleanup handler
                return -ENOMEM;
        h->options.ca_file = h->ca_file;
        if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
            curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
                return -EIO;
        r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, 0, 0, on_timer, h);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(event, &h->defer, on_drain, h);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(h->defer, SD_EVENT_OFF);
        *ret = TAKE_PTR(h);
        return 0;
}

Http *http_free(Http *h)
{
        if (!h)
                return NULL;
        while (h->transfers) {
                Transfer *t = h->transfers;
                HttpResult res = {
                        .error = -ECANCELED, .body = "", .request_id = "", .error_text = "cancelled"
                };

                t->cb(t->userdata, &res);
                transfer_free(t);
        }
        if (h->multi)
                curl_multi_cleanup(h->multi); /* removes the remaining sockets through socket_cb */
        sd_event_source_disable_unref(h->timer);
        sd_event_source_disable_unref(h->defer);
        sd_event_unref(h->event);
        free(h->ca_file);
        free(h);
        return NULL;
}

unsigned http_connections_opened(Http *h)
{
        return h->opened;
}
