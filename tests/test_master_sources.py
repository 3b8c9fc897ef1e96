"""A master's reduce specs (their `MapSources`, on the wire too) and job counters (a running `CounterSum`) as its
request handlers make them: a real `Master` (its socket never served) gets registrations, heartbeats and
goodbyes in-process, as workers would send them."""

import time

import pytest

from mrengine import outputs, protocol
from mrengine.errors import ProtocolError
from mrengine.master import Master
from mrengine.messages import (
    AttemptReport, FetchFailure, ErrorInfo, Goodbye, Heartbeat, JobStatusRequest, MapOutput, MapSources, PartOutput,
    Register, StepSpec, Submit, TaskSpec, Work, from_wire, to_wire,
)
from mrengine.steps import CounterSum, sum_counters

LINE = b"line\n"  # one split per line
MAPS, REDUCES = 3, 2


def over_the_wire(message):
    """The message as its peer reads it: encoded, framed and decoded again."""
    frame = protocol.encode(to_wire(message))
    return from_wire(protocol.decode(frame[protocol.HEADER.size:]))


class Request:
    """A request as the master's connection loop hands it over (`comm.Request`), keeping the reply."""

    def __init__(self, message):
        self.msg = to_wire(message)
        self.replies: list[dict] = []

    def reply(self, wire: dict) -> None:
        self.replies.append(wire)


def answer(master: Master, message):
    """The master's one reply to `message`, as its peer reads it."""
    request = Request(message)
    master._serve(request)
    [wire] = request.replies
    return over_the_wire(from_wire(wire))


class Worker:
    """One worker's side of the heartbeat protocol, its attempts finished by the test."""

    def __init__(self, master: Master, shuffle: str):
        self.master, self.shuffle = master, shuffle
        reply = master._register(Register("host", shuffle, slots=REDUCES))
        self.id, self.instance = reply.worker_id, reply.master
        self.running: dict[str, TaskSpec] = {}

    def heartbeat(self, free: int = 0, finished=()) -> list[TaskSpec]:
        for report in finished:
            del self.running[report.attempt_id]
        refs = [task.ref for task in self.running.values()]
        reply = answer(self.master, Heartbeat(self.id, self.instance, free, refs, list(finished)))
        self.running.update((task.attempt_id, task) for task in reply.assign)
        return reply.assign

    def finish_maps(self, counter: int) -> None:
        """Each map's output: partition p of map m holds 10 * m + p bytes (map 0's partition 0 none) in as many
        records; counter `t/n` is `counter` * (m + 1)."""
        self.heartbeat(finished=[AttemptReport(t.job_id, t.attempt_id, map_output=MapOutput(
            [10 * t.index + p for p in range(REDUCES)], [10 * t.index + p for p in range(REDUCES)],
            [["t", "n", counter * (t.index + 1)]])) for t in self.running.values()])

    def part(self, task: TaskSpec) -> AttemptReport:
        path = outputs.attempt_path(task.output, task.job_id, task.attempt_id, task.index)
        stats = outputs.write_pairs(path, task.output_format, [], task.storage_options)
        return AttemptReport(task.job_id, task.attempt_id, part=PartOutput(**stats, counters=[["t", "r", 1]]))


@pytest.fixture
def master():
    master = Master("127.0.0.1", 0, b"a test secret", worker_timeout=60)
    yield master
    master.stop()


def counters(master: Master, job_id: str) -> list:
    return master._job_status(JobStatusRequest(job_id)).counters


def test_reduces_fetch_from_the_maps_winning_now_and_counters_follow_the_winners(master, tmp_path):
    (tmp_path / "in.txt").write_bytes(LINE * MAPS)
    spec = StepSpec(b"never unpickled", "test", 0, [str(tmp_path / "in.txt")], "text", True, str(tmp_path / "out"),
                    "text", REDUCES, len(LINE), {}, {}, 1 << 20)
    job_id = master._submit(Submit(spec)).job_id
    first, second = Worker(master, "10.0.0.1:7001"), Worker(master, "10.0.0.2:7002")
    assert len(first.heartbeat(free=MAPS)) == MAPS
    first.finish_maps(counter=1)
    assert counters(master, job_id) == [["t", "n", 1 + 2 + 3]]

    reduces = second.heartbeat(free=REDUCES)
    assert [r.index for r in reduces] == [0, 1]
    for r in reduces:
        assert list(r.sources.maps) == [0, 1, 2] and r.sources.addresses == ["10.0.0.1:7001"]
        assert r.sources.attempts == ["m00000.0", "m00001.0", "m00002.0"]
        assert [s.map_index for s in r.sources] == [m for m in range(MAPS) if 10 * m + r.index]  # not the empty one

    # The maps' worker goes: its outputs are made again, on a new worker, and replace the old ones' counters.
    master._goodbye(Goodbye(first.id, first.instance))
    assert counters(master, job_id) == [["t", "n", 6]]  # kept until new winners replace them
    third = Worker(master, "10.0.0.3:7003")
    assert len(third.heartbeat(free=MAPS)) == MAPS
    third.finish_maps(counter=10)
    assert counters(master, job_id) == [["t", "n", 60]]

    # A reduce that could not fetch the old output runs again, fetching from the new winners.
    lost = reduces[0]
    second.heartbeat(finished=[AttemptReport(job_id, lost.attempt_id, error=ErrorInfo("no route"),
                                             fetch_failed=FetchFailure(0, lost.sources.attempt_of(0)))])
    (again,) = second.heartbeat(free=1)
    assert again.index == 0 and again.sources.addresses == ["10.0.0.3:7003"]
    assert again.sources.attempts == ["m00000.1", "m00001.1", "m00002.1"] and again.sources.fetch == [1, 2]

    second.heartbeat(finished=[second.part(t) for t in list(second.running.values())])
    for _ in range(200):  # the committer thread writes _SUCCESS
        if master._job_status(JobStatusRequest(job_id)).state != "running":
            break
        time.sleep(0.05)
    status = master._job_status(JobStatusRequest(job_id))
    assert status.state == "succeeded", status.error
    assert status.counters == status.manifest["counters"] == [["t", "n", 60], ["t", "r", 2]]
    with master.lock:
        report = master.report(master.scheduler.jobs[job_id])
    received = [sum(10 * m + p for m in range(MAPS)) for p in range(REDUCES)]  # each map counted once
    assert [(s["bytes"], s["records"]) for s in report["skew"]] == [(n, n) for n in received]
    winners = [a for t in report["tasks"] for a in t["attempts"] if "bytes_out" in a]
    assert [(a["id"], a["records_out"], a["bytes_out"]) for a in winners if a["id"].startswith("m")] == [
        (f"m{m:05d}.1", *[sum(10 * m + p for p in range(REDUCES))] * 2) for m in range(MAPS)]
    assert [(a["records_in"], a["bytes_in"]) for a in winners if a["id"].startswith("r")] == [(n, n) for n in received]


def map_sources() -> MapSources:
    return MapSources(["a:1", "b:2"], [0, 1, 2], [1, 0, 1], ["m00000.0", "m00001.3", "m00002.0"], [0, 2])


def reduce_spec(sources: MapSources) -> TaskSpec:
    return TaskSpec("job0001", "r00001.0", "reduce", 1, 0, {}, {}, 2, sources=sources)


def test_map_sources_cross_the_wire_as_columns():
    work = Work(assign=[reduce_spec(map_sources())])
    assert over_the_wire(work) == work
    assert to_wire(work)["assign"][0]["sources"] == {
        "addresses": ["a:1", "b:2"], "maps": [0, 1, 2], "hosts": [1, 0, 1],
        "attempts": ["m00000.0", "m00001.3", "m00002.0"], "fetch": [0, 2]}
    sources = over_the_wire(work).assign[0].sources
    assert list(sources) == [(0, "b:2", "m00000.0"), (2, "b:2", "m00002.0")]
    assert sources.attempt_of(1) == "m00001.3"


@pytest.mark.parametrize("change, why", [({"attempts": ["m00000.0"]}, "columns differ in length"),
                                         ({"hosts": [1, 0, 2]}, "shuffle server it does not list"),
                                         ({"fetch": [0, 3]}, "fetches a row it does not have"),
                                         ({"fetch": "0,2"}, "expected a list")])
def test_malformed_map_sources_are_a_protocol_error(change, why):
    frame = to_wire(Work(assign=[reduce_spec(map_sources())]))
    frame["assign"][0]["sources"] = {**frame["assign"][0]["sources"], **change}
    with pytest.raises(ProtocolError, match=f"malformed '(TaskSpec|MapSources)' message: .*{why}"):
        from_wire(frame)


def test_a_map_output_crosses_the_wire_as_columns_and_its_worker_finds_each_segment_from_them():
    report = AttemptReport("job0001", "m00000.0", map_output=MapOutput([120, 0, 30], [4, 0, 1], [["g", "n", 1]]))
    heartbeat = Heartbeat("w1", "master", 0, [], [report])
    assert over_the_wire(heartbeat) == heartbeat
    frame = to_wire(heartbeat)
    assert frame["finished"][0]["map_output"] == {"lengths": [120, 0, 30], "records": [4, 0, 1],
                                                  "counters": [["g", "n", 1]], "heavy_keys": []}
    assert [tuple(s) for s in report.map_output.segments()] == [(0, 120, 4), (120, 0, 0), (120, 30, 1)]
    frame["finished"][0]["map_output"]["records"] = [4, 0]
    with pytest.raises(ProtocolError, match="malformed 'AttemptReport' message: field 'map_output': its columns differ in length"):
        from_wire(frame)


def test_a_running_counter_sum_is_the_sum_of_the_lists_in_it_now():
    lists = [[["a", "x", 3], ["b", "y", 1]], [["a", "x", 4]], [["c", "z", 0], ["a", "x", 1]], []]
    total = CounterSum()
    for counters in lists:
        total.add(counters)
    assert total.total() == sum_counters(lists) == [["a", "x", 8], ["b", "y", 1], ["c", "z", 0]]
    total.remove(lists[0])  # a map output lost: its new winner's counters replace it
    total.add([["a", "x", 2], ["d", "w", 5]])
    assert total.total() == sum_counters([[["a", "x", 2], ["d", "w", 5]], *lists[1:]])
    assert total.total() == [["a", "x", 7], ["c", "z", 0], ["d", "w", 5]]  # b/y: no list names it any more
