"""The one entry point that runs any job on any runner: `runner.run(job, inputs, output, opts)`.

A runner (`driver.Driver`, a master's jobs; `spark.SparkRunner`; `testing.InProcessRunner`)
implements `run_step(spec, label) -> StepStatus`; `run` chooses between a job's steps
(`steps.run_steps`) and its `main(ctx)` (`iterative.run_main`, one step per round), from the CLI
and from Python alike.
"""

from __future__ import annotations

from .iterative import MainSummary, run_main
from .job import JobSpec
from .messages import StepSpec, StepStatus
from .steps import RunOptions, Summary, run_steps


class Runner:
    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        raise NotImplementedError

    def run(self, job: JobSpec, inputs: list[str], output: str, opts: RunOptions) -> Summary | MainSummary:
        """Run `job` (its steps, or its `main(ctx)`) over `inputs` into `output`."""
        run_job = run_main if job.main is not None else run_steps
        return run_job(job, list(inputs), output, opts, self.run_step)
