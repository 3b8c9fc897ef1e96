"""Inline SVG charts for the job page: a Gantt timeline of attempts per worker slot, and the partition skew histogram."""

from __future__ import annotations

from html import escape

COLOURS = {"succeeded": "#4a8", "running": "#48c", "failed": "#d44", "killed": "#aaa"}
WIDTH = 1180


def lanes(report: dict) -> list[tuple[str, list[dict]]]:
    """Attempts laid out per worker into lanes (slots): each attempt in the first lane free when it starts."""
    by_worker: dict[str, list] = {}
    for task in report["tasks"]:
        for a in task["attempts"]:
            by_worker.setdefault(a["worker"], []).append({**a, "task": f"{task['kind']} {task['index']}",
                                                          "straggler": task["straggler"]})
    out = []
    for worker in sorted(by_worker, key=lambda w: (len(w), w)):
        ends: list[float] = []
        rows: list[list[dict]] = []
        for a in sorted(by_worker[worker], key=lambda a: a["start"]):
            end = a["start"] + (a["seconds"] or 0)
            lane = next((i for i, e in enumerate(ends) if e <= a["start"] + 1e-6), None)
            if lane is None:
                ends.append(end)
                rows.append([a])
            else:
                ends[lane] = end
                rows[lane].append(a)
        out += [(f"{worker} slot {i + 1}", row) for i, row in enumerate(rows)]
    return out


def gantt(report: dict) -> str:
    rows = lanes(report)
    span = max([report.get("elapsed") or 0] + [a["start"] + (a["seconds"] or 0) for _, row in rows for a in row]) or 1
    lane_h, left = 18, 110
    height = lane_h * len(rows) + 24
    scale = (WIDTH - left - 10) / span
    parts = [f'<svg class="gantt" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, row) in enumerate(rows):
        y = i * lane_h
        parts.append(f'<text x="0" y="{y + 13}" font-size="11">{escape(name)}</text>')
        for a in row:
            x, w = left + a["start"] * scale, max((a["seconds"] or 0) * scale, 1.5)
            stroke = ' stroke="#f80" stroke-width="2"' if a["straggler"] else ""
            parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{lane_h - 4}" '
                         f'fill="{COLOURS.get(a["state"], "#888")}"{stroke}><title>{escape(a["id"])} '
                         f'({escape(a["task"])}) {a["state"]} {a["seconds"]}s</title></rect>')
    y = lane_h * len(rows) + 16
    for k in range(6):
        t = span * k / 5
        parts.append(f'<text x="{left + t * scale:.1f}" y="{y}" font-size="10">{t:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(skew: list[dict], field: str = "bytes") -> str:
    """Bars of `field` per reduce partition; the heaviest is drawn darker and labelled."""
    if not skew:
        return "<p>no reduce partitions</p>"
    top = max(r[field] for r in skew) or 1
    bar_w = max(min(60, (WIDTH - 60) // len(skew) - 4), 2)
    height = 110
    parts = [f'<svg class="skew" width="{min(WIDTH, 60 + len(skew) * (bar_w + 4))}" height="{height + 30}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(skew):
        h = height * r[field] / top
        x = 50 + i * (bar_w + 4)
        heaviest = r[field] == top
        parts.append(f'<rect class="bar{" heaviest" if heaviest else ""}" data-partition="{r["partition"]}" '
                     f'data-value="{r[field]}" x="{x}" y="{height - h:.1f}" width="{bar_w}" height="{h:.1f}" '
                     f'fill="{"#c52" if heaviest else "#58a"}"><title>partition {r["partition"]}: {r[field]} {field}'
                     f'</title></rect>')
        if len(skew) <= 32:
            parts.append(f'<text x="{x}" y="{height + 14}" font-size="10">{r["partition"]}</text>')
    parts.append(f'<text x="0" y="12" font-size="10">{top}</text><text x="0" y="{height}" font-size="10">0</text></svg>')
    return "".join(parts)
