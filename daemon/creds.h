/* SPDX-License-Identifier: MIT */
#pragma once

/* AWS credentials, region and DynamoDB endpoint, found the way the AWS SDKs find them.
 *
 * Credentials, first source that yields a key pair wins:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional);
 *   2. systemd credentials (LoadCredential=, SetCredentialEncrypted=, ...): the files
 *      aws_access_key_id, aws_secret_access_key and, optionally, aws_session_token in
 *      $CREDENTIALS_DIRECTORY;
 *   3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials),
 *      section [PROFILE], then the config file (AWS_CONFIG_FILE, else ~/.aws/config), section
 *      [profile PROFILE] ([default] for the default profile); PROFILE is AWS_PROFILE, else
 *      "default". Keys aws_access_key_id, aws_secret_access_key, aws_session_token;
 *   4. the container credentials endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI under
 *      http://169.254.170.2, else AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback
 *      or the ECS/EKS agent address only), with the Authorization header from
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, else AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   5. IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254 (or
 *      http://[fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6): a session token
 *      from PUT /latest/api/token, then the role and its credentials under
 *      /latest/meta-data/iam/security-credentials/. Never asked when AWS_EC2_METADATA_DISABLED is
 *      "true". No IMDSv1 fallback.
 * A configured container endpoint that fails is an error: the chain does not go on to IMDS,
 * whose role would be another principal's (the SDKs behave the same). Long-term keys (1-3) are
 * read once and kept; temporary ones (4, 5) are fetched again before they expire. Local files are
 * read synchronously (small and local, like SQLite); the network only through http.c, on the loop.
 * Nothing here ever logs a secret or a token: the key id and the source at most.
 *
 * Region: the caller's (notebookd.conf), AWS_REGION, AWS_DEFAULT_REGION, then region in the
 * config file's profile section. Endpoint: the caller's, AWS_ENDPOINT_URL_DYNAMODB,
 * AWS_ENDPOINT_URL, else https://dynamodb.REGION.amazonaws.com (.com.cn for cn- regions). */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "util.h"

#define CREDS_DEFAULT_REFRESH_MARGIN_USEC   (5 * 60 * USEC_PER_SEC)
#define CREDS_DEFAULT_METADATA_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* With an endpoint given and no region anywhere, requests are signed for this region (what local
 * DynamoDB-compatible servers expect). Without an endpoint there is no default: see
 * creds_endpoint(). */
#define CREDS_FALLBACK_SIGNING_REGION "us-east-1"

typedef struct Creds Creds;
typedef struct CredsWaiter CredsWaiter;

typedef struct AwsCredentials {
        char *access_key_id;
        char *secret_access_key;
        char *session_token;      /* NULL for long-term keys */
        uint64_t expiration_usec; /* CLOCK_REALTIME; 0: does not expire */
        const char *source;       /* static: "environment", "systemd credentials", "shared credentials
                                   * file", "config file", "container endpoint", "IMDS" */
} AwsCredentials;

/* Wipes the secret and the token, frees, and zeroes *c. */
void aws_credentials_done(AwsCredentials *c);
int aws_credentials_copy(const AwsCredentials *from, AwsCredentials *ret);

/* getenv(3) for the lookup: tests give their own table. */
typedef const char *(*CredsGetenvFunc)(const char *name, void *userdata);

typedef struct CredsOptions {
        CredsGetenvFunc getenv; /* NULL: the process's environment */
        void *getenv_userdata;
        const char *region;   /* notebookd.conf's, beats the environment; NULL: none */
        const char *endpoint; /* notebookd.conf's, beats the environment; NULL: none */
        const char *profile;  /* NULL: AWS_PROFILE, else "default" */
        /* Base of AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; NULL: http://169.254.170.2. For tests. */
        const char *container_host;
        uint64_t metadata_timeout_usec; /* per request to the container endpoint or IMDS; 0: default */
        /* Credentials closer to expiry than this are fetched again before use; a background
         * refresh starts at twice this before expiry. 0: CREDS_DEFAULT_REFRESH_MARGIN_USEC. */
        uint64_t refresh_margin_usec;
} CredsOptions;

/* On success error is 0 and credentials is valid during the call only (copy what you keep).
 * Otherwise credentials is NULL, error is a negative errno and message says what failed, for the
 * log: -ENOKEY (no source has credentials), -EINVAL (a source is misconfigured, e.g. a
 * disallowed container URI), -EBADMSG (an answer that is not credentials), -EACCES (the endpoint
 * refused), a network error from http.c, or -ECANCELED (creds_free()). */
typedef void (*CredsFunc)(int error, const AwsCredentials *credentials, const char *message, void *userdata);

/* Resolves region and endpoint now (-EINVAL: a region or endpoint that cannot be right). */
int creds_new(sd_event *event, const CredsOptions *options, Creds **ret);
/* Every waiter still waiting is called with -ECANCELED. Takes NULL. Not from inside a CredsFunc. */
Creds *creds_free(Creds *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Creds *, creds_free)

/* Calls cb with credentials, always later from the event loop, never from inside this call: at
 * the next loop iteration when cached ones are not within the refresh margin of expiry, else when
 * a fetch ends. Waiters share one fetch. When a refresh fails but the cached credentials have not
 * expired yet, those are delivered (and a new fetch is tried after a pause). ret (may be NULL):
 * a handle valid until cb runs, for creds_get_cancel(). -ENOMEM. */
int creds_get(Creds *c, CredsFunc cb, void *userdata, CredsWaiter **ret);
/* cb will not run. Takes NULL. */
void creds_get_cancel(CredsWaiter *w);

/* The server refused the cached credentials (expired token, rotated key): the next creds_get()
 * runs the chain again, files included. */
void creds_invalidate(Creds *c);

/* NULL when no region is configured anywhere and no endpoint is given. */
const char *creds_region(const Creds *c);
/* NULL when there is no region to build one from (the caller reports a configuration error). */
const char *creds_endpoint(const Creds *c);
const char *creds_profile(const Creds *c);

/* Whether AWS_CONTAINER_CREDENTIALS_FULL_URI may be used: https to any host, or http to a
 * loopback address, localhost, or the ECS/EKS agents (169.254.170.2, 169.254.170.23,
 * fd00:ec2::23); no user info. */
bool creds_container_uri_allowed(const char *uri);

/* ---- parsers: pure, here for the fuzzers and tests ------------------------------------------- */

/* The size of the message buffer creds_from_json() writes. */
#define CREDS_MESSAGE_MAX 512

/* Looks keys up in one profile of an AWS shared file's text (INI; cut up in place). In the config
 * file, profile P is the section [profile P], and the default profile also [default]; in the
 * credentials file it is [P]. Indented lines under a key without a value are a sub-section (e.g.
 * "s3 =") and skipped. values get new strings (the last occurrence wins; an old value is wiped and
 * freed) or stay as they were. Returns whether the profile's section exists, or -ENOMEM. */
int creds_ini_parse(char *text, bool config_file, const char *profile, const char *const *keys,
                    char **values, size_t n_keys);
/* The value of a one-value file (a systemd credential, a token file): the text without
 * surrounding whitespace. -EBADMSG for a NUL inside, -ENOMEM. */
int creds_value_parse(const char *text, size_t len, char **ret);
/* 2025-11-27T01:39:47Z, with optional fractions and a +hh:mm offset, to CLOCK_REALTIME usec.
 * -EINVAL for anything else, and for times not after 1970. */
int creds_parse_iso8601(const char *s, uint64_t *ret_usec);
/* The container endpoint's or IMDS's credentials answer (JSON: AccessKeyId, SecretAccessKey,
 * Token, Expiration; IMDS also Code). 1 (found) and *ret, or -EBADMSG (not credentials, expired
 * already), -EACCES (IMDS's Code is not Success), -EINVAL (malformed keys), -ENOMEM; msg
 * (CREDS_MESSAGE_MAX) says which, naming source. */
int creds_from_json(const char *body, size_t len, bool imds, const char *source, AwsCredentials *ret,
                    char *msg);
/* IMDS's session token answer: the token, or -EBADMSG. */
int creds_imds_token_parse(const char *body, size_t len, char **ret);
/* IMDS's role listing: the first role, -ENOKEY when there is none, -EBADMSG for a malformed one. */
int creds_imds_role_parse(const char *body, size_t len, char **ret);
