"""A Spark step's job report, in the shape of the native one (`jobreport`), from what its tasks said of themselves.

Spark's per-task metrics live in its JVM (listeners, its REST API), out of reach of pyspark without
its web UI; so each mrengine task returns its own row (`tasks.task_record`) beside its result. Only
the attempts whose results Spark kept are known: one per task, with no retries or speculative copies.
"""

from __future__ import annotations

import dataclasses

from ..jobreport import flag_stragglers
from ..shuffle import heavykeys


def step_report(spec, job_id: str, results: list, started: float, finished: float, counts, manifest: dict) -> dict:
    """The report of a succeeded step: `results` are its `tasks.ReducedPartition`s by partition,
    `started` and `finished` wall clock times."""
    map_records: dict = {}
    for r in results:
        map_records.update(r.map_records)
    tasks = [_task("map", i, map_records[i], started) for i in sorted(map_records)]
    tasks += [_task("reduce", r.partition, r.record, started) for r in results]
    flag_stragglers(tasks)
    return {
        "id": job_id, "master": "spark", "name": spec.job_name, "step": spec.step, "state": "succeeded",
        "user": spec.user, "job_file": spec.job_file, "inputs": list(spec.inputs), "output": spec.output,
        "runner": "spark", "num_reducers": spec.num_reducers, "split_size": spec.split_size,
        "max_attempts": spec.max_attempts, "params": spec.params, "started": round(started, 3),
        "finished": round(finished, 3), "elapsed": round(finished - started, 3),
        "counts": dataclasses.asdict(counts), "counters": manifest["counters"], "error": None, "manifest": manifest,
        "tasks": tasks, "skew": [_skew(r, map_records) for r in results],
    }


def _task(kind: str, index: int, record: dict, started: float) -> dict:
    attempt = {"id": record.get("attempt", "?"), "worker": record.get("host", "?"), "state": "succeeded",
               "backup": False, "retry": False, "start": round(record.get("started", started) - started, 3),
               "seconds": record.get("seconds"), "log": ""}
    attempt |= {k: record.get(k) for k in ("records_in", "bytes_in", "records_out", "bytes_out")}
    return {"kind": kind, "index": index, "state": "succeeded", "failures": 0, "attempts": [attempt],
            "straggler": False}


def _skew(result, map_records: dict) -> dict:
    p = result.partition
    keys = [m["heavy_keys"][p] for m in map_records.values() if p < len(m.get("heavy_keys") or ())]
    return {"partition": p, "bytes": result.record.get("bytes_in", 0), "records": result.record.get("records_in", 0),
            "top_keys": heavykeys.merge(keys), "output_bytes": result.part.bytes, "output_records": result.part.records}
