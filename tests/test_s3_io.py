"""S3 in and out, end to end through the CLI against a real S3 endpoint (moto's server on 127.0.0.1).

Every run is compared byte for byte with the same job run on local files.
"""

import json
import os
import shutil
import zlib
from collections import Counter

import pytest

from mrengine.storage import RANGE_TAIL
from s3_cli import REPO, WORDCOUNT, clean_env, local_parts, mrengine, parse_wordcount, s3_parts, word_text
from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

BOOK = os.path.join(REPO, "sample_data", "text", "kjv-new-testament.txt")
SPLIT = 256 * 1024


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A local input directory: a book, a generated text, and a file the glob must not match."""
    d = tmp_path_factory.mktemp("inputs")
    shutil.copy(BOOK, d / "book.txt")
    (d / "words.txt").write_bytes(word_text(30000, distinct=3000))
    (d / "notes.md").write_bytes(b"not an input\n")
    return d


@pytest.fixture(scope="module")
def local_result(inputs, tmp_path_factory):
    """Parts of the local run that every S3 run must reproduce exactly."""
    out = tmp_path_factory.mktemp("local") / "wc"
    r = mrengine("run", WORDCOUNT, inputs / "*.txt", "-o", out, "--workers", 2, "--split-size", SPLIT, env=clean_env())
    assert r.returncode == 0, r.stderr
    parts = local_parts(out)
    expected = Counter()
    for name in ("book.txt", "words.txt"):
        expected.update((inputs / name).read_text().split())
    assert parse_wordcount(parts) == expected
    return parts


def upload(fs, inputs, prefix):
    for name in os.listdir(inputs):
        fs.put_file(str(inputs / name), f"{prefix}/{name}")


def test_s3_to_s3_equals_local_and_verifies(s3_server, s3_bucket, inputs, local_result):
    fs = s3_server.fs()
    upload(fs, inputs, f"{s3_bucket}/logs")
    out = f"s3://{s3_bucket}/results/wc"
    env = clean_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    r = mrengine("run", WORDCOUNT, f"s3://{s3_bucket}/logs/*.txt", "-o", out, "--workers", 2, "--split-size", SPLIT,
                 "--endpoint-url", s3_server.endpoint_url, env=env)
    assert r.returncode == 0, r.stderr

    # The glob took the two .txt objects, cut into splits, and nothing else.
    maps = sum(-(-os.path.getsize(inputs / name) // SPLIT) for name in ("book.txt", "words.txt"))
    assert f"tasks: {maps} map, 2 reduce" in r.stderr
    parts = s3_parts(fs, f"{s3_bucket}/results/wc")
    assert parts == local_result
    assert sorted(fs.ls(f"{s3_bucket}/results/wc")) == [f"{s3_bucket}/results/wc/{n}"
                                                         for n in ("_REPORT.json", "_SUCCESS", "part-00000", "part-00001")]
    manifest = json.loads(fs.cat_file(f"{s3_bucket}/results/wc/_SUCCESS"))
    assert manifest["format"] == "text"
    assert manifest["parts"] == {
        name: {"bytes": len(data), "records": data.count(b"\n"), "crc32": zlib.crc32(data)}
        for name, data in parts.items()
    }

    verify = ("verify", out, "--endpoint-url", s3_server.endpoint_url)
    r = mrengine(*verify, env=env)
    assert r.returncode == 0, r.stderr
    total = sum(p["records"] for p in manifest["parts"].values())
    assert r.stdout.strip() == (f"{out}: 2 part files, {total} records, {sum(map(len, parts.values()))} bytes "
                                f"match the manifest of job wordcount")

    # One byte changed, same size: only the checksum can tell.
    tampered = bytearray(parts["part-00001"])
    tampered[10] ^= 0x20
    fs.pipe_file(f"{s3_bucket}/results/wc/part-00001", bytes(tampered))
    r = mrengine(*verify, env=env)
    assert r.returncode == 1
    assert "part-00001 differs: crc32" in r.stderr and "part-00000" not in r.stderr

    fs.rm_file(f"{s3_bucket}/results/wc/part-00000")
    fs.pipe_file(f"{s3_bucket}/results/wc/part-00002", b"stray\n")
    r = mrengine(*verify, env=env)
    assert r.returncode == 1
    assert "part-00000 is missing" in r.stderr
    assert "part-00002 is not in the manifest" in r.stderr


def test_one_object_read_as_ranged_splits(s3_server, s3_bucket, tmp_path):
    """A 4-split object: each split reads its own bytes with ranged GETs, plus the straddling line."""
    data = word_text(200000, per_line=10, distinct=5000)  # about 1.4 MB
    s3_server.fs().pipe_file(f"{s3_bucket}/big.txt", data)
    split = len(data) // 4 + 1
    s3_server.clear_requests()
    r = mrengine("run", WORDCOUNT, f"s3://{s3_bucket}/big.txt", "-o", tmp_path / "wc", "--workers", 2,
                 "--split-size", split, env=clean_env(**s3_server.env))
    assert r.returncode == 0, r.stderr
    assert "tasks: 4 map" in r.stderr
    assert parse_wordcount(local_parts(tmp_path / "wc")) == Counter(data.decode().split())

    gets = [q for q in s3_server.requests() if q.method == "GET" and q.path == f"/{s3_bucket}/big.txt"]
    assert gets and all(q.range and q.status == 206 for q in gets), "every read of the object is a ranged GET"
    starts = {int(q.range.split("=")[1].split("-")[0]) for q in gets}
    assert {0, split, 2 * split, 3 * split} <= starts
    transferred = sum(q.content_length for q in gets)
    # Each split's own bytes, and one small read past its end for the line that straddles it.
    assert len(data) <= transferred <= len(data) + 3 * RANGE_TAIL


def test_prefixes_with_many_objects(s3_server, s3_bucket, tmp_path):
    """One prefix named as a directory, one by a glob: 30 objects each (and a hidden one), a map task each."""
    fs = s3_server.fs()
    objects = {f"{s3_bucket}/many/{'dir' if i < 30 else 'glob'}/day-{i:03d}.txt": f"alpha beta w{i % 7}\n".encode()
               for i in range(60)}
    objects[f"{s3_bucket}/many/dir/_SUCCESS"] = b"hidden: not an input\n"
    objects[f"{s3_bucket}/many/glob/day-999.csv"] = b"not matched\n"
    fs.pipe(objects)
    r = mrengine("run", WORDCOUNT, f"s3://{s3_bucket}/many/dir/", f"s3://{s3_bucket}/many/glob/day-*.txt",
                 "-o", tmp_path / "wc", "--workers", 2, env=clean_env(**s3_server.env))
    assert r.returncode == 0, r.stderr
    assert "tasks: 60 map" in r.stderr
    expected = Counter({"alpha": 60, "beta": 60, **{f"w{k}": len(range(k, 60, 7)) for k in range(7)}})
    assert parse_wordcount(local_parts(tmp_path / "wc")) == expected


@pytest.mark.parametrize("direction", ["s3-in-local-out", "local-in-s3-out"])
def test_mixed_locations(s3_server, s3_bucket, inputs, local_result, tmp_path, direction):
    fs = s3_server.fs()
    env = clean_env(**s3_server.env)
    if direction == "s3-in-local-out":
        upload(fs, inputs, f"{s3_bucket}/in")
        source, out = f"s3://{s3_bucket}/in/*.txt", str(tmp_path / "wc")
    else:
        source, out = inputs / "*.txt", f"s3://{s3_bucket}/wc"
    r = mrengine("run", WORDCOUNT, source, "-o", out, "--workers", 2, "--split-size", SPLIT, env=env)
    assert r.returncode == 0, r.stderr
    parts = local_parts(out) if direction == "s3-in-local-out" else s3_parts(fs, f"{s3_bucket}/wc")
    assert parts == local_result
    r = mrengine("verify", out, env=env)
    assert r.returncode == 0, r.stderr
