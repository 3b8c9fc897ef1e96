"""Sharing slots between running master jobs, after Hadoop's fair scheduler: pure, no clocks.

Every running job is entitled to an equal share of the cluster's slots; a job that needs fewer (it has
fewer tasks left to run) gets what it needs and the rest is shared among the others (max-min
fairness). A free slot goes to the job furthest below its share; among equals, the job submitted
first. So a short job submitted behind a long one starts on the next free slot instead of waiting
for the long one's tasks to drain.

    >>> shares({"long": 100, "short": 1}, slots=4)
    {'short': 1, 'long': 3.0}
    >>> next_job({"long": 4, "short": 0}, shares({"long": 100, "short": 1}, slots=4))
    'short'
"""

from __future__ import annotations


def shares(demands: dict[str, int], slots: int) -> dict[str, float]:
    """Each job's fair share of `slots`, given how many tasks it could run at once (`demands`)."""
    result: dict[str, float] = {}
    left = {job: demand for job, demand in demands.items() if demand > 0}
    remaining = float(slots)
    while left:
        equal = remaining / len(left)
        small = {job: demand for job, demand in left.items() if demand <= equal}
        if not small:
            result.update((job, equal) for job in left)
            break
        for job, demand in small.items():
            result[job] = demand
            remaining -= demand
            del left[job]
    return result


def next_job(running: dict[str, int], job_shares: dict[str, float]) -> str | None:
    """The job that should get the next free slot: the one running least of its share (in submission
    order, which `running` keeps, on a tie); None when no job has a share."""
    candidates = [job for job in running if job_shares.get(job, 0) > 0]
    return min(candidates, key=lambda job: running[job] / job_shares[job], default=None)
