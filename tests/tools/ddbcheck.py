#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ddbcheck: the independent reader. Reads notebooks from a DynamoDB table with boto3 (Debian's
python3-boto3, so run it with /usr/bin/python3) and compares them, attribute by attribute and
type by type, with what notebookd holds, in the seed's item shape (DESIGN.md, "DynamoDB item").

    ddbcheck.py --endpoint URL [--table notebooks] [--user USER] [--absent NB]...
                [--ignore PATH]... [--no-sync-id] FILE...
    ddbcheck.py --endpoint URL [--table notebooks] --user USER --dump
    ddbcheck.py --endpoint URL [--table notebooks] --create-table
    (each also takes --parts-table NAME; see "Big notebooks" below)

FILE ("-" for standard input) holds what `notebookctl --json show NB` prints, {"notebook": {...}},
or a bare notebook object, or a list of them; several JSON documents may follow each other in one
file (the output of several show commands). Without --user each notebook's item is read with a
consistent GetItem. With --user the user's whole partition is read (a consistent, paginated
Query) and must hold exactly the notebooks given: one missing or one more is a difference too
(so FILEs may be none: the user must then have no item). --absent NB: that notebook of --user must
not be in the table (a delete went through).

The expected item: user_id S, notebook_id S (the notebook's id), name S or NULL, db_conn_string S
or NULL, revision N, cells L of M {id S, type S, code S, stdout S, outputs L of M {mime_type S,
data S|M|L, metadata M}, error S or NULL, reads L of S, writes L of S} (the local "status" stays
out), created_at S, updated_at S, ttl N and demo_version N when set (absent when null), and
sync_id, a non-empty S (--no-sync-id: may be absent), and parent_sync_id, a non-empty S when
present (the version the write was made on). Any other attribute is a difference. Numbers
compare by value. --ignore PATH skips an attribute anywhere it appears under that path
("updated_at", "sync_id", "cells[].stdout").

Every difference is printed on a line of its own; the last line sums up. Exit status: 0 when all
match, 1 when anything differs, 2 for a usage error, an unreadable FILE, or an endpoint that
cannot be used (unreachable, table missing, an error answer).

--create-table creates the seed's table: keys user_id (HASH) and notebook_id (RANGE), GSIs
NotebookByIdIndex (notebook_id, ALL) and NotebooksByUserCreatedIndex (user_id, created_at;
INCLUDE name, updated_at), PAY_PER_REQUEST; then TTL on "ttl" where the endpoint supports it
(dynalite does not: it says so and goes on). An existing table is left as it is (exit 0). It waits
until the table is ACTIVE (bounded by --timeout).

--dump prints the items (of --user, or of the FILEs' notebooks) as plain JSON, one per line.

Big notebooks (doc/sync.md, "Big notebooks"): a cell attribute A_ref {enc S, bytes N, parts L of
S} stands for A. This reader fetches each named part from the parts table (--parts-table, default
TABLE-parts; key owner "user_id/notebook_id", part the hex SHA-256 of its bytes; a consistent
GetItem), checks each part's hash, joins them, inflates them when enc is "zlib", checks the length,
and parses the text as the AttributeValue it puts back under A, before comparing. A part missing or
not matching its name is a difference. --create-table creates the parts table too.

The endpoint (--endpoint, else $AWS_ENDPOINT_URL_DYNAMODB, else $AWS_ENDPOINT_URL) must be on
loopback. Credentials are dummies, region us-east-1 unless --region; no AWS configuration file,
profile or instance metadata is read.
"""

import argparse
import decimal
import hashlib
import ipaddress
import json
import os
import re
import sys
import time
import urllib.parse
import zlib

TABLE_KEYS = [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "notebook_id", "KeyType": "RANGE"}]
GSIS = [
        {"IndexName": "NotebookByIdIndex",
         "KeySchema": [{"AttributeName": "notebook_id", "KeyType": "HASH"}],
         "Projection": {"ProjectionType": "ALL"}},
        {"IndexName": "NotebooksByUserCreatedIndex",
         "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                       {"AttributeName": "created_at", "KeyType": "RANGE"}],
         "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name", "updated_at"]}},
]
ATTRIBUTE_DEFINITIONS = [{"AttributeName": n, "AttributeType": "S"} for n in ("user_id", "notebook_id", "created_at")]


class UsageError(Exception):
        pass


# --------------------------------------------------------------------------------------------
# The expected item, as typed AttributeValues ({"S": "x"}), built from the protocol's JSON

def av_json(v, path):
        """Any JSON value (output data, metadata) as an AttributeValue."""
        if isinstance(v, bool):
                return {"BOOL": v}
        if v is None:
                return {"NULL": True}
        if isinstance(v, str):
                return {"S": v}
        if isinstance(v, (int, float, decimal.Decimal)):
                return {"N": str(v)}
        if isinstance(v, list):
                return {"L": [av_json(x, f"{path}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict):
                return {"M": {k: av_json(x, f"{path}.{k}") for k, x in v.items()}}
        raise UsageError(f"{path}: not a JSON value: {v!r}")


def need(obj, key, kinds, path, nullable=False):
        if not isinstance(obj, dict) or key not in obj:
                raise UsageError(f"{path}: no member {key!r} in the notebook JSON")
        v = obj[key]
        if v is None and nullable:
                return None
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
                raise UsageError(f"{path}.{key}: unexpected {type(v).__name__} in the notebook JSON")
        return v


def s_or_null(obj, key, path):
        v = need(obj, key, str, path, nullable=True)
        return {"NULL": True} if v is None else {"S": v}


def expected_item(nb):
        """The item the seed's app would read for this notebook (without sync_id)."""
        p = nb.get("id", "?") if isinstance(nb, dict) else "?"
        num = (int, float, decimal.Decimal)
        item = {
                "user_id": {"S": need(nb, "user_id", str, p)},
                "notebook_id": {"S": need(nb, "id", str, p)},
                "name": s_or_null(nb, "name", p),
                "db_conn_string": s_or_null(nb, "db_conn_string", p),
                "revision": {"N": str(need(nb, "revision", num, p))},
                "created_at": {"S": need(nb, "created_at", str, p)},
                "updated_at": {"S": need(nb, "updated_at", str, p)},
        }
        for key in ("ttl", "demo_version"):
                v = nb.get(key)
                if v is not None:
                        item[key] = {"N": str(need(nb, key, num, p))}
        cells = []
        for i, c in enumerate(need(nb, "cells", list, p)):
                cp = f"{p}.cells[{i}]"
                outputs = []
                for j, o in enumerate(need(c, "outputs", list, cp)):
                        op = f"{cp}.outputs[{j}]"
                        outputs.append({"M": {"mime_type": {"S": need(o, "mime_type", str, op)},
                                              "data": av_json(need(o, "data", (str, dict, list), op), op + ".data"),
                                              "metadata": av_json(need(o, "metadata", dict, op), op + ".metadata")}})
                cells.append({"M": {
                        "id": {"S": need(c, "id", str, cp)},
                        "type": {"S": need(c, "type", str, cp)},
                        "code": {"S": need(c, "code", str, cp)},
                        "stdout": {"S": need(c, "stdout", str, cp)},
                        "outputs": {"L": outputs},
                        "error": s_or_null(c, "error", cp),
                        "reads": {"L": [{"S": need({"": x}, "", str, cp + ".reads")} for x in need(c, "reads", list, cp)]},
                        "writes": {"L": [{"S": need({"": x}, "", str, cp + ".writes")} for x in need(c, "writes", list, cp)]},
                }})
        item["cells"] = {"L": cells}
        return item


# --------------------------------------------------------------------------------------------
# Comparison

def show(av):
        """An AttributeValue as a short text: S "x", N 3, NULL, M{3 keys}, L[2]."""
        if isinstance(av, dict) and len(av) == 1:
                (t, v), = av.items()
        else:
                t, v = None, av
        if t in ("S", "N"):
                text = json.dumps(v) if t == "S" else v
                return f"{t} {text[:200]}{'...' if len(text) > 200 else ''}"
        if t == "NULL":
                return "NULL"
        if t == "BOOL":
                return f"BOOL {str(v).lower()}"
        if t == "M":
                return f"M{{{len(v)} keys}}"
        if t == "L":
                return f"L[{len(v)}]"
        if t is None:
                return f"malformed {v!r:.200}"
        return f"{t} {str(v)[:200]}"


def same_number(a, b):
        try:
                da, db = decimal.Decimal(a), decimal.Decimal(b)
        except decimal.InvalidOperation:
                return a == b
        if da == db:
                return True
        # Doubles written as their shortest text may differ from another text of the same double.
        return float(da) == float(db)


def ignored(path, ignore):
        generic = re.sub(r"\[\d+\]", "[]", path)  # cells[3].stdout -> cells[].stdout
        return path in ignore or generic in ignore


def compare(got, want, path, ignore, out):
        """Appends to out every difference between two AttributeValues."""
        if ignored(path, ignore):
                return
        gt = next(iter(got)) if isinstance(got, dict) and len(got) == 1 else None
        wt = next(iter(want))
        if gt != wt:
                out.append(f"{path}: table has {show(got)}, expected {show(want)}")
                return
        g, w = got[gt], want[wt]
        if wt == "N":
                if not same_number(g, w):
                        out.append(f"{path}: table has N {g}, expected N {w}")
        elif wt == "M":
                compare_maps(g, w, path, ignore, out)
        elif wt == "L":
                if len(g) != len(w):
                        out.append(f"{path}: table has a list of {len(g)}, expected {len(w)}")
                for i in range(min(len(g), len(w))):
                        compare(g[i], w[i], f"{path}[{i}]", ignore, out)
        elif g != w:
                out.append(f"{path}: table has {show(got)}, expected {show(want)}")


def compare_maps(got, want, path, ignore, out, optional=()):
        prefix = f"{path}." if path else ""
        for k in want:
                if k not in got:
                        if not ignored(prefix + k, ignore):
                                out.append(f"{prefix}{k}: missing in the table, expected {show(want[k])}")
                else:
                        compare(got[k], want[k], prefix + k, ignore, out)
        for k in got:
                if k not in want and k not in optional and not ignored(prefix + k, ignore):
                        out.append(f"{prefix}{k}: unexpected attribute in the table: {show(got[k])}")


def compare_item(item, nb, ignore=(), sync_id=True):
        """Every difference between a table item (typed AttributeValues) and a notebook (protocol
        JSON), as lines without the notebook's name."""
        out = []
        want = expected_item(nb)
        compare_maps(item, want, "", set(ignore), out, optional=("sync_id", "parent_sync_id"))
        parent = item.get("parent_sync_id")
        if parent is not None and not (isinstance(parent, dict) and list(parent) == ["S"] and parent["S"]):
                out.append(f"parent_sync_id: table has {show(parent)}, expected a non-empty S")
        if "sync_id" not in ignore:
                sid = item.get("sync_id")
                if sid is None:
                        if sync_id:
                                out.append("sync_id: missing in the table, expected a non-empty S")
                elif not (isinstance(sid, dict) and list(sid) == ["S"] and sid["S"]):
                        out.append(f"sync_id: table has {show(sid)}, expected a non-empty S")
        return out


def plain(av):
        """An AttributeValue as plain JSON (for --dump)."""
        (t, v), = av.items()
        if t == "N":
                d = decimal.Decimal(v)
                return int(d) if d == d.to_integral_value() else float(d)
        if t == "M":
                return {k: plain(x) for k, x in v.items()}
        if t == "L":
                return [plain(x) for x in v]
        if t == "NULL":
                return None
        if t in ("SS", "NS", "BS"):
                return {t: sorted(v)}
        if t == "B":
                return {"B": repr(v)}
        return v


# --------------------------------------------------------------------------------------------
# Input

def load_notebooks(paths):
        nbs = []
        for path in paths:
                try:
                        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
                except OSError as e:
                        raise UsageError(f"{path}: {e.strerror}") from None
                dec = json.JSONDecoder(parse_float=decimal.Decimal)
                pos = 0
                while True:
                        while pos < len(text) and text[pos].isspace():
                                pos += 1
                        if pos >= len(text):
                                break
                        try:
                                doc, pos = dec.raw_decode(text, pos)
                        except json.JSONDecodeError as e:
                                raise UsageError(f"{path}: not JSON: {e}") from None
                        for x in doc if isinstance(doc, list) else [doc]:
                                if isinstance(x, dict) and isinstance(x.get("notebook"), dict):
                                        x = x["notebook"]
                                if not isinstance(x, dict) or "id" not in x or "cells" not in x:
                                        raise UsageError(f"{path}: not a notebook (expected what `notebookctl --json show` prints)")
                                nbs.append(x)
        seen = set()
        for nb in nbs:
                key = (nb.get("user_id"), nb.get("id"))
                if key in seen:
                        raise UsageError(f"notebook {key[1]} of {key[0]} given twice")
                seen.add(key)
        return nbs


# --------------------------------------------------------------------------------------------
# The table

def check_endpoint(url):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
                raise UsageError(f"--endpoint: not an http(s) URL: {url!r}")
        host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
        try:
                loop = ipaddress.ip_address(host).is_loopback
        except ValueError:
                loop = False
        if not loop:
                raise UsageError(f"--endpoint: {u.hostname} is not a loopback address; ddbcheck reads loopback endpoints only")


def make_client(args):
        # No AWS configuration of the machine may steer this reader: no files, profiles, metadata.
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CA_BUNDLE",
                    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
                os.environ.pop(var, None)  # a proxy variable would send loopback traffic elsewhere
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        try:
                import boto3
                from botocore.config import Config
        except ImportError:
                raise UsageError("boto3 is not installed: apt-get install python3-boto3, and run this with /usr/bin/python3") from None
        session = boto3.session.Session(aws_access_key_id="AKIDDDBCHECK", aws_secret_access_key="ddbcheck-secret",
                                        region_name=args.region)
        cfg = Config(connect_timeout=args.timeout, read_timeout=args.timeout, proxies={},
                     retries={"mode": "standard", "max_attempts": args.attempts})
        return session.client("dynamodb", endpoint_url=args.endpoint, config=cfg)


def get_item(client, table, user, nb_id):
        r = client.get_item(TableName=table, Key={"user_id": {"S": user}, "notebook_id": {"S": nb_id}},
                            ConsistentRead=True)
        return r.get("Item")


def query_user(client, table, user):
        items, start = [], None
        while True:
                kw = {"ExclusiveStartKey": start} if start else {}
                r = client.query(TableName=table, KeyConditionExpression="user_id = :u",
                                 ExpressionAttributeValues={":u": {"S": user}}, ConsistentRead=True, **kw)
                items += r.get("Items", [])
                start = r.get("LastEvaluatedKey")
                if not start:
                        return items


REFS = ("outputs", "code", "stdout", "error")


class PartError(Exception):
        pass


def resolve_ref(client, parts_table, owner, ref):
        """The AttributeValue a reference stands for, from its parts."""
        m = ref.get("M") if isinstance(ref, dict) else None
        try:
                enc, size = m["enc"]["S"], int(m["bytes"]["N"])
                names = [x["S"] for x in m["parts"]["L"]]
        except (KeyError, TypeError, ValueError):
                raise PartError("malformed reference") from None
        if enc not in ("zlib", "raw") or not names:
                raise PartError(f"malformed reference (enc {enc!r}, {len(names)} parts)")
        data = b""
        for h in names:
                r = client.get_item(TableName=parts_table, Key={"owner": {"S": owner}, "part": {"S": h}},
                                    ConsistentRead=True)
                part = r.get("Item")
                if part is None:
                        raise PartError(f"part {h[:12]} is missing from {parts_table}")
                b = part.get("data", {}).get("B")
                if not isinstance(b, (bytes, bytearray)) or hashlib.sha256(b).hexdigest() != h:
                        raise PartError(f"part {h[:12]} does not hash to its name")
                data += b
        if enc == "zlib":
                try:
                        data = zlib.decompress(data)
                except zlib.error as e:
                        raise PartError(f"the parts do not inflate: {e}") from None
        if len(data) != size:
                raise PartError(f"the parts decode to {len(data)} bytes, the reference says {size}")
        try:
                v = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
                raise PartError(f"the parts are not an AttributeValue: {e}") from None
        if not isinstance(v, dict) or len(v) != 1:
                raise PartError("the parts are not an AttributeValue")
        return v


def reassemble(client, parts_table, item, stats):
        """Puts every moved value of item back in place; returns the problems, one line each."""
        problems = []
        owner = f"{item.get('user_id', {}).get('S')}/{item.get('notebook_id', {}).get('S')}"
        for i, cell in enumerate(item.get("cells", {}).get("L", [])):
                m = cell.get("M", {})
                for a in REFS:
                        ref = m.get(a + "_ref")
                        if ref is None:
                                continue
                        try:
                                v = resolve_ref(client, parts_table, owner, ref)
                        except PartError as e:
                                problems.append(f"cells[{i}].{a}_ref: {e}")
                                continue
                        if a in m:
                                problems.append(f"cells[{i}]: both {a} and {a}_ref")
                                continue
                        del m[a + "_ref"]
                        m[a] = v
                        stats["values"] += 1
                        stats["parts"] += len(ref["M"]["parts"]["L"])
        return problems


def create_parts_table(client, args):
        try:
                client.create_table(TableName=args.parts_table, BillingMode="PAY_PER_REQUEST",
                                    KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"},
                                               {"AttributeName": "part", "KeyType": "RANGE"}],
                                    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                                          for n in ("owner", "part")])
                print(f"ddbcheck: created table {args.parts_table}")
        except client.exceptions.ResourceInUseException:
                print(f"ddbcheck: table {args.parts_table} exists already; left as it is")


def create_table(client, args):
        try:
                client.create_table(TableName=args.table, BillingMode="PAY_PER_REQUEST", KeySchema=TABLE_KEYS,
                                    AttributeDefinitions=ATTRIBUTE_DEFINITIONS, GlobalSecondaryIndexes=GSIS)
                print(f"ddbcheck: created table {args.table}")
        except client.exceptions.ResourceInUseException:
                print(f"ddbcheck: table {args.table} exists already; left as it is")
        deadline = time.monotonic() + args.timeout
        while True:
                status = client.describe_table(TableName=args.table)["Table"]["TableStatus"]
                if status == "ACTIVE":
                        break
                if time.monotonic() > deadline:
                        raise UsageError(f"table {args.table} is still {status} after {args.timeout}s")
                time.sleep(0.1)
        try:
                client.update_time_to_live(TableName=args.table,
                                           TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
                print("ddbcheck: TTL on attribute ttl enabled")
        except client.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code == "ValidationException" and "already enabled" in str(e):
                        print("ddbcheck: TTL on attribute ttl was enabled already")
                elif code in ("UnknownOperationException", "UnrecognizedClientException") or \
                                e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 400:
                        print(f"ddbcheck: this endpoint does not support TTL ({code or 'error'}); table used without it")
                else:
                        raise
        return 0


def run(args):
        if args.create_table:
                if args.files or args.user or args.absent or args.dump:
                        raise UsageError("--create-table takes no FILE, --user, --absent or --dump")
                client = make_client(args)
                create_parts_table(client, args)
                return create_table(client, args)
        nbs = load_notebooks(args.files)
        if args.absent and not args.user:
                raise UsageError("--absent needs --user")
        if not args.user and not nbs:
                raise UsageError("nothing to check: give FILEs (notebookctl --json show output) or --user")
        if args.user:
                others = [nb["id"] for nb in nbs if nb.get("user_id") != args.user]
                if others:
                        raise UsageError(f"--user {args.user}: these notebooks belong to others: {', '.join(others)}")
        for nid in args.absent:
                if any(nb["id"] == nid for nb in nbs):
                        raise UsageError(f"--absent {nid}: also given as a FILE")
        client = make_client(args)
        if args.user:
                items = query_user(client, args.table, args.user)
                by_id = {}
                for it in items:
                        by_id[it.get("notebook_id", {}).get("S")] = it
        else:
                by_id = {}
                for nb in nbs:
                        by_id[nb["id"]] = get_item(client, args.table, nb["user_id"], nb["id"])
        stats = {"values": 0, "parts": 0}
        part_problems = {nid: reassemble(client, args.parts_table, it, stats)
                         for nid, it in by_id.items() if it is not None}
        if args.dump:
                for nid, it in by_id.items():
                        if it is not None:
                                print(json.dumps(plain({"M": it}), sort_keys=True))
                return 0
        diffs = []
        bad = 0
        for nb in nbs:
                label = f"{nb['user_id']}/{nb['id']}"
                it = by_id.pop(nb["id"], None)
                if it is None:
                        lines = [f"not in the table (local revision {nb.get('revision')})"]
                else:
                        lines = part_problems.get(nb["id"], []) + compare_item(it, nb, args.ignore,
                                                                              sync_id=not args.no_sync_id)
                if lines:
                        bad += 1
                        diffs += [f"{label}: {x}" for x in lines]
        if args.user:
                for nid, it in sorted(by_id.items(), key=lambda kv: str(kv[0])):
                        rev = it.get("revision", {}).get("N")
                        where = "an --absent notebook" if nid in args.absent else "not among the notebooks given"
                        diffs.append(f"{args.user}/{nid}: in the table (revision {rev}) but {where}")
                        bad += 1
        for line in diffs:
                print(line)
        n = len(nbs) + len(args.absent)
        if diffs:
                print(f"ddbcheck: {len(diffs)} difference(s); {bad} of {n} notebook(s) differ"
                      + (" or are unexpected" if args.user else ""))
                return 1
        if not args.quiet:
                print(f"ddbcheck: all {n} notebook(s) match the table {args.table}"
                      + (f" (user {args.user}: {len(nbs)} item(s))" if args.user else "")
                      + (f"; {stats['values']} value(s) reassembled from {stats['parts']} part(s)"
                         if stats["values"] else ""))
        return 0


def main(argv=None):
        ap = argparse.ArgumentParser(description="Compare DynamoDB items with notebookctl --json show output "
                                     "(the seed's item shape). Exit 0: equal, 1: differences, 2: usage or endpoint error.",
                                     epilog="The head of this file says exactly what is compared.")
        ap.add_argument("files", nargs="*", metavar="FILE", help="notebookctl --json show output ('-': stdin)")
        ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"),
                        help="http://127.0.0.1:PORT (default $AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL)")
        ap.add_argument("--table", default="notebooks")
        ap.add_argument("--parts-table", help="where big notebooks keep their parts (default TABLE-parts)")
        ap.add_argument("--region", default="us-east-1")
        ap.add_argument("--user", help="read this user's whole partition; it must hold exactly the FILEs' notebooks")
        ap.add_argument("--absent", action="append", default=[], metavar="NB", help="this notebook of --user must not exist")
        ap.add_argument("--ignore", action="append", default=[], metavar="PATH",
                        help="attribute path not to compare (updated_at, sync_id, cells[].stdout)")
        ap.add_argument("--no-sync-id", action="store_true", help="sync_id may be missing")
        ap.add_argument("--dump", action="store_true", help="print the items as plain JSON instead of comparing")
        ap.add_argument("--create-table", action="store_true", help="create the seed's table (and wait until ACTIVE)")
        ap.add_argument("--timeout", type=float, default=10, help="seconds for connecting, reading, table creation")
        ap.add_argument("--attempts", type=int, default=3, help="attempts per request (botocore standard retries)")
        ap.add_argument("--quiet", action="store_true", help="print nothing when everything matches")
        try:
                args = ap.parse_args(argv)
        except SystemExit as e:
                return 2 if e.code else 0
        try:
                if not args.endpoint:
                        raise UsageError("no endpoint: --endpoint URL (or AWS_ENDPOINT_URL_DYNAMODB)")
                check_endpoint(args.endpoint)
                args.parts_table = args.parts_table or args.table + "-parts"
                return run(args)
        except UsageError as e:
                print(f"ddbcheck: {e}", file=sys.stderr)
                return 2
        except Exception as e:  # botocore's errors: unreachable endpoint, missing table, ...
                if type(e).__module__.split(".")[0] not in ("botocore", "boto3", "urllib3"):
                        raise
                print(f"ddbcheck: {args.endpoint}: {type(e).__name__}: {e}", file=sys.stderr)
                return 2


if __name__ == "__main__":
        sys.exit(main())
