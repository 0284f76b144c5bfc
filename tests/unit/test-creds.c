/* SPDX-License-Identifier: MIT */
/* creds.c: every source in order, region and endpoint, and the container endpoint and IMDSv2
 * against HTTP servers of the test's own on 127.0.0.1. The environment creds.c sees is a table of
 * this test's (CredsOptions.getenv), in which IMDS is disabled unless a test points it at its own
 * loopback server. stderr is captured throughout and checked for secrets at the end: every
 * secret and token here contains "Sekr1t". */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "creds.h"
#include "log.h"
#include "tap.h"

/* ---- the environment creds.c sees ---------------------------------------------------------------- */

#define MAX_ENV 32
static struct {
        char name[64];
        char value[512];
} fake_env[MAX_ENV];
static size_t n_env;
static char home[300], tmp[256];

static const char *fake_getenv(const char *name, void *userdata)
{
        for (size_t i = 0; i < n_env; i++)
                if (streq(fake_env[i].name, name))
                        return fake_env[i].value;
        return NULL;
}

static void env_set(const char *name, const char *value)
{
        size_t i;

        for (i = 0; i < n_env; i++)
                if (streq(fake_env[i].name, name))
                        break;
        if (!value) {
                if (i < n_env)
                        fake_env[i] = fake_env[--n_env];
                return;
        }
        if (i == n_env) {
                if (n_env == MAX_ENV)
                        abort();
                n_env++;
        }
        snprintf(fake_env[i].name, sizeof(fake_env[i].name), "%s", name);
        snprintf(fake_env[i].value, sizeof(fake_env[i].value), "%s", value);
}

/* Every test starts here: IMDS off, a home without ~/.aws. */
static void env_reset(void)
{
        n_env = 0;
        env_set("AWS_EC2_METADATA_DISABLED", "true");
        env_set("HOME", home);
}

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "we");

        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                abort();
}

static const char *path_in(const char *dir, const char *leaf)
{
        static char buf[4][512];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, leaf);
        return buf[k];
}

/* ---- the test's HTTP server ---------------------------------------------------------------------- */

typedef struct Server Server;
typedef void (*Handler)(Server *s, const char *method, const char *path, const char *head, char *resp,
                        size_t size);

struct Server {
        int fd, port;
        Handler handler;
        atomic_int accepted, requests;
        pthread_mutex_t lock;
        char log[8192]; /* "METHOD PATH\n" per request */
        /* for the handlers */
        char expect_auth[128];
        char key_prefix[32];
        atomic_int expires_in_sec;
        atomic_int token_puts, served;
        atomic_bool reject_token_once, no_role, fail_credentials;
        char token[64];
};

typedef struct Conn {
        Server *server;
        int fd;
} Conn;

static bool header_get(const char *head, const char *name, char *buf, size_t size)
{
        char pat[128];
        const char *p, *e;

        snprintf(pat, sizeof(pat), "\r\n%s:", name);
        p = strcasestr(head, pat);
        if (!p)
                return false;
        p += strlen(pat);
        while (*p == ' ')
                p++;
        e = strstr(p, "\r\n");
        snprintf(buf, size, "%.*s", (int)(e ? e - p : (ptrdiff_t)strlen(p)), p);
        return true;
}

static void respond(char *resp, size_t size, int status, const char *body)
{
        snprintf(resp, size,
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", status,
                 strlen(body), body);
}

static void iso8601_in(int sec, char buf[static 32])
{
        time_t t = time(NULL) + sec;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void credentials_json(Server *s, char *body, size_t size)
{
        char exp[32];
        int n = atomic_fetch_add(&s->served, 1) + 1;

        iso8601_in(atomic_load(&s->expires_in_sec), exp);
        snprintf(body, size,
                 "{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":\"AWS-HMAC\","
                 "\"AccessKeyId\":\"%s%d\",\"SecretAccessKey\":\"Sekr1t-secret-%d\",\"Token\":\"Sekr1t-"
                 "token-%d\","
                 "\"Expiration\":\"%s\"}",
                 s->key_prefix, n, n, n, exp);
}

static void container_handler(Server *s, const char *method, const char *path, const char *head, char *resp,
                              size_t size)
{
        char auth[256] = "", body[1024];

        header_get(head, "Authorization", auth, sizeof(auth));
        if (s->expect_auth[0] && !streq(auth, s->expect_auth))
                return respond(resp, size, 401, "{\"message\":\"unauthorized\"}");
        if (!streq(method, "GET") || !strstr(path, "/creds"))
                return respond(resp, size, 404, "{}");
        credentials_json(s, body, sizeof(body));
        respond(resp, size, 200, body);
}

#define IMDS_DIR "/latest/meta-data/iam/security-credentials/"

static void imds_handler(Server *s, const char *method, const char *path, const char *head, char *resp,
                         size_t size)
{
        char ttl[32] = "", token[128] = "", body[1024];

        if (streq(path, "/latest/api/token")) {
                if (!streq(method, "PUT") ||
                    !header_get(head, "X-aws-ec2-metadata-token-ttl-seconds", ttl, sizeof(ttl)) ||
                    atoi(ttl) <= 0)
                        return respond(resp, size, 400, "");
                snprintf(s->token, sizeof(s->token), "Sekr1t-imds-session-%d",
                         atomic_fetch_add(&s->token_puts, 1) + 1);
                return respond(resp, size, 200, s->token);
        }
        /* IMDSv2 only: nothing without the session token. */
        if (!header_get(head, "X-aws-ec2-metadata-token", token, sizeof(token)) || !s->token[0] ||
            !streq(token, s->token))
                return respond(resp, size, 401, "");
        if (atomic_exchange(&s->reject_token_once, false)) {
                s->token[0] = 0; /* as if IMDS restarted */
                return respond(resp, size, 401, "");
        }
        if (streq(path, IMDS_DIR))
                return atomic_load(&s->no_role) ? respond(resp, size, 404, "")
                                                : respond(resp, size, 200, "test-role\n");
        if (streq(path, IMDS_DIR "test-role")) {
                if (atomic_load(&s->fail_credentials))
                        return respond(resp, size, 500, "");
                credentials_json(s, body, sizeof(body));
                return respond(resp, size, 200, body);
        }
        respond(resp, size, 404, "");
}

static void *serve_conn(void *arg)
{
        Conn *c = arg;
        Server *s = c->server;
        char buf[16384];
        size_t len = 0;

        for (;;) {
                char *end, *cl, method[16] = "", path[256] = "", resp[4096];
                size_t head, clen = 0;
                ssize_t n;

                while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
                        if (len >= sizeof(buf) - 1)
                                goto done;
                        n = recv(c->fd, buf + len, sizeof(buf) - len - 1, 0);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                        buf[len] = 0;
                }
                head = (size_t)(end - buf) + 4;
                end[2] = 0; /* keep the last header's CR LF for header_get() */
                cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl)
                        clen = strtoul(cl + 17, NULL, 10);
                while (len < head + clen) {
                        if (len >= sizeof(buf) - 1)
                                goto done;
                        n = recv(c->fd, buf + len, sizeof(buf) - len - 1, 0);
                        if (n <= 0)
                                goto done;
                        len += (size_t)n;
                }
                sscanf(buf, "%15s %255s", method, path);
                atomic_fetch_add(&s->requests, 1);
                pthread_mutex_lock(&s->lock);
                snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "%s %s\n", method, path);
                s->handler(s, method, path, buf, resp, sizeof(resp));
                pthread_mutex_unlock(&s->lock);
                if (send(c->fd, resp, strlen(resp), MSG_NOSIGNAL) < 0)
                        goto done;
                memmove(buf, buf + head + clen, len - head - clen);
                len -= head + clen;
        }
done:
        close(c->fd);
        free(c);
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
                if (pthread_create(&t, NULL, serve_conn, c) != 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                pthread_detach(t);
        }
        return NULL;
}

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

static void server_start(Server *s, Handler handler, const char *key_prefix)
{
        pthread_t t;

        s->fd = loopback_listen(&s->port);
        s->handler = handler;
        snprintf(s->key_prefix, sizeof(s->key_prefix), "%s", key_prefix);
        atomic_store(&s->expires_in_sec, 3600);
        pthread_mutex_init(&s->lock, NULL);
        if (listen(s->fd, 64) < 0 || pthread_create(&t, NULL, serve, s) != 0)
                abort();
        pthread_detach(t);
}

/* Forgets what the server saw and how it was told to behave. */
static void server_reset(Server *s)
{
        pthread_mutex_lock(&s->lock);
        s->log[0] = 0;
        s->expect_auth[0] = 0;
        s->token[0] = 0;
        pthread_mutex_unlock(&s->lock);
        atomic_store(&s->accepted, 0);
        atomic_store(&s->requests, 0);
        atomic_store(&s->token_puts, 0);
        atomic_store(&s->served, 0);
        atomic_store(&s->expires_in_sec, 3600);
        atomic_store(&s->reject_token_once, false);
        atomic_store(&s->no_role, false);
        atomic_store(&s->fail_credentials, false);
}

static void server_log(Server *s, char *buf, size_t size)
{
        pthread_mutex_lock(&s->lock);
        snprintf(buf, size, "%s", s->log);
        pthread_mutex_unlock(&s->lock);
}

static const char *server_url(const Server *s, const char *path)
{
        static char buf[4][256];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "http://127.0.0.1:%d%s", s->port, path);
        return buf[k];
}

static int closed_port(void)
{
        int port, fd = loopback_listen(&port);

        close(fd);
        return port;
}

/* ---- the client side ----------------------------------------------------------------------------- */

typedef struct Got {
        int calls, error;
        char id[128], secret[128], token[128], message[600];
        bool has_token;
        uint64_t expiration;
        const char *source;
} Got;

static void on_creds(int error, const AwsCredentials *cr, const char *message, void *userdata)
{
        Got *g = userdata;

        g->calls++;
        g->error = error;
        if (cr) {
                snprintf(g->id, sizeof(g->id), "%s", cr->access_key_id);
                snprintf(g->secret, sizeof(g->secret), "%s", cr->secret_access_key);
                snprintf(g->token, sizeof(g->token), "%s", cr->session_token ? cr->session_token : "");
                g->has_token = cr->session_token != NULL;
                g->expiration = cr->expiration_usec;
                g->source = cr->source;
        }
        snprintf(g->message, sizeof(g->message), "%s", message ? message : "");
}

static sd_event *event;

static void run_until(const int *calls, int want, uint64_t max_usec)
{
        uint64_t until = now_monotonic_usec() + max_usec;

        while (*calls < want && now_monotonic_usec() < until)
                sd_event_run(event, 50 * USEC_PER_MSEC);
}

static Creds *creds_make(const CredsOptions *extra)
{
        CredsOptions o = extra ? *extra : (CredsOptions){ 0 };
        Creds *c = NULL;
        int r;

        o.getenv = fake_getenv;
        r = creds_new(event, &o, &c);
        if (r < 0) {
                printf("# creds_new: %s\n", strerror(-r));
                return NULL;
        }
        return c;
}

/* One creds_get() to its end (5 s at most); checks that the callback came later, not inside. */
static Got fetch(Creds *c)
{
        Got g = { 0 };

        if (!c || creds_get(c, on_creds, &g, NULL) < 0) {
                g.error = -999;
                return g;
        }
        if (g.calls != 0)
                ok(false, "the callback ran inside creds_get()");
        run_until(&g.calls, 1, 5 * USEC_PER_SEC);
        if (g.calls != 1)
                g.error = -998;
        if (g.error < 0)
                printf("# creds: %d %s\n", g.error, g.message);
        return g;
}

static Got fetch_once(const CredsOptions *o)
{
        _cleanup_(creds_freep) Creds *c = creds_make(o);

        return fetch(c);
}

/* ---- the tests ----------------------------------------------------------------------------------- */

static char aws_dir[512], creds_dir[512];

static void files_reset(void)
{
        unlink(path_in(aws_dir, "credentials"));
        unlink(path_in(aws_dir, "config"));
        unlink(path_in(creds_dir, "aws_access_key_id"));
        unlink(path_in(creds_dir, "aws_secret_access_key"));
        unlink(path_in(creds_dir, "aws_session_token"));
}

static void write_systemd_creds(bool with_token)
{
        write_file(path_in(creds_dir, "aws_access_key_id"), "AKIASYSTEMD\n");
        write_file(path_in(creds_dir, "aws_secret_access_key"), "Sekr1t-systemd\n");
        if (with_token)
                write_file(path_in(creds_dir, "aws_session_token"), "Sekr1t-systemd-token\n");
}

static void write_shared_files(void)
{
        write_file(path_in(aws_dir, "credentials"), "# comment\n"
                                                    "[default]\n"
                                                    "aws_access_key_id = AKIAFILEDEFAULT\n"
                                                    "aws_secret_access_key = Sekr1t-file-default\n"
                                                    "\n"
                                                    "[work]\n"
                                                    "aws_access_key_id=AKIAFILEWORK\n"
                                                    "aws_secret_access_key=Sekr1t-file-work\n"
                                                    "aws_session_token = Sekr1t-file-work-token\n"
                                                    "[half]\n"
                                                    "aws_access_key_id = AKIAHALF\n");
        write_file(path_in(aws_dir, "config"), "[default]\n"
                                               "region = eu-west-1\n"
                                               "[profile work]\n"
                                               "region = eu-central-1\n"
                                               "s3 =\n"
                                               "  region = us-west-2\n"
                                               "[profile cfgonly]\n"
                                               "aws_access_key_id = AKIACONFIG\n"
                                               "aws_secret_access_key = Sekr1t-config\n"
                                               "region = ap-south-1\n"
                                               "[profile assumed]\n"
                                               "role_arn = arn:aws:iam::123456789012:role/x\n"
                                               "[work]\n"
                                               "region = sa-east-1\n");
}

static void test_local_sources(void)
{
        Got g;

        env_reset();
        files_reset();
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "nothing anywhere, IMDS disabled: -ENOKEY");
        ok(strstr(g.message, "IMDS is disabled") != NULL, "and the message says where it looked");

        env_set("AWS_ACCESS_KEY_ID", "AKIAENV");
        env_set("AWS_SECRET_ACCESS_KEY", "Sekr1t-env");
        env_set("AWS_SESSION_TOKEN", "Sekr1t-env-token");
        write_systemd_creds(true);
        write_shared_files();
        env_set("CREDENTIALS_DIRECTORY", creds_dir);
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAENV") && streq(g.secret, "Sekr1t-env") &&
                   streq(g.token, "Sekr1t-env-token"),
           "environment first, with its session token");
        is_str(g.source, "environment", "source: environment");
        is_int(g.expiration, 0, "long-term: no expiration");

        env_set("AWS_SESSION_TOKEN", NULL);
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAENV") && !g.has_token, "environment without a session token");

        env_set("AWS_SECRET_ACCESS_KEY", NULL);
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIASYSTEMD") && streq(g.secret, "Sekr1t-systemd") &&
                   streq(g.token, "Sekr1t-systemd-token"),
           "a key id without a secret in the environment: systemd credentials next");
        is_str(g.source, "systemd credentials", "source: systemd credentials");

        env_set("AWS_ACCESS_KEY_ID", NULL);
        unlink(path_in(creds_dir, "aws_session_token"));
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIASYSTEMD") && !g.has_token,
           "systemd credentials without a token file");

        unlink(path_in(creds_dir, "aws_secret_access_key"));
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAFILEDEFAULT") && streq(g.secret, "Sekr1t-file-default"),
           "half of the systemd credentials: the shared credentials file next, profile default");
        is_str(g.source, "shared credentials file", "source: shared credentials file");

        env_set("CREDENTIALS_DIRECTORY", NULL);
        env_set("AWS_PROFILE", "work");
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAFILEWORK") && streq(g.token, "Sekr1t-file-work-token"),
           "AWS_PROFILE=work picks [work], with its session token");
        g = fetch_once(&(CredsOptions){ .profile = "default" });
        ok(g.error == 0 && streq(g.id, "AKIAFILEDEFAULT"), "the caller's profile beats AWS_PROFILE");

        env_set("AWS_PROFILE", "cfgonly");
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIACONFIG"),
           "a profile only in the config file: [profile cfgonly] keys");
        is_str(g.source, "config file", "source: config file");

        env_set("AWS_PROFILE", "half");
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "a profile with a key id only: no credentials");
        env_set("AWS_PROFILE", "assumed");
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "a role_arn profile (unsupported): no credentials, looked further");
        env_set("AWS_PROFILE", "nosuch");
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "a profile that exists nowhere: -ENOKEY");

        env_set("AWS_PROFILE", NULL);
        write_file(path_in(tmp, "other-credentials"),
                   "[default]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = Sekr1t-other\n");
        env_set("AWS_SHARED_CREDENTIALS_FILE", path_in(tmp, "other-credentials"));
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAOTHER"),
           "AWS_SHARED_CREDENTIALS_FILE instead of ~/.aws/credentials");
        env_set("AWS_SHARED_CREDENTIALS_FILE", path_in(tmp, "missing"));
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY,
               "a missing shared credentials file is no source (default profile not in config)");

        env_set("AWS_SHARED_CREDENTIALS_FILE", NULL);
        env_set("HOME", NULL);
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "no HOME: no shared files, no error");

        env_reset();
        env_set("AWS_ACCESS_KEY_ID", "AKIAENV");
        env_set("AWS_SECRET_ACCESS_KEY", "Sekr1t-env");
        env_set("AWS_SESSION_TOKEN", "Sekr1t-bad\r\nX-Injected: 1");
        g = fetch_once(NULL);
        is_int(g.error, -EINVAL, "a session token with a line break is refused");
        ok(!strstr(g.message, "Sekr1t"), "and the message does not quote it");
        files_reset();
}

static void test_cache_and_waiters(void)
{
        _cleanup_(creds_freep) Creds *c = NULL;
        Got a = { 0 }, b = { 0 }, never = { 0 }, g;
        CredsWaiter *w = NULL;

        env_reset();
        env_set("AWS_ACCESS_KEY_ID", "AKIAENV1");
        env_set("AWS_SECRET_ACCESS_KEY", "Sekr1t-env1");
        c = creds_make(NULL);
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "AKIAENV1"), "first key");

        env_set("AWS_ACCESS_KEY_ID", "AKIAENV2");
        env_set("AWS_SECRET_ACCESS_KEY", "Sekr1t-env2");
        creds_get(c, on_creds, &a, NULL);
        creds_get(c, on_creds, &never, &w);
        creds_get(c, on_creds, &b, NULL);
        ok(a.calls == 0 && b.calls == 0, "cached: still not called inside creds_get()");
        creds_get_cancel(w);
        run_until(&b.calls, 1, USEC_PER_SEC);
        ok(a.calls == 1 && b.calls == 1 && streq(a.id, "AKIAENV1") && streq(b.id, "AKIAENV1"),
           "long-term keys are kept: both waiters get the cached ones");
        is_int(never.calls, 0, "a cancelled waiter is not called");

        creds_invalidate(c);
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "AKIAENV2"), "after creds_invalidate() the chain runs again");

        never = (Got){ 0 };
        creds_get(c, on_creds, &never, NULL);
        c = creds_free(c);
        ok(never.calls == 1 && never.error == -ECANCELED, "creds_free() tells a waiter: -ECANCELED");
}

static void test_region_endpoint(void)
{
        Creds *c;

        env_reset();
        files_reset();
        write_shared_files();

#define CHECK_RE(opts, region, endpoint, what)                                                       \
        do {                                                                                         \
                c = creds_make(opts);                                                                \
                ok(c &&streq_ptr(creds_region(c), region) && streq_ptr(creds_endpoint(c), endpoint), \
                   "%s: %s %s", what, c ? creds_region(c) : "-", c ? creds_endpoint(c) : "-");       \
                c = creds_free(c);                                                                   \
        } while (0)

        CHECK_RE(NULL, "eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com",
                 "region from [default] in config");
        env_set("AWS_PROFILE", "work");
        CHECK_RE(NULL, "eu-central-1", "https://dynamodb.eu-central-1.amazonaws.com",
                 "region from [profile work], not its sub-section nor [work]");
        env_set("AWS_DEFAULT_REGION", "us-west-1");
        CHECK_RE(NULL, "us-west-1", "https://dynamodb.us-west-1.amazonaws.com",
                 "AWS_DEFAULT_REGION beats config");
        env_set("AWS_REGION", "cn-north-1");
        CHECK_RE(NULL, "cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn",
                 "AWS_REGION beats AWS_DEFAULT_REGION; China's domain");
        CHECK_RE(&((CredsOptions){ .region = "ap-northeast-1" }), "ap-northeast-1",
                 "https://dynamodb.ap-northeast-1.amazonaws.com",
                 "the caller's region beats the environment");
        env_set("AWS_ENDPOINT_URL", "http://127.0.0.1:8000");
        CHECK_RE(NULL, "cn-north-1", "http://127.0.0.1:8000", "AWS_ENDPOINT_URL");
        env_set("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8001");
        CHECK_RE(NULL, "cn-north-1", "http://127.0.0.1:8001",
                 "AWS_ENDPOINT_URL_DYNAMODB beats AWS_ENDPOINT_URL");
        CHECK_RE(&((CredsOptions){ .endpoint = "http://127.0.0.1:8002" }), "cn-north-1",
                 "http://127.0.0.1:8002", "the caller's endpoint beats the environment");

        env_reset();
        files_reset();
        CHECK_RE(NULL, NULL, NULL, "no region, no endpoint: neither");
        CHECK_RE(&((CredsOptions){ .endpoint = "http://127.0.0.1:8002" }), CREDS_FALLBACK_SIGNING_REGION,
                 "http://127.0.0.1:8002", "an endpoint without a region: signed for the fallback region");
#undef CHECK_RE

        c = NULL;
        is_int(creds_new(event, &(CredsOptions){ .getenv = fake_getenv, .region = "eu-west-1/../x" }, &c),
               -EINVAL, "a region that cannot be one: -EINVAL");
        is_int(creds_new(event, &(CredsOptions){ .getenv = fake_getenv, .endpoint = "ftp://127.0.0.1/" },
                         &c),
               -EINVAL, "an endpoint that is not http(s): -EINVAL");
        ok(c == NULL, "and nothing is returned");
}

static void test_container_uri_rules(void)
{
        ok(creds_container_uri_allowed("http://127.0.0.1:8080/creds"), "http to 127.0.0.1 allowed");
        ok(creds_container_uri_allowed("http://127.1.2.3/creds"), "http to 127.0.0.0/8 allowed");
        ok(creds_container_uri_allowed("http://[::1]:80/creds"), "http to [::1] allowed");
        ok(creds_container_uri_allowed("http://localhost/creds"), "http to localhost allowed");
        ok(creds_container_uri_allowed("http://169.254.170.2/v2/creds"), "the ECS agent allowed");
        ok(creds_container_uri_allowed("http://169.254.170.23/v1/creds"),
           "the EKS pod identity agent allowed");
        ok(creds_container_uri_allowed("http://[fd00:ec2::23]/v1/creds"), "the EKS agent on IPv6 allowed");
        ok(creds_container_uri_allowed("https://creds.example.com/x"), "https anywhere allowed");
        ok(!creds_container_uri_allowed("http://creds.example.com/x"), "http elsewhere refused");
        ok(!creds_container_uri_allowed("http://169.254.169.254/x"), "http to IMDS's address refused");
        ok(!creds_container_uri_allowed("http://127.0.0.1@example.com/x"), "user info refused");
        ok(!creds_container_uri_allowed("http://127.0.0.1.example.com/x"),
           "a name starting like loopback refused");
        ok(!creds_container_uri_allowed("ftp://127.0.0.1/x"), "other schemes refused");
        ok(!creds_container_uri_allowed("not a url"), "garbage refused");
}

static void test_container(Server *cs, Server *imds)
{
        char log[8192], exp[32];
        uint64_t want_exp;
        Got g;

        env_reset();
        server_reset(cs);
        server_reset(imds);
        snprintf(cs->expect_auth, sizeof(cs->expect_auth), "Sekr1t-auth");
        env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url(cs, "/v1/creds"));
        env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Sekr1t-auth");
        iso8601_in(3600, exp);
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "ASIACONTAINER1") && streq(g.secret, "Sekr1t-secret-1") &&
                   streq(g.token, "Sekr1t-token-1"),
           "container endpoint (full URI) with the authorization token");
        is_str(g.source, "container endpoint", "source: container endpoint");
        want_exp = (uint64_t)time(NULL) * USEC_PER_SEC + 3600 * USEC_PER_SEC;
        ok(g.expiration + 5 * USEC_PER_SEC > want_exp && g.expiration < want_exp + 5 * USEC_PER_SEC,
           "its expiration is read");
        server_log(cs, log, sizeof(log));
        is_str(log, "GET /v1/creds\n", "one GET");

        write_file(path_in(tmp, "container-token"), "Sekr1t-auth-file\n");
        snprintf(cs->expect_auth, sizeof(cs->expect_auth), "Sekr1t-auth-file");
        env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path_in(tmp, "container-token"));
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "ASIACONTAINER2"), "the token file beats the token variable");

        /* The relative URI goes to the agent's address: here the test's server. */
        server_reset(cs);
        snprintf(cs->expect_auth, sizeof(cs->expect_auth), "Sekr1t-auth-file");
        env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url(imds, "/v1/creds"));
        env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/abc");
        {
                char host[64];

                snprintf(host, sizeof(host), "http://127.0.0.1:%d", cs->port);
                g = fetch_once(&(CredsOptions){ .container_host = host });
        }
        server_log(cs, log, sizeof(log));
        ok(g.error == 0 && streq(g.id, "ASIACONTAINER1") && streq(log, "GET /v2/creds/abc\n"),
           "the relative URI beats the full one");
        is_int(atomic_load(&imds->accepted), 0, "the full URI's server was not asked");

        /* Before the container: the files. After it: nothing, even when it fails. */
        write_shared_files();
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "AKIAFILEDEFAULT"),
           "the shared credentials file beats the container endpoint");
        files_reset();

        env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", NULL);
        env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url(cs, "/v1/creds"));
        env_set("AWS_EC2_METADATA_DISABLED", NULL);
        env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server_url(imds, ""));
        snprintf(cs->expect_auth, sizeof(cs->expect_auth), "Sekr1t-something-else");
        g = fetch_once(NULL);
        is_int(g.error, -EACCES, "the container endpoint refuses the token: -EACCES");
        ok(strstr(g.message, "HTTP 401") && !strstr(g.message, "Sekr1t"),
           "the message says why, not the token");
        {
                char url[128];

                snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/creds", closed_port());
                env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", url);
                g = fetch_once(NULL);
                is_int(g.error, -ECONNREFUSED, "the container endpoint is down: -ECONNREFUSED");
        }
        is_int(atomic_load(&imds->accepted), 0, "a failing container endpoint does not lead to IMDS");
        env_set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path_in(tmp, "missing"));
        env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI", server_url(cs, "/v1/creds"));
        g = fetch_once(NULL);
        is_int(g.error, -ENOENT, "a missing token file: -ENOENT");
        unlink(path_in(tmp, "container-token"));
}

static void test_imds(Server *imds)
{
        char log[8192];
        Got g;

        env_reset();
        server_reset(imds);
        env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server_url(imds, "/"));
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "IMDS disabled, its endpoint set: -ENOKEY");
        is_int(atomic_load(&imds->accepted), 0,
               "AWS_EC2_METADATA_DISABLED=true: no connection to IMDS at all");
        env_set("AWS_EC2_METADATA_DISABLED", "TRUE");
        g = fetch_once(NULL);
        ok(g.error == -ENOKEY && atomic_load(&imds->accepted) == 0, "TRUE counts too");

        env_set("AWS_EC2_METADATA_DISABLED", "false");
        g = fetch_once(NULL);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS1") && streq(g.secret, "Sekr1t-secret-1") &&
                   streq(g.token, "Sekr1t-token-1"),
           "IMDSv2: credentials of the instance's role");
        is_str(g.source, "IMDS", "source: IMDS");
        server_log(imds, log, sizeof(log));
        is_str(log, "PUT /latest/api/token\nGET " IMDS_DIR "\nGET " IMDS_DIR "test-role\n",
               "a session token first, then the role, then its credentials");

        server_reset(imds);
        atomic_store(&imds->no_role, true);
        g = fetch_once(NULL);
        is_int(g.error, -ENOKEY, "no role attached: -ENOKEY");

        server_reset(imds);
        {
                _cleanup_(creds_freep) Creds *c = creds_make(NULL);
                Got a = { 0 }, b = { 0 }, d = { 0 };

                creds_get(c, on_creds, &a, NULL);
                creds_get(c, on_creds, &b, NULL);
                creds_get(c, on_creds, &d, NULL);
                run_until(&d.calls, 1, 5 * USEC_PER_SEC);
                ok(a.calls == 1 && b.calls == 1 && d.calls == 1 && a.error == 0 &&
                           streq(a.id, "ASIAIMDS1") && streq(b.id, "ASIAIMDS1") && streq(d.id, "ASIAIMDS1"),
                   "three waiters, one answer");
                ok(atomic_load(&imds->token_puts) == 1 && atomic_load(&imds->served) == 1, "from one fetch");
                g = fetch(c);
                ok(g.error == 0 && streq(g.id, "ASIAIMDS1") && atomic_load(&imds->served) == 1,
                   "an hour from expiry: served from the cache");

                /* The service restarted: the session token is refused once. */
                atomic_store(&imds->reject_token_once, true);
                creds_invalidate(c);
                g = fetch(c);
                ok(g.error == 0 && streq(g.id, "ASIAIMDS2"), "a refused session token is replaced, once");
                is_int(atomic_load(&imds->token_puts), 2, "with a second PUT");
        }
}

static void test_imds_refresh(Server *imds)
{
        _cleanup_(creds_freep) Creds *c = NULL;
        uint64_t until;
        Got g;

        env_reset();
        server_reset(imds);
        env_set("AWS_EC2_METADATA_DISABLED", NULL);
        env_set("AWS_EC2_METADATA_SERVICE_ENDPOINT", server_url(imds, ""));

        /* Margin 1 s, credentials for 3 s: a background refresh starts at expiry - 2 s. */
        atomic_store(&imds->expires_in_sec, 3);
        c = creds_make(&(CredsOptions){ .refresh_margin_usec = 1 * USEC_PER_SEC });
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS1"), "short-lived credentials");
        until = now_monotonic_usec() + 3 * USEC_PER_SEC;
        while (atomic_load(&imds->served) < 2 && now_monotonic_usec() < until)
                sd_event_run(event, 50 * USEC_PER_MSEC);
        is_int(atomic_load(&imds->served), 2, "refreshed in the background before expiry");
        until = now_monotonic_usec() + 300 * USEC_PER_MSEC; /* let the answer arrive */
        while (now_monotonic_usec() < until)
                sd_event_run(event, 50 * USEC_PER_MSEC);
        atomic_store(&imds->expires_in_sec, 3600);
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS2") && atomic_load(&imds->served) == 2,
           "the next creds_get() has the new ones at once");
        is_int(atomic_load(&imds->token_puts), 1, "the session token was reused");
        c = creds_free(c);

        /* Margin 5 s, credentials for 3 s: within the margin at once, so every get fetches. */
        server_reset(imds);
        atomic_store(&imds->expires_in_sec, 3);
        c = creds_make(&(CredsOptions){ .refresh_margin_usec = 5 * USEC_PER_SEC });
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS1"), "credentials inside the margin are still handed out");
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS2") && atomic_load(&imds->served) == 2,
           "but the next creds_get() fetches again first");

        /* The refresh fails while the cached ones still hold: those, and no storm of retries. */
        atomic_store(&imds->fail_credentials, true);
        g = fetch(c);
        ok(g.error == 0 && streq(g.id, "ASIAIMDS2"), "a failed refresh: the unexpired cached credentials");
        {
                int before = atomic_load(&imds->requests);

                g = fetch(c);
                ok(g.error == 0 && streq(g.id, "ASIAIMDS2") && atomic_load(&imds->requests) == before,
                   "and for a while no new attempt");
        }
}

int main(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        static Server container_server, imds_server;
        char log_path[512], *captured = NULL;
        int saved_stderr, log_fd;
        size_t n = 0;
        FILE *f;

        signal(SIGPIPE, SIG_IGN);
        /* Belt and braces: the process environment also keeps IMDS away. */
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        snprintf(tmp, sizeof(tmp), "/tmp/test-creds.XXXXXX");
        if (!mkdtemp(tmp) || sd_event_new(&e) < 0)
                abort();
        event = e;
        snprintf(home, sizeof(home), "%s/home", tmp);
        snprintf(aws_dir, sizeof(aws_dir), "%s/.aws", home);
        snprintf(creds_dir, sizeof(creds_dir), "%s/credentials", tmp);
        if (mkdir(home, 0700) < 0 || mkdir(aws_dir, 0700) < 0 || mkdir(creds_dir, 0700) < 0)
                abort();

        /* Everything logged goes to a file, to be searched for secrets at the end. */
        snprintf(log_path, sizeof(log_path), "%s/stderr", tmp);
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        saved_stderr = dup(STDERR_FILENO);
        if (log_fd < 0 || saved_stderr < 0 || dup2(log_fd, STDERR_FILENO) < 0)
                abort();
        close(log_fd);
        log_set_max_level(LOG_DEBUG);
        unsetenv("JOURNAL_STREAM");

        server_start(&container_server, container_handler, "ASIACONTAINER");
        server_start(&imds_server, imds_handler, "ASIAIMDS");

        test_local_sources();
        test_cache_and_waiters();
        test_region_endpoint();
        test_container_uri_rules();
        test_container(&container_server, &imds_server);
        test_imds(&imds_server);
        test_imds_refresh(&imds_server);

        fflush(stderr);
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        f = fopen(log_path, "re");
        if (f) {
                captured = calloc(1, 1 << 20);
                n = captured ? fread(captured, 1, (1 << 20) - 1, f) : 0;
                fclose(f);
        }
        ok(captured && n > 0 && strstr(captured, "key id AKIAENV") && strstr(captured, "key id ASIAIMDS"),
           "debug logging ran (%zu bytes) and names key ids", n);
        ok(captured && !strstr(captured, "Sekr1t"),
           "no secret, session token or authorization token in the log");
        if (captured && strstr(captured, "Sekr1t"))
                fputs(captured, stderr);
        free(captured);
        files_reset();
        unlink(log_path);
        unlink(path_in(tmp, "other-credentials"));
        rmdir(creds_dir);
        rmdir(aws_dir);
        rmdir(home);
        rmdir(tmp);
        return tap_done();
}
