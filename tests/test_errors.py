"""Every error a user can cause: a clear message, its exit code, and no output that looks complete."""

import os

import pytest

from conftest import JOBS, SAMPLE_TEXT, TEST_JOBS, run_cli

WORDCOUNT = os.path.join(JOBS, "wordcount.py")


def _assert_clean_failure(result, out, code, *phrases):
    assert result.returncode == code, (result.returncode, result.stderr)
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    leftovers = os.listdir(out) if os.path.isdir(out) else []
    assert not [n for n in leftovers if n.startswith("part-")], leftovers


@pytest.mark.parametrize("source, phrase", [
    ("x = 1\n", "defines no mapper"),
    ("def mapper(k, v)\n    yield k, v\n", "has a syntax error at line 1"),
    ("def mapper(k):\n    yield k, 1\n", "mapper(k) must take two arguments"),
    ("import no_such_module_here\ndef mapper(k, v):\n    yield k, v\n", "No module named 'no_such_module_here'"),
    ("def mapper(k, v):\n    yield k, v\ndef map_split(r):\n    return r\n", "can't define both mapper and map_split"),
    ("def mapper(k, v):\n    yield k, v\nnum_reducers = -1\n", "num_reducers must be an int, 0 for a map-only step"),
    ("def mapper(k, v):\n    yield k, v\noutput_format = 'xml'\n", "output_format must be one of"),
])
def test_bad_job_files(tmp_path, source, phrase):
    job = tmp_path / "job.py"
    job.write_text(source)
    result = run_cli("run", job, SAMPLE_TEXT, "-o", tmp_path / "out")
    _assert_clean_failure(result, str(tmp_path / "out"), 2, phrase)
    assert "Traceback" not in result.stderr or "No module named" in result.stderr
    assert result.stderr.count("mrengine: error:") == 1


def test_missing_job_file(tmp_path):
    result = run_cli("run", tmp_path / "nope.py", SAMPLE_TEXT, "-o", tmp_path / "out")
    _assert_clean_failure(result, str(tmp_path / "out"), 2, "job file", "does not exist")


def test_missing_input(tmp_path):
    result = run_cli("run", WORDCOUNT, tmp_path / "nothing-here", "-o", tmp_path / "out")
    _assert_clean_failure(result, str(tmp_path / "out"), 3, "input path", "does not exist")


def test_empty_glob(tmp_path):
    result = run_cli("run", WORDCOUNT, str(tmp_path / "*.log"), "-o", tmp_path / "out")
    _assert_clean_failure(result, str(tmp_path / "out"), 3, "matched no files")


def test_output_with_a_result_is_refused_unless_overwrite(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("a b a\n")
    out = tmp_path / "out"
    assert run_cli("run", WORDCOUNT, text, "-o", out).returncode == 0
    first = (out / "part-00000").read_bytes() + (out / "part-00001").read_bytes()
    again = run_cli("run", WORDCOUNT, text, "-o", out)
    assert again.returncode == 2
    assert "already holds a finished result" in again.stderr and "--overwrite" in again.stderr
    assert (out / "_SUCCESS").exists()  # the old result is untouched
    text.write_text("c\n")
    replaced = run_cli("run", WORDCOUNT, text, "-o", out, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "part-00000").read_bytes() + (out / "part-00001").read_bytes() == b"c\t1\n"
    assert first != b"c\t1\n"


def test_mapper_exception_shows_user_traceback_split_and_offset(tmp_path):
    out = tmp_path / "out"
    book = os.path.join(SAMPLE_TEXT, "kjv-law-and-history.txt")  # one file: the first Bethlehem is known
    result = run_cli("run", os.path.join(TEST_JOBS, "failing_mapper.py"), book, "-o", out, "--workers", "2")
    job_file = os.path.join(TEST_JOBS, "failing_mapper.py")
    _assert_clean_failure(
        result, str(out), 5,
        "map task 0 (split",
        "failed on all 4 attempts",
        "mapper raised ValueError: refusing 'Bethlehem.', at the line at byte offset 138545",
        "kjv-law-and-history.txt bytes 0-1997513",
        f'File "{job_file}", line 7, in mapper',
        "raise ValueError(f\"refusing {word!r}\")",
    )
    with open(os.path.join(SAMPLE_TEXT, "kjv-law-and-history.txt"), "rb") as f:
        f.seek(138545)
        line = f.readline()
    assert line.startswith(b"Ge35:19 ") and b"Bethlehem" in line
    assert "mrengine/executor.py" not in result.stderr  # only the user's frames


def test_reducer_exception_names_the_key(tmp_path):
    out = tmp_path / "out"
    result = run_cli("run", os.path.join(TEST_JOBS, "failing_reducer.py"), SAMPLE_TEXT, "-o", out, "--max-attempts", "2")
    _assert_clean_failure(result, str(out), 5, "failed on all 2 attempts", "reducer raised KeyError: 'Moses', while reducing key 'Moses'", "line 12, in reducer")


def test_bad_option_values(tmp_path):
    result = run_cli("run", WORDCOUNT, SAMPLE_TEXT, "-o", tmp_path / "out", "--split-size", "lots")
    assert result.returncode == 2 and "is not a size" in result.stderr
    result = run_cli("run", WORDCOUNT, SAMPLE_TEXT, "-o", tmp_path / "out", "-p", "novalue")
    assert result.returncode == 2 and "is not NAME=VALUE" in result.stderr
