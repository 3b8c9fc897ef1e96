"""The Spark runner reads its input from and commits its output to S3 (a moto server on 127.0.0.1),
with the same `--storage-option`s as the native runner. (main(ctx) rounds over S3 on Spark: in
tests/test_iterative_s3.py.)"""

from __future__ import annotations

import os

import pytest

from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)
from conftest import JOBS, SAMPLE_TEXT as TEXT, run_cli
from spark_helpers import RUN_TIMEOUT, files_of, run_native

pytestmark = pytest.mark.spark

SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]


def test_wordcount_from_s3_to_s3(s3_server, s3_bucket, tmp_path, spark_submit_env):
    fs = s3_server.fs()
    for name in sorted(os.listdir(TEXT)):
        fs.put_file(os.path.join(TEXT, name), f"{s3_bucket}/in/{name}")
    job = os.path.join(JOBS, "wordcount.py")
    options = [arg for k, v in s3_server.storage_options.items() for arg in ("--storage-option", f"{k}={v}")]
    result = run_cli("run", job, f"s3://{s3_bucket}/in/*.txt", "-o", f"s3://{s3_bucket}/wc", "--split-size", "1m",
                     *SPARK, *options, timeout=RUN_TIMEOUT, env=spark_submit_env)
    assert result.returncode == 0, result.stderr
    run_native(job, tmp_path / "native", "--split-size", "1m")
    native = files_of(tmp_path / "native")
    fs = s3_server.fs()  # a fresh listing
    written = sorted(p.split("/", 2)[2] for p in fs.find(f"{s3_bucket}/wc"))
    assert written == sorted([*native, "_REPORT.json"])  # no _temporary left; the run's report beside _SUCCESS
    for name, data in native.items():
        assert fs.cat_file(f"{s3_bucket}/wc/{name}") == data, name
    assert any(r.method == "GET" and r.range for r in s3_server.requests())  # splits read as byte ranges

