"""Running a job's steps on Spark: splits in, one Spark job per step, the native commit protocol out.

For each step the driver lists inputs and cuts splits with the native splitter, and hands Spark an
RDD with one split descriptor per partition (a map-only step's map tasks write and return their parts
themselves; nothing is shuffled). The map tasks and reduce tasks (see `tasks`) return, per
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
from dataclasses import replace

import cloudpickle

from .. import outputs
from ..driver import Progress
from ..history import REPORT
from ..errors import ClusterError, RecordError, TaskFailedError
from ..inputs import Split
from ..messages import StepSpec, StepStatus, TaskCounts
from ..runner import Runner
from ..steps import failed_on_all, finish, plan, resolve_input_format
from ..tasks import DEFAULT_MAX_ATTEMPTS
from . import tasks
from .report import step_report
from .session import Spark, java_message

POLL_SECONDS = 0.2
DRAIN_TIMEOUT = 60.0  # seconds to wait for attempts Spark is still killing before cleaning up


class SparkRunner(Runner):
    """`with SparkRunner(master) as runner: summary = runner.run(job, inputs, output, opts)`."""

    def __init__(self, master: str | None = None, conf: dict | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
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

    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        """Run one step on Spark, as one Spark job; returns its final status."""
        from py4j.protocol import Py4JError

        started = time.time()
        spec, splits = plan(spec)
        reducers = spec.num_reducers
        job_id = f"spark-{uuid.uuid4().hex[:12]}"
        sc = self.spark.sc
        job_bytes = None
        try:
            job_bytes = sc.broadcast(spec.job_bytes)
            task_spec = replace(spec, job_bytes=b"")  # the code travels as the broadcast
            cached = self._parsed_splits(spec, splits)
            source = cached if cached is not None else sc.parallelize(_rows(splits), max(len(splits), 1))
            if not reducers:  # map-only: each map task writes its part, and nothing is shuffled
                rdd = source.mapPartitionsWithIndex(tasks.map_to_part_task(task_spec, job_id, job_bytes))
            else:
                map_task = tasks.map_cached_task if cached is not None else tasks.map_task
                rdd = (source.mapPartitionsWithIndex(map_task(task_spec, job_id, job_bytes, reducers))
                       .partitionBy(reducers, tasks.partition_of)
                       .mapPartitionsWithIndex(tasks.reduce_task(task_spec, job_id, job_bytes)))
            results, counts = self._collect(rdd, job_id, spec.job_name, label, len(splits), reducers)
            return self._finish(spec, job_id, splits, results, counts, started)
        except Py4JError as exc:  # Spark itself failed (its JVM died, the context stopped)
            self._abort(spec, job_id)
            raise self.spark.error(f"job {spec.job_name} failed in Spark", exc) from None
        except BaseException:
            self._abort(spec, job_id)
            raise
        finally:
            if job_bytes is not None:
                with contextlib.suppress(Exception):  # a context that is gone took its broadcasts with it
                    job_bytes.destroy()

    def _parsed_splits(self, spec: StepSpec, splits: list[Split]):
        """For a main(ctx) round over a cacheable format: its session's persisted RDD of parsed splits
        (one per partition), made on first use. Otherwise None: the map tasks read their splits."""
        from pyspark import StorageLevel

        job = cloudpickle.loads(spec.job_bytes)
        fmt = resolve_input_format(spec.input_format, job)
        if job.session is None or not fmt.cacheable or not splits:
            return None
        if job.session != self._session:  # one session at a time: a new one frees the last one's blocks
            for rdd in self._cached.values():
                rdd.unpersist()
            self._session, self._cached = job.session, {}
        key = (fmt.cache_key(), tuple(splits))
        if key not in self._cached:
            # Memory, then local disk: blocks Spark has to evict are still cheaper to load than to parse.
            self._cached[key] = (self.spark.sc.parallelize(_rows(splits), len(splits))
                                 .map(tasks.read_split(fmt, spec.storage_options))
                                 .persist(StorageLevel.MEMORY_AND_DISK))
        return self._cached[key]

    def _abort(self, spec: StepSpec, job_id: str) -> None:
        try:
            outputs.abort_job(spec.output, job_id, {}, spec.storage_options)
        except Exception:
            pass  # the error that got us here is the one to report

    # ------------------------------------------------------------ running and following a Spark job

    def _collect(self, rdd, job_id: str, name: str, label: str, maps: int, reducers: int) -> tuple[list, TaskCounts]:
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
        return outcome["results"], final.counts

    def _failure(self, exc: BaseException, name: str, label: str) -> Exception:
        text = str(exc.java_exception.toString()) if hasattr(exc, "java_exception") else str(exc)
        report = tasks.find_report(text)
        if report is not None:
            attempts = report["attempt"] + 1
            return TaskFailedError(f"job {name} failed: {failed_on_all(report['task'], attempts, report['message'])}",
                                   label, attempts, report["traceback"])
        return ClusterError(f"job {name} failed in Spark: {java_message(exc)}; {self.spark.log_note}")

    # ------------------------------------------------------------ the commit

    def _finish(self, spec: StepSpec, job_id: str, splits: list[Split], results: list[tasks.ReducedPartition],
                counts: TaskCounts, started: float) -> StepStatus:
        errors = sorted((r.error for r in results if r.error is not None), key=lambda e: e["task"])
        if errors:  # a record error: the tasks that met one returned it rather than fail (see tasks)
            error = errors[0]
            raise RecordError(f"job {spec.job_name} failed: {RecordError.not_retried(error['task'], error['message'])}")
        results = sorted(results, key=lambda r: r.partition)
        map_counters: dict = {}
        for result in results:
            map_counters.update(result.map_counters)
        if not spec.num_reducers:  # map-only: map i wrote part i, and its result holds its counters
            if [r.partition for r in results] != [s.index for s in splits]:
                raise ClusterError(f"Spark returned results for {len(results)} of {len(splits)} map tasks")
        elif [r.partition for r in results] != list(range(spec.num_reducers)) or \
                sorted(map_counters) != [s.index for s in splits]:
            raise ClusterError(f"Spark returned results for {len(results)} of {spec.num_reducers} reduce tasks and "
                               f"{len(map_counters)} of {len(splits)} map tasks")
        made: dict = {}

        def write_report(manifest: dict) -> None:  # beside _SUCCESS and before it, as a master job's
            made["report"] = step_report(spec, job_id, results, started, time.time(), counts, manifest)
            outputs.write_json(spec.output, REPORT, made["report"], spec.storage_options)

        manifest = finish(spec, job_id, [(r.attempt_id, r.part) for r in results], len(splits),
                          map_counters.values(), write_report)
        return StepStatus("succeeded", counts, manifest["counters"], manifest=manifest, report=made["report"])


def _rows(splits: list[Split]) -> list[dict]:
    """Splits as Spark ships them: by field name (Spark rebuilds pickled named tuples without their methods)."""
    return [split._asdict() for split in splits]


class _StepTracker:
    """Follows one step's two Spark stages (map side, reduce side; a map-only step's one) through Spark's
    status tracker."""

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

    def status(self, state: str) -> StepStatus:
        """Where the Spark job stands, for the progress line."""
        stages = self.stages()
        for s in stages:
            self.attempts[s.stageId, s.currentAttemptId] = s.numCompletedTasks + s.numFailedTasks
        if not self.reducers:  # a map-only step has one stage
            map_stage, reduce_stage = (stages[0] if stages else None), None
        else:
            map_stage = stages[0] if len(stages) > 1 else None
            reduce_stage = stages[-1] if stages else None
        counts = TaskCounts(maps=self.maps, reduces=self.reducers, maps_done=_done(map_stage, self.maps),
                            reduces_done=_done(reduce_stage, self.reducers), attempts=sum(self.attempts.values()))
        if state == "succeeded":
            counts.maps_done, counts.reduces_done = self.maps, self.reducers
        return StepStatus(state, counts, elapsed=time.monotonic() - self.started, workers=self.spark.executors())

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
