/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "creds.h"
#include "http.h"
#include "model.h"
#include "remote.h"
#include "sigv4.h"

typedef struct Call Call;

struct Remote {
        sd_event *event;
        Call *waiting; /* calls whose delay (remote_call_after()) is not over */
        Http *http;
        Creds *creds;
        char *url;  /* the endpoint with a path */
        char *host; /* host[:port], signed as the Host header */
        char *path;
        char *region;
        RemoteStats stats;
};

/* One call: waits for its delay, for credentials, then for the answer. */
struct Call {
        Remote *remote;
        Call *next; /* in remote->waiting */
        sd_event_source *delay;
        RemoteFunc cb;
        void *owner, *userdata;
        char *target; /* DynamoDB_20120810.<target> */
        char *body;
        RemoteOp op;
        uint64_t sent; /* monotonic: when the request went to http.c */
};

static const char *const op_names[_REMOTE_OP_MAX] = {
        [REMOTE_OP_GET_ITEM] = "GetItem",
        [REMOTE_OP_PUT_ITEM] = "PutItem",
        [REMOTE_OP_DELETE_ITEM] = "DeleteItem",
        [REMOTE_OP_QUERY] = "Query",
        [REMOTE_OP_OTHER] = "other",
};

const char *remote_op_name(RemoteOp op)
{
        return op_names[op];
}

const char *remote_outcome_name(unsigned outcome)
{
        static const char *const names[REMOTE_OUTCOMES] = {
                [DDB_OK] = "ok",
                [DDB_RETRYABLE] = "retryable_error",
                [DDB_THROTTLING] = "throttled",
                [DDB_CONDITIONAL_FAILED] = "conditional_check_failed",
                [DDB_VALIDATION] = "validation_error",
                [DDB_AUTH] = "auth_error",
                [REMOTE_NO_ANSWER] = "no_answer",
        };

        return outcome < REMOTE_OUTCOMES ? names[outcome] : "other";
}

const RemoteStats *remote_stats(Remote *r)
{
        return &r->stats;
}

static RemoteOp op_from_target(const char *target)
{
        for (RemoteOp op = 0; op < REMOTE_OP_OTHER; op++)
                if (streq(target, op_names[op]))
                        return op;
        return REMOTE_OP_OTHER;
}

/* The capacity units an answer reports: one ConsumedCapacity object, or a list of them (the batch
 * operations). */
static void stats_note_capacity(RemoteStats *st, RemoteOp op, const cJSON *body)
{
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(body, "ConsumedCapacity"), *e;
        bool any = false;

        if (cJSON_IsObject(cc)) {
                const cJSON *u = cJSON_GetObjectItemCaseSensitive(cc, "CapacityUnits");

                if (cJSON_IsNumber(u) && u->valuedouble >= 0) {
                        st->capacity_units[op] += u->valuedouble;
                        any = true;
                }
        } else if (cJSON_IsArray(cc))
                cJSON_ArrayForEach(e, cc)
                {
                        const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "CapacityUnits");

                        if (cJSON_IsNumber(u) && u->valuedouble >= 0) {
                                st->capacity_units[op] += u->valuedouble;
                                any = true;
                        }
                }
        st->capacity_reports[op] += any;
}

static void call_free(Call *c)
{
        sd_event_source_disable_unref(c->delay);
        free(c->target);
        free(c->body);
        free(c);
}

int remote_endpoint_parse(const char *endpoint, char **ret_url, char **ret_host, char **ret_path)
{
        _cleanup_free_ char *url = NULL, *host = NULL, *path = NULL;
        const char *p = strstr(endpoint, "://"), *slash;

        if (!p)
                return -EINVAL;
        /* What notebookd.conf refuses, for an endpoint from AWS_ENDPOINT_URL too: the path is
         * signed as written, and the host goes into a header. */
        for (const char *s = endpoint; *s; s++)
                if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '?' || *s == '#')
                        return -EINVAL;
        p += 3;
        slash = strchr(p, '/');
        host = slash ? strndup(p, (size_t)(slash - p)) : strdup(p);
        path = strdup(slash ? slash : "/");
        if (!host || !path)
                return -ENOMEM;
        /* User info would be signed as part of Host, which libcurl sends without it (and would send
         * it as Basic authentication besides ours): no signature could be right. */
        if (!*host || strchr(host, '@'))
                return -EINVAL;
        if (asprintf(&url, "%.*s%s", (int)(p - endpoint) + (int)strlen(host), endpoint, path) < 0) {
                url = NULL;
                return -ENOMEM;
        }
        *ret_url = TAKE_PTR(url);
        *ret_host = TAKE_PTR(host);
        *ret_path = TAKE_PTR(path);
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
        const char *region, *endpoint;
        int k;

        if (!r)
                return -ENOMEM;
        for (size_t i = 0; i < _REMOTE_OP_MAX; i++)
                r->stats.seconds[i] = METRICS_HISTOGRAM_SECONDS;
        r->event = sd_event_ref(event);
        k = creds_new(event, &(CredsOptions){ .region = conf->region, .endpoint = conf->endpoint },
                      &r->creds);
        if (k < 0)
                return k;
        region = creds_region(r->creds);
        endpoint = creds_endpoint(r->creds);
        if (!endpoint)
                return -EINVAL; /* neither an endpoint nor a region to build one from */
        /* An endpoint without a region anywhere (a local server) is signed for us-east-1. */
        r->region = strdup(region ? region : "us-east-1");
        if (!r->region)
                return -ENOMEM;
        k = remote_endpoint_parse(endpoint, &r->url, &r->host, &r->path);
        if (k < 0)
                return k;
        k = http_new(event, &o, &r->http);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

const char *remote_endpoint(Remote *r)
{
        return r->url;
}

const char *remote_region(Remote *r)
{
        return r->region;
}

static void call_fail(Call *c, int error, DdbErrorClass cls, const char *message);

Remote *remote_free(Remote *r)
{
        if (!r)
                return NULL;
        /* Cancels the calls in flight, those waiting for credentials and those waiting for their
         * delay: their callbacks run with -ECANCELED. */
        while (r->waiting) {
                Call *c = r->waiting;

                r->waiting = c->next;
                call_fail(c, -ECANCELED, DDB_RETRYABLE, "cancelled");
        }
        r->http = http_free(r->http);
        r->creds = creds_free(r->creds);
        free(r->url);
        free(r->host);
        free(r->path);
        free(r->region);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

static void call_fail(Call *c, int error, DdbErrorClass cls, const char *message)
{
        RemoteReply rep = { .error = error, .cls = cls, .message = message, .type = "" };

        c->cb(c->owner, c->userdata, &rep);
        call_free(c);
}

static void on_http_done(const HttpResult *res, void *userdata)
{
        Call *c = userdata;
        _cleanup_(cJSON_Deletep) cJSON *body = NULL;
        RemoteReply rep = { .error = res->error, .maybe_sent = res->maybe_sent, .status = res->status };
        char message[512];
        DdbError e = { 0 };

        metrics_histogram_observe(&c->remote->stats.seconds[c->op],
                                  (double)(now_monotonic_usec() - c->sent) / (double)USEC_PER_SEC);
        if (res->error < 0) {
                snprintf(message, sizeof(message), "%s",
                         res->error_text && res->error_text[0] ? res->error_text : strerror(-res->error));
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
                        } else
                                stats_note_capacity(&c->remote->stats, c->op, body);
                }
                /* Refused credentials (expired token, rotated key): look them up again next time. */
                if (rep.cls == DDB_AUTH)
                        creds_invalidate(c->remote->creds);
                snprintf(message, sizeof(message), "HTTP %ld%s%s%s%s", res->status, *e.type ? " " : "",
                         e.type, *e.message ? ": " : "", e.message);
        }
        rep.message = message;
        rep.type = res->error < 0 ? "" : e.type;
        if (res->error < 0)
                c->remote->stats.outcomes[c->op][REMOTE_NO_ANSWER]++;
        else if ((unsigned)rep.cls < REMOTE_OUTCOMES)
                c->remote->stats.outcomes[c->op][rep.cls]++;
        c->cb(c->owner, c->userdata, &rep);
        call_free(c);
}

static void on_creds(int error, const AwsCredentials *cred, const char *message, void *userdata)
{
        Call *c = userdata;
        Remote *r = c->remote;
        Sigv4Result sig = { 0 };
        char date[32], *auth = NULL;
        int k;

        if (error == -ECANCELED) {
                call_fail(c, -ECANCELED, DDB_RETRYABLE, "cancelled");
                return;
        }
        if (error < 0) {
                /* No credentials yet: like refused ones, worth trying again at the outage pace. */
                call_fail(c, 0, DDB_AUTH, message && *message ? message : "no AWS credentials found");
                return;
        }

        Sigv4Header signed_headers[] = {
                { "host", r->host },
                { "content-type", "application/x-amz-json-1.0" },
                { "x-amz-target", c->target },
        };
        Sigv4Request req = {
                .method = "POST",
                .path = r->path,
                .headers = signed_headers,
                .n_headers = ELEMENTSOF(signed_headers),
                .body = c->body,
                .body_len = strlen(c->body),
        };
        Sigv4Credentials sc = { cred->access_key_id, cred->secret_access_key, cred->session_token };

        k = sigv4_sign(&req, &sc, r->region, "dynamodb", time(NULL), &sig);
        if (k < 0) {
                call_fail(c, k, DDB_RETRYABLE, "cannot sign the request");
                return;
        }
        snprintf(date, sizeof(date), "%s", sig.amz_date);
        auth = TAKE_PTR(sig.authorization);
        sigv4_result_done(&sig);

        HttpHeader headers[] = {
                { "Host", r->host },           { "Content-Type", "application/x-amz-json-1.0" },
                { "X-Amz-Target", c->target }, { "X-Amz-Date", date },
                { "Authorization", auth },     { "X-Amz-Security-Token", cred->session_token },
        };
        HttpRequestSpec spec = {
                .method = "POST",
                .url = r->url,
                .headers = headers,
                .n_headers = ELEMENTSOF(headers) - (cred->session_token ? 0 : 1),
                .body = c->body,
                .body_len = strlen(c->body),
        };
        c->sent = now_monotonic_usec();
        k = http_request(r->http, &spec, on_http_done, c, NULL);
        free(auth);
        if (k < 0)
                call_fail(c, k, DDB_RETRYABLE, "cannot send the request");
}

static int on_delay(sd_event_source *source, uint64_t usec, void *userdata)
{
        Call *c = userdata;
        Remote *r = c->remote;
        int k;

        (void)source;
        (void)usec;
        for (Call **p = &r->waiting; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        c->delay = sd_event_source_disable_unref(c->delay);
        k = creds_get(r->creds, on_creds, c, NULL);
        if (k < 0)
                call_fail(c, k, DDB_RETRYABLE, "cannot send the request");
        return 0;
}

int remote_call_after(Remote *r, uint64_t delay_usec, const char *target, const cJSON *body, RemoteFunc cb,
                      void *owner, void *userdata)
{
        Call *c = calloc(1, sizeof(*c));
        int k;

        if (!c)
                return -ENOMEM;
        *c = (Call){
                .remote = r, .cb = cb, .owner = owner, .userdata = userdata, .op = op_from_target(target)
        };
        c->body = model_json_print(body, false);
        if (!c->body || asprintf(&c->target, "DynamoDB_20120810.%s", target) < 0) {
                c->target = NULL;
                call_free(c);
                return -ENOMEM;
        }
        /* The data operations say what they consumed when asked, at no cost: for the metrics. The
         * body is a JSON object as printed, so the member goes in right after its '{'. */
        if (c->op != REMOTE_OP_OTHER && c->body[0] == '{' &&
            !cJSON_GetObjectItemCaseSensitive(body, "ReturnConsumedCapacity")) {
                char *with = NULL;

                if (asprintf(&with, "{\"ReturnConsumedCapacity\":\"TOTAL\"%s%s",
                             c->body[1] == '}' ? "" : ",", c->body + 1) < 0) {
                        call_free(c);
                        return -ENOMEM;
                }
                free(c->body);
                c->body = with;
        }
        if (delay_usec > 0) {
                k = sd_event_add_time_relative(r->event, &c->delay, CLOCK_MONOTONIC, delay_usec, 0, on_delay,
                                               c);
                if (k < 0) {
                        call_free(c);
                        return k;
                }
                c->next = r->waiting;
                r->waiting = c;
                return 0;
        }
        k = creds_get(r->creds, on_creds, c, NULL);
        if (k < 0)
                call_free(c);
        return k;
}

int remote_call(Remote *r, const char *target, const cJSON *body, RemoteFunc cb, void *owner, void *userdata)
{
        return remote_call_after(r, 0, target, body, cb, owner, userdata);
}
