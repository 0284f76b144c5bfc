/* SPDX-License-Identifier: MIT */
/* The credential sources' parsers (creds.h): the first byte picks one, the rest is its text.
 *   0, 1  a shared credentials file, a config file (profiles picked by the second byte): what a
 *         profile yields, written out again as a file of its own, yields the same;
 *   2     a $CREDENTIALS_DIRECTORY file (or token file): the value is the text less its blanks;
 *   3, 4  a container endpoint's, an IMDS credentials answer: what is taken is a key pair fit
 *         for a header, and no message repeats the secret or the token;
 *   5     an IMDS session token answer, and the same as a role listing;
 *   6     a timestamp: what parses prints and parses back to the same time;
 *   7     an AWS_CONTAINER_CREDENTIALS_FULL_URI: one that may get a token is https, or http with
 *         no user info. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "creds.h"
#include "fuzz.h"
#include "util.h"

static const char *const keys[] = { "aws_access_key_id",
                                    "aws_secret_access_key",
                                    "aws_session_token",
                                    "credential_process",
                                    "role_arn",
                                    "sso_session",
                                    "sso_start_url",
                                    "web_identity_token_file",
                                    "region" };
static const char *const profiles[] = { "default", "dev", "profile", "a.b-c_d" };

static bool blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void check_stripped(const char *v)
{
        size_t n = strlen(v);

        fuzz_check(n == 0 || (!blank(v[0]) && !blank(v[n - 1])));
}

static int ini(const char *text, size_t len, bool config_file, const char *profile, char **values)
{
        _cleanup_free_ char *buf = strndup(text, len);

        fuzz_check(buf);
        return creds_ini_parse(buf, config_file, profile, keys, values, ELEMENTSOF(keys));
}

static void values_free(char **values)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                free(values[i]);
                values[i] = NULL;
        }
}

static void check_ini(const char *text, size_t len, bool config_file, const char *profile)
{
        char *values[ELEMENTSOF(keys)] = { 0 }, *again[ELEMENTSOF(keys)] = { 0 };
        _cleanup_free_ char *file = NULL;
        size_t file_len = 0;
        FILE *f;
        int r;

        r = ini(text, len, config_file, profile, values);
        fuzz_check(r == 0 || r == 1);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (values[i]) {
                        fuzz_check(r == 1);
                        fuzz_check(!strchr(values[i], '\n'));
                        check_stripped(values[i]);
                }
        if (r == 0)
                return;

        /* The profile as a file of its own, each key once. */
        f = open_memstream(&file, &file_len);
        fuzz_check(f);
        if (config_file && streq(profile, "default"))
                fprintf(f, "[default]\n");
        else
                fprintf(f, config_file ? "[profile %s]\n" : "[%s]\n", profile);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (values[i] && *values[i]) /* an empty value opens a sub-section */
                        fprintf(f, "%s = %s\n", keys[i], values[i]);
        fuzz_check(fclose(f) == 0);

        fuzz_check(ini(file, file_len, config_file, profile, again) == 1);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                fuzz_check(values[i] && *values[i] ? streq_ptr(again[i], values[i]) : !again[i]);
        values_free(values);
        values_free(again);
}

static void check_value(const char *text, size_t len)
{
        _cleanup_free_ char *v = NULL;
        int r = creds_value_parse(text, len, &v);

        if (memchr(text, 0, len)) {
                fuzz_check(r == -EBADMSG && !v);
                return;
        }
        fuzz_check(r == 0 && v);
        check_stripped(v);
        /* Only blanks were taken off. */
        fuzz_check(strlen(v) <= len && (len == 0 || strstr(text, v)));
        for (const char *p = text; p < strstr(text, v); p++)
                fuzz_check(blank(*p));
}

/* Printable ASCII, no spaces: fit for a header, as credentials must be. */
static bool token_like(const char *s)
{
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 127)
                        return false;
        return true;
}

/* What creds_from_json() says besides what the answer holds. */
static const char messages[] =
        "The fuzz answered with something other than a JSON object. The fuzz's answer lacks "
        "AccessKeyId, SecretAccessKey or a valid Expiration. The fuzz handed out credentials "
        "that have expired already (check the clock). The AWS credentials from the fuzz are "
        "malformed. Out of memory. The fuzz answered Code (malformed).";

/* Whether msg repeats s, which the answer holds (and is not one of the words of the messages). */
static bool leaks(const char *msg, const char *s)
{
        return strlen(s) >= 8 && strstr(msg, s) && !strstr(messages, s);
}

static void check_json(const char *text, size_t len, bool imds)
{
        char msg[CREDS_MESSAGE_MAX];
        AwsCredentials c = { 0 }, copy = { 0 };
        cJSON *j;
        const cJSON *secret, *token, *code;
        int r;

        memset(msg, 0x5a, sizeof(msg));
        r = creds_from_json(text, len, imds, "fuzz", &c, msg);
        fuzz_check(r == 1 || r == -EBADMSG || r == -EACCES || r == -EINVAL);
        if (r == 1) {
                fuzz_check(token_like(c.access_key_id) && token_like(c.secret_access_key));
                fuzz_check(!c.session_token || token_like(c.session_token));
                fuzz_check(c.expiration_usec == 0 || c.expiration_usec > now_realtime_usec());
                fuzz_check(aws_credentials_copy(&c, &copy) == 0);
                fuzz_check(streq(copy.access_key_id, c.access_key_id) &&
                           streq(copy.secret_access_key, c.secret_access_key) &&
                           streq_ptr(copy.session_token, c.session_token));
                aws_credentials_done(&copy);
                aws_credentials_done(&c);
                fuzz_check(!c.access_key_id && !c.secret_access_key && !c.session_token);
                return;
        }
        fuzz_check(memchr(msg, 0, sizeof(msg)) && msg[0]);
        /* Messages are logged: never a secret or a token in them. */
        j = cJSON_ParseWithLength(text, len);
        secret = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
        token = cJSON_GetObjectItemCaseSensitive(j, "Token");
        /* IMDS's Code is quoted: it may happen to hold the same text. */
        code = cJSON_GetObjectItemCaseSensitive(j, "Code");
        if (cJSON_IsString(secret) &&
            !(cJSON_IsString(code) && strstr(code->valuestring, secret->valuestring)))
                fuzz_check(!leaks(msg, secret->valuestring));
        if (cJSON_IsString(token) &&
            !(cJSON_IsString(code) && strstr(code->valuestring, token->valuestring)))
                fuzz_check(!leaks(msg, token->valuestring));
        cJSON_Delete(j);
}

static void check_imds(const char *text, size_t len)
{
        _cleanup_free_ char *token = NULL, *role = NULL;
        int r;

        r = creds_imds_token_parse(text, len, &token);
        fuzz_check(r == 0 || r == -EBADMSG);
        fuzz_check((r == 0) == !!token);
        if (token)
                fuzz_check(token_like(token) && strlen(token) <= 4096);

        r = creds_imds_role_parse(text, len, &role);
        fuzz_check(r == 0 || r == -EBADMSG || r == -ENOKEY);
        fuzz_check((r == 0) == !!role);
        if (role) {
                /* A path segment of the next URL: nothing that could leave it. */
                fuzz_check(*role && strlen(role) <= 128 && !strpbrk(role, "/?#%:~ "));
                fuzz_check(token_like(role));
        }
}

static void check_time(const char *s)
{
        uint64_t usec, again;
        char text[64];
        struct tm tm;
        time_t t;

        if (creds_parse_iso8601(s, &usec) < 0)
                return;
        fuzz_check(usec > 0 && usec % USEC_PER_SEC == 0);
        t = (time_t)(usec / USEC_PER_SEC);
        fuzz_check(gmtime_r(&t, &tm));
        /* An offset can take 9999-12-31 past the four digits of a year. */
        if (tm.tm_year + 1900 > 9999)
                return;
        fuzz_check(strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
        fuzz_check(creds_parse_iso8601(text, &again) == 0 && again == usec);
}

static void check_uri(const char *uri)
{
        const char *authority, *end;

        if (!creds_container_uri_allowed(uri))
                return;
        if (strncasecmp(uri, "https:", 6) == 0)
                return;
        fuzz_check(strncasecmp(uri, "http:", 5) == 0);
        /* http://127.0.0.1@elsewhere/ must not pass for loopback, however many slashes libcurl
         * takes for two. */
        authority = uri + 5 + strspn(uri + 5, "/");
        end = authority + strcspn(authority, "/?#");
        fuzz_check(!memchr(authority, '@', (size_t)(end - authority)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *text = NULL;
        const char *body;
        size_t len;
        uint8_t mode;

        if (size < 2)
                return 0;
        mode = data[0] % 8;
        body = (const char *)data + 2;
        len = size - 2;
        /* Most parsers see C strings; keep the NULs where the parser sees the length. */
        text = malloc(len + 1);
        fuzz_check(text);
        memcpy(text, body, len);
        text[len] = 0;

        switch (mode) {
        case 0:
        case 1:
                check_ini(text, strlen(text), mode == 1, profiles[data[1] % ELEMENTSOF(profiles)]);
                break;
        case 2:
                check_value(text, len);
                break;
        case 3:
        case 4:
                check_json(text, len, mode == 4);
                break;
        case 5:
                check_imds(text, len);
                break;
        case 6:
                check_time(text);
                break;
        default:
                check_uri(text);
                break;
        }
        return 0;
}
