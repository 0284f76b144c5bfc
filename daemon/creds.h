/* SPDX-License-Identifier: MIT */
#pragma once

/* AWS credentials, region and endpoint, in the order the AWS SDKs use. Implemented so far:
 * the environment, systemd credentials ($CREDENTIALS_DIRECTORY) and the shared credentials file
 * with AWS_PROFILE. The container endpoint and IMDSv2 (which need the network, and so an
 * asynchronous interface) are the next step; until then they are not consulted at all, so no
 * code path reaches a metadata address. */

#include "util.h"

typedef struct AwsCredentials {
        char *access_key_id;
        char *secret_access_key;
        char *session_token; /* NULL for long-term keys */
        const char *source;  /* "environment", "systemd credentials", "shared credentials file" */
} AwsCredentials;

void aws_credentials_done(AwsCredentials *c);

/* The first source that has a key pair: -ENOKEY when none has. Never logs a secret. */
int creds_load(AwsCredentials *ret);

/* Region: AWS_REGION, AWS_DEFAULT_REGION, the configured one, the profile's in ~/.aws/config,
 * else us-east-1. Endpoint: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, the configured one,
 * else https://dynamodb.REGION.amazonaws.com. */
char *creds_region(const char *configured);
char *creds_endpoint(const char *configured, const char *region);
