"""The one entry point that runs any job on any runner: `runner.run(job, inputs, output, opts)`.

A runner (`driver.Driver`, a master's jobs; `spark.SparkRunner`; `testing.InProcessRunner`)
implements `run_step(spec, label) -> StepStatus`; `run` chooses between a job's steps
(`steps.run_steps`) and its `main(ctx)` (`iterative.run_main`, one step per round), from the CLI
and from Python alike.
"""

from __future__ import annotations

from . import history
from .iterative import MainSummary, run_main
from .job import JobSpec
from .messages import StepSpec, StepStatus
from .steps import RunOptions, Summary, run_steps


class Runner:
    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        raise NotImplementedError

    @property
    def runner_name(self) -> str:
        return type(self).__name__

    def param_server_endpoint(self) -> tuple[str, bytes] | None:
        """(host, secret) for a parameter server this runner's tasks can reach; None: they can reach none."""
        return None

    def run(self, job: JobSpec, inputs: list[str], output: str, opts: RunOptions) -> Summary | MainSummary:
        """Run `job` (its steps, or its `main(ctx)`) over `inputs` into `output`."""
        run_job = run_main if job.main is not None else run_steps
        return run_job(job, list(inputs), output, opts, self.run_step)


class Recorded(Runner):
    """`runner`'s steps, each leaving a record in the job history (for runners without a master to write one)."""

    def __init__(self, runner: Runner, history_dir: str, name: str):
        self.runner, self.history_dir, self.name = runner, history_dir, name

    @property
    def runner_name(self) -> str:
        return self.runner.runner_name

    def param_server_endpoint(self) -> tuple[str, bytes] | None:
        return self.runner.param_server_endpoint()

    def run_step(self, spec: StepSpec, label: str) -> StepStatus:
        return history.record_step(self.runner.run_step, spec, label, self.history_dir, self.name)
