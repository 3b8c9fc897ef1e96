"""Running a job's steps on Spark: splits in, one Spark job per step, the native commit protocol out.

For each step the driver lists inputs and cuts splits with the native splitter, and hands Spark an
RDD with one split descriptor per partition. The map tasks and reduce tasks (see `tasks`) return, per
reduce partition, the attempt that wrote its file, that file's bytes, records and CRC, and counters.
Spark keeps the result of one successful attempt per partition; the driver commits exactly those
attempts' files as `part-NNNNN`, waits for any attempt still running (a speculative copy, say) to end,
then writes `_SUCCESS` and removes `_temporary/`, losers' files included.

Counters are summed on the driver from those results: each reduce partition's from its winning
attempt, each map task's from the one output of it that reduce partition 0 read. So a retried or
re-run task counts once, which accumulators updated inside Spark transformations do not guarantee.

The pickled job (with a main(ctx) round's `broadcast` value in it) travels as a Spark broadcast. The
rounds of a main(ctx) session that read a cacheable (numeric) format read their splits through a
persisted RDD of parsed blocks, made by the first round and kept until the session ends: rounds 2+
neither read nor parse their input again, and Spark runs their map tasks where the blocks are.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter

import cloudpickle

from .. import outputs
from ..driver import Progress, RunOptions, Summary, run_steps
from ..errors import ClusterError, RecordError, StorageError, TaskFailedError
from ..inputs import InputFormat, input_format, list_inputs, make_splits
from ..job import JobSpec
from ..sorting import reduce_tasks
from . import tasks
from .session import DEFAULT_MASTER, Spark, java_message

POLL_SECONDS = 0.2
DRAIN_TIMEOUT = 60.0  # seconds to wait for attempts Spark is still killing before cleaning up


class SparkRunner:
    """`with SparkRunner(master) as runner: summary = runner.run(job, inputs, output, opts)`."""

    def __init__(self, master: str = DEFAULT_MASTER, conf: dict | None = None, max_attempts: int = 4,
                 app_name: str = "mrengine", verbose: bool = False, progress: Progress | None = None):
        self.spark = Spark(master, conf, max_attempts, app_name, verbose)
        self.progress = progress or Progress()
        self._session: str | None = None  # the main(ctx) session whose parsed splits are cached
        self._cached: dict = {}  # (format, splits) -> that session's persisted RDD of parsed splits

    def __enter__(self) -> "SparkRunner":
        self.spark.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.spark.__exit__(*exc)

    def run(self, job: JobSpec, inputs: list[str], output: str, opts: RunOptions) -> Summary:
        return run_steps(job, inputs, output, opts, self.run_step)

    def run_step(self, sub: dict, label: str) -> dict:
        """Run one step (a driver.step_submission) on Spark; returns its status like the master's."""
        from py4j.protocol import Py4JError

        files = list_inputs(sub["inputs"], sub["storage_options"])
        splits = make_splits(files, sub["split_size"], sub["splittable"])
        sub = {**sub, "num_reducers": reduce_tasks(sub["num_reducers"], len(splits))}  # a map-only step: one writer per map
        reducers = sub["num_reducers"]
        job_id = f"spark-{uuid.uuid4().hex[:12]}"
        sc = self.spark.sc
        job_bytes = None
        try:
            job_bytes = sc.broadcast(sub["job_bytes"])
            task_sub = {k: v for k, v in sub.items() if k != "job_bytes"}
            cached = self._parsed_splits(sub, splits)
            if cached is not None:
                mapped = cached.mapPartitionsWithIndex(tasks.map_cached_task(task_sub, job_id, job_bytes, reducers))
            else:
                mapped = (sc.parallelize([list(s) for s in splits], max(len(splits), 1))
                          .mapPartitionsWithIndex(tasks.map_task(task_sub, job_id, job_bytes, reducers)))
            rdd = (mapped.partitionBy(reducers, tasks.partition_of)
                   .mapPartitionsWithIndex(tasks.reduce_task(task_sub, job_id, job_bytes)))
            results, counts = self._collect(rdd, job_id, sub["job_name"], label, len(splits), reducers)
            return self._commit(sub, job_id, splits, results, counts)
        except Py4JError as exc:  # Spark itself failed (its JVM died, the context stopped)
            self._abort(sub, job_id)
            raise self.spark.error(f"job {sub['job_name']} failed in Spark", exc) from None
        except BaseException:
            self._abort(sub, job_id)
            raise
        finally:
            if job_bytes is not None:
                with contextlib.suppress(Exception):  # a context that is gone took its broadcasts with it
                    job_bytes.destroy()

    def _parsed_splits(self, sub: dict, splits: list):
        """For a main(ctx) round over a cacheable format: its session's persisted RDD of parsed splits
        (one per partition), made on first use. Otherwise None: the map tasks read their splits."""
        from pyspark import StorageLevel

        job = cloudpickle.loads(sub["job_bytes"])
        fmt: InputFormat = input_format(sub["input_format"] if sub["input_format"] is not None else job.input_format)
        if job.session is None or not fmt.cacheable or not splits:
            return None
        if job.session != self._session:  # one session at a time: a new one frees the last one's blocks
            for rdd in self._cached.values():
                rdd.unpersist()
            self._session, self._cached = job.session, {}
        key = (fmt.cache_key(), tuple(splits))
        if key not in self._cached:
            # Memory, then local disk: blocks Spark has to evict are still cheaper to load than to parse.
            self._cached[key] = (self.spark.sc.parallelize([list(s) for s in splits], len(splits))
                                 .map(tasks.read_split(fmt, sub["storage_options"]))
                                 .persist(StorageLevel.MEMORY_AND_DISK))
        return self._cached[key]

    def _abort(self, sub: dict, job_id: str) -> None:
        try:
            outputs.abort_job(sub["output"], job_id, [], sub["storage_options"])
        except Exception:
            pass  # the error that got us here is the one to report

    # ------------------------------------------------------------ running and following a Spark job

    def _collect(self, rdd, job_id: str, name: str, label: str, maps: int, reducers: int) -> tuple[list, dict]:
        from pyspark import InheritableThread

        sc = self.spark.sc
        outcome: dict = {}

        def action() -> None:
            sc.setJobGroup(job_id, label, interruptOnCancel=True)
            try:
                outcome["results"] = rdd.collect()
            except BaseException as exc:
                outcome["error"] = exc

        tracker = _StepTracker(self.spark, job_id, maps, reducers)
        thread = InheritableThread(target=action, name=f"spark-{job_id}", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(POLL_SECONDS)
                if thread.is_alive():
                    self.progress.update(label, tracker.status("running"))
            final = tracker.status("failed" if "error" in outcome else "succeeded")
            self.progress.update(label, final)
        except KeyboardInterrupt:
            sc.cancelJobGroup(job_id)
            thread.join(DRAIN_TIMEOUT)
            raise
        finally:
            self.progress.done()
        tracker.drain()
        if "error" in outcome:
            raise self._failure(outcome["error"], name, label)
        return outcome["results"], final["counts"]

    def _failure(self, exc: BaseException, name: str, label: str) -> Exception:
        text = str(exc.java_exception.toString()) if hasattr(exc, "java_exception") else str(exc)
        report = tasks.find_report(text)
        if report is not None:
            return TaskFailedError(
                f"job {name} failed: {report['task']} failed on all {report['attempt'] + 1} attempts; "
                f"the last error: {report['message']}", label, report["attempt"] + 1, report["traceback"])
        return ClusterError(f"job {name} failed in Spark: {java_message(exc)}; Spark's log is in {self.spark.log_path}")

    # ------------------------------------------------------------ the commit

    def _commit(self, sub: dict, job_id: str, splits: list, results: list, counts: dict) -> dict:
        errors = sorted((r[2]["error"] for r in results if "error" in r[2]), key=lambda e: e["task"])
        if errors:  # a record error: the tasks that met one returned it rather than fail (see tasks)
            error = errors[0]
            raise RecordError(f"job {sub['job_name']} failed: {RecordError.not_retried(error['task'], error['message'])}")
        out, options = sub["output"], sub["storage_options"]
        total: Counter = Counter()
        parts = {}
        map_counters: dict = {}
        for partition, _, result, from_maps in results:
            parts[outputs.part_name(partition)] = {k: result[k] for k in ("bytes", "records", "crc32")}
            map_counters.update(from_maps)
            for group, name, n in result["counters"]:
                total[group, name] += n
        if len(parts) != sub["num_reducers"] or sorted(map_counters) != [s.index for s in splits]:
            raise ClusterError(f"Spark returned results for {len(parts)} of {sub['num_reducers']} reduce tasks and "
                               f"{len(map_counters)} of {len(splits)} map tasks")
        for counters in map_counters.values():
            for group, name, n in counters:
                total[group, name] += n
        committed = []
        try:
            for partition, attempt_id, _, _ in sorted(results, key=lambda r: r[0]):
                outputs.commit_task(out, job_id, attempt_id, partition, options)
                committed.append(partition)
            manifest = outputs.manifest(sub, dict(sorted(parts.items())), len(splits),
                                        [[g, n, v] for (g, n), v in sorted(total.items())])
            outputs.commit_job(out, job_id, manifest, options)
        except Exception as exc:
            outputs.abort_job(out, job_id, committed, options)
            raise StorageError(f"committing the output to {out} failed: {exc}") from None
        return {"counts": counts, "counters": manifest["counters"], "manifest": manifest}


class _StepTracker:
    """Follows one step's two Spark stages (map side, reduce side) through Spark's status tracker."""

    def __init__(self, spark: Spark, job_id: str, maps: int, reducers: int):
        self.spark = spark
        self.job_id = job_id
        self.maps = maps
        self.reducers = reducers
        self.started = time.monotonic()
        self.attempts: dict = {}  # (stage, stage attempt) -> task attempts it finished or failed

    def stages(self) -> list:
        tracker = self.spark.sc.statusTracker()
        stages = []
        for spark_job in tracker.getJobIdsForGroup(self.job_id):
            info = tracker.getJobInfo(spark_job)
            for stage_id in info.stageIds if info else ():
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    stages.append(stage)
        return sorted(stages, key=lambda s: s.stageId)  # the shuffle's map side comes first

    def status(self, state: str) -> dict:
        """The master's job_status shape, so the native Progress line prints it."""
        stages = self.stages()
        for s in stages:
            self.attempts[s.stageId, s.currentAttemptId] = s.numCompletedTasks + s.numFailedTasks
        map_stage = stages[0] if len(stages) > 1 else None
        reduce_stage = stages[-1] if stages else None
        counts = {"maps": self.maps, "reduces": self.reducers, "maps_done": _done(map_stage, self.maps),
                  "reduces_done": _done(reduce_stage, self.reducers), "attempts": sum(self.attempts.values())}
        if state == "succeeded":
            counts["maps_done"], counts["reduces_done"] = self.maps, self.reducers
        return {"state": state, "counts": counts, "workers": self.spark.executors(),
                "elapsed": time.monotonic() - self.started}

    def drain(self) -> None:
        # Spark returns as soon as every partition has one result (or a task has failed for good) and
        # kills the other attempts afterwards. Let them end before the temporary files go, or one could
        # write after that.
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while any(s.numActiveTasks for s in self.stages()) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)


def _done(stage, total: int) -> int:
    # A re-attempted stage (after lost map outputs) runs only the tasks still missing.
    if stage is None:
        return 0
    return max(0, min(total, total - (stage.numTasks - stage.numCompletedTasks)))
