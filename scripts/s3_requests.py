"""Count the S3 requests of one wordcount run, s3:// in and out, by kind.

Starts moto's S3 server on 127.0.0.1 (tests/s3server.py), uploads one book, runs

    mrengine run jobs/wordcount.py s3://data/in/book.txt -o s3://data/out --split-size SIZE/4 ...

through the CLI and sorts the server's request log into what asked for it. Needs the [test] extra.

    python scripts/s3_requests.py [--splits 4] [--reducers 2] [--log]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from s3server import S3Server  # noqa: E402

BOOK = os.path.join(REPO, "sample_data", "text", "kjv-new-testament.txt")


def kind(req, splits: set) -> str:
    key = req.path.split("/", 2)[2] if req.path.count("/") >= 2 else ""
    listing = "list-type=2" in req.query
    if key.startswith("in/"):
        if req.method == "HEAD":
            return "HEAD input object (master listing, then each split opening it)"
        first, last = map(int, req.range.split("=")[1].split("-"))
        own = (first, last + 1) in splits
        return "ranged GET of a split's own bytes" if own else "ranged GET past a split's end (straddling line)"
    if "/_temporary/" in req.path or (listing and "_temporary" in req.query):
        return {"PUT": "PUT reduce attempt output", "HEAD": "HEAD attempt output (size, before the copy)",
                "GET": "LIST job's temporary prefix (cleanup)"}.get(req.method, req.method)
    if req.method == "POST" and "delete" in req.query:
        return "bulk DELETE of the temporary objects"
    if key.startswith("out/part-") and req.method == "PUT":
        return "server-side COPY attempt -> part-NNNNN (commit)"
    if key == "out/_SUCCESS":
        return "PUT _SUCCESS with the manifest"
    if key == "out" or (listing and "prefix=out" in req.query):
        return "output check (HEAD key, LIST prefix)"
    if key == "" and req.method == "HEAD":
        return "HEAD bucket (output check: the bucket exists)"
    return f"other {req.method} {req.path}?{req.query}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=4)
    ap.add_argument("--reducers", type=int, default=2)
    ap.add_argument("--log", action="store_true", help="print every request too")
    args = ap.parse_args()
    size = os.path.getsize(BOOK)
    split = -(-size // args.splits)
    with S3Server() as server:
        server.make_bucket("data")
        server.fs().put_file(BOOK, "data/in/book.txt")
        server.clear_requests()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(server.env)
        cmd = [sys.executable, "-m", "mrengine", "run", os.path.join(REPO, "jobs", "wordcount.py"), "s3://data/in/book.txt",
               "-o", "s3://data/out", "--workers", "2", "--reducers", str(args.reducers), "--split-size", str(split)]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if run.returncode:
            sys.exit(run.stderr)
        log = server.requests()
    splits = {(start, min(start + split, size)) for start in range(0, size, split)}
    if args.log:
        for r in log:
            print(f"{r.method:5} {r.path} {r.query[:60]} {r.range or ''} -> {r.status} {r.content_length}")
    counts = Counter(kind(r, splits) for r in log)
    got = sum(r.content_length or 0 for r in log if r.method == "GET" and r.range)
    print(f"wordcount of a {size}-byte object in {len(splits)} splits, {args.reducers} reducers: {len(log)} S3 requests")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4}  {name}")
    print(f"  ranged GETs transferred {got} bytes = {got / size:.3f} x the object")


if __name__ == "__main__":
    main()
