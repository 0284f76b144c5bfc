/* SPDX-License-Identifier: MIT */
/* Splits the input as a DynamoDB endpoint with remote_endpoint_parse(), as remote_new() does with
 * notebookd.conf's endpoint or AWS_ENDPOINT_URL: what it takes is the endpoint again (with "/" for
 * a missing path), a host fit for a header, and a request remote.c can sign and send. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "remote.h"
#include "sigv4.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *endpoint = NULL, *url = NULL, *host = NULL, *path = NULL, *want = NULL;
        Sigv4Result sig = { 0 };
        size_t scheme;
        int r;

        endpoint = strndup((const char *)data, size);
        fuzz_check(endpoint);
        r = remote_endpoint_parse(endpoint, &url, &host, &path);
        fuzz_check(r == 0 || r == -EINVAL);
        if (r < 0) {
                fuzz_check(!url && !host && !path);
                return 0;
        }

        fuzz_check(*host && !strpbrk(host, "/@?#"));
        for (const char *p = url; *p; p++)
                fuzz_check((unsigned char)*p > ' ' && *p != 0x7f);
        fuzz_check(path[0] == '/');
        /* scheme://host/path: the endpoint, with its path or "/". */
        scheme = (size_t)(strstr(endpoint, "://") - endpoint) + 3;
        fuzz_check(strlen(url) == scheme + strlen(host) + strlen(path));
        fuzz_check(strncmp(url, endpoint, scheme) == 0 && strncmp(url + scheme, host, strlen(host)) == 0 &&
                   streq(url + scheme + strlen(host), path));
        fuzz_check(asprintf(&want, "%s%s", endpoint, strchr(endpoint + scheme, '/') ? "" : "/") >= 0);
        fuzz_check(streq(url, want));

        /* What remote.c signs for every call. */
        Sigv4Header headers[] = {
                { "host", host },
                { "content-type", "application/x-amz-json-1.0" },
                { "x-amz-target", "DynamoDB_20120810.Query" },
        };
        Sigv4Request req = {
                .method = "POST",
                .path = path,
                .headers = headers,
                .n_headers = ELEMENTSOF(headers),
                .body = "{}",
                .body_len = 2,
        };
        Sigv4Credentials cred = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL };
        fuzz_check(sigv4_sign(&req, &cred, "us-east-1", "dynamodb", 1440938160, &sig) == 0);
        sigv4_result_done(&sig);
        return 0;
}
