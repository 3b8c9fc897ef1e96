"""The Spark runner reads its input from and commits its output to S3 (a moto server on 127.0.0.1),
with the same `--storage-option`s as the native runner; a main(ctx) job's rounds read their S3 input
once, in round 1."""

from __future__ import annotations

import io
import json
import os

import numpy as np

from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)
from conftest import JOBS, SAMPLE_TEXT as TEXT, run_cli
from sgd_support import FIXTURE_JOBS
from spark_helpers import RUN_TIMEOUT, files_of, run_native

SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]


def test_wordcount_from_s3_to_s3(s3_server, s3_bucket, tmp_path):
    fs = s3_server.fs()
    for name in sorted(os.listdir(TEXT)):
        fs.put_file(os.path.join(TEXT, name), f"{s3_bucket}/in/{name}")
    job = os.path.join(JOBS, "wordcount.py")
    options = [arg for k, v in s3_server.storage_options.items() for arg in ("--storage-option", f"{k}={v}")]
    result = run_cli("run", job, f"s3://{s3_bucket}/in/*.txt", "-o", f"s3://{s3_bucket}/wc", "--split-size", "1m",
                     *SPARK, *options, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    run_native(job, tmp_path / "native", "--split-size", "1m")
    native = files_of(tmp_path / "native")
    fs = s3_server.fs()  # a fresh listing
    assert sorted(p.split("/", 2)[2] for p in fs.find(f"{s3_bucket}/wc")) == sorted(native)  # no _temporary left
    for name, data in native.items():
        assert fs.cat_file(f"{s3_bucket}/wc/{name}") == data, name
    assert any(r.method == "GET" and r.range for r in s3_server.requests())  # splits read as byte ranges


def test_rounds_read_their_s3_input_in_round_one_only(s3_server, s3_bucket):
    fs = s3_server.fs()
    table = np.random.default_rng(6).standard_normal((2000, 3))
    buf = io.BytesIO()
    np.save(buf, table)
    fs.pipe_file(f"{s3_bucket}/in/table.npy", buf.getvalue())
    options = [arg for k, v in s3_server.storage_options.items() for arg in ("--storage-option", f"{k}={v}")]
    s3_server.clear_requests()
    result = run_cli("run", FIXTURE_JOBS / "iterative_counts.py", f"s3://{s3_bucket}/in/table.npy", "-o",
                     f"s3://{s3_bucket}/out", "--split-size", "8k", *SPARK, *options, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    fs = s3_server.fs()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{s3_bucket}/out")) == ["_SUCCESS", "rounds.json"]
    rounds = json.loads(fs.cat(f"{s3_bucket}/out/rounds.json"))
    splits = -(-len(buf.getvalue()) // 8192)
    assert [r["split_reads"] for r in rounds] == [splits, 0, 0, 0, 0]
    assert [r["split_cache_hits"] for r in rounds] == [0] + [splits] * 4
    for rnd in rounds:
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)
    # Each split was fetched in round 1 only: as many GETs of the table as splits, not five times as many.
    data_gets = [r for r in s3_server.requests() if r.method == "GET" and r.path.endswith("/in/table.npy")]
    assert splits <= len(data_gets) < 2 * splits
