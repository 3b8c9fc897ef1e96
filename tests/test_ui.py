"""The web UI, its JSON API, the job history and task logs, end to end: a real master with --http, real
workers, a job with a deliberate straggler and a skewed key, and real headless Chromium reading the pages."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import http.client
import urllib.error
import urllib.request

import pytest

from conftest import TEST_JOBS, run_cli

JOB = os.path.join(TEST_JOBS, "ui_skewed.py")
CHROMIUM = shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(*args, log=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mrengine", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)


def get(url: str, token: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = reply.read().decode()
    return json.loads(body) if "/api/" in url else body


def status_of(url: str, token: str | None = None) -> int:
    try:
        get(url, token)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def post(base: str, path: str, form: str, host: str | None = None) -> tuple[int, str]:
    """A form POST as a browser sends it (no redirect followed): the status and the Location or body."""
    conn = http.client.HTTPConnection(base[len("http://"):], timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} | ({"Host": host} if host else {})
        conn.request("POST", path, form, headers)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Location") or reply.read().decode()
    finally:
        conn.close()


def top_key_of(skew_row: dict) -> str:
    return skew_row["top_keys"][0]["key"]


def wait_for(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Cluster:
    """A master with the web UI on loopback and two workers, all real processes."""

    def __init__(self, tmp, history_dir):
        self.tmp, self.history_dir = tmp, history_dir
        self.secret = tmp / "secret"
        self.secret.write_text("s3cret-for-the-ui-tests")
        self.procs: list[subprocess.Popen] = []

    def start_master(self):
        ready = self.tmp / f"master-{len(self.procs)}.address"
        self.http = f"http://127.0.0.1:{free_port()}"
        self.master = spawn("master", "--bind", "127.0.0.1:0", "--secret-file", self.secret, "--ready-file", ready,
                            "--http", self.http[len("http://"):], "--history-dir", self.history_dir,
                            "--backup-after", 0, log=open(self.tmp / "master.log", "ab"))
        self.procs.append(self.master)
        self.address = wait_for("the master", lambda: ready.exists() and ready.read_text())
        wait_for("the UI", lambda: get(self.http + "/api/cluster"))

    def start_workers(self, n=2):
        for i in range(n):
            self.procs.append(spawn("worker", "--master", self.address, "--secret-file", self.secret,
                                    "--work-dir", self.tmp / f"work{i}"))
        wait_for("the workers", lambda: len(get(self.http + "/api/cluster")["workers"]) == n)

    def stop_all(self):
        for p in self.procs:
            stop(p)


def make_input(path) -> None:
    path.mkdir()
    for i in range(4):
        with open(path / f"f{i}.txt", "w") as f:
            f.write("first line here\n")
            for j in range(1500):
                f.write(f"hot hot hot cold{j % 7} word{j}\n")


def chromium(url: str, screenshot=None, tmp=None) -> str:
    """The page as headless Chromium renders it (its DOM); with `screenshot`, a 1280x800 PNG of it too."""
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp}", "--window-size=1280,800"]
    if screenshot is not None:
        subprocess.run(base + [f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
        assert os.path.getsize(screenshot) > 5000, f"{screenshot} looks empty"
    return subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout


def text_of(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def summary_counters(stderr: str) -> dict:
    return {m[1]: int(m[2]) for m in re.finditer(r"^\s+(\S+/\S+) = (\d+)$", stderr, re.M)}


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_pages_in_chromium_during_and_after_a_skewed_job_with_a_straggler(tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    browser_dir = tmp_path / "chromium"
    history_dir = tmp_path / "history"
    make_input(tmp_path / "in")
    out = tmp_path / "out"
    cluster = Cluster(tmp_path, history_dir)
    try:
        cluster.start_master()
        cluster.start_workers()
        run = subprocess.Popen([sys.executable, "-m", "mrengine", "run", JOB, tmp_path / "in", "-o", out,
                                "--master", cluster.address, "--secret-file", cluster.secret, "-p", "slow=f2.txt",
                                "-p", "sleep=120", "-p", f"release={tmp_path / 'release'}", "--counters"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        # During the job: the straggling map is the one task still running.
        job = wait_for("three maps done", lambda: next((j for j in get(cluster.http + "/api/jobs")
                                                         if j["counts"]["maps_done"] >= 3), None))
        assert job["state"] == "running"
        url = f"{cluster.http}/jobs/{job['id']}"
        dom = text_of(chromium(url, shots / "job-running.png", browser_dir))
        assert "running" in dom and "map 3/4" in dom and "kill this job" in dom
        cluster_dom = text_of(chromium(cluster.http + "/cluster", shots / "cluster.png", browser_dir))
        assert "2 of 2 workers alive" in cluster_dom and f"{job['id']} m00002.0" in cluster_dom  # the straggler runs
        assert "running" in text_of(chromium(cluster.http + "/jobs", shots / "jobs-running.png", browser_dir))
        (tmp_path / "release").touch()  # the straggler has been seen running: let it end
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr

        # After it: what a person sees on the job page.
        dom = chromium(url, shots / "job.png", browser_dir)
        seen = text_of(dom)
        assert "succeeded" in seen
        assert re.search(r"map 2 m00002\.0 .*? straggler \(median", seen), "map 2 is not flagged a straggler"
        assert seen.count("straggler (median") == 1
        hot = next(p for p in sorted(out.glob("part-*")) if re.search(r"^hot\t", p.read_text(), re.M))
        hot_partition = int(hot.name.split("-")[1])
        heaviest = re.findall(r'class="bar heaviest" data-partition="(\d+)"', dom)
        assert heaviest == [str(hot_partition)] * 2, "the hot key's partition is not the largest bar (bytes, records)"
        assert re.search(rf"heaviest keys \(sampled\).*? {hot_partition} \d+ \d+ \d+ 'hot' ~\d+", seen), \
            "the hot key is not the top sampled key of its partition"
        assert "kill this job" not in seen  # it is over
        for name, value in summary_counters(stderr).items():
            group, counter = name.split("/")
            assert f"{group} {counter} {value}" in seen, f"counter {name} = {value} is not on the page"
        assert "straggling on purpose" in get(f"{cluster.http}/jobs/{job['id']}/logs/m00002.0")
        chromium(cluster.http + "/metrics", None, browser_dir)

        # History survives a master restart, and the history server shows the same job.
        stop(cluster.master)
        cluster.start_master()
        listed = get(cluster.http + "/api/jobs")
        assert [j["state"] for j in listed if j["id"] == job["id"]] == ["succeeded"]
        url = f"{cluster.http}/jobs/{job['id']}"  # the new master's UI
        assert "straggler (median" in text_of(chromium(url, shots / "job-after-restart.png", browser_dir))
        ui_port = free_port()
        ui = spawn("ui", "--history", history_dir, "--http", f"127.0.0.1:{ui_port}")
        cluster.procs.append(ui)
        history_url = f"http://127.0.0.1:{ui_port}"
        wait_for("the history server", lambda: get(history_url + "/api/jobs"))
        assert job["id"] in text_of(chromium(history_url + "/jobs", shots / "history-jobs.png", browser_dir))
        history_dom = chromium(f"{history_url}/jobs/{job['id']}", shots / "history-job.png", browser_dir)
        assert re.findall(r'class="bar heaviest" data-partition="(\d+)"', history_dom) == [str(hot_partition)] * 2
        assert f" {hot_partition} " in text_of(history_dom) and "'hot' ~" in text_of(history_dom)
        assert "straggler (median" in text_of(history_dom)
    finally:
        cluster.stop_all()
    if os.environ.get("MRENGINE_SCREENSHOTS"):
        shutil.copytree(shots, os.environ["MRENGINE_SCREENSHOTS"], dirs_exist_ok=True)


@pytest.mark.slow
def test_json_api_agrees_with_the_summary_and_success_manifest(tmp_path):
    history_dir = tmp_path / "history"
    make_input(tmp_path / "in")
    out = tmp_path / "out"
    cluster = Cluster(tmp_path, history_dir)
    try:
        cluster.start_master()
        cluster.start_workers()
        result = run_cli("run", JOB, tmp_path / "in", "-o", out, "--master", cluster.address, "--secret-file",
                         cluster.secret, "--counters")
        assert result.returncode == 0, result.stderr
        manifest = json.loads((out / "_SUCCESS").read_text())
        [job] = get(cluster.http + "/api/jobs")
        report = get(f"{cluster.http}/api/jobs/{job['id']}")
        assert report["manifest"] == manifest
        assert {f"{g}/{n}": v for g, n, v in report["counters"]} == summary_counters(result.stderr)
        assert report["counters"] == manifest["counters"]
        assert {f"part-{s['partition']:05d}": s["output_records"] for s in report["skew"]} == \
            {name: part["records"] for name, part in manifest["parts"].items()}
        assert report["counts"]["maps"] == manifest["maps"] == len(report["tasks"]) - manifest["reduces"]
        hot = next(int(p.name[5:]) for p in out.glob("part-*") if re.search(r"^hot\t", p.read_text(), re.M))
        assert top_key_of(report["skew"][hot]) == "'hot'"
        assert report["skew"][hot]["top_keys"][0]["records"] == pytest.approx(4 * 1500 * 3, rel=0.05)
        beside = json.loads((out / "_REPORT.json").read_text())
        assert beside["counters"] == manifest["counters"] and beside["state"] == "succeeded"
        assert top_key_of(beside["skew"][hot]) == "'hot'"
        metrics = get(cluster.http + "/metrics")
        assert 'mrengine_workers{state="alive"} 2' in metrics and 'mrengine_jobs{state="succeeded"} 1' in metrics
        assert run_cli("verify", out).returncode == 0  # the report beside _SUCCESS is no part file
        live_logs = run_cli("logs", job["id"], "m00000", "--master", cluster.address, "--secret-file", cluster.secret)
        assert live_logs.returncode == 0 and "==> m00000.0 <==" in live_logs.stdout
        assert "mapping f0.txt" in live_logs.stdout, live_logs.stderr
        unknown = run_cli("logs", "job9999", "--master", cluster.address, "--secret-file", cluster.secret)
        assert unknown.returncode == 2 and "no job 'job9999' on this master" in unknown.stderr
        assert "Traceback" not in unknown.stderr
        kill_through_the_ui(cluster, tmp_path)
    finally:
        cluster.stop_all()
    [record] = [json.loads(p.read_text()) for p in history_dir.glob("*.json") if json.loads(p.read_text())["id"] == job["id"]]
    assert top_key_of(record["skew"][hot]) == "'hot'"
    listed = run_cli("history", "--history-dir", history_dir)
    assert job["id"] in listed.stdout and "succeeded" in listed.stdout
    logs = run_cli("logs", job["id"], "m00000", "--history-dir", history_dir)
    assert logs.returncode == 0 and "mapping f0.txt" in logs.stdout
    missing = run_cli("logs", job["id"], "m09999", "--history-dir", history_dir)
    assert missing.returncode == 2 and "no task or attempt 'm09999'" in missing.stderr


def kill_through_the_ui(cluster: Cluster, tmp_path) -> None:
    """A long job killed with the job page's kill button ends cancelled, its output without _SUCCESS."""
    out = tmp_path / "killed"
    run = subprocess.Popen([sys.executable, "-m", "mrengine", "run", JOB, tmp_path / "in", "-o", out, "--master",
                            cluster.address, "--secret-file", cluster.secret, "-p", "slow=f1.txt", "-p", "sleep=120"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job = wait_for("the long job", lambda: next((j for j in get(cluster.http + "/api/jobs")
                                                      if j["output"] == str(out) and j["state"] == "running"), None))
        page = get(f"{cluster.http}/jobs/{job['id']}")
        action, token = re.search(r"<form method='post' action='([^']+)'>.*?name='token' value='(\w+)'", page).groups()
        assert action == f"/jobs/{job['id']}/kill"
        assert post(cluster.http, action, "token=forged")[0] == 403
        assert post(cluster.http, action, f"token={token}", host="attacker.example:80")[0] == 403  # DNS rebinding
        assert get(f"{cluster.http}/api/jobs/{job['id']}")["state"] == "running"
        assert post(cluster.http, action, f"token={token}") == (303, f"/jobs/{job['id']}")
        _, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0 and "killed by the web UI" in stderr, stderr
    report = wait_for("the job's end", lambda: (r := get(f"{cluster.http}/api/jobs/{job['id']}"))["state"] != "running" and r)
    assert report["state"] == "cancelled" and "killed by the web UI" in report["error"]["message"]
    assert not (out / "_SUCCESS").exists()
    status, body = post(cluster.http, action, f"token={token}")
    assert status == 409 and "is not running" in body


def test_a_remote_ui_bind_needs_the_secret_and_then_asks_for_its_token(tmp_path):
    refused = run_cli("master", "--bind", "127.0.0.1:0", "--http", "0.0.0.0:0", timeout=60)
    assert refused.returncode == 2
    assert "needs --secret-file" in refused.stderr and "Traceback" not in refused.stderr
    secret = tmp_path / "secret"
    secret.write_text("another-secret")
    port = free_port()
    ready = tmp_path / "ready"
    master = spawn("master", "--bind", "127.0.0.1:0", "--secret-file", secret, "--ready-file", ready,
                   "--http", f"0.0.0.0:{port}", "--history-dir", tmp_path / "history")
    try:
        wait_for("the master", ready.exists)
        url = f"http://127.0.0.1:{port}/api/cluster"
        assert status_of(url) == 401
        token = run_cli("ui-token", "--secret-file", secret).stdout.strip()
        assert get(url, token)["workers"] == []
        assert status_of(url, "not-the-token") == 401
    finally:
        stop(master)
