#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Signs a few DynamoDB requests with botocore's SigV4 signer, at fixed times, for test-sigv4.

Prints one JSON document on stdout: {"botocore": version, "cases": [...]}. Each case holds
everything needed to sign the same request again (credentials, region, service, epoch time,
method, path, query, the headers botocore signed, the body in hex) and what botocore produced:
X-Amz-Date, X-Amz-Security-Token and Authorization, and its canonical request (to show on a
mismatch). If botocore cannot be imported it prints {"skip": reason} and exits 0.

Two kinds of case:
* "client-*": a real botocore DynamoDB client calls PutItem or GetItem; a before-send hook takes
  the signed request and stops it, so nothing is sent anywhere. This is what boto3 would send.
* "raw-*": SigV4Auth signs a hand-built request, for what the client cannot produce (a body with
  raw UTF-8, whitespace to collapse, a path to normalise, a query to sort).
"""

import datetime
import json
import os
import sys
import types
from unittest import mock
from urllib.parse import urlsplit

# No configuration file or environment variable of the user's may change what is signed.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

try:
    import botocore
    import botocore.auth
    import botocore.session
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:
    print(json.dumps({"skip": f"botocore not importable by {sys.executable}: {e}"}))
    sys.exit(0)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRq"
    "TflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75Y"
    "U9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9"
    "KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
T2015 = 1440938160  # 2015-08-30T12:36:00Z, the AWS suite's time
T2026 = 1795740791  # 2026-11-27T00:53:11Z


class FixedClock:
    """Makes botocore's signer see a fixed time, whichever clock function this version calls."""

    def __init__(self, epoch):
        self.now = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None)

    def __enter__(self):
        now = self.now

        class Fixed(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return now

            @classmethod
            def now(cls, tz=None):
                return now.replace(tzinfo=tz) if tz else now

        fake = types.SimpleNamespace(**{k: getattr(datetime, k) for k in dir(datetime) if not k.startswith("__")})
        fake.datetime = Fixed
        self.patches = [mock.patch.object(botocore.auth, "datetime", fake)]
        if hasattr(botocore.auth, "get_current_datetime"):
            self.patches.append(mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: now))
        for p in self.patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in reversed(self.patches):
            p.stop()


def text(v):
    """A header value as str: a prepared request holds some as bytes."""
    return v.decode("utf-8") if isinstance(v, bytes) else v


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request


def case_from_request(name, request, region, service, epoch, token, canonical):
    """The case as test-sigv4 reads it, from a request botocore has just signed."""
    auth = text(request.headers["Authorization"])
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    url = urlsplit(request.url)
    # The request's own headers, that is the signed ones minus those the signer adds. botocore
    # leaves Host to the HTTP client and signs what it would send: take it from the URL the same way.
    headers = []
    for h in signed:
        if h in ("x-amz-date", "x-amz-security-token"):
            continue
        if h == "host" and "host" not in (k.lower() for k in request.headers.keys()):
            headers.append(["host", botocore.auth._host_from_url(request.url)])
            continue
        for k, v in request.headers.items():
            if k.lower() == h:
                headers.append([k, text(v)])
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return {
        "name": name,
        "region": region,
        "service": service,
        "time": epoch,
        "access_key_id": AKID,
        "secret_access_key": SECRET,
        "session_token": token,
        "method": request.method,
        "path": url.path or "/",
        "query": url.query,
        "headers": headers,
        "body_hex": body.hex(),
        "want_x_amz_date": text(request.headers["X-Amz-Date"]),
        "want_x_amz_security_token": text(request.headers.get("X-Amz-Security-Token")),
        "want_authorization": auth,
        "botocore_canonical_request": canonical,
    }


class Stop(Exception):
    pass


def client_case(name, operation, params, region, endpoint, epoch, token=None):
    session = botocore.session.get_session()
    client = session.create_client(
        "dynamodb",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    seen = {}

    def before_send(request, **kwargs):
        seen["request"] = request
        raise Stop()  # nothing leaves this process

    client.meta.events.register("before-send.dynamodb.*", before_send)
    with FixedClock(epoch):
        try:
            getattr(client, operation)(**params)
        except Stop:
            pass
    r = seen["request"]
    case = case_from_request(name, r, region, "dynamodb", epoch, token, None)
    # Sign the signed part of the captured request again with a recording signer, for the canonical
    # request to show on a mismatch. (The client adds amz-sdk-* and Content-Length after signing.)
    # It must give botocore's own Authorization back.
    again = AWSRequest(method=r.method, url=r.url, data=r.body,
                       headers={k: v for k, v in case["headers"] if k.lower() != "host"})
    signer = RecordingSigV4Auth(Credentials(AKID, SECRET, token), "dynamodb", region)
    with FixedClock(epoch):
        signer.add_auth(again)
    if again.headers["Authorization"] != case["want_authorization"]:
        raise SystemExit(f"{name}: botocore does not sign its own request the same way twice")
    case["botocore_canonical_request"] = signer.last_canonical_request
    return case


def raw_case(name, url, headers, body, region, epoch, token=None, service="dynamodb", method="POST"):
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    signer = RecordingSigV4Auth(Credentials(AKID, SECRET, token), service, region)
    with FixedClock(epoch):
        signer.add_auth(request)
    return case_from_request(name, request, region, service, epoch, token, signer.last_canonical_request)


def main():
    ddb = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.PutItem"}
    unicode_body = json.dumps(
        {"TableName": "notebooks", "Item": {"notebook_id": {"S": "nb-ü"}, "title": {"S": "Grüße, 日本語 😀"}}},
        ensure_ascii=False,
    ).encode("utf-8")
    item = {"notebook_id": {"S": "nb-1"}, "revision": {"N": "7"}, "title": {"S": "Grüße 😀"}}
    cases = [
        client_case("client-putitem", "put_item", {"TableName": "notebooks", "Item": item},
                    "us-east-1", "https://dynamodb.us-east-1.amazonaws.com", T2015),
        client_case("client-putitem-token", "put_item",
                    {"TableName": "notebooks", "Item": item,
                     "ConditionExpression": "attribute_not_exists(notebook_id) OR revision = :base",
                     "ExpressionAttributeValues": {":base": {"N": "6"}}},
                    "eu-west-1", "https://dynamodb.eu-west-1.amazonaws.com", T2026, token=TOKEN),
        client_case("client-getitem-local", "get_item",
                    {"TableName": "notebooks", "Key": {"notebook_id": {"S": "nb-1"}}},
                    "us-east-1", "http://127.0.0.1:8000", T2026),
        raw_case("raw-putitem-unicode-body", "https://dynamodb.us-east-1.amazonaws.com/", ddb, unicode_body,
                 "us-east-1", T2015),
        raw_case("raw-putitem-unicode-body-token", "https://dynamodb.ap-northeast-1.amazonaws.com/", ddb,
                 unicode_body, "ap-northeast-1", T2026, token=TOKEN),
        raw_case("raw-empty-body", "https://dynamodb.us-east-1.amazonaws.com/", ddb, b"", "us-east-1", T2026),
        raw_case("raw-path-query-whitespace",
                 "https://example.amazonaws.com:8443/a/./b/../c//d%20e/?b=2&a=1&a=0&c=%E1%88%B4&d",
                 {"X-Custom": "  a   b\tc  ", "Content-Type": "application/x-amz-json-1.0"}, b"{}",
                 "us-west-2", T2026, token=TOKEN),
    ]
    print(json.dumps({"botocore": botocore.__version__, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
