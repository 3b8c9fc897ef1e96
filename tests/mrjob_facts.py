"""What mrjob's own runners write for its example jobs and for tests/jobs/mr_features.py on fixed
inputs: the facts tests/test_mrjob_jobs.py holds mrengine's output to, recorded once instead of
re-running mrjob's runners (seven seconds of subprocesses a local-runner job, one second an inline
one) in every test run.

Re-derive them (where `import mrjob.job` works, Python 3.11 or older) with

    PYTHONPATH=. python tests/mrjob_facts.py

which runs each example as `python EXAMPLE.py -r local INPUTS... JOB_ARGS...` and mr_features.py
with each pair of protocols as `python mr_features.py -r inline INPUT JOB_ARGS...`, and rewrites
tests/data/mrjob_local_runner.json. The recorded file names the mrjob version it came from.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTS = os.path.join(ROOT, "tests", "data", "mrjob_local_runner.json")
_SPEC = importlib.util.find_spec("mrjob")
EXAMPLES = os.path.join(_SPEC.submodule_search_locations[0], "examples") if _SPEC else ""
INPUT_DIR = "{input_dir}"  # stands for the directory of the inputs in lines that name an input file

# (example, its arguments) run on the two KJV files `bible_files` writes
COMPARED = [
    ("mr_word_freq_count", ()), ("mr_wc", ()), ("mr_count_lines_right", ()), ("mr_most_used_word", ()),
    ("mr_next_word_stats", ()), ("mr_words_containing_u_freq_count", ()), ("mr_grep", ("-e", "Jesus")),
    ("mr_log_sampler", ("--sample-size", "100000")), ("mr_count_lines_by_file", ()),
]
CLASSIFIER = "mr_text_classifier"  # run on mrjob's own docs-to-classify; its keys are compared
FEATURES = os.path.join(ROOT, "tests", "jobs", "mr_features.py")
PROTOCOLS = [  # (internal, output, bytes keys and values): mr_features.py's runs, each on the verses
    ("JSONProtocol", "JSONProtocol", False), ("StandardJSONProtocol", "JSONValueProtocol", False),
    ("PickleProtocol", "PickleProtocol", False), ("ReprProtocol", "ReprValueProtocol", False),
    ("RawProtocol", "RawProtocol", False), ("TextProtocol", "TextValueProtocol", False),
    ("PickleProtocol", "StandardJSONValueProtocol", False), ("JSONProtocol", "PickleValueProtocol", False),
    ("JSONProtocol", "RawValueProtocol", False), ("ReprProtocol", "ReprProtocol", False),
    ("BytesProtocol", "BytesProtocol", True), ("BytesProtocol", "BytesValueProtocol", True),
    ("TextProtocol", "TextProtocol", False),
]
SPOT_LINES = 3  # the first and last lines kept in the facts, so that a mismatch shows what changed


def bible_files(directory) -> list[str]:
    """Two files of KJV text, about 120 KB, written into `directory`."""
    paths = []
    for name in ("kjv-new-testament.txt", "kjv-poetry-and-prophets.txt"):
        with open(os.path.join(ROOT, "sample_data", "text", name), "rb") as f:
            data = f.read(60_000).rsplit(b"\n", 1)[0] + b"\n"
        paths.append(os.path.join(str(directory), name))
        with open(paths[-1], "wb") as f:
            f.write(data)
    return paths


def verse_files(directory) -> tuple[str, str]:
    """mr_features.py's input, the first 400 lines of the New Testament, and its --extra-stop file."""
    with open(os.path.join(ROOT, "sample_data", "text", "kjv-new-testament.txt"), "rb") as f:
        verses = b"".join(f.readlines()[:400])
    paths = os.path.join(str(directory), "matthew.txt"), os.path.join(str(directory), "stop.txt")
    for path, data in zip(paths, (verses, b"lord\n")):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def features_args(internal: str, out: str, as_bytes: bool, stop_file: str) -> list[str]:
    return ["--internal", internal, "--out", out, "--extra-stop", stop_file] + ["--bytes"] * as_bytes


def features_key(internal: str, out: str, as_bytes: bool) -> str:
    return f"mr_features {internal} {out}" + " bytes" * as_bytes


def classifier_docs() -> list[str]:
    docs = os.path.join(EXAMPLES, "docs-to-classify")
    return sorted(os.path.join(docs, name) for name in os.listdir(docs))


def facts_of(lines: list[str], input_dir: str) -> dict:
    """The count, sha256 and first and last lines of the sorted `lines`, with `input_dir` written as INPUT_DIR."""
    lines = sorted(line.replace(input_dir, INPUT_DIR) for line in lines)
    digest = hashlib.sha256("".join(line + "\n" for line in lines).encode("utf-8")).hexdigest()
    return {"lines": len(lines), "sha256": digest, "first": lines[:SPOT_LINES], "last": lines[-SPOT_LINES:]}


def byte_facts(lines: list[bytes]) -> dict:
    """`facts_of` for lines of bytes (a protocol may write any), the spot lines shown with escapes."""
    lines = sorted(lines)
    shown = [line.decode("utf-8", "backslashreplace") for line in lines]
    return {"lines": len(lines), "sha256": hashlib.sha256(b"".join(line + b"\n" for line in lines)).hexdigest(),
            "first": shown[:SPOT_LINES], "last": shown[-SPOT_LINES:]}


def mrjob_inline_lines(job: str, inputs, job_args, cwd) -> list[bytes]:
    """The lines, as bytes, that mrjob's inline runner prints for the job file `job`."""
    proc = subprocess.run([sys.executable, job, "-r", "inline", *map(str, inputs), *job_args],
                          capture_output=True, timeout=300, cwd=cwd)
    if proc.returncode:
        raise RuntimeError(f"mrjob's inline runner failed on {job}: {proc.stderr.decode()}")
    lines = proc.stdout.split(b"\n")  # lines as the part files hold them: a value may hold a \r
    return lines[:-1] if lines[-1] == b"" else lines


@contextlib.contextmanager
def mrjob_lock_files_removed(job_name: str):
    """Removes, on leaving, the lock files mrjob's local runner left for the jobs named `job_name` run
    inside: it writes one a job into /tmp itself (mrjob/bin.py), whatever TMPDIR says, and never removes it."""
    pattern = f"/tmp/wrapper.lock.{glob.escape(job_name)}.*"
    before = set(glob.glob(pattern))
    try:
        yield
    finally:
        for path in set(glob.glob(pattern)) - before:
            with contextlib.suppress(OSError):
                os.remove(path)


def mrjob_local_lines(name: str, inputs, job_args, cwd) -> list[str]:
    """The lines mrjob's local runner prints for the example `name`."""
    with mrjob_lock_files_removed(name):
        proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), "-r", "local", *map(str, inputs),
                               *job_args], capture_output=True, timeout=600, cwd=cwd)
    if proc.returncode:
        raise RuntimeError(f"mrjob's runner failed on {name}: {proc.stderr.decode()}")
    return proc.stdout.decode("utf-8").splitlines()


def record() -> dict:
    import mrjob

    with tempfile.TemporaryDirectory() as tmp:
        inputs = bible_files(tmp)
        jobs = {name: facts_of(mrjob_local_lines(name, inputs, args, tmp), tmp) for name, args in COMPARED}
        keys = [line.split("\t")[0] for line in mrjob_local_lines(CLASSIFIER, classifier_docs(), (), tmp)]
        jobs[CLASSIFIER + " keys"] = facts_of(keys, os.path.join(EXAMPLES, "docs-to-classify"))
        verses, stop = verse_files(tmp)
        for protocols in PROTOCOLS:
            lines = mrjob_inline_lines(FEATURES, [verses], features_args(*protocols, stop), tmp)
            jobs[features_key(*protocols)] = byte_facts(lines)
    return {"mrjob": mrjob.__version__, "command": "python EXAMPLE.py -r local INPUTS... JOB_ARGS...",
            "features_command": "python tests/jobs/mr_features.py -r inline INPUT JOB_ARGS...", "jobs": jobs}


if __name__ == "__main__":
    os.makedirs(os.path.dirname(FACTS), exist_ok=True)
    with open(FACTS, "w", encoding="utf-8") as f:
        json.dump(record(), f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    print(f"wrote {FACTS}")
