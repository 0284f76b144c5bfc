/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "creds.h"
#include "http.h"
#include "model.h"
#include "remote.h"
#include "sigv4.h"

struct Remote {
        Http *http;
        char *endpoint; /* scheme://host[:port][/path] */
        char *url;      /* the endpoint with a path */
        char *host;     /* host[:port], signed as the Host header */
        char *path;
        char *region;
};

typedef struct Call {
        Remote *remote;
        RemoteFunc cb;
        void *owner, *userdata;
} Call;

/* Splits the endpoint into what is signed: host (with port) and path. */
static int endpoint_parse(Remote *r)
{
        const char *p = strstr(r->endpoint, "://"), *slash;

        if (!p)
                return -EINVAL;
        p += 3;
        slash = strchr(p, '/');
        r->host = slash ? strndup(p, (size_t)(slash - p)) : strdup(p);
        r->path = strdup(slash ? slash : "/");
        if (!r->host || !r->path)
                return -ENOMEM;
        if (!*r->host)
                return -EINVAL;
        if (asprintf(&r->url, "%.*s%s", (int)(p - r->endpoint) + (int)strlen(r->host), r->endpoint,
                     r->path) < 0) {
                r->url = NULL;
                return -ENOMEM;
        }
        return 0;
}

int remote_new(sd_event *event, const RemoteConfig *conf, Remote **ret)
{
        _cleanup_(remote_freep) Remote *r = calloc(1, sizeof(*r));
        HttpOptions o = {
                .ca_file = conf->ca_file,
                .connect_timeout_usec = conf->connect_timeout_usec,
                .total_timeout_usec = conf->request_timeout_usec,
        };
        int k;

        if (!r)
                return -ENOMEM;
        r->region = creds_region(conf->region);
        r->endpoint = r->region ? creds_endpoint(conf->endpoint, r->region) : NULL;
        if (!r->endpoint)
                // cppcheck-suppress memleak ; r is freed by its cleanup handler
                return -ENOMEM;
        k = endpoint_parse(r);
        if (k < 0)
                return k;
        k = http_new(event, &o, &r->http);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

Remote *remote_free(Remote *r)
{
        if (!r)
                return NULL;
        /* Cancels the calls in flight: their callbacks run with -ECANCELED. */
        r->http = http_free(r->http);
        free(r->endpoint);
        free(r->url);
        free(r->host);
        free(r->path);
        free(r->region);
        free(r);
        return NULL;
}

const char *remote_endpoint(Remote *r)
{
        return r->endpoint;
}

const char *remote_region(Remote *r)
{
        return r->region;
}

static void on_http_done(void *userdata, const HttpResult *res)
{
        Call *c = userdata;
        _cleanup_(cJSON_Deletep) cJSON *body = NULL;
        RemoteReply rep = { .error = res->error, .maybe_sent = res->maybe_sent, .status = res->status };
        char message[512];
        DdbError e;

        if (res->error < 0) {
                snprintf(message, sizeof(message), "%s",
                         res->error_text[0] ? res->error_text : strerror(-res->error));
                rep.cls = DDB_RETRYABLE;
        } else {
                ddb_error_parse(res->status, res->body, res->body_len, &e);
                rep.cls = e.cls;
                if (rep.cls == DDB_OK) {
                        body = cJSON_ParseWithLength(res->body, res->body_len);
                        rep.body = body;
                        if (!body) {
                                /* A 2xx answer we cannot read: as good as none. */
                                rep.cls = DDB_RETRYABLE;
                                snprintf(e.message, sizeof(e.message), "unreadable answer");
                        }
                }
                snprintf(message, sizeof(message), "HTTP %ld%s%s%s%s", res->status, *e.type ? " " : "",
                         e.type, *e.message ? ": " : "", e.message);
        }
        rep.message = message;
        rep.type = res->error < 0 ? "" : e.type;
        c->cb(c->owner, c->userdata, &rep);
        free(c);
}

int remote_call(Remote *r, const char *target, const cJSON *body, RemoteFunc cb, void *owner, void *userdata)
{
        _cleanup_(aws_credentials_done) AwsCredentials cred = { 0 };
        _cleanup_free_ char *text = NULL, *h_date = NULL, *h_token = NULL, *h_auth = NULL, *h_host = NULL,
                            *h_target = NULL, *amz_target = NULL;
        Sigv4Result sig = { 0 };
        Call *c;
        int k;

        k = creds_load(&cred);
        if (k < 0)
                return k;
        text = model_json_print(body, false);
        if (!text || asprintf(&amz_target, "DynamoDB_20120810.%s", target) < 0)
                return -ENOMEM;

        Sigv4Header signed_headers[] = {
                { "host", r->host },
                { "content-type", "application/x-amz-json-1.0" },
                { "x-amz-target", amz_target },
        };
        Sigv4Request req = {
                .method = "POST",
                .path = r->path,
                .headers = signed_headers,
                .n_headers = ELEMENTSOF(signed_headers),
                .body = text,
                .body_len = strlen(text),
        };
        Sigv4Credentials sc = { cred.access_key_id, cred.secret_access_key, cred.session_token };

        k = sigv4_sign(&req, &sc, r->region, "dynamodb", time(NULL), &sig);
        if (k < 0)
                return k;
        if (asprintf(&h_host, "Host: %s", r->host) < 0 ||
            asprintf(&h_target, "X-Amz-Target: %s", amz_target) < 0 ||
            asprintf(&h_date, "X-Amz-Date: %s", sig.amz_date) < 0 ||
            asprintf(&h_auth, "Authorization: %s", sig.authorization) < 0 ||
            (cred.session_token && asprintf(&h_token, "X-Amz-Security-Token: %s", cred.session_token) < 0)) {
                sigv4_result_done(&sig);
                return -ENOMEM;
        }
        sigv4_result_done(&sig);

        const char *headers[] = {
                h_host, "Content-Type: application/x-amz-json-1.0", h_target, h_date, h_auth, h_token, NULL
        };
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (Call){ .remote = r, .cb = cb, .owner = owner, .userdata = userdata };
        k = http_request(r->http, "POST", r->url, headers, text, strlen(text), on_http_done, c);
        if (k < 0)
                free(c);
        return k;
}
