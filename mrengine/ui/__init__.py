"""The web UI and JSON API: cluster, jobs and one job's page, each with a JSON twin, and /metrics.

`server.serve(source, host, port, token)` serves a `source` (a live master's state, or a history
directory); `pages` renders HTML, `svg` the timeline and the skew histogram, `metrics` Prometheus text.
"""
