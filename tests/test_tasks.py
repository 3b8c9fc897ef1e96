"""Unit tests of the pure task state machine (mrengine/tasks.py): events in, actions out, no I/O."""

import pytest

from mrengine.tasks import (
    AttemptFailed, AttemptLost, AttemptState, AttemptSucceeded, Cancel, Commit, Discard, Exclude, FetchFailed, JobCancelled, JobFailed,
    JobSucceeded, JobTasks, Launch, TaskState, WorkerLost, WorkerReady,
)

LIVE = frozenset({"w1", "w2", "w3"})


def launch(tasks, worker, now=0.0, live=LIVE):
    actions = tasks.handle(WorkerReady(worker, now, live))
    assert len(actions) <= 1
    return actions[0].attempt if actions else None


def map_result(n_reduces):
    return {"segments": [[0, 1, 1]] * n_reduces, "counters": [["mrengine", "map_input_records", 1]]}


REDUCE_RESULT = {"bytes": 1, "records": 1, "crc32": 0, "counters": []}


def finish(tasks, attempt, now=1.0):
    result = map_result(len(tasks.reduces)) if attempt.kind == "map" else REDUCE_RESULT
    return tasks.handle(AttemptSucceeded(attempt.id, result, now))


def run_maps(tasks, workers=("w1", "w2")):
    """Run every map to success, round robin over `workers`; returns the winning attempts."""
    winners = []
    for i in range(len(tasks.maps)):
        a = launch(tasks, workers[i % len(workers)])
        finish(tasks, a)
        winners.append(a)
    return winners


def test_maps_then_reduces_then_success():
    tasks = JobTasks(2, 2)
    m0 = launch(tasks, "w1")
    m1 = launch(tasks, "w2")
    assert (m0.kind, m0.index, m1.index) == ("map", 0, 1)
    assert launch(tasks, "w3") is None  # reduces wait for every map
    finish(tasks, m0)
    assert launch(tasks, "w3") is None
    finish(tasks, m1)
    r0, r1 = launch(tasks, "w1"), launch(tasks, "w2")
    assert (r0.kind, r0.index, r1.index) == ("reduce", 0, 1)
    assert [type(a) for a in finish(tasks, r0)] == [Commit]
    assert [type(a) for a in finish(tasks, r1)] == [Commit, JobSucceeded]
    assert tasks.done and len(tasks.counted()) == 4


def test_failed_attempt_retries_on_another_worker_then_fails_the_job():
    tasks = JobTasks(1, 1, max_attempts=3)
    a = launch(tasks, "w1")
    tasks.handle(AttemptFailed(a.id, {"message": "boom"}))
    assert tasks.maps[0].state is TaskState.PENDING
    assert launch(tasks, "w1") is None  # w1 failed it while others are alive
    b = launch(tasks, "w2")
    tasks.handle(AttemptFailed(b.id, {"message": "boom"}))
    c = launch(tasks, "w3")
    actions = tasks.handle(AttemptFailed(c.id, {"message": "boom", "traceback": "tb"}))
    assert [type(x) for x in actions] == [JobFailed]
    assert actions[0].error["traceback"] == "tb" and actions[0].task.failures == 3
    assert tasks.maps[0].state is TaskState.FAILED and tasks.done


def test_retry_on_the_same_worker_when_no_other_is_alive():
    tasks = JobTasks(1, 1)
    a = launch(tasks, "w1", live=frozenset({"w1"}))
    tasks.handle(AttemptFailed(a.id, {"message": "boom"}))
    assert launch(tasks, "w1", live=frozenset({"w1"})).index == 0


def test_lost_worker_running_attempts_are_rescheduled_without_counting():
    tasks = JobTasks(2, 1)
    a = launch(tasks, "w1")
    actions = tasks.handle(WorkerLost("w1"))
    assert actions == [] and a.state is AttemptState.KILLED
    assert tasks.maps[0].state is TaskState.PENDING and tasks.maps[0].failures == 0
    assert launch(tasks, "w2").index == 0


def test_lost_worker_finished_maps_are_remade_while_a_reduce_needs_them():
    tasks = JobTasks(2, 2)
    m0, m1 = run_maps(tasks)
    r0 = launch(tasks, "w2")
    finish(tasks, r0)  # reduce 0 is done, reduce 1 still needs the maps
    r1 = launch(tasks, "w1")
    actions = tasks.handle(WorkerLost("w1"))
    assert actions == [Discard(r1)]  # reduce 1's attempt died with w1
    assert tasks.maps[0].state is TaskState.PENDING and tasks.maps[0].winner is None  # its output was on w1
    assert len(tasks.counted()) == 3  # its counters still count, until its new winner's replace them
    assert tasks.maps[1].state is TaskState.SUCCEEDED  # on w2
    assert launch(tasks, "w2").kind == "map"  # maps again before the reduce
    assert tasks.reduces[0].state is TaskState.SUCCEEDED


def test_lost_worker_outputs_are_kept_when_every_reduce_is_done():
    tasks = JobTasks(1, 1)
    run_maps(tasks, ("w1",))
    finish(tasks, launch(tasks, "w2"))
    assert tasks.done
    assert tasks.handle(WorkerLost("w1")) == []
    assert tasks.maps[0].state is TaskState.SUCCEEDED


def test_fetch_failure_makes_the_reduce_wait_for_the_maps_remade():
    tasks = JobTasks(3, 1)
    m0, m1, m2 = run_maps(tasks, ("w1", "w2", "w1"))
    r = launch(tasks, "w3")
    actions = tasks.handle(FetchFailed(r.id, 0, m0.id, {"message": "refused"}))
    assert actions == [Discard(r)] and r.state is AttemptState.KILLED
    red = tasks.reduces[0]
    assert red.state is TaskState.PENDING and red.failures == 0 and red.fetch_failures == 1
    # Every output of w1 is taken for lost, not only the one named.
    assert [t.state for t in tasks.maps] == [TaskState.PENDING, TaskState.SUCCEEDED, TaskState.PENDING]
    again = [launch(tasks, "w2"), launch(tasks, "w3")]
    assert [a.kind for a in again] == ["map", "map"]
    assert launch(tasks, "w2") is None  # the reduce waits
    for a in again:
        finish(tasks, a)
    r2 = launch(tasks, "w2")
    assert (r2.kind, r2.id) == ("reduce", "r00000.1")
    assert [type(x) for x in finish(tasks, r2)] == [Commit, JobSucceeded]


def test_stale_fetch_failure_does_not_discard_a_remade_output():
    tasks = JobTasks(1, 2)
    (m0,) = run_maps(tasks, ("w1",))
    r0, r1 = launch(tasks, "w2"), launch(tasks, "w3")
    tasks.handle(FetchFailed(r0.id, 0, m0.id))
    m0b = launch(tasks, "w2")
    finish(tasks, m0b)
    # r1 was launched with m0's old place; its failure names the old attempt.
    tasks.handle(FetchFailed(r1.id, 0, m0.id))
    assert tasks.maps[0].state is TaskState.SUCCEEDED and tasks.maps[0].winner is m0b


def test_endless_fetch_failures_fail_the_job():
    tasks = JobTasks(1, 1, max_attempts=2)
    for _ in range(4):
        m = launch(tasks, "w1", live=frozenset({"w1"}))  # the only worker to make it, however often it fails
        finish(tasks, m)
        r = launch(tasks, "w2")
        actions = tasks.handle(FetchFailed(r.id, 0, m.id, {"message": "refused"}))
    assert isinstance(actions[-1], JobFailed)
    assert "could not fetch its input 4 times" in actions[-1].error["message"]


def test_attempt_lost_in_transit_is_rescheduled():
    tasks = JobTasks(1, 1)
    a = launch(tasks, "w1")
    assert tasks.handle(AttemptLost(a.id)) == []
    assert tasks.maps[0].state is TaskState.PENDING and tasks.maps[0].failures == 0
    assert tasks.handle(AttemptLost(a.id)) == []  # twice is harmless


def test_backup_attempt_for_a_straggler_first_finisher_wins():
    tasks = JobTasks(3, 1, backup_after=5)
    slow = launch(tasks, "w1", now=0)
    finish(tasks, launch(tasks, "w2", now=0), now=1)
    finish(tasks, launch(tasks, "w3", now=0), now=1)
    assert launch(tasks, "w2", now=4.9) is None  # not yet past backup_after
    assert launch(tasks, "w1", now=9) is None  # never on the straggler's own worker
    backup = launch(tasks, "w2", now=9)
    assert (backup.index, backup.backup, backup.id) == (0, True, "m00000.1")
    assert launch(tasks, "w3", now=20) is None  # one backup per task
    actions = finish(tasks, backup, now=10)
    assert actions == [Cancel(slow)] and slow.state is AttemptState.KILLED
    assert tasks.maps[0].winner is backup
    assert finish(tasks, slow) == []  # the loser's late news changes nothing


def test_backup_waits_for_a_multiple_of_the_peers_median():
    tasks = JobTasks(3, 1, backup_after=1)
    launch(tasks, "w1", now=0)
    finish(tasks, launch(tasks, "w2", now=0), now=10)
    finish(tasks, launch(tasks, "w3", now=0), now=10)
    assert launch(tasks, "w2", now=19) is None  # peers took 10s: a straggler runs over 20s
    assert launch(tasks, "w2", now=21).backup


def test_no_backup_while_tasks_of_the_phase_are_pending_or_when_disabled():
    tasks = JobTasks(3, 1, backup_after=1)
    launch(tasks, "w1", now=0)
    finish(tasks, launch(tasks, "w2", now=0), now=0.1)
    tasks.handle(WorkerLost("w3"))
    assert launch(tasks, "w2", now=50).index == 2  # a pending task first, never a backup
    off = JobTasks(2, 1, backup_after=0)
    launch(off, "w1", now=0)
    finish(off, launch(off, "w2", now=0), now=0.1)
    assert launch(off, "w2", now=1000) is None


def test_losing_reduce_backup_is_cancelled_and_its_output_discarded():
    tasks = JobTasks(1, 2, backup_after=1)
    run_maps(tasks, ("w1",))
    slow = launch(tasks, "w1", now=10)
    finish(tasks, launch(tasks, "w2", now=10), now=10.5)
    backup = launch(tasks, "w2", now=12)
    assert backup.kind == "reduce" and backup.index == slow.index
    actions = finish(tasks, backup, now=13)
    assert actions == [Cancel(slow), Commit(backup), JobSucceeded()]
    assert finish(tasks, slow) == [Discard(slow)]  # finished after the job: its file goes


def test_map_only_maps_are_committed_as_they_win_and_their_losers_discarded():
    """No reduce tasks: the maps write the parts, with a reduce's commit protocol."""
    tasks = JobTasks(3, 0, backup_after=1)
    slow, failing = launch(tasks, "w1", now=0), launch(tasks, "w2", now=0)
    assert tasks.handle(AttemptFailed(failing.id, {"message": "boom"})) == [Discard(failing)]
    retry = launch(tasks, "w3", now=0)
    assert retry.index == failing.index and finish(tasks, retry, now=0.5) == [Commit(retry)]
    third = launch(tasks, "w3", now=0.5)
    assert finish(tasks, third, now=1) == [Commit(third)]
    assert tasks.handle(WorkerLost("w3")) == []  # its maps' parts are committed: nothing to re-make
    backup = launch(tasks, "w2", now=9)
    assert backup.index == slow.index and backup.backup
    assert finish(tasks, backup, now=10) == [Cancel(slow), Commit(backup), JobSucceeded()]
    assert finish(tasks, slow) == [Discard(slow)]  # the straggler's late file goes too
    assert tasks.done and not tasks.reduces


def test_map_only_attempts_lost_with_their_worker_are_discarded():
    tasks = JobTasks(1, 0)
    lost = launch(tasks, "w1")
    assert tasks.handle(WorkerLost("w1")) == [Discard(lost)]
    again = launch(tasks, "w2")
    assert finish(tasks, again) == [Commit(again), JobSucceeded()]


def test_counters_come_from_winners_only():
    tasks = JobTasks(1, 1)
    a = launch(tasks, "w1")
    tasks.handle(AttemptFailed(a.id, {"message": "boom"}))
    finish(tasks, launch(tasks, "w2"))
    assert [t.winner.id for t in tasks.counted()] == ["m00000.1"]


def test_job_done_while_a_lost_map_is_remade_cancels_it_and_keeps_its_counters():
    tasks = JobTasks(2, 2)
    run_maps(tasks, ("w1", "w2"))
    r0, r1 = launch(tasks, "w2"), launch(tasks, "w3")  # both fetched everything already
    tasks.handle(WorkerLost("w1"))
    again = launch(tasks, "w3")
    assert (again.kind, again.index) == ("map", 0)
    finish(tasks, r0)
    actions = finish(tasks, r1)
    assert actions == [Commit(r1), Cancel(again), JobSucceeded()]
    assert len(tasks.counted()) == 4 and tasks.maps[0].result is not None


def test_illegal_move_raises():
    tasks = JobTasks(1, 1)
    with pytest.raises(RuntimeError, match="illegal move"):
        tasks.maps[0].move(TaskState.SUCCEEDED)


def test_launch_action_type():
    tasks = JobTasks(1, 0)
    actions = tasks.handle(WorkerReady("w1", 0.0, LIVE))
    assert isinstance(actions[0], Launch)
    assert [type(a) for a in finish(tasks, actions[0].attempt)] == [Commit, JobSucceeded]  # map-only: its part


def test_a_worker_whose_outputs_cannot_be_fetched_is_avoided_then_excluded():
    tasks = JobTasks(3, 3, max_attempts=4)
    maps = [launch(tasks, "w1") for _ in range(3)]
    for m in maps:
        finish(tasks, m)
    reduces = [launch(tasks, w) for w in ("w2", "w3", "w2")]
    tasks.handle(FetchFailed(reduces[0].id, 0, maps[0].id, {"message": "connection refused"}))
    assert all(t.state is TaskState.PENDING for t in tasks.maps)  # all of w1's outputs are made again ...
    assert launch(tasks, "w1") is None  # ... not on w1 while another worker can
    assert tasks.excluded == {}
    actions = [a for r, m in zip(reduces[1:], maps[1:])  # the other reducers' fetches from w1 failed too
               for a in tasks.handle(FetchFailed(r.id, m.index, m.id, {"message": "connection refused"}))]
    assert Exclude("w1", "its map outputs could not be fetched 3 times") in actions
    assert tasks.excluded == {"w1": "its map outputs could not be fetched 3 times"}
    remade = [launch(tasks, "w3"), launch(tasks, "w2"), launch(tasks, "w3")]
    assert [(a.kind, a.worker) for a in remade] == [("map", "w3"), ("map", "w2"), ("map", "w3")]
    for a in remade:
        finish(tasks, a)
    assert launch(tasks, "w1") is None  # excluded: not even a reduce
    assert launch(tasks, "w1", live=frozenset({"w1"})) is not None  # unless it is the only worker left


def full_disk(tasks, attempt, live=LIVE, message="no space left in /work"):
    return tasks.handle(AttemptFailed(attempt.id, {"message": message}, worker_fault=True, live=live))


def test_a_full_disk_is_not_charged_to_the_task_and_its_worker_gets_no_more_of_the_job():
    tasks = JobTasks(2, 1, max_attempts=1)
    first = launch(tasks, "w1")
    actions = full_disk(tasks, first)
    assert actions == [Exclude("w1", "its disk is full: no space left in /work")]
    assert tasks.maps[0].state is TaskState.PENDING and tasks.maps[0].failures == 0 and not tasks.done
    assert launch(tasks, "w1") is None
    assert launch(tasks, "w1", live=frozenset({"w1", "w2"})) is None  # not even as the last one not excluded
    again = launch(tasks, "w2")
    assert (again.index, again.worker) == (0, "w2")  # one attempt allowed, yet the task runs again
    finish(tasks, again)
    finish(tasks, launch(tasks, "w3"))
    reduce = launch(tasks, "w2")
    assert [type(a) for a in full_disk(tasks, reduce)] == [Discard, Exclude]  # what the reduce wrote goes
    finish(tasks, launch(tasks, "w3"))
    assert tasks.done and tasks.counts()["attempts_failed"] == 2


def test_a_job_fails_naming_every_full_disk_once_every_live_worker_has_one():
    tasks = JobTasks(1, 1)
    live = frozenset({"w1", "w2"})
    assert [type(a) for a in full_disk(tasks, launch(tasks, "w1", live=live), live, "w1's /a is full")] == [Exclude]
    actions = full_disk(tasks, launch(tasks, "w2", live=live), live, "w2's /b is full")
    failed = actions[-1]
    assert isinstance(failed, JobFailed) and tasks.done
    assert failed.error["message"] == ("could not run: every live worker is out of disk space "
                                       "(w1: w1's /a is full; w2: w2's /b is full)")


def test_losing_the_last_worker_whose_disk_is_not_full_fails_the_job():
    tasks = JobTasks(1, 1)
    full_disk(tasks, launch(tasks, "w1"))
    running = launch(tasks, "w2")
    actions = tasks.handle(WorkerLost("w2", live=frozenset({"w1"})))
    assert isinstance(actions[-1], JobFailed) and tasks.done
    assert tasks.attempts[running.id].state is AttemptState.KILLED


def test_a_job_with_no_worker_left_waits_for_one_even_after_a_full_disk():
    tasks = JobTasks(1, 1)
    full_disk(tasks, launch(tasks, "w1"))
    tasks.handle(WorkerLost("w1", live=frozenset()))
    assert not tasks.done
    assert launch(tasks, "w4", live=frozenset({"w4"})) is not None  # a new worker takes it


def test_cancelling_a_job_kills_every_running_attempt_and_ends_it():
    tasks = JobTasks(2, 1)
    a, b = launch(tasks, "w1"), launch(tasks, "w2")
    actions = tasks.handle(JobCancelled())
    assert sorted(x.attempt.id for x in actions if isinstance(x, Cancel)) == sorted([a.id, b.id])
    assert tasks.done and launch(tasks, "w3") is None
    assert tasks.handle(AttemptSucceeded(a.id, map_result(1), 1.0)) == []  # late news changes nothing
