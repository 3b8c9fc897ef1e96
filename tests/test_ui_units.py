"""Pure parts of the UI: which workers are excluded and why, and user data (keys) rendered safely."""

from types import SimpleNamespace

from mrengine.tasks import AttemptSucceeded, FetchFailed, JobTasks, WorkerReady
from mrengine.ui import pages
from mrengine.ui.source import exclusions, worker_state

LIVE = frozenset({"w1", "w2", "w3"})
MAP_RESULT = {"segments": [[0, 1, 1]] * 3, "counters": []}


def launch(tasks, worker):
    return tasks.handle(WorkerReady(worker, 0.0, LIVE))[0].attempt


def test_a_worker_whose_outputs_cannot_be_fetched_shows_as_excluded_with_the_reason():
    tasks = JobTasks(3, 3, max_attempts=4)
    maps = [launch(tasks, "w1") for _ in range(3)]
    for m in maps:
        tasks.handle(AttemptSucceeded(m.id, MAP_RESULT, 1.0))
    reduces = [launch(tasks, w) for w in ("w2", "w3", "w2")]
    for r, m in zip(reduces, maps):
        tasks.handle(FetchFailed(r.id, m.index, m.id, {"message": "connection refused"}))
    running = SimpleNamespace(id="job0001", state="running", tasks=tasks)
    finished = SimpleNamespace(id="job0000", state="failed", tasks=tasks)
    reasons = exclusions([finished, running])
    assert reasons == {"w1": ["job0001: fetches of its map outputs failed 3 times"]}
    assert [worker_state(True, reasons.get(w)) for w in ("w1", "w2")] == ["excluded", "alive"]
    assert worker_state(False, reasons["w1"]) == "dead"
    page = pages.cluster_page("t", {"live": True, "workers": [
        {"id": w, "state": worker_state(True, reasons.get(w)), "excluded_by": reasons.get(w, []), "host": "h",
         "pid": 1, "shuffle": "h:1", "slots": 2, "last_heartbeat": 0.1, "running": []} for w in ("w1", "w2")]})
    assert "2 of 2 workers alive (1 excluded by a running job), 4 slots" in page
    assert "job0001: fetches of its map outputs failed 3 times" in page


def test_sampled_keys_are_escaped_and_cut_short_on_the_job_page():
    evil = "'<script>alert(1)</script>" + "x" * 100
    html = pages.skew_table([{"partition": 0, "bytes": 10, "records": 5, "output_records": 1,
                              "top_keys": [{"key": evil, "records": 5, "bytes": 10}]}])
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "x" * 40 not in html and "…" in html
