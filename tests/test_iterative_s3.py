"""An iterative job with its input and output on S3 (a real moto server over TCP), on either runner:
npy splits read with ranged GETs in round 1 only, round results collected through S3, the job's files
published there."""

import io
import json

import numpy as np
import pytest

from s3server import S3Server, s3_bucket, s3_server  # noqa: F401 - pytest fixtures
from sgd_support import FIXTURE_JOBS, mrengine_run
from spark_helpers import RUN_TIMEOUT

pytestmark = pytest.mark.slow

SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]


@pytest.mark.parametrize("runner", [pytest.param([], id="native"), pytest.param(SPARK, id="spark", marks=pytest.mark.spark)])
def test_rounds_read_s3_input_once_and_write_their_files_to_s3(request, tmp_path, s3_server, s3_bucket, runner):  # noqa: F811
    fs = s3_server.fs()
    table = np.random.default_rng(6).standard_normal((2000, 3))
    buf = io.BytesIO()
    np.save(buf, table)
    fs.pipe_file(f"{s3_bucket}/in/table.npy", buf.getvalue())
    options = [f"--storage-option={k}={v}" for k, v in s3_server.storage_options.items()]
    s3_server.clear_requests()
    proc = mrengine_run(FIXTURE_JOBS / "iterative_counts.py", [f"s3://{s3_bucket}/in/table.npy"], f"s3://{s3_bucket}/out",
                        "--split-size", "8k", *options, *runner, timeout=RUN_TIMEOUT,
                        env=request.getfixturevalue("spark_submit_env") if runner else None)
    assert proc.returncode == 0, proc.stderr
    fs = s3_server.fs()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(f"{s3_bucket}/out")) == ["_SUCCESS", "rounds.json"]
    rounds = json.loads(fs.cat(f"{s3_bucket}/out/rounds.json"))
    splits = -(-len(buf.getvalue()) // 8192)
    assert [r["split_reads"] for r in rounds] == [splits, 0, 0, 0, 0]
    assert [r["split_cache_hits"] for r in rounds] == [0] + [splits] * 4
    for rnd in rounds:
        assert np.allclose(rnd["sum"], table.sum(axis=0), rtol=1e-9, atol=1e-9)
    # Each split was fetched in round 1 only: as many ranged GETs of the table as splits, not five times as many.
    data_gets = [r for r in s3_server.requests() if r.method == "GET" and r.path.endswith("/in/table.npy")]
    assert all(r.range for r in data_gets) and splits <= len(data_gets) < 2 * splits
