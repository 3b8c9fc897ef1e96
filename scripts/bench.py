"""Word count on one real-text corpus, every way at once: the ceiling and mrengine, in ONE run.

    python scripts/bench.py --size 256M                   # make (or reuse) a 256 MiB corpus, run every case
    python scripts/bench.py --size 1G --sort-buffer-mb 128
    python scripts/bench.py --corpus sample_data/text     # the sample text as it is
    python scripts/bench.py --size 64M --cases pool,fast --repeat 3

The corpus is the lines of sample_data/text shuffled with a seeded RNG, replicated (a fresh shuffle
each time) until it has the size asked for; it is written once under --data-dir and reused.

Cases (the rows of `CASES`):

    counter    one process: collections.Counter over the lines (its output is the reference)
    pool       multiprocessing.Pool(2) over four line-aligned byte ranges, each counted in 1 MiB
               line-aligned blocks (Counter.update(block.decode().split())), merging Counters: the
               ceiling a user could write by hand in Python, with no per-line work at all.
    wordcount  mrengine run jobs/wordcount.py (one mapper call per line, combiner), --workers 2
    fast       mrengine run jobs/wordcount_fast.py (map_split returns a Counter), --workers 2
    mrjob      mrengine run jobs/mr_wordcount.py: the same count as an unchanged mrjob MRJob class
    mrjob-local  python jobs/mr_wordcount.py -r local --num-cores 2: mrjob's own local runner (where mrjob imports)
    streaming  mrengine streaming with jobs/streaming/wc_mapper.py and wc_reducer.py (Python over stdin/stdout)
    spark      mrengine run jobs/wordcount.py --runner spark --spark-master local[2] (workers: cores)
    spark-fast mrengine run jobs/wordcount_fast.py --runner spark, the same
    latency    mrengine run jobs/wordcount.py on 1 KB of the corpus, end to end, cluster start included,
               and mrjob's inline runner on the same 1 KB (where mrjob imports)

The spark rows run by default when pyspark is installed (pip install -e '.[spark]'); their time
includes starting Spark's JVM, as a user's `mrengine run --runner spark` does.

Every case runs as its own process tree. The script polls the tree for the peak RSS of its largest
process (VmHWM on Linux), checks that the case's output equals the reference counts, and prints wall
seconds (process start to exit), MB/s, the CPU seconds of the whole tree, that peak, and the ratios of
wall and CPU to the pool case. CPU seconds move less than wall seconds when others load the machine. With --repeat N the
cases run in N rounds, one run of each case per round, and each case's fastest run counts (its peak
RSS is the highest seen). The load average goes with the table: on a busy machine compare ratios
within one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib.util
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

import psutil

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "text"
WORKERS = 2
CHUNK = 1 << 20
LATENCY_BYTES = 1000


# ---------------------------------------------------------------- the corpus


def parse_size(text: str) -> int:
    """'256M', '1G', '64MiB', '4096' -> bytes (K, M, G are powers of 1024)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def sample_lines() -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(SAMPLE.glob("*.txt")):
        lines += path.read_bytes().splitlines(keepends=True)
    return lines


def make_corpus(size: int, seed: int, data_dir: Path) -> Path:
    """A file of `size` bytes (whole lines, a little under) of shuffled sample lines; reused when present."""
    path = data_dir / f"corpus-{size}-s{seed}.txt"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = sample_lines()
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb") as f:
        while written < size:
            rng.shuffle(lines)
            for line in lines:
                if written + len(line) > size:
                    written = size
                    break
                f.write(line)
                written += len(line)
    os.replace(tmp, path)
    return path


def corpus_files(spec: str) -> list[str]:
    p = Path(spec)
    files = sorted(str(f) for f in p.rglob("*") if f.is_file()) if p.is_dir() else sorted(glob.glob(spec))
    if not files:
        sys.exit(f"bench: no input files at {spec}")
    return files


def latency_input(files: list[str], data_dir: Path) -> Path:
    """About LATENCY_BYTES of whole lines from the start of the corpus."""
    path = data_dir / "latency-1k.txt"
    data_dir.mkdir(parents=True, exist_ok=True)
    lines, size = [], 0
    with open(files[0], "rb") as f:
        for line in f:
            if size + len(line) > LATENCY_BYTES and lines:
                break
            lines.append(line)
            size += len(line)
    path.write_bytes(b"".join(lines))
    return path


# ---------------------------------------------------------------- counting without the engine


def line_aligned_blocks(path: str, start: int, end: int):
    """The bytes [start, end) of `path` (both at line starts) in blocks of about CHUNK, each ending
    at a line end."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining, carry = end - start, b""
        while remaining > 0:
            data = f.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            data = carry + data
            cut = data.rfind(b"\n") + 1 if remaining > 0 else len(data)
            carry = data[cut:]
            yield data[:cut]


def count_lines(counts: collections.Counter, path: str, start: int, end: int) -> None:
    """Counter.update(line.split()) line by line, for the lines in bytes [start, end)."""
    update = counts.update
    for block in line_aligned_blocks(path, start, end):
        for line in block.decode("utf-8").split("\n"):
            update(line.split())


def count_blocks(counts: collections.Counter, path: str, start: int, end: int) -> None:
    """Counter.update(block.split()) a block at a time: whitespace splitting across line ends gives
    the same words as splitting each line."""
    for block in line_aligned_blocks(path, start, end):
        counts.update(block.decode("utf-8").split())


def line_aligned_ranges(files: list[str], parts: int) -> list[list[tuple[str, int, int]]]:
    """`parts` lists of (path, start, end), of about equal bytes, every cut at a line start."""
    sizes = [os.path.getsize(f) for f in files]
    share = sum(sizes) / parts
    pieces: list[list[tuple[str, int, int]]] = [[] for _ in range(parts)]
    part, room = 0, share
    for path, size in zip(files, sizes):
        start = 0
        with open(path, "rb") as f:
            while start < size:
                if part == parts - 1 or size - start <= room:
                    pieces[part].append((path, start, size))
                    room -= size - start
                    break
                f.seek(start + int(room))
                f.readline()
                end = min(f.tell(), size)
                pieces[part].append((path, start, end))
                part, room, start = part + 1, share, end
    return pieces


def _count_ranges(ranges: list[tuple[str, int, int]]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path, start, end in ranges:
        count_blocks(counts, path, start, end)
    return counts


def write_counts(counts: collections.Counter, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "part-00000", "w", encoding="utf-8") as f:
        f.writelines(f"{word}\t{n}\n" for word, n in counts.items())


def run_counter(out: str, files: list[str]) -> None:
    counts: collections.Counter = collections.Counter()
    for path in files:
        count_lines(counts, path, 0, os.path.getsize(path))
    write_counts(counts, Path(out))


def run_pool(out: str, files: list[str]) -> None:
    with multiprocessing.Pool(WORKERS) as pool:
        counts: collections.Counter = collections.Counter()
        for part in pool.map(_count_ranges, line_aligned_ranges(files, 2 * WORKERS)):
            counts.update(part)
    write_counts(counts, Path(out))


# ---------------------------------------------------------------- cases


class Options(NamedTuple):
    sort_buffer_mb: int
    workers: int


def _self(mode: str) -> Callable[[list[str], str, Options], list[str]]:
    return lambda files, out, opts: [sys.executable, __file__, "_count", mode, out, *files]


def _mrengine(job: str, runner: str = "native", *extra: str) -> Callable[[list[str], str, Options], list[str]]:
    def argv(files: list[str], out: str, opts: Options) -> list[str]:
        cmd = [sys.executable, "-m", "mrengine", "run", str(ROOT / "jobs" / job), *files, "-o", out, "--overwrite",
               "--sort-buffer-mb", str(opts.sort_buffer_mb)]
        if runner == "spark":
            return cmd + ["--runner", "spark", "--spark-master", f"local[{opts.workers}]", "--spark-conf", "spark.ui.enabled=false"]
        return cmd + ["--workers", str(opts.workers), *extra]

    return argv


def _mrjob_local(files: list[str], out: str, opts: Options) -> list[str]:
    """mrjob's own local runner on the same job file, as many cores as mrengine's workers."""
    return [sys.executable, str(ROOT / "jobs" / "mr_wordcount.py"), "-r", "local", "--num-cores", str(opts.workers),
            "--output-dir", out, "--no-output", *files]


def _mrjob_inline(files: list[str], out: str, opts: Options) -> list[str]:
    """mrjob's inline runner (one process, no subprocesses): its fastest way through a small input."""
    return [sys.executable, str(ROOT / "jobs" / "mr_wordcount.py"), "-r", "inline", "--output-dir", out,
            "--no-output", *files]


def _mrjob_imports() -> bool:
    return subprocess.run([sys.executable, "-c", "import mrjob.job"], capture_output=True).returncode == 0


def _streaming(files: list[str], out: str, opts: Options) -> list[str]:
    """mrengine streaming with the Python mapper and reducer scripts of jobs/streaming/."""
    scripts = ROOT / "jobs" / "streaming"
    return [sys.executable, "-m", "mrengine", "streaming", "--workers", str(opts.workers),
            *[a for f in files for a in ("-input", f)], "-output", out, "-overwrite", "-numReduceTasks", "2",
            "-mapper", f"{sys.executable} wc_mapper.py", "-reducer", f"{sys.executable} wc_reducer.py",
            "-file", str(scripts / "wc_mapper.py"), "-file", str(scripts / "wc_reducer.py")]


# name -> argv for (input files, output dir, options). The output dir must end up holding part-*
# files of "word<TAB>count" lines.
CASES: dict[str, Callable[[list[str], str, Options], list[str]]] = {
    "counter": _self("counter"),
    "pool": _self("pool"),
    "wordcount": _mrengine("wordcount.py"),
    "fast": _mrengine("wordcount_fast.py"),
    "fast-encrypted": _mrengine("wordcount_fast.py", "native", "--encrypt"),
    "spark": _mrengine("wordcount.py", "spark"),
    "spark-fast": _mrengine("wordcount_fast.py", "spark"),
    "mrjob": _mrengine("mr_wordcount.py"),
    "mrjob-local": _mrjob_local,
    "streaming": _streaming,
}


def default_cases() -> list[str]:
    have_spark = importlib.util.find_spec("pyspark") is not None
    have_mrjob = _mrjob_imports()
    return [name for name in CASES if (have_spark or not name.startswith("spark")) and (have_mrjob or name != "mrjob-local")
            ] + ["latency"]


# ---------------------------------------------------------------- measuring


def _peak_of(proc: psutil.Process) -> int:
    """The process's peak resident set so far (VmHWM), or its current one where that is unknown."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc.memory_info().rss


def role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "spawn_main" in text:
        return "task slot"
    if "multiprocessing" in text:
        return "mp helper"
    if "org.apache.spark" in text:
        return "spark jvm"
    if "pyspark.daemon" in text or "pyspark.worker" in text:
        return "python worker"
    words = text.split()  # a forked embedded master or worker has its whole title as one string
    for name in ("worker", "master", "run", "_count"):
        if name in words:
            return {"run": "driver", "_count": "main"}.get(name, name)
    return "?"


class TreePeak:
    """Polls a process tree for the peak RSS and the CPU seconds of each of its processes until stopped."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self.cpu: dict[int, float] = {}  # pid -> user + system seconds when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "TreePeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                peak = _peak_of(proc)
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                if peak > self.peaks.get(proc.pid, (0, ""))[0]:  # the role anew: a script may exec its program
                    self.peaks[proc.pid] = (peak, role(proc.cmdline()))
            except (psutil.Error, OSError):
                continue

    def largest(self) -> tuple[int, str]:
        return max(self.peaks.values(), default=(0, "?"))


class Result(NamedTuple):
    wall: float
    cpu: float  # user + system seconds of the whole process tree
    peak: int
    peak_role: str
    returncode: int
    stderr: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant, recursively
    return usage.ru_utime + usage.ru_stime


def run_case(argv: list[str], env: dict, timeout: float) -> Result:
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with TreePeak(proc.pid) as peak:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            err += f"\nbench: timed out after {timeout:.0f}s"
        wall = time.perf_counter() - start
    # The kernel's count misses descendants that were never waited for (Spark's Python workers,
    # orphaned when Spark stops); polling misses each process's last moments: the larger is nearer.
    cpu = max(_children_cpu() - cpu, sum(peak.cpu.values()))
    return Result(wall, cpu, *peak.largest(), proc.returncode, err)


def read_counts(out_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in sorted(out_dir.glob("part-*")):
        with open(part, encoding="utf-8") as f:
            for line in f:
                word, _, n = line.rstrip("\n").rpartition("\t")
                counts[word] = counts.get(word, 0) + int(n)
    return counts


def check(out_dir: Path, reference: dict | None) -> str:
    got = read_counts(out_dir)
    if reference is None:
        return "reference"
    if got == reference:
        return "ok"
    wrong = sum(1 for w in reference.keys() | got.keys() if reference.get(w) != got.get(w))
    return f"WRONG ({wrong} words differ)"


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["_count"]:
        mode, out, *files = args[1:]
        (run_counter if mode == "counter" else run_pool)(out, files)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--size", default="256M", help="corpus size to make (e.g. 64M, 256M, 1G)")
    src.add_argument("--corpus", help="existing input files (a file, directory or glob) instead of a made corpus")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default="/tmp/mrengine-bench", help="where corpora and outputs go")
    ap.add_argument("--cases", default=",".join(default_cases()), help="comma-separated cases to run, in order")
    ap.add_argument("--sort-buffer-mb", type=int, default=100)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every case; each case's fastest run counts")
    ap.add_argument("--timeout", type=float, default=3600)
    opts_ns = ap.parse_args(args)
    data_dir = Path(opts_ns.data_dir)
    cases = [c for c in opts_ns.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES and c != "latency"]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join([*CASES, 'latency'])}")
    files = corpus_files(opts_ns.corpus) if opts_ns.corpus else [str(make_corpus(parse_size(opts_ns.size), opts_ns.seed, data_dir))]
    total = sum(os.path.getsize(f) for f in files)
    opts = Options(opts_ns.sort_buffer_mb, opts_ns.workers)
    env = child_env()
    print(f"corpus: {', '.join(files) if len(files) <= 3 else f'{len(files)} files'} ({total / 1e6:.1f} MB)")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"--sort-buffer-mb {opts.sort_buffer_mb}, --workers {opts.workers}, best of {opts_ns.repeat}")
    for path in files:  # into the page cache, so the first case does not pay for the disk
        with open(path, "rb") as f:
            while f.read(CHUNK * 16):
                pass
    reference: dict | None = None
    best: dict[str, Result] = {}
    failed: set[str] = set()
    runs = [c for c in cases if c != "latency"]
    # Round-robin rather than case after case: a change in the machine's load then touches every case.
    for round_ in range(max(1, opts_ns.repeat)):
        for name in [c for c in runs if c not in failed]:
            out = data_dir / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            result = run_case(CASES[name](files, str(out), opts), env, opts_ns.timeout)
            if result.returncode != 0:
                print(f"{name}: failed (exit {result.returncode}):\n{result.stderr[-2000:]}", file=sys.stderr)
                failed.add(name)
                continue
            if reference is None:
                reference = read_counts(out if name == "counter" else _reference_dir(files, data_dir, env, opts_ns.timeout))
            verdict = check(out, reference)
            if verdict != "ok":
                print(f"{name}: output {verdict}", file=sys.stderr)
                failed.add(name)
                continue
            if opts_ns.repeat > 1:
                print(f"  round {round_ + 1}: {name} {result.wall:.2f} s (cpu {result.cpu:.2f} s)", file=sys.stderr, flush=True)
            if name not in best or result.wall < best[name].wall:
                best[name] = result._replace(peak=max(result.peak, best[name].peak if name in best else 0))
    print(f"{'case':<11} {'wall s':>8} {'MB/s':>8} {'vs pool':>8} {'cpu s':>8} {'vs pool':>8} {'peak RSS MB':>12} {'(process)':<12} output")
    for name in runs:
        if name in failed:
            print(f"{name:<11} {'failed':>8}")
            continue
        r = best[name]
        ratio = f"{r.wall / best['pool'].wall:.2f}" if "pool" in best else "-"
        cpu_ratio = f"{r.cpu / best['pool'].cpu:.2f}" if "pool" in best else "-"
        verdict = "reference" if name == "counter" else "ok"
        print(f"{name:<11} {r.wall:8.2f} {total / 1e6 / r.wall:8.1f} {ratio:>8} {r.cpu:8.2f} {cpu_ratio:>8} "
              f"{r.peak / 2**20:12.0f} {'(' + r.peak_role + ')':<12} {verdict}", flush=True)
    if "latency" in cases:
        small = latency_input(files, data_dir)
        contenders = [("jobs/wordcount.py", CASES["wordcount"])]
        if _mrjob_imports():
            contenders.append(("mrjob's inline runner (jobs/mr_wordcount.py -r inline)", _mrjob_inline))
        for what, case in contenders:
            runs = []
            for _ in range(max(3, opts_ns.repeat)):
                result = run_case(case([str(small)], str(data_dir / "out-latency"), opts), env, opts_ns.timeout)
                if result.returncode != 0:
                    print(f"latency: failed (exit {result.returncode}):\n{result.stderr[-2000:]}", file=sys.stderr)
                    failed.add("latency")
                    break
                runs.append(result.wall)
            if runs:
                runs.sort()
                print(f"latency: {small.stat().st_size} bytes through {what}, end to end: "
                      f"median {runs[len(runs) // 2]:.2f} s, best {runs[0]:.2f} s of {len(runs)}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if failed else 0


def _reference_dir(files: list[str], data_dir: Path, env: dict, timeout: float) -> Path:
    out = data_dir / "out-reference"
    shutil.rmtree(out, ignore_errors=True)
    result = run_case(CASES["counter"](files, str(out), Options(0, 1)), env, timeout)
    if result.returncode != 0:
        sys.exit(f"bench: the reference count failed:\n{result.stderr}")
    return out


if __name__ == "__main__":
    sys.exit(main())
