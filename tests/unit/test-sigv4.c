/* SPDX-License-Identifier: MIT */
/* Runs the AWS SigV4 test suite (shared/testdata/sigv4, beside the source tree) through
 * sigv4_sign(): every case's canonical request, string to sign, signature and Authorization
 * header must match byte for byte. */

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "sigv4.h"
#include "tap.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete)

static char *read_file(const char *dir, const char *name, size_t *ret_len)
{
        char path[1024];
        FILE *f;
        char *buf;
        long n;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "rb");
        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        if (buf) {
                buf[n] = 0;
                if (ret_len)
                        *ret_len = (size_t)n;
        }
        return buf;
}

/* The Authorization value from header-signed-request.txt. */
static const char *authorization_line(char *signed_req)
{
        for (char *line = strtok(signed_req, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, "Authorization:", 14) == 0)
                        return line + 14;
        return NULL;
}

typedef struct Parsed {
        char *method, *path, *query;
        Sigv4Header headers[32];
        char *names[32], *values[32];
        size_t n_headers;
        const char *body;
        size_t body_len;
} Parsed;

/* request.txt: "METHOD URI HTTP/1.1", "Name:value" lines (a line starting with whitespace folds
 * into the previous value), an empty line, the body. */
static int parse_request(char *text, size_t len, Parsed *p)
{
        char *eol = strchr(text, '\n'), *uri, *end, *line;

        *p = (Parsed){ 0 };
        if (!eol)
                eol = text + len;
        *eol = 0;
        uri = strchr(text, ' ');
        end = strstr(text, " HTTP/1.1");
        if (!uri || !end)
                return -EINVAL;
        *uri++ = 0;
        *end = 0;
        p->method = text;
        p->path = uri;
        p->query = strchr(uri, '?');
        if (p->query)
                *p->query++ = 0;
        line = eol < text + len ? eol + 1 : text + len;
        while (line < text + len) {
                char *nl = strchr(line, '\n'), *colon;

                if (nl)
                        *nl = 0;
                if (!*line) {
                        p->body = nl ? nl + 1 : text + len;
                        p->body_len = (size_t)(text + len - p->body);
                        break;
                }
                if ((*line == ' ' || *line == '\t') && p->n_headers > 0) {
                        char *prev = p->values[p->n_headers - 1], *joined;

                        if (asprintf(&joined, "%s\n%s", prev, line) < 0)
                                return -ENOMEM;
                        free(prev);
                        p->values[p->n_headers - 1] = joined;
                } else {
                        colon = strchr(line, ':');
                        if (!colon || p->n_headers == ELEMENTSOF(p->headers))
                                return -EINVAL;
                        *colon = 0;
                        p->names[p->n_headers] = strdup(line);
                        p->values[p->n_headers] = strdup(colon + 1);
                        p->n_headers++;
                }
                if (!nl)
                        break;
                line = nl + 1;
        }
        for (size_t i = 0; i < p->n_headers; i++)
                p->headers[i] = (Sigv4Header){ p->names[i], p->values[i] };
        return 0;
}

static void parsed_done(Parsed *p)
{
        for (size_t i = 0; i < p->n_headers; i++) {
                free(p->names[i]);
                free(p->values[i]);
        }
}

static bool json_true(const cJSON *ctx, const char *key)
{
        return cJSON_IsTrue(cJSON_GetObjectItem(ctx, key));
}

static void run_case(const char *dir, const char *name)
{
        _cleanup_free_ char *ctx_text = NULL, *req_text = NULL, *want_canon = NULL, *want_sts = NULL,
                            *want_sig = NULL, *want_signed = NULL;
        _cleanup_(cJSON_Deletep) cJSON *ctx = NULL;
        const cJSON *creds, *add_sha;
        Sigv4Result res = { 0 };
        Parsed p;
        size_t req_len = 0;
        struct tm tm = { 0 };
        const char *ts;
        int r;

        ctx_text = read_file(dir, "context.json", NULL);
        req_text = read_file(dir, "request.txt", &req_len);
        want_canon = read_file(dir, "header-canonical-request.txt", NULL);
        want_sts = read_file(dir, "header-string-to-sign.txt", NULL);
        want_sig = read_file(dir, "header-signature.txt", NULL);
        want_signed = read_file(dir, "header-signed-request.txt", NULL);
        ctx = ctx_text ? cJSON_Parse(ctx_text) : NULL;
        if (!ctx || !req_text || !want_canon || !want_sts || !want_sig || !want_signed) {
                ok(false, "%s: case files readable", name);
                return;
        }
        if (parse_request(req_text, req_len, &p) < 0) {
                ok(false, "%s: request.txt parses", name);
                parsed_done(&p);
                return;
        }
        creds = cJSON_GetObjectItem(ctx, "credentials");
        ts = cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "timestamp"));
        strptime(ts ? ts : "", "%Y-%m-%dT%H:%M:%SZ", &tm);
        add_sha = cJSON_GetObjectItem(ctx, "add_x_amz_content_sha256_header");

        Sigv4Request req = {
                .method = p.method,
                .path = p.path,
                .query = p.query,
                .headers = p.headers,
                .n_headers = p.n_headers,
                .body = p.body,
                .body_len = p.body_len,
                .keep_path = !json_true(ctx, "normalize"),
                /* sign_body adds the header, unless the case says otherwise (the DynamoDB case). */
                .add_content_sha256 = json_true(ctx, "sign_body") && !cJSON_IsFalse(add_sha),
                .omit_session_token = json_true(ctx, "omit_session_token"),
        };
        Sigv4Credentials cred = {
                .access_key_id = cJSON_GetStringValue(cJSON_GetObjectItem(creds, "access_key_id")),
                .secret_access_key = cJSON_GetStringValue(cJSON_GetObjectItem(creds, "secret_access_key")),
                .session_token = cJSON_GetStringValue(cJSON_GetObjectItem(creds, "token")),
        };
        r = sigv4_sign(&req, &cred, cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "region")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(ctx, "service")), timegm(&tm), &res);
        if (!is_int(r, 0, "%s: signs", name)) {
                parsed_done(&p);
                return;
        }
        is_str(res.canonical_request, want_canon, "%s: canonical request", name);
        is_str(res.string_to_sign, want_sts, "%s: string to sign", name);
        is_str(res.signature, want_sig, "%s: signature", name);
        is_str(res.authorization, authorization_line(want_signed), "%s: Authorization header", name);
        sigv4_result_done(&res);
        parsed_done(&p);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_suite(const char *base)
{
        char dir[2048], *names[128];
        size_t n = 0;
        DIR *d;
        struct dirent *e;

        snprintf(dir, sizeof(dir), "%s/v4", base);
        d = opendir(dir);
        if (!ok(d != NULL, "the official suite is there (%s)", dir))
                return;
        while ((e = readdir(d)) && n < ELEMENTSOF(names))
                if (e->d_name[0] != '.')
                        names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, n, sizeof(char *), name_cmp);
        is_int(n, 38, "38 official cases");
        for (size_t i = 0; i < n; i++) {
                char path[4096];

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                run_case(path, names[i]);
                free(names[i]);
        }
        snprintf(dir, sizeof(dir), "%s/local/dynamodb-putitem", base);
        run_case(dir, "local/dynamodb-putitem");
}

static void test_refusals(void)
{
        Sigv4Header bad[] = { { "bad name", "x" } };
        Sigv4Request req = { .method = "POST", .path = "/", .headers = bad, .n_headers = 1 };
        Sigv4Credentials cred = { "AKID", "secret", NULL };
        Sigv4Result res;

        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", 0, &res), -EINVAL,
               "a header name with a space is refused");
        bad[0].name = "";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", 0, &res), -EINVAL,
               "an empty header name is refused");
        cred.secret_access_key = NULL;
        bad[0].name = "host";
        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", 0, &res), -EINVAL,
               "missing secret is refused");
}

static void test_secret_not_in_output(void)
{
        Sigv4Header h[] = { { "host", "dynamodb.us-east-1.amazonaws.com" } };
        Sigv4Request req = {
                .method = "POST", .path = "/", .headers = h, .n_headers = 1, .body = "{}", .body_len = 2
        };
        Sigv4Credentials cred = { "AKIDEXAMPLE", "VERYSECRETKEYVALUE", "SESSIONTOKENVALUE" };
        Sigv4Result res;

        is_int(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", 1440938160, &res), 0, "signs with a token");
        ok(!strstr(res.authorization, "VERYSECRET") && !strstr(res.canonical_request, "VERYSECRET") &&
                   !strstr(res.string_to_sign, "VERYSECRET"),
           "the secret key appears in no output");
        ok(strstr(res.canonical_request, "x-amz-security-token:SESSIONTOKENVALUE") != NULL,
           "the session token is signed");
        ok(strstr(res.authorization, "SignedHeaders=host;x-amz-date;x-amz-security-token") != NULL,
           "and listed among the signed headers");
        sigv4_result_done(&res);
}

int main(void)
{
        const char *src = getenv("NB_SRCDIR"), *override = getenv("NB_SIGV4_DIR");
        char base[1024];
        struct stat st;

        /* shared/ sits beside the source tree; under distcheck the tree is a copy further down,
         * so look in each parent directory in turn. */
        if (override)
                snprintf(base, sizeof(base), "%s", override);
        else {
                char up[512] = "";

                for (int depth = 0; depth < 6; depth++) {
                        snprintf(base, sizeof(base), "%s/%s../shared/testdata/sigv4", src ? src : ".", up);
                        if (stat(base, &st) == 0)
                                break;
                        strcat(up, "../");
                }
        }
        test_refusals();
        test_secret_not_in_output();
        if (stat(base, &st) < 0) {
                printf("# the SigV4 test vectors are not at %s (set NB_SIGV4_DIR)\n", base);
                ok(false, "SigV4 test vectors found");
        } else
                run_suite(base);
        return tap_done();
}
