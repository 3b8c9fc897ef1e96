"""The same job files on Apache Spark (`mrengine run ... --runner spark`).

Splits, record formats, serde, partitioner, combiner, sort order, reduce and the output commit are the
native engine's own functions; Spark only schedules tasks, retries them and moves the sorted map
output between them. `session` starts and stops Spark, `tasks` is what runs in the executors,
`runner` drives a job's steps and commits their output. pyspark is imported only when a run starts.
"""

from .runner import SparkRunner

__all__ = ["SparkRunner"]
