"""/metrics in the Prometheus text exposition format (version 0.0.4), written by hand: it is a few lines."""

from __future__ import annotations


def _labels(**labels) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def render(cluster: dict, jobs: list[dict]) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, text: str, samples: list[tuple[dict, float]]) -> None:
        out.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        out.extend(f"{name}{_labels(**labels)} {value}" for labels, value in samples)

    workers = cluster["workers"]
    metric("mrengine_workers", "gauge", "Workers known to the master, by state.",
           [({"state": s}, sum(w["state"] == s for w in workers)) for s in ("alive", "excluded", "dead")])
    metric("mrengine_slots", "gauge", "Slots of the live workers.",
           [({}, sum(w["slots"] for w in workers if w["state"] != "dead"))])
    metric("mrengine_running_attempts", "gauge", "Attempts running on the workers.",
           [({}, sum(len(w["running"]) for w in workers))])
    metric("mrengine_jobs", "gauge", "Jobs the master or history holds, by state.",
           [({"state": s}, sum(j["state"] == s for j in jobs)) for s in ("running", "succeeded", "failed")])
    running = [j for j in jobs if j["state"] == "running"]
    metric("mrengine_job_tasks", "gauge", "Tasks of running jobs, by kind and state.",
           [({"job": j["id"], "kind": kind, "state": state}, j["counts"][f"{kind}s{suffix}"])
            for j in running for kind in ("map", "reduce") for state, suffix in (("total", ""), ("done", "_done"),
                                                                               ("running", "_running"))])
    return "\n".join(out) + "\n"
