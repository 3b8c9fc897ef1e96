"""The parameter server and its client over real loopback connections, in this process: resuming from
a checkpoint (version and clocks), and a file that is no checkpoint. The end-to-end runs are in
tests/test_sgd_async.py."""

import json

import numpy as np
import pytest

from mrengine.errors import UsageError
from mrengine.paramserver import ParamClient, ParameterServer, read_checkpoint

SECRET = b"a-secret-for-this-test"


def writer(base):
    def open_file(name, mode):
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode)
    return open_file


def test_a_server_started_from_a_checkpoint_resumes_each_task_at_its_clock(tmp_path):
    about = {"job": "test", "splits": 2}
    with ParameterServer({"w": np.zeros(2)}, "127.0.0.1", SECRET, staleness=None, checkpoint_every=2,
                         open_file=writer(tmp_path / "first"), about=about) as server:
        with ParamClient(server.address, 0, SECRET) as ps:
            step, _ = ps.join()
            for _ in range(4):
                step, _ = ps.push(step, {"w": np.array([1.0, 0.0])})
    params, meta = read_checkpoint(str(tmp_path / "first" / "checkpoints" / "params-00000004.npz"))
    assert meta["version"] == 4 and meta["clocks"] == {"0": 4} and meta["about"] == about
    assert params["w"].tolist() == [4.0, 0.0]

    with ParameterServer(params, "127.0.0.1", SECRET, staleness=None, checkpoint_every=2, open_file=writer(tmp_path / "again"),
                         version=meta["version"], clocks=meta["clocks"], about=about) as server:
        with ParamClient(server.address, 0, SECRET) as ps, ParamClient(server.address, 1, SECRET) as other:
            assert ps.join()[0] == 4  # where the checkpoint left task 0
            assert other.join()[0] == 0  # a task the checkpoint had not seen starts at its first step
            assert ps.push(3, {"w": np.array([100.0, 0.0])})[0] == 4  # a step the checkpoint holds: dropped
            step, params = ps.push(4, {"w": np.array([0.0, 1.0])})
            assert step == 5 and params["w"].tolist() == [4.0, 1.0]
            assert server.counters["version"] == 5 and server.counters["duplicates_dropped"] == 1
            other.push(0, {"w": np.array([0.0, 1.0])})
    record = json.loads((tmp_path / "again" / "paramserver.json").read_text())
    assert record["resumed_from"] == {"version": 4, "clocks": {"0": 4}}
    assert record["clocks"] == {"0": 5, "1": 1} and [a[:2] for a in record["applied"]] == [[0, 4], [1, 0]]
    assert [p.name for p in (tmp_path / "again" / "checkpoints").iterdir()] == ["params-00000006.npz"]


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_what_is_not_a_checkpoint_is_refused_in_one_paragraph(tmp_path, content):
    path = tmp_path / "params.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=r"cannot resume from .*params\.npz: .* A checkpoint is a checkpoints/params-"):
        read_checkpoint(str(path))
