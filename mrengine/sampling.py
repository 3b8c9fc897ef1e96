"""Cut points for a `total_order` step, sampled on the driver before the step is submitted.

As Hadoop's `InputSampler.SplitSampler` does for `TotalOrderPartitioner`: the first records of up to
`SAMPLE_SPLITS` splits spread over the input are mapped by the step's own mapper, the keys sorted in
the one key order, and R-1 evenly spaced ones become the boundaries of R key ranges. The step then
runs with a `RangePartitioner` over them, so part files concatenated in order are sorted; how even
the parts are depends on how well the sample stands for the input.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from . import context
from .errors import JobDefinitionError, MrEngineError
from .inputs import InputFormat, Split
from .job import JobSpec, Step, user_traceback
from .shuffle.order import sort_key
from .sorting import RangePartitioner, pairs_of

SAMPLE_SPLITS = 10
SAMPLE_RECORDS = 100_000  # in all, as TeraSort's default


def with_range_partitioner(job: JobSpec, index: int, splits: list[Split], fmt: InputFormat, reducers: int,
                           params: dict, storage_options: dict) -> JobSpec:
    """The job with its `total_order` step `index` partitioned by key ranges sampled from `splits`."""
    step = job.steps[index]
    chosen = splits[::max(1, len(splits) // SAMPLE_SPLITS)][:SAMPLE_SPLITS]
    keys: list = []
    for split in chosen:
        records = _first_records(fmt, split, storage_options, SAMPLE_RECORDS // max(len(chosen), 1))
        keys += _mapped_keys(step, split, records, params)
    keys.sort(key=sort_key)
    cuts = [keys[len(keys) * i // reducers] for i in range(1, reducers)] if keys else []
    ranged = dataclasses.replace(step, partitioner=RangePartitioner(cuts), total_order=False)
    return dataclasses.replace(job, steps=[ranged if i == index else s for i, s in enumerate(job.steps)])


def _first_records(fmt, split, storage_options: dict, limit: int) -> list[tuple]:
    pairs = itertools.chain.from_iterable(block.pairs() for block in fmt.read(split, storage_options))
    return list(itertools.islice(pairs, limit))


def _mapped_keys(step: Step, split, records: list[tuple], params: dict) -> list[Any]:
    previous = context.current()
    context.activate(context.TaskContext(params, split=split))
    try:
        if step.map_split is not None:
            pairs = pairs_of(step.map_split(value for _, value in records))
        else:
            pairs = itertools.chain.from_iterable(step.mapper(k, v) for k, v in records)
        return [key for key, _ in pairs]
    except MrEngineError:
        raise
    except Exception as exc:
        raise JobDefinitionError(f"total_order: sampling the input's keys runs the mapper on the driver, and it "
                                 f"raised {type(exc).__name__}: {exc}\n{user_traceback(exc)}") from None
    finally:
        context.activate(previous)
