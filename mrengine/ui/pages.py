"""Server-rendered HTML pages of the UI; each takes the same dict its /api twin returns."""

from __future__ import annotations

import time
from html import escape
from urllib.parse import quote

from . import svg

STYLE = """
body{font:13px/1.35 system-ui,sans-serif;margin:0;color:#222;max-width:1260px}
header{background:#234;color:#fff;padding:6px 12px}header a{color:#fff;margin-right:14px}
main{padding:8px 12px}table{border-collapse:collapse;margin:6px 0}
td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.progress{background:#eee;width:400px;height:14px;display:inline-block;vertical-align:middle}
.progress span{background:#4a8;height:14px;display:block}.straggler{background:#fec}.failed{color:#c22}
pre{background:#f7f7f7;padding:4px;max-height:200px;overflow:auto;white-space:pre-wrap;margin:2px 0}
h2{font-size:16px;margin:14px 0 4px}
"""


def layout(title: str, source_title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} - mrengine</title>"
            f"<style>{STYLE}</style></head><body><header><b>mrengine</b> {escape(source_title)} &nbsp; "
            f"<a href='/cluster'>cluster</a><a href='/jobs'>jobs</a><a href='/metrics'>metrics</a></header>"
            f"<main><h1 style='font-size:18px'>{escape(title)}</h1>{body}</main></body></html>")


def table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr class='{c}'>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row, c in zip(rows, row_classes or [""] * len(rows)))
    return f"<table><tr>{head}</tr>{body}</table>"


def when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def progress(done: int, total: int) -> str:
    pct = 100 * done / total if total else 100
    return f"<span class='progress'><span style='width:{pct:.1f}%'></span></span> {done}/{total} ({pct:.0f}%)"


def cluster_page(source_title: str, cluster: dict) -> str:
    if not cluster["live"]:
        return layout("cluster", source_title, "<p>A history server has no cluster: see <a href='/jobs'>jobs</a>.</p>")
    rows = [[escape(w["id"]), escape(w["state"]) + "".join(f"<br><small>{escape(r)}</small>"
                                                           for r in w.get("excluded_by") or ()), escape(w["host"]), str(w["pid"]), escape(w["shuffle"]), str(w["slots"]),
             f"{w['last_heartbeat']}s ago",
             ", ".join(f"<a href='/jobs/{quote(j)}'>{escape(j)}</a> {escape(a)}" for j, a in w["running"])]
            for w in cluster["workers"]]
    up = [w for w in cluster["workers"] if w["state"] != "dead"]
    excluded = sum(w["state"] == "excluded" for w in up)
    body = (f"<p>{len(up)} of {len(cluster['workers'])} workers alive"
            + (f" ({excluded} excluded by a running job)" if excluded else "")
            + f", {sum(w['slots'] for w in up)} slots.</p>"
            + table(["worker", "state", "host", "pid", "shuffle", "slots", "last heartbeat", "running attempts"], rows))
    return layout("cluster", source_title, body)


def jobs_page(source_title: str, jobs: list[dict]) -> str:
    rows = []
    for j in jobs:
        c = j["counts"]
        rows.append([f"<a href='/jobs/{quote(j['id'])}'>{escape(j['id'])}</a>", escape(j["name"]), str(j["step"]),
                     escape(j["user"] or ""), escape(j["job_file"] or ""), escape(", ".join(j["inputs"])),
                     escape(j["output"]), when(j["started"]), f"{j['elapsed']:.1f}s", j["state"],
                     f"map {c['maps_done']}/{c['maps']} reduce {c['reduces_done']}/{c['reduces']}"])
    body = table(["job", "name", "step", "user", "job file", "input", "output", "started", "duration", "state",
                  "progress"], rows, [j["state"] for j in jobs]) if jobs else "<p>no jobs yet</p>"
    return layout("jobs", source_title, body)


def job_page(source_title: str, r: dict, kill_token: str | None = None) -> str:
    """`kill_token`: the form token of a live master's UI, which gets a kill button while the job runs."""
    c = r["counts"]
    error = r.get("error") or {}
    parts = [
        f"<p>{escape(r['name'])} step {r['step']} &middot; <b>{r['state']}</b> &middot; {r['elapsed']:.2f}s &middot; "
        f"user {escape(r['user'] or '?')} &middot; {escape(r['job_file'] or '')}<br>input {escape(', '.join(r['inputs']))}"
        f" &rarr; output {escape(r['output'])} &middot; started {when(r['started'])}</p>",
        f"<p>map {progress(c['maps_done'], c['maps'])}<br>reduce {progress(c['reduces_done'], c['reduces'])}</p>",
    ]
    if kill_token is not None and r["state"] == "running":
        parts.append(kill_form(r["id"], kill_token))
    if error:
        parts.append(f"<h2 class='failed'>failed</h2><pre class='failed'>{escape(error.get('message', ''))}\n"
                     f"{escape(error.get('traceback', ''))}</pre>")
    parts += ["<h2>partition skew: shuffle bytes and records per reducer</h2><div style='display:flex;gap:30px'>",
              svg.histogram(r["skew"], "bytes"), svg.histogram(r["skew"], "records"), skew_table(r["skew"]), "</div>"]
    parts += ["<h2>counters</h2>", counters_table(r["counters"])]
    parts += ["<h2>timeline (attempts per worker slot)</h2>", svg.gantt(r)]
    stragglers = [t for t in r["tasks"] if t["straggler"]]
    parts.append(f"<h2>tasks</h2><p>{len(stragglers)} straggler(s) flagged (over twice their phase's median)</p>")
    parts.append(task_table(r))
    return layout(f"job {r['id']}", source_title, "".join(parts))


def kill_form(job_id: str, token: str) -> str:
    return (f"<form method='post' action='/jobs/{quote(job_id)}/kill'><input type='hidden' name='token' "
            f"value='{escape(token)}'><button type='submit' id='kill'>kill this job</button></form>")


def counters_table(counters: list) -> str:
    return table(["group", "counter", "value"], [[escape(g), escape(n), str(v)] for g, n, v in counters])


def skew_table(skew: list[dict]) -> str:
    rows = [[str(s["partition"]), str(s["bytes"]), str(s["records"]), str(s["output_records"] or ""),
             top_keys(s.get("top_keys") or [])] for s in skew]
    return table(["partition", "shuffle bytes", "shuffle records", "output records",
                  "heaviest keys (sampled): ~records, ~bytes"], rows)


def top_keys(keys: list[dict]) -> str:
    """The sampled heaviest keys of a partition; they are user data, so escaped and cut short."""
    return "<br>".join(f"<code class='key'>{escape(_cut(k['key']))}</code> ~{k['records']}, ~{k['bytes']}"
                       for k in keys)


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def task_table(r: dict) -> str:
    rows, classes = [], []
    for t in r["tasks"]:
        for a in t["attempts"]:
            what = "backup" if a["backup"] else ("retry" if a["retry"] else "")
            flag = f"straggler (median {t['median']}s)" if t["straggler"] else ""
            failure = ""
            if a.get("error"):
                failure = f"<pre>{escape(a['error'])}\n{escape(a.get('traceback', ''))}</pre>"
            log = (f"<a href='/jobs/{quote(r['id'])}/logs/{quote(a['id'])}'>log</a> "
                   f"({len(a['log'])} chars)" if a.get("log") else "")
            rows.append([f"{t['kind']} {t['index']}", escape(a["id"]), escape(a["worker"]), f"{a['start']:.2f}s",
                         "" if a["seconds"] is None else f"{a['seconds']:.2f}s", _n(a.get("records_in")),
                         _n(a.get("bytes_in")), _n(a.get("records_out")), _n(a.get("bytes_out")), a["state"], what,
                         flag, failure + log])
            classes.append("straggler" if t["straggler"] else ("failed" if a["state"] == "failed" else ""))
    return table(["task", "attempt", "worker", "start", "duration", "records in", "bytes in", "records out",
                  "bytes out", "state", "backup/retry", "straggler", "failure / log"], rows, classes)


def _n(value) -> str:
    return "" if value is None else str(value)
