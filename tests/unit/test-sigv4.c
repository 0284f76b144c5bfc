/* SPDX-License-Identifier: MIT */
/* sigv4.c against three references:
 * 1. the AWS SigV4 suite and the local DynamoDB case in shared/testdata/sigv4 (beside the source
 *    tree, or $NB_SIGV4_DIR): canonical request, string to sign, signature, Authorization and the
 *    headers to add, byte for byte;
 * 2. botocore's signer (tests/unit/sigv4-botocore.py under /usr/bin/python3, Debian's
 *    python3-botocore): the same requests must get the same Authorization;
 * 3. small cases of its own: refusals, path and query corner cases, no secret in any output.
 * A missing reference is reported as a skipped point with the reason. */

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>

#include "sigv4.h"
#include "tap.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete)

#define SECRET      "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_2015      1440938160 /* 2015-08-30T12:36:00Z, the suite's time */
#define MAX_FILE    (4 * 1024 * 1024)
#define MAX_HEADERS 32

static void skip(const char *fmt, ...) _printf_(1, 2);
static void skip(const char *fmt, ...)
{
        va_list ap;

        printf("ok %d # SKIP ", ++tap_count);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

static void diag_text(const char *label, const char *text)
{
        printf("# %s:\n", label);
        for (const char *p = text ? text : "(null)"; *p;) {
                size_t n = strcspn(p, "\n");

                printf("#   %.*s\n", (int)n, p);
                p += n + (p[n] == '\n');
        }
}

/* Reads a whole stream (a file or a pipe) into a NUL-terminated buffer. */
static char *read_stream(FILE *f, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, alloc = 0, k;

        do {
                if (len + 4096 + 1 > alloc) {
                        char *p;

                        if (alloc > MAX_FILE)
                                return NULL;
                        alloc = MAX(alloc * 2, 8192);
                        p = realloc(buf, alloc);
                        if (!p)
                                return NULL;
                        buf = p;
                }
                k = fread(buf + len, 1, alloc - len - 1, f);
                len += k;
        } while (k > 0);
        if (ferror(f))
                return NULL;
        buf[len] = 0;
        if (ret_len)
                *ret_len = len;
        return TAKE_PTR(buf);
}

static char *read_file(const char *dir, const char *name, size_t *ret_len)
{
        char path[PATH_MAX];
        char *buf;
        FILE *f;

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
                return NULL;
        f = fopen(path, "re");
        if (!f)
                return NULL;
        buf = read_stream(f, ret_len);
        fclose(f);
        return buf;
}

/* ---- request.txt ----------------------------------------------------------------------------- */

typedef struct Parsed {
        char *method, *path, *query;
        Sigv4Header headers[MAX_HEADERS];
        char *names[MAX_HEADERS], *values[MAX_HEADERS];
        size_t n_headers;
        const char *body;
        size_t body_len;
} Parsed;

static void parsed_done(Parsed *p)
{
        for (size_t i = 0; i < p->n_headers; i++) {
                free(p->names[i]);
                free(p->values[i]);
        }
        *p = (Parsed){ 0 };
}

/* Removes every '\r' in place, as the upstream harness does. */
static size_t strip_cr(char *text, size_t len)
{
        size_t k = 0;

        for (size_t i = 0; i < len; i++)
                if (text[i] != '\r')
                        text[k++] = text[i];
        text[k] = 0;
        return k;
}

/* "METHOD URI HTTP/1.1" (the URI may hold spaces), "Name:value" lines (one starting with
 * whitespace continues the previous value, joined with '\n' as it was sent), an empty line, the
 * body. Points into text, which it modifies. */
static int parse_request(char *text, size_t len, Parsed *p)
{
        char *eol, *uri, *end, *line;

        *p = (Parsed){ 0 };
        len = strip_cr(text, len);
        eol = strchr(text, '\n');
        if (!eol)
                eol = text + len;
        *eol = 0;
        uri = strchr(text, ' ');
        end = strrchr(text, ' ');
        if (!uri || uri == end || !streq(end, " HTTP/1.1"))
                return -EINVAL;
        *uri++ = 0;
        *end = 0;
        p->method = text;
        p->path = uri;
        p->query = strchr(uri, '?');
        if (p->query)
                *p->query++ = 0;
        p->body = text + len;
        for (line = eol < text + len ? eol + 1 : text + len; line < text + len;) {
                char *nl = strchr(line, '\n'), *colon;

                if (nl)
                        *nl = 0;
                if (!*line) {
                        p->body = nl ? nl + 1 : text + len;
                        break;
                }
                if (*line == ' ' || *line == '\t') {
                        char *joined;

                        if (p->n_headers == 0)
                                return -EINVAL;
                        if (asprintf(&joined, "%s\n%s", p->values[p->n_headers - 1], line) < 0)
                                return -ENOMEM;
                        free(p->values[p->n_headers - 1]);
                        p->values[p->n_headers - 1] = joined;
                } else {
                        colon = strchr(line, ':');
                        if (!colon || p->n_headers == MAX_HEADERS)
                                return -EINVAL;
                        *colon = 0;
                        p->names[p->n_headers] = strdup(line);
                        p->values[p->n_headers] = strdup(colon + 1);
                        p->n_headers++;
                        if (!p->names[p->n_headers - 1] || !p->values[p->n_headers - 1])
                                return -ENOMEM;
                }
                if (!nl)
                        break;
                line = nl + 1;
        }
        p->body_len = (size_t)(text + len - p->body);
        for (size_t i = 0; i < p->n_headers; i++)
                p->headers[i] = (Sigv4Header){ p->names[i], p->values[i] };
        return 0;
}

/* ---- the suite ------------------------------------------------------------------------------- */

static bool is_added_header(const char *name)
{
        return !strcasecmp(name, "x-amz-date") || !strcasecmp(name, "x-amz-security-token") ||
               !strcasecmp(name, "x-amz-content-sha256") || !strcasecmp(name, "authorization");
}

/* The signer's headers must be exactly the X-Amz-*, x-amz-content-sha256 and Authorization lines of
 * header-signed-request.txt (in any order: the file's order is aws-c-auth's). Also returns the
 * file's Authorization value. */
static bool added_headers_match(const Sigv4Result *res, char *signed_req, const char **ret_auth)
{
        bool used[SIGV4_HEADERS_MAX] = { false };
        size_t n_file = 0;
        bool good = true;

        *ret_auth = NULL;
        strip_cr(signed_req, strlen(signed_req));
        for (char *line = signed_req, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                char *colon;

                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                colon = strchr(line, ':');
                if (line == signed_req || !colon)
                        continue; /* the request line, or a folded value */
                *colon = 0;
                if (!is_added_header(line))
                        continue;
                if (!strcasecmp(line, "authorization"))
                        *ret_auth = colon + 1;
                n_file++;
                bool found = false;
                for (size_t i = 0; i < res->n_headers && !found; i++)
                        if (!used[i] && !strcasecmp(res->headers[i].name, line) &&
                            streq(res->headers[i].value, colon + 1))
                                found = used[i] = true;
                if (!found) {
                        printf("#   %s:%s is not among the headers returned\n", line, colon + 1);
                        good = false;
                }
        }
        if (n_file != res->n_headers) {
                printf("#   %zu headers returned, %zu added in the file\n", res->n_headers, n_file);
                good = false;
        }
        return good;
}

static int json_time(const cJSON *ctx, time_t *ret)
{
        const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "timestamp"));
        struct tm tm = { 0 };
        const char *end;

        if (!ts)
                return -EINVAL;
        end = strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
                return -EINVAL;
        *ret = timegm(&tm);
        return 0;
}

static const char *json_str(const cJSON *o, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

static void run_case(const char *dir, const char *name)
{
        _cleanup_free_ char *ctx_text = NULL, *req_text = NULL, *want_canon = NULL, *want_sts = NULL,
                            *want_sig = NULL, *want_signed = NULL;
        _cleanup_(cJSON_Deletep) cJSON *ctx = NULL;
        _cleanup_(parsed_done) Parsed p = { 0 };
        _cleanup_(sigv4_result_done) Sigv4Result res = { 0 };
        const cJSON *creds;
        const char *want_auth;
        size_t req_len = 0;
        time_t when = 0;

        ctx_text = read_file(dir, "context.json", NULL);
        req_text = read_file(dir, "request.txt", &req_len);
        want_canon = read_file(dir, "header-canonical-request.txt", NULL);
        want_sts = read_file(dir, "header-string-to-sign.txt", NULL);
        want_sig = read_file(dir, "header-signature.txt", NULL);
        want_signed = read_file(dir, "header-signed-request.txt", NULL);
        ctx = ctx_text ? cJSON_Parse(ctx_text) : NULL;
        if (!ok(ctx && req_text && want_canon && want_sts && want_sig && want_signed, "%s: case files read",
                name))
                return;
        if (!ok(parse_request(req_text, req_len, &p) >= 0 && json_time(ctx, &when) >= 0,
                "%s: request.txt and context.json parse", name))
                return;

        /* This signer supports every mode the suite uses (normalize=false, sign_body,
         * omit_session_token), so no case is skipped. The local case's extension key turns
         * sign_body into "hash the body without adding x-amz-content-sha256", which is what
         * DynamoDB gets anyway: the body's hash is always in the canonical request. */
        creds = cJSON_GetObjectItem(ctx, "credentials");
        Sigv4Request req = {
                .method = p.method,
                .path = p.path,
                .query = p.query,
                .headers = p.headers,
                .n_headers = p.n_headers,
                .body = p.body,
                .body_len = p.body_len,
                .keep_path = !cJSON_IsTrue(cJSON_GetObjectItem(ctx, "normalize")),
                .add_content_sha256 =
                        cJSON_IsTrue(cJSON_GetObjectItem(ctx, "sign_body")) &&
                        !cJSON_IsFalse(cJSON_GetObjectItem(ctx, "add_x_amz_content_sha256_header")),
                .omit_session_token = cJSON_IsTrue(cJSON_GetObjectItem(ctx, "omit_session_token")),
        };
        Sigv4Credentials cred = {
                .access_key_id = json_str(creds, "access_key_id"),
                .secret_access_key = json_str(creds, "secret_access_key"),
                .session_token = json_str(creds, "token"),
        };
        if (!is_int(sigv4_sign(&req, &cred, json_str(ctx, "region"), json_str(ctx, "service"), when, &res),
                    0, "%s: signs", name))
                return;
        is_str(res.canonical_request, want_canon, "%s: canonical request", name);
        is_str(res.string_to_sign, want_sts, "%s: string to sign", name);
        is_str(res.signature, want_sig, "%s: signature", name);
        ok(added_headers_match(&res, want_signed, &want_auth), "%s: headers to add", name);
        is_str(res.authorization, want_auth, "%s: Authorization header", name);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_suite(const char *base)
{
        char dir[PATH_MAX + 8], path[PATH_MAX + 256 + 8];
        char *names[128];
        size_t n = 0;
        struct dirent *e;
        DIR *d;

        snprintf(dir, sizeof(dir), "%s/v4", base);
        d = opendir(dir);
        if (!ok(d, "the official suite is in %s", dir))
                return;
        while ((e = readdir(d)) && n < ELEMENTSOF(names))
                if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name)))
                        n++;
        closedir(d);
        qsort(names, n, sizeof(char *), name_cmp);
        is_int(n, 38, "38 official cases");
        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                run_case(path, names[i]);
                free(names[i]);
        }
        snprintf(path, sizeof(path), "%s/local/dynamodb-putitem", base);
        run_case(path, "local/dynamodb-putitem");
}

/* shared/ sits beside the source tree; under distcheck the tree is a copy further down, so look in
 * each parent directory in turn. */
static bool find_vectors(char *base, size_t size)
{
        const char *src = getenv("NB_SRCDIR"), *override = getenv("NB_SIGV4_DIR");
        char up[64] = "";
        struct stat st;

        if (override) {
                snprintf(base, size, "%s", override);
                return stat(base, &st) == 0;
        }
        for (int depth = 0; depth < 6; depth++) {
                snprintf(base, size, "%s/%s../shared/testdata/sigv4", src ? src : ".", up);
                if (stat(base, &st) == 0)
                        return true;
                strcat(up, "../");
        }
        snprintf(base, size, "%s/../shared/testdata/sigv4", src ? src : ".");
        return false;
}

/* ---- botocore ---------------------------------------------------------------------------------- */

static int hex_decode(const char *hex, unsigned char **ret, size_t *ret_len)
{
        size_t n = strlen(hex);
        unsigned char *out;

        if (n % 2)
                return -EINVAL;
        out = malloc(n / 2 + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;

                if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
                        free(out);
                        return -EINVAL;
                }
                out[i] = (unsigned char)v;
        }
        *ret = out;
        *ret_len = n / 2;
        return 0;
}

static const char *result_header(const Sigv4Result *res, const char *name)
{
        for (size_t i = 0; i < res->n_headers; i++)
                if (!strcasecmp(res->headers[i].name, name))
                        return res->headers[i].value;
        return NULL;
}

static void botocore_case(const cJSON *c)
{
        _cleanup_(sigv4_result_done) Sigv4Result res = { 0 };
        _cleanup_free_ unsigned char *body = NULL;
        Sigv4Header headers[MAX_HEADERS];
        const cJSON *hs = cJSON_GetObjectItem(c, "headers"), *h;
        const char *name = json_str(c, "name") ?: "?",
                   *want_token = json_str(c, "want_x_amz_security_token");
        const cJSON *t = cJSON_GetObjectItem(c, "time");
        size_t n = 0, body_len = 0;
        int r;

        cJSON_ArrayForEach(h, hs)
        {
                if (n == MAX_HEADERS || !cJSON_IsArray(h) || cJSON_GetArraySize(h) != 2)
                        break;
                headers[n++] = (Sigv4Header){ cJSON_GetStringValue(cJSON_GetArrayItem(h, 0)),
                                              cJSON_GetStringValue(cJSON_GetArrayItem(h, 1)) };
        }
        if (!ok(n == (size_t)cJSON_GetArraySize(hs) && cJSON_IsNumber(t) &&
                        hex_decode(json_str(c, "body_hex") ?: "", &body, &body_len) >= 0,
                "botocore %s: case readable", name))
                return;

        Sigv4Request req = {
                .method = json_str(c, "method"),
                .path = json_str(c, "path"),
                .query = json_str(c, "query"),
                .headers = headers,
                .n_headers = n,
                .body = body,
                .body_len = body_len,
        };
        Sigv4Credentials cred = { json_str(c, "access_key_id"), json_str(c, "secret_access_key"),
                                  json_str(c, "session_token") };
        r = sigv4_sign(&req, &cred, json_str(c, "region"), json_str(c, "service"), (time_t)t->valuedouble,
                       &res);
        if (!is_int(r, 0, "botocore %s: signs", name))
                return;
        if (!is_str(res.authorization, json_str(c, "want_authorization"), "botocore %s: same Authorization",
                    name)) {
                diag_text("ours", res.canonical_request);
                diag_text("botocore's", json_str(c, "botocore_canonical_request"));
        }
        ok(streq_ptr(result_header(&res, "X-Amz-Date"), json_str(c, "want_x_amz_date")) &&
                   streq_ptr(result_header(&res, "X-Amz-Security-Token"), want_token) &&
                   res.n_headers == (want_token ? 3 : 2),
           "botocore %s: same X-Amz-Date and X-Amz-Security-Token, nothing else added", name);
}

static void run_botocore(void)
{
        const char *src = getenv("NB_SRCDIR") ?: ".";
        _cleanup_free_ char *script = NULL, *cmd = NULL, *out = NULL;
        _cleanup_(cJSON_Deletep) cJSON *doc = NULL;
        const cJSON *c;
        FILE *f;
        int status;

        if (access("/usr/bin/python3", X_OK) < 0) {
                skip("botocore cross-check: /usr/bin/python3 is not there");
                return;
        }
        if (asprintf(&script, "%s/tests/unit/sigv4-botocore.py", src) < 0 || strchr(script, '\'') ||
            asprintf(&cmd, "/usr/bin/python3 '%s'", script) < 0) {
                ok(false, "botocore cross-check: command for %s", script ? script : "?");
                return;
        }
        if (!ok(access(script, R_OK) == 0, "botocore cross-check: %s is there", script))
                return;
        fflush(stdout);
        f = popen(cmd, "r");
        if (!ok(f, "botocore cross-check: %s runs", cmd))
                return;
        out = read_stream(f, NULL);
        status = pclose(f);
        doc = out ? cJSON_Parse(out) : NULL;
        if (!ok(status == 0 && doc, "botocore cross-check: %s printed its cases", script)) {
                diag_text("output", out);
                return;
        }
        if (json_str(doc, "skip")) {
                skip("botocore cross-check: %s (install python3-botocore)", json_str(doc, "skip"));
                return;
        }
        printf("# botocore %s\n", json_str(doc, "botocore") ?: "?");
        ok(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "cases")) >= 5, "botocore signed its cases");
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) botocore_case(c);
}

/* ---- cases of our own -------------------------------------------------------------------------- */

static const Sigv4Credentials example_cred = { "AKIDEXAMPLE", SECRET, NULL };

/* The second line of the canonical request. */
static void check_path(const char *path, bool keep_path, const char *want)
{
        _cleanup_(sigv4_result_done) Sigv4Result res = { 0 };
        Sigv4Header h[] = { { "host", "example.amazonaws.com" } };
        Sigv4Request req = {
                .method = "GET", .path = path, .headers = h, .n_headers = 1, .keep_path = keep_path
        };
        char got[256] = "";

        if (sigv4_sign(&req, &example_cred, "us-east-1", "service", T_2015, &res) == 0)
                sscanf(res.canonical_request, "%*[^\n]\n%255[^\n]", got);
        /* ok() rather than is_str(): GCC's -Wformat-overflow misreads is_str() here under UBSan. */
        if (!ok(streq(got, want), "path \"%s\"%s is signed as %s", path ? path : "(null)",
                keep_path ? " (kept)" : "", want))
                printf("#   got \"%s\"\n", got);
}

/* The third line of the canonical request (empty when there is no query). */
static void check_query(const char *query, const char *want)
{
        _cleanup_(sigv4_result_done) Sigv4Result res = { 0 };
        Sigv4Header h[] = { { "host", "example.amazonaws.com" } };
        Sigv4Request req = { .method = "GET", .path = "/", .query = query, .headers = h, .n_headers = 1 };
        const char *line = NULL;

        if (sigv4_sign(&req, &example_cred, "us-east-1", "service", T_2015, &res) == 0) {
                line = strchr(res.canonical_request, '\n');
                line = line ? strchr(line + 1, '\n') : NULL;
        }
        ok(line && strncmp(line + 1, want, strlen(want)) == 0 && line[1 + strlen(want)] == '\n',
           "query \"%s\" is signed as \"%s\"", query, want);
}

static void test_paths_and_queries(void)
{
        check_path(NULL, false, "/");
        check_path("", false, "/");
        check_path("/a/b/../../../c", false, "/c");
        check_path("/a/./b/.", false, "/a/b");
        check_path("/a//b//", false, "/a/b/");
        check_path("/..", false, "/");
        check_path("/a b/%41/\xc3\xbc", false, "/a%20b/%2541/%C3%BC");
        check_path("//a/./", true, "//a/./");
        check_query("", "");
        check_query("b=2&a=1&a=0", "a=0&a=1&b=2");
        check_query("a&&b=", "a=&b=");
        check_query("%zz=%e1%88%b4&=x&c=a+b c", "=x&%25zz=%E1%88%B4&c=a%2Bb%20c");
        /* Sorted by key first: "a-b" comes after "a" even though '-' < '='. */
        check_query("a-b=1&a=2", "a=2&a-b=1");
}

static void test_refusals(void)
{
        Sigv4Header h[2] = { { "host", "dynamodb.us-east-1.amazonaws.com" }, { "x", "y" } };
        Sigv4Request req = { .method = "POST", .path = "/", .headers = h, .n_headers = 2 };
        Sigv4Credentials cred = example_cred;
        Sigv4Result res;
        struct {
                const char *name, *value, *what;
        } bad_headers[] = {
                { "bad name", "x", "a header name with a space" },
                { "", "x", "an empty header name" },
                { "x\xc3\xbc", "x", "a header name that is not ASCII" },
                { "X-Amz-Date", "20150830T123600Z", "an X-Amz-Date of the caller's" },
                { "authorization", "x", "an Authorization of the caller's" },
                { "x", "a\r\nX-Evil: 1", "a value with a line break that is no fold" },
                { "x", "a\nb", "a value with a bare LF" },
                { "x", "a\rb", "a value with a bare CR" },
                { "x", "a\001b", "a value with a control character" },
                { "x", NULL, "a NULL value" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad_headers); i++) {
                h[1] = (Sigv4Header){ bad_headers[i].name, bad_headers[i].value };
                memset(&res, 0x55, sizeof(res));
                is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
                       "%s is refused", bad_headers[i].what);
        }
        ok(!res.authorization && res.n_headers == 0, "and the result is left empty");

        h[1] = (Sigv4Header){ "x", "a\r\n  b\n\tc" };
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0,
               "a folded value is signed");
        ok(strstr(res.canonical_request, "\nx:a b c\n") != NULL, "as one line");
        sigv4_result_done(&res);

        h[1] = (Sigv4Header){ "X-Amz-Security-Token", "tok" };
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0,
               "without credentials' token, a token header is the caller's to sign");
        sigv4_result_done(&res);
        cred.session_token = "tok";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "with one, a token header of the caller's is refused");
        h[1] = (Sigv4Header){ "x", "y" };

        cred.session_token = "";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "an empty token is refused");
        cred.session_token = "tok\r\nX-Evil: 1";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "a token with a line break is refused");
        cred = example_cred;
        cred.secret_access_key = NULL;
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "no secret is refused");
        cred.secret_access_key = "";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "an empty secret is refused");
        cred = example_cred;
        cred.access_key_id = "AKID/X";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "an access key with '/' is refused");
        cred = example_cred;
        is_int(sigv4_sign(&req, &cred, "us-east-1/x", "dynamodb", T_2015, &res), -EINVAL,
               "a region with '/' is refused");
        is_int(sigv4_sign(&req, &cred, "us-east-1", "", T_2015, &res), -EINVAL,
               "an empty service is refused");
        is_int(sigv4_sign(&req, &cred, NULL, "dynamodb", T_2015, &res), -EINVAL, "no region is refused");
        req.path = "no-slash";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "a path without a leading '/' is refused");
        req.path = "/";
        req.method = "PO ST";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "a method with a space is refused");
        req.method = "POST";
        req.body_len = 3;
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), -EINVAL,
               "a body length without a body is refused");
        req.body_len = 0;
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", -(time_t)40000000000, &res), -EINVAL,
               "a time before year 1000 is refused");
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", (time_t)400000000000, &res), -EINVAL,
               "a time after year 9999 is refused");
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", (time_t)253402300799, &res), 0,
               "9999-12-31T23:59:59Z is signed");
        is_str(res.amz_date, "99991231T235959Z", "with its date");
        sigv4_result_done(&res);
        sigv4_result_done(NULL);
}

/* What the DynamoDB client sends: the headers it gets back, in order, and no secret anywhere. */
static void test_dynamodb_request(void)
{
        static const char body[] = "{\"TableName\":\"notebooks\"}";
        Sigv4Header h[] = {
                { "host", "dynamodb.us-east-1.amazonaws.com" },
                { "content-type", "application/x-amz-json-1.0" },
                { "x-amz-target", "DynamoDB_20120810.PutItem" },
        };
        Sigv4Request req = { .method = "POST",
                             .path = "/",
                             .headers = h,
                             .n_headers = 3,
                             .body = body,
                             .body_len = strlen(body) };
        Sigv4Credentials cred = { "AKIDEXAMPLE", "VERYSECRETKEYVALUE", NULL };
        Sigv4Result res, copy;

        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0, "a PutItem is signed");
        ok(res.n_headers == 2 && streq(res.headers[0].name, "X-Amz-Date") &&
                   streq(res.headers[0].value, "20150830T123600Z") &&
                   streq(res.headers[1].name, "Authorization") &&
                   streq(res.headers[1].value, res.authorization),
           "it gets X-Amz-Date and Authorization to add");
        ok(strstr(res.authorization, "SignedHeaders=content-type;host;x-amz-date;x-amz-target,") != NULL,
           "no x-amz-content-sha256 is added or signed");
        ok(strstr(res.canonical_request, res.content_sha256) != NULL,
           "the body's hash is in the canonical request");
        sigv4_result_done(&res);

        cred.session_token = "SESSIONTOKENVALUE";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0, "signs with a token");
        /* The result may be moved: its header values live on the heap. */
        copy = res;
        res = (Sigv4Result){ 0 };
        ok(copy.n_headers == 3 && streq(copy.headers[1].name, "X-Amz-Security-Token") &&
                   streq(copy.headers[1].value, "SESSIONTOKENVALUE") &&
                   copy.headers[1].value != cred.session_token,
           "it gets X-Amz-Security-Token to add, between X-Amz-Date and Authorization");
        ok(strstr(copy.canonical_request, "\nx-amz-security-token:SESSIONTOKENVALUE\n") != NULL &&
                   strstr(copy.authorization,
                          "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"),
           "and the token is signed");
        ok(!strstr(copy.authorization, "VERYSECRET") && !strstr(copy.canonical_request, "VERYSECRET") &&
                   !strstr(copy.string_to_sign, "VERYSECRET"),
           "the secret key appears in no output");
        sigv4_result_done(&copy);

        req.omit_session_token = true;
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0,
               "signs with omit_session_token");
        ok(res.n_headers == 3 && !strstr(res.canonical_request, "SESSIONTOKENVALUE") &&
                   streq(res.headers[1].value, "SESSIONTOKENVALUE"),
           "the token is still returned to send, but not signed");
        sigv4_result_done(&res);

        req.omit_session_token = false;
        req.add_content_sha256 = true;
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", T_2015, &res), 0,
               "signs with add_content_sha256");
        ok(res.n_headers == 4 && streq(res.headers[2].name, "x-amz-content-sha256") &&
                   streq(res.headers[2].value, res.content_sha256) &&
                   strstr(res.canonical_request, "\nx-amz-content-sha256:") != NULL,
           "x-amz-content-sha256 is added and signed");
        sigv4_result_done(&res);
}

int main(void)
{
        char base[PATH_MAX];

        test_refusals();
        test_paths_and_queries();
        test_dynamodb_request();
        if (find_vectors(base, sizeof(base)))
                run_suite(base);
        else
                skip("the SigV4 test vectors are not at %s (set NB_SIGV4_DIR)", base);
        run_botocore();
        return tap_done();
}
