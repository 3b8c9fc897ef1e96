"""The output commit on an object store: attempt-unique keys, one winner per partition, `_SUCCESS`
last, nothing left behind - and no `_SUCCESS` (nor any part) when the job fails.
"""

import json
import re
from collections import Counter

import pytest

from mrengine.shuffle.partition import stable_partition
from s3_cli import REDUCE_FAILS, WORDCOUNT, clean_env, mrengine, parse_wordcount, s3_parts, word_text
from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

# 12000 distinct words: each of the 2 partitions has more than FAIL_AFTER, and FAIL_AFTER is past
# the first 4096-record batch the output writer hands to its file, so the failing attempt has
# written output when it fails.
TEXT = word_text(36000, distinct=12000)
FAIL_AFTER = 5000


def test_reduce_attempt_failing_after_writing_output(s3_server, s3_bucket, tmp_path):
    fs = s3_server.fs()
    fs.pipe_file(f"{s3_bucket}/in/words.txt", TEXT)
    marker = tmp_path / "failed-once"
    r = mrengine("run", REDUCE_FAILS, f"s3://{s3_bucket}/in/words.txt", "-o", f"s3://{s3_bucket}/out",
                 "--workers", 2, "-p", f"fail_after={FAIL_AFTER}", "-p", f"marker={marker}", env=clean_env(**s3_server.env))
    assert r.returncode == 0, r.stderr
    assert marker.exists()
    assert "tasks: 1 map, 2 reduce (4 attempts)" in r.stderr  # one reduce attempt failed and was retried

    # The failed attempt had uploaded its partial output under its own key; the retry under another.
    puts = [q.path for q in s3_server.requests() if q.method == "PUT" and "/_temporary/" in q.path]
    attempts = {re.search(r"/_temporary/[^/]+/(r\d+\.\d+)/", p).group(1) for p in puts}
    failed = [a for a in attempts if a.endswith(".0") and a[:-1] + "1" in attempts]
    assert len(failed) == 1, attempts

    parts = s3_parts(fs, f"{s3_bucket}/out")
    assert parse_wordcount(parts) == Counter(TEXT.decode().split())
    assert fs.find(f"{s3_bucket}/out/_temporary") == []
    assert sorted(fs.ls(f"{s3_bucket}/out")) == [f"{s3_bucket}/out/{n}" for n in ("_REPORT.json", "_SUCCESS", "part-00000", "part-00001")]
    assert mrengine("verify", f"s3://{s3_bucket}/out", env=clean_env(**s3_server.env)).returncode == 0


def test_failed_job_leaves_nothing(s3_server, s3_bucket):
    fs = s3_server.fs()
    fs.pipe_file(f"{s3_bucket}/in/words.txt", TEXT)
    # The last word of partition 1 fails on every attempt. One worker runs the reduces in order, so
    # partition 0 is committed first and must be taken back.
    last = max(w for w in set(TEXT.decode().split()) if stable_partition(w, 2) == 1)
    r = mrengine("run", REDUCE_FAILS, f"s3://{s3_bucket}/in/words.txt", "-o", f"s3://{s3_bucket}/out",
                 "--workers", 1, "--max-attempts", 2, "-p", f"fail_key={last}", env=clean_env(**s3_server.env))
    assert r.returncode == 5, r.stderr
    assert "reduce task 1 failed on all 2 attempts" in r.stderr and "planned failure" in r.stderr
    assert f"PUT /{s3_bucket}/out/part-00000" in [f"{q.method} {q.path}" for q in s3_server.requests()]
    assert fs.find(f"{s3_bucket}/out") == []  # no _SUCCESS, no part, no temporary object
    r = mrengine("verify", f"s3://{s3_bucket}/out", env=clean_env(**s3_server.env))
    assert r.returncode == 3 and "does not exist" in r.stderr


def test_existing_output_needs_overwrite(s3_server, s3_bucket):
    fs = s3_server.fs()
    fs.pipe_file(f"{s3_bucket}/in/words.txt", TEXT)
    fs.pipe_file(f"{s3_bucket}/out/old/stale.txt", b"from an earlier run\n")
    fs.pipe_file(f"{s3_bucket}/outside.txt", b"not under the output prefix\n")
    args = ("run", WORDCOUNT, f"s3://{s3_bucket}/in/words.txt", "-o", f"s3://{s3_bucket}/out", "--workers", 1)
    r = mrengine(*args, env=clean_env(**s3_server.env))
    assert r.returncode == 2
    assert f"output directory 's3://{s3_bucket}/out' already holds files" in r.stderr
    assert "map 0/" not in r.stderr  # refused before submitting anything

    r = mrengine(*args, "--overwrite", env=clean_env(**s3_server.env))
    assert r.returncode == 0, r.stderr
    assert sorted(fs.find(s3_bucket)) == [f"{s3_bucket}/{k}" for k in (
        "in/words.txt", "out/_REPORT.json", "out/_SUCCESS", "out/part-00000", "out/part-00001", "outside.txt")]
    manifest = json.loads(fs.cat_file(f"{s3_bucket}/out/_SUCCESS"))
    assert sum(p["records"] for p in manifest["parts"].values()) == 12000
