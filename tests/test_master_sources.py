"""A master's reduce specs (their `MapSources`, on the wire too) and job counters (a running `CounterSum`) as its
request handlers make them: a real `Master` (its socket never served) gets registrations, heartbeats and
goodbyes in-process, as workers would send them."""

import json
import time

import pytest

from mrengine import outputs, protocol
from mrengine.errors import ProtocolError
from mrengine.master import Master
from mrengine.messages import (
    AttemptReport, FetchFailure, FetchRows, ErrorInfo, Goodbye, Heartbeat, JobStatusRequest, MapOutput, MapSources,
    PartOutput, Register, SharedSources, SourcesRef, SplitPlaces, StepSpec, StepStatus, Submit, TaskCounts, TaskSpec, Work,
    from_wire, to_wire,
)
from mrengine.steps import CounterSum, sum_counters
from mrengine.worker import HeldSources

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
        self.sources = HeldSources()  # the reduces' map source columns, as a worker holds them
        self.sent: dict[str, SharedSources] = {}  # the columns the last reply carried

    def heartbeat(self, free: int = 0, finished=()) -> list[TaskSpec]:
        for report in finished:
            del self.running[report.attempt_id]
        refs = [task.ref for task in self.running.values()]
        reply = answer(self.master, Heartbeat(self.id, self.instance, free, refs, list(finished),
                                              sources=self.sources.generations()))
        self.sent = reply.sources
        self.sources.update(reply.sources)
        assert all(map(self.sources.resolve, reply.assign))
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
    # The columns travel once, beside the reduces; each reduce names their generation and its rows (all of
    # partition 1's; partition 0's but map 0's, which holds none).
    assert list(second.sent) == [job_id] and second.sent[job_id].generation == 1
    assert [r.sources_ref for r in reduces] == [SourcesRef(1, FetchRows(bitmap=b"\x06")),
                                                SourcesRef(1, FetchRows(every=True))]
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
    assert second.sent[job_id].generation == 2 and again.sources_ref.generation == 2  # new winners, new columns
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
    written = json.loads((tmp_path / "out" / "_REPORT.json").read_text())  # made a row at a time at the commit
    assert written["started"] == report["started"]  # the job's wall-clock start, kept with it
    clock = {"elapsed": 0, "finished": 0}  # as of each report's time: the commit's and now
    assert {**written, **clock} == {**report, **clock}
    received = [sum(10 * m + p for m in range(MAPS)) for p in range(REDUCES)]  # each map counted once
    assert [(s["bytes"], s["records"]) for s in report["skew"]] == [(n, n) for n in received]
    winners = [a for t in report["tasks"] for a in t["attempts"] if "bytes_out" in a]
    assert [(a["id"], a["records_out"], a["bytes_out"]) for a in winners if a["id"].startswith("m")] == [
        (f"m{m:05d}.1", *[sum(10 * m + p for p in range(REDUCES))] * 2) for m in range(MAPS)]
    assert [(a["records_in"], a["bytes_in"]) for a in winners if a["id"].startswith("r")] == [(n, n) for n in received]


def shared_sources(generation: int = 3, attempt_1: int = 3) -> SharedSources:
    return SharedSources(generation, ["a:1", "b:2"], [1, 0, 1], [0, attempt_1, 0])


def reduce_spec(ref: SourcesRef) -> TaskSpec:
    return TaskSpec("job0001", "r00001.0", "reduce", 1, 0, {}, {}, 2, sources_ref=ref)


def test_map_sources_cross_the_wire_as_a_jobs_shared_columns_and_each_reduces_reference():
    work = Work(assign=[reduce_spec(SourcesRef(3, FetchRows.of([0, 2], count=3)))],
                sources={"job0001": shared_sources()})
    assert over_the_wire(work) == work
    frame = to_wire(work)
    assert frame["sources"]["job0001"] == {"generation": 3, "addresses": ["a:1", "b:2"], "hosts": [1, 0, 1],
                                           "attempt_numbers": [0, 3, 0]}
    assert frame["assign"][0]["sources_ref"] == {"generation": 3, "fetch": {"every": False, "bitmap": b"\x05"}}
    received, held = over_the_wire(work), HeldSources()
    held.update(received.sources)
    (task,) = received.assign
    assert held.resolve(task)
    assert list(task.sources) == [(0, "b:2", "m00000.0"), (2, "b:2", "m00002.0")]
    assert task.sources.attempt_of(1) == "m00001.3"


@pytest.mark.parametrize("rows, count", [([], 0), ([], 5), (list(range(10_000)), 10_000), ([0, 7, 8, 9_999], 10_000),
                                         (list(range(1, 17)), 17)])
def test_the_rows_a_reduce_fetches_travel_as_all_or_a_bit_each(rows, count):
    fetch = FetchRows.of(rows, count)
    assert fetch.rows(count) == rows
    assert (fetch.every, len(fetch.bitmap)) == ((True, 0) if len(rows) == count else (False, (count + 7) // 8))


def test_a_worker_runs_a_reduce_only_on_the_generation_of_map_sources_its_spec_names():
    held = HeldSources()
    held.update({"job0001": shared_sources(generation=3)})
    newer = reduce_spec(SourcesRef(4, FetchRows(every=True)))
    assert not held.resolve(newer) and newer.sources == MapSources()  # not on generation 3's attempts
    assert not held.resolve(reduce_spec(SourcesRef(3, FetchRows(bitmap=b"\x09"))))  # row 3 of 3 rows
    assert not held.resolve(reduce_spec(SourcesRef(3, FetchRows(bitmap=b"\x01\x00"))))  # a bitmap of 16 rows
    held.update({"job0001": shared_sources(generation=4, attempt_1=4)})
    assert held.generations() == {"job0001": 4}
    assert held.resolve(newer) and newer.sources.fetch == [0, 1, 2] and newer.sources.attempt_of(1) == "m00001.4"
    held.forget("job0001")
    assert held.generations() == {}


@pytest.mark.parametrize("change, why", [({"attempt_numbers": [0]}, "columns differ in length"),
                                         ({"hosts": [1, 0, 2]}, "shuffle server it does not list"),
                                         ({"attempt_numbers": [0, -1, 0]}, "attempt number is negative"),
                                         ({"hosts": "1,0,1"}, "expected a list")])
def test_malformed_shared_sources_are_a_protocol_error(change, why):
    frame = to_wire(Work(sources={"job0001": shared_sources()}))
    frame["sources"]["job0001"] = {**frame["sources"]["job0001"], **change}
    with pytest.raises(ProtocolError, match=f"malformed '(work|SharedSources)' message: .*{why}"):
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


def test_where_splits_ran_crosses_the_wire_as_columns_naming_each_file_once():
    places = SplitPlaces.of([(("s3://b/a.txt", 0, 64), "w1"), (("s3://b/a.txt", 64, 90), "w2"), (("/data/b.txt", 0, 7), "w1")])
    status = StepStatus("succeeded", TaskCounts(maps=3, maps_done=3), map_workers=places)
    assert over_the_wire(status) == status
    assert to_wire(status)["map_workers"] == {"urls": ["s3://b/a.txt", "/data/b.txt"], "files": [0, 0, 1],
                                              "starts": [0, 64, 0], "ends": [64, 90, 7], "workers": ["w1", "w2", "w1"]}
    assert dict(over_the_wire(status).map_workers.items()) == {("s3://b/a.txt", 0, 64): "w1", ("s3://b/a.txt", 64, 90): "w2",
                                                              ("/data/b.txt", 0, 7): "w1"}
    for change, why in [({"ends": [64, 90]}, "columns differ in length"), ({"files": [0, 2, 1]}, "file it does not list")]:
        frame = to_wire(status)
        frame["map_workers"] = {**frame["map_workers"], **change}
        with pytest.raises(ProtocolError, match=f"malformed 'job_status' message: field 'map_workers': .*{why}"):
            from_wire(frame)
