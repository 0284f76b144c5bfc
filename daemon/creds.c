/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "creds.h"

void aws_credentials_done(AwsCredentials *c)
{
        if (c->secret_access_key)
                explicit_bzero(c->secret_access_key, strlen(c->secret_access_key));
        free(c->access_key_id);
        free(c->secret_access_key);
        free(c->session_token);
        *c = (AwsCredentials){ 0 };
}

static const char *env_nonempty(const char *name)
{
        const char *v = getenv(name);

        return v && *v ? v : NULL;
}

static char *strip(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/* A whole small file, trailing whitespace removed; NULL if missing or unreadable. */
static char *read_small_file(const char *dir, const char *name)
{
        char path[4096], buf[4096];
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f)
                return NULL;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        return strdup(strip(buf));
}

/* The value of key in [section] of an INI file (the AWS shared files), or NULL. */
static char *ini_lookup(const char *path, const char *section, const char *key)
{
        char line[4096], *found = NULL;
        bool in = false;
        FILE *f = fopen(path, "re");

        if (!f)
                return NULL;
        while (!found && fgets(line, sizeof(line), f)) {
                char *s = strip(line), *eq;

                if (*s == '#' || *s == ';' || !*s)
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']');

                        if (end)
                                *end = 0;
                        in = streq(strip(s + 1), section);
                        continue;
                }
                eq = strchr(s, '=');
                if (!in || !eq)
                        continue;
                *eq = 0;
                if (streq(strip(s), key))
                        found = strdup(strip(eq + 1));
        }
        fclose(f);
        return found;
}

static char *home_path(const char *env, const char *leaf)
{
        const char *v = env_nonempty(env), *home = getenv("HOME");
        char *p = NULL;

        if (v)
                return strdup(v);
        if (!home)
                return NULL;
        return asprintf(&p, "%s/%s", home, leaf) < 0 ? NULL : p;
}

static const char *profile(void)
{
        const char *p = env_nonempty("AWS_PROFILE");

        return p ? p : "default";
}

int creds_load(AwsCredentials *ret)
{
        const char *dir = env_nonempty("CREDENTIALS_DIRECTORY");
        AwsCredentials c = { 0 };
        _cleanup_free_ char *path = NULL;

        *ret = (AwsCredentials){ 0 };
        if (env_nonempty("AWS_ACCESS_KEY_ID") && env_nonempty("AWS_SECRET_ACCESS_KEY")) {
                c.access_key_id = strdup(getenv("AWS_ACCESS_KEY_ID"));
                c.secret_access_key = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
                if (env_nonempty("AWS_SESSION_TOKEN"))
                        c.session_token = strdup(getenv("AWS_SESSION_TOKEN"));
                c.source = "environment";
                goto done;
        }
        /* systemd's LoadCredential=: one file per value. */
        if (dir) {
                c.access_key_id = read_small_file(dir, "aws_access_key_id");
                c.secret_access_key = read_small_file(dir, "aws_secret_access_key");
                if (c.access_key_id && c.secret_access_key && *c.access_key_id && *c.secret_access_key) {
                        c.session_token = read_small_file(dir, "aws_session_token");
                        c.source = "systemd credentials";
                        goto done;
                }
                aws_credentials_done(&c);
        }
        path = home_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        if (path) {
                c.access_key_id = ini_lookup(path, profile(), "aws_access_key_id");
                c.secret_access_key = ini_lookup(path, profile(), "aws_secret_access_key");
                if (c.access_key_id && c.secret_access_key) {
                        c.session_token = ini_lookup(path, profile(), "aws_session_token");
                        c.source = "shared credentials file";
                        goto done;
                }
                aws_credentials_done(&c);
        }
        return -ENOKEY;
done:
        if (!c.access_key_id || !c.secret_access_key) {
                aws_credentials_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

char *creds_region(const char *configured)
{
        const char *v = env_nonempty("AWS_REGION");
        _cleanup_free_ char *path = NULL, *section = NULL;
        char *r;

        if (!v)
                v = env_nonempty("AWS_DEFAULT_REGION");
        if (!v)
                v = configured;
        if (v)
                return strdup(v);
        path = home_path("AWS_CONFIG_FILE", ".aws/config");
        if (path && asprintf(&section, streq(profile(), "default") ? "%s" : "profile %s", profile()) >= 0) {
                r = ini_lookup(path, section, "region");
                if (r)
                        return r;
        }
        return strdup("us-east-1");
}

char *creds_endpoint(const char *configured, const char *region)
{
        const char *v = env_nonempty("AWS_ENDPOINT_URL_DYNAMODB");
        char *p = NULL;

        if (!v)
                v = env_nonempty("AWS_ENDPOINT_URL");
        if (!v)
                v = configured;
        if (v)
                return strdup(v);
        return asprintf(&p, "https://dynamodb.%s.amazonaws.com", region) < 0 ? NULL : p;
}
