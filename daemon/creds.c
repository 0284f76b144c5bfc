/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "creds.h"
#include "http.h"
#include "log.h"

#define MAX_SHARED_FILE_BYTES     (1024 * 1024)
#define MAX_CREDENTIAL_FILE_BYTES (16 * 1024)
#define MAX_CREDENTIAL_BYTES      (8 * 1024) /* key id, secret or session token */
#define MAX_METADATA_BODY_BYTES   (64 * 1024)
#define MAX_REGION_CHARS          64
#define MESSAGE_MAX               CREDS_MESSAGE_MAX

#define DEFAULT_CONTAINER_HOST     "http://169.254.170.2"
#define DEFAULT_IMDS_ENDPOINT      "http://169.254.169.254"
#define DEFAULT_IMDS_ENDPOINT_IPV6 "http://[fd00:ec2::254]"
#define IMDS_TOKEN_PATH            "/latest/api/token"
#define IMDS_CREDENTIALS_PATH      "/latest/meta-data/iam/security-credentials/"
#define IMDS_TOKEN_TTL_SEC         21600
/* A session token this close to its end is not used any more: a request could outlive it. */
#define IMDS_TOKEN_MARGIN_USEC (60 * USEC_PER_SEC)
#define IMDS_TOKEN_MAX_BYTES   4096
#define IMDS_ROLE_MAX_BYTES    128
/* After a failed refresh while the cached credentials still hold, wait this long before the next
 * attempt, so that every request does not ask a failing metadata service again. */
#define FAILED_REFRESH_PAUSE_USEC (10 * USEC_PER_SEC)

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

typedef enum Stage {
        STAGE_NONE, /* no fetch in flight */
        STAGE_CONTAINER,
        STAGE_IMDS_TOKEN,
        STAGE_IMDS_ROLE,
        STAGE_IMDS_CREDENTIALS,
} Stage;

/* What a source found: nothing, credentials (synchronously), or a fetch that is now running. */
enum {
        SOURCE_NONE = 0,
        SOURCE_FOUND = 1,
        SOURCE_STARTED = 2,
};

struct CredsWaiter {
        CredsWaiter *prev, *next;
        Creds *creds;
        CredsFunc cb;
        void *userdata;
        bool ready; /* error and message hold the outcome; delivered from the defer source */
        int error;
        char message[MESSAGE_MAX];
};

struct Creds {
        sd_event *event;
        CredsGetenvFunc getenv;
        void *getenv_userdata;
        char *profile, *region, *endpoint, *container_host;
        uint64_t metadata_timeout_usec, refresh_margin_usec;

        AwsCredentials cached;
        bool have_cached;
        bool stale;               /* creds_invalidate(): deliverable, but fetch again first */
        uint64_t no_fetch_before; /* CLOCK_MONOTONIC; see FAILED_REFRESH_PAUSE_USEC */
        bool told_unsupported;

        CredsWaiter *waiters, *waiters_tail;
        sd_event_source *deliver; /* defer: resolves and calls back, never inside creds_get() */
        sd_event_source *refresh; /* CLOCK_REALTIME: a background fetch before expiry */

        /* The fetch in flight (stage != STAGE_NONE). */
        Http *http; /* created on first need: most set-ups never touch the network here */
        HttpRequest *request;
        Stage stage;
        char *fetch_url; /* for messages */
        char *imds_endpoint;
        char *imds_token;           /* a secret too: wiped */
        uint64_t imds_token_expiry; /* CLOCK_MONOTONIC */
        char *imds_role;
        bool imds_retried; /* once after a 401: the session token was no longer valid */
};

/* ---- small helpers ----------------------------------------------------------------------------- */

static void erase_free(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

static void erase_freep(char **s)
{
        erase_free(*s);
}
#define _cleanup_erase_ _cleanup_(erase_freep)

void aws_credentials_done(AwsCredentials *c)
{
        if (!c)
                return;
        free(c->access_key_id);
        erase_free(c->secret_access_key);
        erase_free(c->session_token);
        *c = (AwsCredentials){ 0 };
}

int aws_credentials_copy(const AwsCredentials *from, AwsCredentials *ret)
{
        AwsCredentials n = {
                .access_key_id = strdup(from->access_key_id),
                .secret_access_key = strdup(from->secret_access_key),
                .session_token = from->session_token ? strdup(from->session_token) : NULL,
                .expiration_usec = from->expiration_usec,
                .source = from->source,
        };

        if (!n.access_key_id || !n.secret_access_key || (from->session_token && !n.session_token)) {
                aws_credentials_done(&n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static const char *env(const Creds *c, const char *name)
{
        const char *v = c->getenv ? c->getenv(name, c->getenv_userdata) : secure_getenv(name);

        return v && *v ? v : NULL;
}

static char *strjoin(const char *a, const char *b)
{
        size_t na = strlen(a), nb = strlen(b);
        char *s = malloc(na + nb + 1);

        if (s) {
                memcpy(s, a, na);
                memcpy(s + na, b, nb + 1);
        }
        return s;
}

static char *strip(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/* Printable ASCII without spaces: what keys, secrets and tokens are made of, and what may go
 * into a header. */
static bool credential_chars_valid(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        for (; *s; s++, n++)
                if (*s <= ' ' || *s >= 127)
                        return false;
        return n <= MAX_CREDENTIAL_BYTES;
}

/* read_full_file(), refusing a NUL inside (-EBADMSG). The caller erases what may hold a secret. */
static int read_file(const char *path, size_t max, char **ret)
{
        _cleanup_erase_ char *buf = NULL;
        size_t len;
        int r = read_full_file(path, max, &buf, &len);

        if (r < 0)
                return r;
        if (strlen(buf) != len)
                return -EBADMSG; /* a NUL inside */
        *ret = TAKE_PTR(buf);
        return 0;
}

int creds_value_parse(const char *text, size_t len, char **ret)
{
        _cleanup_erase_ char *buf = NULL;

        *ret = NULL;
        if (memchr(text, 0, len))
                return -EBADMSG;
        buf = strndup(text, len);
        if (!buf)
                return -ENOMEM;
        *ret = strdup(strip(buf));
        return *ret ? 0 : -ENOMEM;
}

/* A small file holding one value (a systemd credential, a token file), surrounding whitespace
 * removed. *ret is NULL when the file does not exist. */
static int read_value_file(const char *path, char **ret)
{
        _cleanup_erase_ char *buf = NULL;
        size_t len;
        int r = read_full_file(path, MAX_CREDENTIAL_FILE_BYTES, &buf, &len);

        *ret = NULL;
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return creds_value_parse(buf, len, ret);
}

int creds_ini_parse(char *text, bool config_file, const char *profile, const char *const *keys,
                    char **values, size_t n_keys)
{
        bool in = false, nested = false, found = false;
        char *p = text, *line;

        while ((line = strsep(&p, "\n"))) {
                bool indented = *line == ' ' || *line == '\t';
                char *s = strip(line), *eq, *key, *value;

                if (!*s || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']'), *name;

                        if (!end)
                                continue;
                        *end = 0;
                        name = strip(s + 1);
                        if (config_file) {
                                if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
                                        in = streq(strip(name + 8), profile);
                                else
                                        in = streq(name, "default") && streq(profile, "default");
                        } else
                                in = streq(name, profile);
                        found = found || in;
                        nested = false;
                        continue;
                }
                if (!in || (indented && nested))
                        continue;
                eq = strchr(s, '=');
                if (!eq)
                        continue;
                *eq = 0;
                key = strip(s);
                value = strip(eq + 1);
                nested = !*value;
                for (size_t i = 0; i < n_keys; i++)
                        if (strcasecmp(key, keys[i]) == 0) {
                                erase_free(values[i]);
                                values[i] = strdup(value);
                                if (!values[i])
                                        return -ENOMEM;
                        }
        }
        return found;
}

/* creds_ini_parse() on a file; false when it does not exist. */
static int ini_lookup(const char *path, bool config_file, const char *profile, const char *const *keys,
                      char **values, size_t n_keys)
{
        _cleanup_erase_ char *buf = NULL;
        int r = read_file(path, MAX_SHARED_FILE_BYTES, &buf);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        return creds_ini_parse(buf, config_file, profile, keys, values, n_keys);
}

/* The path of a shared file: the variable's, else ~/leaf. NULL (and 0) when there is no home. */
static int shared_file_path(const Creds *c, const char *var, const char *leaf, char **ret)
{
        const char *v = env(c, var), *home = env(c, "HOME");

        *ret = NULL;
        if (v && v[0] == '~' && v[1] == '/') {
                leaf = v + 2;
                v = NULL;
        }
        if (v) {
                *ret = strdup(v);
                return *ret ? 0 : -ENOMEM;
        }
        /* A system service may run without $HOME: the daemon sets it from the user database at
         * start (daemon.c), so that no lookup happens here, on the loop. */
        if (!home)
                return 0;
        return asprintf(ret, "%s/%s", home, leaf) < 0 ? (*ret = NULL, -ENOMEM) : 0;
}

int creds_parse_iso8601(const char *s, uint64_t *ret_usec)
{
        struct tm tm = { 0 };
        int n = 0, off = 0;
        time_t t;

        if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec, &n) != 6 ||
            n == 0)
                return -EINVAL;
        s += n;
        if (*s == '.')
                for (s++; *s >= '0' && *s <= '9'; s++)
                        ;
        if (*s == 'Z' || *s == 'z')
                s++;
        else if (*s == '+' || *s == '-') {
                int hh, mm, k = 0;

                if (sscanf(s + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5)
                        return -EINVAL;
                off = (*s == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
                s += 6;
        } else
                return -EINVAL;
        if (*s)
                return -EINVAL;
        if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
            tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
                return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        t = timegm(&tm);
        if (t == (time_t)-1 || t - off <= 0)
                return -EINVAL;
        *ret_usec = (uint64_t)(t - off) * USEC_PER_SEC;
        return 0;
}

static int credentials_make(const char *id, const char *secret, const char *token, uint64_t expiration,
                            const char *source, AwsCredentials *ret, char *msg)
{
        AwsCredentials n = { .expiration_usec = expiration, .source = source };

        if (!credential_chars_valid(id) || !credential_chars_valid(secret) ||
            (token && !credential_chars_valid(token))) {
                snprintf(msg, MESSAGE_MAX, "The AWS credentials from the %s are malformed.", source);
                return -EINVAL;
        }
        n.access_key_id = strdup(id);
        n.secret_access_key = strdup(secret);
        n.session_token = token ? strdup(token) : NULL;
        if (!n.access_key_id || !n.secret_access_key || (token && !n.session_token)) {
                aws_credentials_done(&n);
                snprintf(msg, MESSAGE_MAX, "Out of memory.");
                return -ENOMEM;
        }
        *ret = n;
        return SOURCE_FOUND;
}

/* ---- the synchronous sources ------------------------------------------------------------------- */

static int source_environment(Creds *c, AwsCredentials *ret, char *msg)
{
        const char *id = env(c, "AWS_ACCESS_KEY_ID"), *secret = env(c, "AWS_SECRET_ACCESS_KEY");

        if (!id && !secret)
                return SOURCE_NONE;
        if (!id || !secret) {
                log_warning(
                        "Only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; ignoring both.");
                return SOURCE_NONE;
        }
        return credentials_make(id, secret, env(c, "AWS_SESSION_TOKEN"), 0, "environment", ret, msg);
}

static int source_systemd(Creds *c, AwsCredentials *ret, char *msg)
{
        static const char *const names[] = { "aws_access_key_id", "aws_secret_access_key",
                                             "aws_session_token" };
        const char *dir = env(c, "CREDENTIALS_DIRECTORY");
        char *v[ELEMENTSOF(names)] = { 0 };
        int r = SOURCE_NONE;

        if (!dir)
                return SOURCE_NONE;
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
                        path = NULL;
                        r = -ENOMEM;
                        snprintf(msg, MESSAGE_MAX, "Out of memory.");
                        goto out;
                }
                r = read_value_file(path, &v[i]);
                if (r < 0) {
                        snprintf(msg, MESSAGE_MAX, "Failed to read the systemd credential %s: %s", path,
                                 strerror(-r));
                        goto out;
                }
        }
        if (v[0] && v[1] && *v[0] && *v[1])
                r = credentials_make(v[0], v[1], v[2] && *v[2] ? v[2] : NULL, 0, "systemd credentials", ret,
                                     msg);
        else if (v[0] || v[1])
                log_warning(
                        "Only one of the systemd credentials aws_access_key_id and aws_secret_access_key "
                        "exists; ignoring both.");
out:
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                erase_free(v[i]);
        return r;
}

/* One shared file: the keys of the profile, and in the config file whatever would make the SDKs
 * use another provider that notebookd does not have. */
static int source_shared_file(Creds *c, bool config_file, AwsCredentials *ret, char *msg)
{
        static const char *const keys[] = { "aws_access_key_id", "aws_secret_access_key",
                                            "aws_session_token", "credential_process",
                                            "role_arn",          "sso_session",
                                            "sso_start_url",     "web_identity_token_file" };
        const char *source = config_file ? "config file" : "shared credentials file";
        _cleanup_free_ char *path = NULL;
        char *v[ELEMENTSOF(keys)] = { 0 };
        int r;

        r = shared_file_path(c, config_file ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE",
                             config_file ? ".aws/config" : ".aws/credentials", &path);
        if (r < 0) {
                snprintf(msg, MESSAGE_MAX, "Out of memory.");
                return r;
        }
        if (!path)
                return SOURCE_NONE;
        r = ini_lookup(path, config_file, c->profile, keys, v, config_file ? ELEMENTSOF(keys) : 3);
        if (r < 0) {
                snprintf(msg, MESSAGE_MAX, "Failed to read the AWS %s %s: %s", source, path, strerror(-r));
                goto out;
        }
        r = SOURCE_NONE;
        if (v[0] && v[1] && *v[0] && *v[1])
                r = credentials_make(v[0], v[1], v[2] && *v[2] ? v[2] : NULL, 0, source, ret, msg);
        else if ((v[0] && *v[0]) || (v[1] && *v[1]))
                log_warning("Profile %s in %s has only one of aws_access_key_id and aws_secret_access_key; "
                            "ignoring it.",
                            c->profile, path);
        else if (!c->told_unsupported)
                for (size_t i = 3; i < ELEMENTSOF(keys); i++)
                        if (v[i]) {
                                log_notice("Profile %s in %s uses %s, which notebookd does not support; "
                                           "looking further.",
                                           c->profile, path, keys[i]);
                                c->told_unsupported = true;
                                break;
                        }
out:
        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                erase_free(v[i]);
        return r;
}

/* ---- the network sources ----------------------------------------------------------------------- */

static void on_fetch_done(const HttpResult *res, void *userdata);

static int creds_http(Creds *c)
{
        HttpOptions o = {
                .connect_timeout_usec = MIN(c->metadata_timeout_usec, USEC_PER_SEC),
                .total_timeout_usec = c->metadata_timeout_usec,
                .max_body_bytes = MAX_METADATA_BODY_BYTES,
        };

        if (c->http)
                return 0;
        return http_new(c->event, &o, &c->http);
}

static int fetch_start(Creds *c, Stage stage, const char *method, const char *url, const HttpHeader *headers,
                       size_t n_headers, char *msg)
{
        HttpRequestSpec spec = { .method = method, .url = url, .headers = headers, .n_headers = n_headers };
        char *u;
        int r;

        r = creds_http(c);
        if (r < 0) {
                snprintf(msg, MESSAGE_MAX, "Failed to set up HTTP: %s", strerror(-r));
                return r;
        }
        u = strdup(url);
        if (!u) {
                snprintf(msg, MESSAGE_MAX, "Out of memory.");
                return -ENOMEM;
        }
        r = http_request(c->http, &spec, on_fetch_done, c, &c->request);
        if (r < 0) {
                free(u);
                snprintf(msg, MESSAGE_MAX, "Failed to start a request to %s: %s", url, strerror(-r));
                return r;
        }
        free(c->fetch_url);
        c->fetch_url = u;
        c->stage = stage;
        return SOURCE_STARTED;
}

bool creds_container_uri_allowed(const char *uri)
{
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *user = NULL;
        bool ok = false;

        if (!u || curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                goto out;
        /* http://127.0.0.1@elsewhere/ must not pass for loopback. */
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
                goto out;
        if (strcasecmp(scheme, "https") == 0)
                ok = true;
        else if (strcasecmp(scheme, "http") == 0) {
                struct in_addr a4;
                struct in6_addr a6;
                char *h = host;
                size_t n = strlen(h);

                if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
                        h[n - 1] = 0;
                        h++;
                }
                if (strcasecmp(h, "localhost") == 0)
                        ok = true;
                else if (inet_pton(AF_INET, h, &a4) == 1) {
                        uint32_t a = ntohl(a4.s_addr);

                        ok = (a >> 24) == 127 || a == 0xA9FEAA02 /* 169.254.170.2 */ ||
                             a == 0xA9FEAA17 /* 169.254.170.23 */;
                } else if (inet_pton(AF_INET6, h, &a6) == 1) {
                        static const struct in6_addr eks = { { { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                 0, 0, 0, 0x23 } } };

                        ok = IN6_IS_ADDR_LOOPBACK(&a6) || memcmp(&a6, &eks, sizeof(a6)) == 0;
                }
        }
out:
        curl_free(scheme);
        curl_free(host);
        curl_free(user);
        curl_url_cleanup(u);
        return ok;
}

static int source_container_start(Creds *c, char *msg)
{
        const char *rel = env(c, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        const char *full = env(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
        const char *token_file = env(c, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        _cleanup_erase_ char *token = NULL;
        _cleanup_free_ char *url = NULL;
        HttpHeader headers[2] = { { "Accept", "application/json" } };
        size_t n_headers = 1;
        int r;

        if (!rel && !full)
                return SOURCE_NONE;
        /* The relative URI wins; the full one only to where a token may go. */
        if (rel && rel[0] != '/') {
                snprintf(msg, MESSAGE_MAX, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI does not start with /.");
                return -EINVAL;
        }
        if (!rel && !creds_container_uri_allowed(full)) {
                snprintf(msg, MESSAGE_MAX,
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI %s is neither https nor http to a loopback or "
                         "container agent address; refusing to send it a token.",
                         full);
                return -EINVAL;
        }
        if (token_file) {
                r = read_value_file(token_file, &token);
                if (r >= 0 && !token)
                        r = -ENOENT;
                if (r < 0) {
                        snprintf(msg, MESSAGE_MAX,
                                 "Failed to read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s", token_file,
                                 strerror(-r));
                        return r;
                }
        } else if (env(c, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
                token = strdup(env(c, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
                if (!token)
                        return -ENOMEM;
        }
        if (token) {
                /* A header value: no line breaks, ever. */
                if (strpbrk(token, "\r\n") || !*token) {
                        snprintf(msg, MESSAGE_MAX, "The container authorization token is malformed.");
                        return -EINVAL;
                }
                headers[n_headers++] = (HttpHeader){ "Authorization", token };
        }
        url = rel ? strjoin(c->container_host, rel) : strdup(full);
        if (!url) {
                snprintf(msg, MESSAGE_MAX, "Out of memory.");
                return -ENOMEM;
        }
        log_debug("Asking the container credentials endpoint %s.", url);
        return fetch_start(c, STAGE_CONTAINER, "GET", url, headers, n_headers, msg);
}

static bool imds_token_valid(const Creds *c)
{
        return c->imds_token && now_monotonic_usec() + IMDS_TOKEN_MARGIN_USEC < c->imds_token_expiry;
}

static int imds_step(Creds *c, Stage stage, char *msg)
{
        _cleanup_free_ char *url = NULL;
        HttpHeader h;

        if (stage != STAGE_IMDS_TOKEN && !imds_token_valid(c))
                stage = STAGE_IMDS_TOKEN;
        switch (stage) {
        case STAGE_IMDS_TOKEN:
                h = (HttpHeader){ "X-aws-ec2-metadata-token-ttl-seconds", STRINGIFY(IMDS_TOKEN_TTL_SEC) };
                if (asprintf(&url, "%s" IMDS_TOKEN_PATH, c->imds_endpoint) < 0)
                        break;
                return fetch_start(c, stage, "PUT", url, &h, 1, msg);
        case STAGE_IMDS_ROLE:
                h = (HttpHeader){ "X-aws-ec2-metadata-token", c->imds_token };
                if (asprintf(&url, "%s" IMDS_CREDENTIALS_PATH, c->imds_endpoint) < 0)
                        break;
                return fetch_start(c, stage, "GET", url, &h, 1, msg);
        case STAGE_IMDS_CREDENTIALS:
                h = (HttpHeader){ "X-aws-ec2-metadata-token", c->imds_token };
                if (asprintf(&url, "%s" IMDS_CREDENTIALS_PATH "%s", c->imds_endpoint, c->imds_role) < 0)
                        break;
                return fetch_start(c, stage, "GET", url, &h, 1, msg);
        default:
                return -EINVAL;
        }
        url = NULL;
        snprintf(msg, MESSAGE_MAX, "Out of memory.");
        return -ENOMEM;
}

static bool imds_disabled(const Creds *c)
{
        const char *v = env(c, "AWS_EC2_METADATA_DISABLED");

        return v && strcasecmp(v, "true") == 0;
}

static int source_imds_start(Creds *c, char *msg)
{
        const char *ep = env(c, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
        const char *mode = env(c, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        char *e;
        size_t n;

        if (imds_disabled(c))
                return SOURCE_NONE;
        if (!ep) {
                if (mode && strcasecmp(mode, "IPv6") == 0)
                        ep = DEFAULT_IMDS_ENDPOINT_IPV6;
                else if (!mode || strcasecmp(mode, "IPv4") == 0)
                        ep = DEFAULT_IMDS_ENDPOINT;
                else {
                        snprintf(msg, MESSAGE_MAX,
                                 "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is neither IPv4 nor IPv6.");
                        return -EINVAL;
                }
        }
        if (strncasecmp(ep, "http://", 7) != 0 && strncasecmp(ep, "https://", 8) != 0) {
                snprintf(msg, MESSAGE_MAX, "AWS_EC2_METADATA_SERVICE_ENDPOINT %s is not an http(s) URL.",
                         ep);
                return -EINVAL;
        }
        e = strdup(ep);
        if (!e)
                return -ENOMEM;
        for (n = strlen(e); n > 0 && e[n - 1] == '/'; n--)
                e[n - 1] = 0;
        /* Another endpoint: its session token is worthless. */
        if (!streq_ptr(c->imds_endpoint, e)) {
                erase_free(c->imds_token);
                c->imds_token = NULL;
        }
        free(c->imds_endpoint);
        c->imds_endpoint = e;
        c->imds_retried = false;
        log_debug("Asking IMDS at %s.", e);
        return imds_step(c, STAGE_IMDS_ROLE, msg);
}

/* ---- outcomes ---------------------------------------------------------------------------------- */

static bool cache_fresh(const Creds *c)
{
        return c->have_cached && !c->stale &&
               (c->cached.expiration_usec == 0 ||
                now_realtime_usec() + c->refresh_margin_usec < c->cached.expiration_usec);
}

static bool cache_expired(const Creds *c)
{
        return c->cached.expiration_usec != 0 && now_realtime_usec() >= c->cached.expiration_usec;
}

/* Every waiter not yet served gets this outcome, delivered from the defer source. */
static void waiters_ready(Creds *c, int error, const char *message)
{
        for (CredsWaiter *w = c->waiters; w; w = w->next)
                if (!w->ready) {
                        w->ready = true;
                        w->error = error;
                        snprintf(w->message, sizeof(w->message), "%s", error < 0 && message ? message : "");
                }
        (void)sd_event_source_set_enabled(c->deliver, SD_EVENT_ONESHOT);
}

static void refresh_arm(Creds *c)
{
        uint64_t now = now_realtime_usec(), exp = c->cached.expiration_usec, at = 0;

        if (exp > 2 * c->refresh_margin_usec && exp - 2 * c->refresh_margin_usec > now)
                at = exp - 2 * c->refresh_margin_usec;
        else if (exp > c->refresh_margin_usec && exp - c->refresh_margin_usec > now)
                at = exp - c->refresh_margin_usec;
        if (exp == 0 || at == 0 || sd_event_source_set_time(c->refresh, at) < 0 ||
            sd_event_source_set_enabled(c->refresh, SD_EVENT_ONESHOT) < 0)
                (void)sd_event_source_set_enabled(c->refresh, SD_EVENT_OFF);
}

static void fetch_succeeded(Creds *c, AwsCredentials *n)
{
        char ts[TIMESTAMP_MAX];

        aws_credentials_done(&c->cached);
        c->cached = *n;
        *n = (AwsCredentials){ 0 };
        c->have_cached = true;
        c->stale = false;
        c->no_fetch_before = 0;
        /* The key id identifies the key without revealing anything: the most that is logged. */
        log_debug("Using AWS credentials from the %s, key id %s%s%s.", c->cached.source,
                  c->cached.access_key_id, c->cached.expiration_usec ? ", expiring " : "",
                  c->cached.expiration_usec ? format_timestamp(ts, c->cached.expiration_usec) : "");
        refresh_arm(c);
        waiters_ready(c, 0, NULL);
}

static void fetch_failed(Creds *c, int error, const char *message)
{
        if (c->have_cached && !cache_expired(c)) {
                /* Static stability, as the SDKs do it: a failing metadata service does not stop
                 * credentials that are still good. */
                log_warning(
                        "Failed to refresh AWS credentials, using the cached ones from the %s until they "
                        "expire: %s",
                        c->cached.source, message);
                c->no_fetch_before = now_monotonic_usec() + FAILED_REFRESH_PAUSE_USEC;
                waiters_ready(c, 0, NULL);
                return;
        }
        if (c->have_cached) {
                aws_credentials_done(&c->cached);
                c->have_cached = false;
        }
        waiters_ready(c, error, message);
}

/* Runs the chain: the local sources now, the network ones by starting a fetch. */
static void creds_resolve(Creds *c)
{
        AwsCredentials n = { 0 };
        char msg[MESSAGE_MAX] = "";
        int r;

        r = source_environment(c, &n, msg);
        if (r == SOURCE_NONE)
                r = source_systemd(c, &n, msg);
        if (r == SOURCE_NONE)
                r = source_shared_file(c, false, &n, msg);
        if (r == SOURCE_NONE)
                r = source_shared_file(c, true, &n, msg);
        if (r == SOURCE_NONE && env(c, "AWS_WEB_IDENTITY_TOKEN_FILE") && !c->told_unsupported) {
                log_notice("AWS_WEB_IDENTITY_TOKEN_FILE is set, but notebookd does not support web identity "
                           "credentials; looking further.");
                c->told_unsupported = true;
        }
        if (r == SOURCE_NONE)
                r = source_container_start(c, msg);
        if (r == SOURCE_NONE)
                r = source_imds_start(c, msg);
        if (r == SOURCE_NONE) {
                r = -ENOKEY;
                snprintf(msg, sizeof(msg),
                         "No AWS credentials in the environment, systemd credentials, or shared files "
                         "(profile "
                         "%s), no container endpoint%s.",
                         c->profile, imds_disabled(c) ? ", and IMDS is disabled" : "");
        }
        if (r == SOURCE_FOUND)
                fetch_succeeded(c, &n);
        else if (r < 0)
                fetch_failed(c, r, msg[0] ? msg : strerror(-r));
}

/* Makes progress for the waiters: serve them from the cache or start what fetches. */
static void creds_kick(Creds *c)
{
        bool waiting = false;

        for (CredsWaiter *w = c->waiters; w && !waiting; w = w->next)
                waiting = !w->ready;
        if (!waiting)
                return;
        if (cache_fresh(c)) {
                waiters_ready(c, 0, NULL);
                return;
        }
        if (c->stage != STAGE_NONE)
                return; /* they share the fetch in flight */
        if (c->have_cached && !cache_expired(c) && now_monotonic_usec() < c->no_fetch_before) {
                waiters_ready(c, 0, NULL);
                return;
        }
        creds_resolve(c);
}

int creds_from_json(const char *body, size_t len, bool imds, const char *source, AwsCredentials *ret,
                    char *msg)
{
        cJSON *j = cJSON_ParseWithLength(body, len);
        const cJSON *code, *id, *secret, *token, *exp;
        uint64_t expiration = 0;
        int r = -EBADMSG;

        if (!cJSON_IsObject(j)) {
                snprintf(msg, MESSAGE_MAX, "The %s answered with something other than a JSON object.",
                         source);
                goto out;
        }
        code = cJSON_GetObjectItemCaseSensitive(j, "Code");
        id = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
        secret = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
        token = cJSON_GetObjectItemCaseSensitive(j, "Token");
        exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
        if (imds && code && (!cJSON_IsString(code) || !streq(code->valuestring, "Success"))) {
                snprintf(msg, MESSAGE_MAX, "The %s answered Code %.64s.", source,
                         cJSON_IsString(code) && credential_chars_valid(code->valuestring)
                                 ? code->valuestring
                                 : "(malformed)");
                r = -EACCES;
                goto out;
        }
        if (!cJSON_IsString(id) || !cJSON_IsString(secret) ||
            (token && !cJSON_IsNull(token) && !cJSON_IsString(token)) || (exp && !cJSON_IsString(exp)) ||
            (exp && creds_parse_iso8601(exp->valuestring, &expiration) < 0)) {
                snprintf(msg, MESSAGE_MAX,
                         "The %s's answer lacks AccessKeyId, SecretAccessKey or a valid Expiration.",
                         source);
                goto out;
        }
        if (expiration && expiration <= now_realtime_usec()) {
                snprintf(msg, MESSAGE_MAX,
                         "The %s handed out credentials that have expired already (check the clock).",
                         source);
                goto out;
        }
        r = credentials_make(id->valuestring, secret->valuestring,
                             cJSON_IsString(token) ? token->valuestring : NULL, expiration, source, ret,
                             msg);
out:
        /* cJSON_Delete() frees without wiping. */
        if (cJSON_IsString(secret = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey")))
                explicit_bzero(secret->valuestring, strlen(secret->valuestring));
        if (cJSON_IsString(token = cJSON_GetObjectItemCaseSensitive(j, "Token")))
                explicit_bzero(token->valuestring, strlen(token->valuestring));
        cJSON_Delete(j);
        return r;
}

int creds_imds_token_parse(const char *body, size_t len, char **ret)
{
        _cleanup_erase_ char *t = strndup(body, len);
        const char *s;

        *ret = NULL;
        if (!t)
                return -ENOMEM;
        s = strip(t);
        if (!credential_chars_valid(s) || strlen(s) > IMDS_TOKEN_MAX_BYTES)
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int creds_imds_role_parse(const char *body, size_t len, char **ret)
{
        _cleanup_free_ char *role = strndup(body, len);
        char *nl, *s;

        *ret = NULL;
        if (!role)
                return -ENOMEM;
        /* The first line names the role (IMDS lists one). */
        nl = strchr(role, '\n');
        if (nl)
                *nl = 0;
        s = strip(role);
        if (!*s)
                return -ENOKEY;
        if (strlen(s) > IMDS_ROLE_MAX_BYTES || strspn(s, "abcdefghijklmnopqrstuvwxyz"
                                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789+=,.@_-") != strlen(s))
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int status_to_errno(long status)
{
        if (status == 401 || status == 403)
                return -EACCES;
        if (status == 404)
                return -ENOKEY;
        return -EIO;
}

/* One step of a fetch ended. Runs from http.c's drain, on the loop. */
static void on_fetch_done(const HttpResult *res, void *userdata)
{
        Creds *c = userdata;
        Stage stage = c->stage;
        const char *what = stage == STAGE_CONTAINER ? "container credentials endpoint" : "IMDS";
        AwsCredentials n = { 0 };
        char msg[MESSAGE_MAX] = "";
        int r;

        c->request = NULL;
        c->stage = STAGE_NONE;
        if (res->error < 0) {
                snprintf(msg, sizeof(msg), "The %s at %s did not answer: %s", what, c->fetch_url,
                         res->error_text[0] ? res->error_text : strerror(-res->error));
                fetch_failed(c, res->error, msg);
                return;
        }
        /* A 401 from IMDS: the session token expired or the service restarted. Once, a new one. */
        if (res->status == 401 && (stage == STAGE_IMDS_ROLE || stage == STAGE_IMDS_CREDENTIALS) &&
            !c->imds_retried) {
                c->imds_retried = true;
                erase_free(c->imds_token);
                c->imds_token = NULL;
                r = imds_step(c, STAGE_IMDS_TOKEN, msg);
                if (r < 0)
                        fetch_failed(c, r, msg);
                return;
        }
        if (res->status != 200) {
                snprintf(msg, sizeof(msg), "The %s at %s answered HTTP %ld.", what, c->fetch_url,
                         res->status);
                fetch_failed(c, status_to_errno(res->status), msg);
                return;
        }

        switch (stage) {
        case STAGE_CONTAINER:
                r = creds_from_json(res->body, res->body_len, false, "container endpoint", &n, msg);
                if (r < 0)
                        fetch_failed(c, r, msg);
                else
                        fetch_succeeded(c, &n);
                return;
        case STAGE_IMDS_TOKEN: {
                char *t;

                r = creds_imds_token_parse(res->body, res->body_len, &t);
                if (r == -EBADMSG) {
                        fetch_failed(c, r, "IMDS answered with a malformed session token.");
                        return;
                }
                if (r < 0)
                        break;
                erase_free(c->imds_token);
                c->imds_token = t;
                c->imds_token_expiry = now_monotonic_usec() + IMDS_TOKEN_TTL_SEC * USEC_PER_SEC;
                r = imds_step(c, STAGE_IMDS_ROLE, msg);
                break;
        }
        case STAGE_IMDS_ROLE: {
                char *role;

                r = creds_imds_role_parse(res->body, res->body_len, &role);
                if (r == -EBADMSG || r == -ENOKEY) {
                        fetch_failed(c, r,
                                     r == -EBADMSG ? "IMDS named a malformed IAM role."
                                                   : "No IAM role is attached to this instance.");
                        return;
                }
                if (r < 0)
                        break;
                free(c->imds_role);
                c->imds_role = role;
                r = imds_step(c, STAGE_IMDS_CREDENTIALS, msg);
                break;
        }
        case STAGE_IMDS_CREDENTIALS:
                r = creds_from_json(res->body, res->body_len, true, "IMDS", &n, msg);
                if (r < 0)
                        fetch_failed(c, r, msg);
                else
                        fetch_succeeded(c, &n);
                return;
        default:
                return;
        }
        if (r < 0)
                fetch_failed(c, r, msg[0] ? msg : strerror(-r));
}

/* ---- the loop side ----------------------------------------------------------------------------- */

static void waiter_unlink(CredsWaiter *w)
{
        Creds *c = w->creds;

        if (w->prev)
                w->prev->next = w->next;
        else
                c->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        else
                c->waiters_tail = w->prev;
        w->prev = w->next = NULL;
        w->creds = NULL;
}

static int on_deliver(sd_event_source *s, void *userdata)
{
        Creds *c = userdata;

        /* Resolving here, not in creds_get(), keeps the cached credentials unchanged while any
         * callback holds a pointer to them. */
        creds_kick(c);
        for (;;) {
                CredsWaiter *w = c->waiters;
                int error;

                while (w && !w->ready)
                        w = w->next;
                if (!w)
                        break;
                waiter_unlink(w);
                error = w->error;
                if (error == 0 && !c->have_cached) {
                        error = -ENOKEY;
                        snprintf(w->message, sizeof(w->message), "The AWS credentials were dropped.");
                }
                w->cb(error, error == 0 ? &c->cached : NULL, error < 0 ? w->message : NULL, w->userdata);
                free(w);
        }
        return 0;
}

static int on_refresh(sd_event_source *s, uint64_t usec, void *userdata)
{
        Creds *c = userdata;

        /* A background fetch: the next creds_get() need not wait for it. */
        if (c->stage == STAGE_NONE) {
                log_debug("Refreshing the AWS credentials from the %s before they expire.",
                          c->cached.source);
                creds_resolve(c);
        }
        return 0;
}

int creds_get(Creds *c, CredsFunc cb, void *userdata, CredsWaiter **ret)
{
        CredsWaiter *w;

        if (!c || !cb)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (CredsWaiter){ .creds = c, .cb = cb, .userdata = userdata, .prev = c->waiters_tail };
        if (c->waiters_tail)
                c->waiters_tail->next = w;
        else
                c->waiters = w;
        c->waiters_tail = w;
        (void)sd_event_source_set_enabled(c->deliver, SD_EVENT_ONESHOT);
        if (ret)
                *ret = w;
        return 0;
}

void creds_get_cancel(CredsWaiter *w)
{
        if (!w || !w->creds)
                return;
        waiter_unlink(w);
        free(w);
}

void creds_invalidate(Creds *c)
{
        if (!c)
                return;
        c->stale = true;
        c->no_fetch_before = 0;
}

/* ---- region and endpoint ----------------------------------------------------------------------- */

static bool region_valid(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n <= MAX_REGION_CHARS && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int resolve_region_endpoint(Creds *c)
{
        const char *v = NULL;
        int r;

        v = c->region ? c->region : env(c, "AWS_REGION");
        if (!v)
                v = env(c, "AWS_DEFAULT_REGION");
        if (v && v != c->region) {
                c->region = strdup(v);
                if (!c->region)
                        return -ENOMEM;
        }
        if (!c->region) {
                static const char *const keys[] = { "region" };
                _cleanup_free_ char *path = NULL;

                r = shared_file_path(c, "AWS_CONFIG_FILE", ".aws/config", &path);
                if (r < 0)
                        return r;
                if (path) {
                        r = ini_lookup(path, true, c->profile, keys, &c->region, 1);
                        if (r < 0)
                                return r;
                }
                if (c->region && !*c->region) {
                        free(c->region);
                        c->region = NULL;
                }
        }
        if (c->region && !region_valid(c->region))
                return -EINVAL;

        v = c->endpoint ? c->endpoint : env(c, "AWS_ENDPOINT_URL_DYNAMODB");
        if (!v)
                v = env(c, "AWS_ENDPOINT_URL");
        if (v && v != c->endpoint) {
                c->endpoint = strdup(v);
                if (!c->endpoint)
                        return -ENOMEM;
        }
        if (c->endpoint) {
                if ((strncasecmp(c->endpoint, "http://", 7) != 0 || !c->endpoint[7]) &&
                    (strncasecmp(c->endpoint, "https://", 8) != 0 || !c->endpoint[8]))
                        return -EINVAL;
                if (!c->region) {
                        c->region = strdup(CREDS_FALLBACK_SIGNING_REGION);
                        if (!c->region)
                                return -ENOMEM;
                }
        } else if (c->region) {
                bool china = strncmp(c->region, "cn-", 3) == 0;

                if (asprintf(&c->endpoint, "https://dynamodb.%s.amazonaws.com%s", c->region,
                             china ? ".cn" : "") < 0) {
                        c->endpoint = NULL;
                        return -ENOMEM;
                }
        }
        return 0;
}

const char *creds_region(const Creds *c)
{
        return c->region;
}

const char *creds_endpoint(const Creds *c)
{
        return c->endpoint;
}

const char *creds_profile(const Creds *c)
{
        return c->profile;
}

/* ---- life cycle -------------------------------------------------------------------------------- */

int creds_new(sd_event *event, const CredsOptions *options, Creds **ret)
{
        _cleanup_(creds_freep) Creds *c = NULL;
        CredsOptions o = options ? *options : (CredsOptions){ 0 };
        const char *profile;
        int r;

        if (!event || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->getenv = o.getenv;
        c->getenv_userdata = o.getenv_userdata;
        c->metadata_timeout_usec = o.metadata_timeout_usec ?: CREDS_DEFAULT_METADATA_TIMEOUT_USEC;
        c->refresh_margin_usec = o.refresh_margin_usec ?: CREDS_DEFAULT_REFRESH_MARGIN_USEC;
        profile = o.profile ? o.profile : env(c, "AWS_PROFILE");
        c->profile = strdup(profile ? profile : "default");
        c->container_host = strdup(o.container_host ? o.container_host : DEFAULT_CONTAINER_HOST);
        c->region = o.region && *o.region ? strdup(o.region) : NULL;
        c->endpoint = o.endpoint && *o.endpoint ? strdup(o.endpoint) : NULL;
        if (!c->profile || !c->container_host || (o.region && *o.region && !c->region) ||
            (o.endpoint && *o.endpoint && !c->endpoint))
                // cppcheck-suppress memleak ; c is freed by its cleanup handler
                return -ENOMEM;
        r = resolve_region_endpoint(c);
        if (r < 0)
                return r;

        r = sd_event_add_defer(event, &c->deliver, on_deliver, c);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(c->deliver, "creds-deliver");
        r = sd_event_source_set_enabled(c->deliver, SD_EVENT_OFF);
        if (r < 0)
                return r;
        /* Early enough to matter within the margin, loose enough to be coalesced with other wake-ups. */
        r = sd_event_add_time(event, &c->refresh, CLOCK_REALTIME, 0,
                              MIN(USEC_PER_SEC, c->refresh_margin_usec / 10), on_refresh, c);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(c->refresh, "creds-refresh");
        r = sd_event_source_set_enabled(c->refresh, SD_EVENT_OFF);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

Creds *creds_free(Creds *c)
{
        if (!c)
                return NULL;
        http_request_cancel(c->request);
        c->request = NULL;
        c->stage = STAGE_NONE;
        while (c->waiters) {
                CredsWaiter *w = c->waiters;

                waiter_unlink(w);
                w->cb(-ECANCELED, NULL, "Cancelled.", w->userdata);
                free(w);
        }
        c->http = http_free(c->http);
        sd_event_source_disable_unref(c->deliver);
        sd_event_source_disable_unref(c->refresh);
        sd_event_unref(c->event);
        aws_credentials_done(&c->cached);
        erase_free(c->imds_token);
        free(c->imds_role);
        free(c->imds_endpoint);
        free(c->fetch_url);
        free(c->profile);
        free(c->region);
        free(c->endpoint);
        free(c->container_host);
        free(c);
        return NULL;
}
