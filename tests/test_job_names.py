"""A job file may define any names of its own; one that looks like a mistyped hook is warned of, once,
in one line that says how to silence it, and the job still runs."""

import textwrap

import pytest

from conftest import read_tsv, run_cli
from mrengine.job import load_job

HELPERS = textwrap.dedent('''\
    import re

    combiner_ok = True
    reducers = 4
    domain = "example.com"
    WORD = re.compile(r"[a-z]+")


    def mapper1(line):
        return WORD.findall(line.lower())


    def mapper2(words):
        return [w + "@" + domain for w in words]


    def mapper(path, line):
        for word in mapper2(mapper1(line)):
            yield word, 1


    def reducer(word, counts):
        yield word, sum(counts)


    combiner = reducer if combiner_ok else None
    num_reducers = reducers
    ''')

NEAR_MISSES = textwrap.dedent('''\
    def mapper(path, line):
        for word in line.split():
            yield word, 1


    def mapers(path, line):
        raise AssertionError("never called")


    def reducer_init():
        raise AssertionError("never called")


    def combinr(word, counts):
        raise AssertionError("never called")


    def reducer(word, counts):
        yield word, sum(counts)
    ''')


def _run(tmp_path, source: str):
    job = tmp_path / "job.py"
    job.write_text(source)
    text = tmp_path / "in.txt"
    text.write_text("The cat saw the dog\nthe end\n")
    return job, run_cli("run", job, text, "-o", tmp_path / "out", "--workers", "1")


def test_helper_names_and_constants_are_the_jobs_own(tmp_path):
    _, result = _run(tmp_path, HELPERS)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    assert read_tsv(tmp_path / "out") == {"cat@example.com": "1", "dog@example.com": "1", "end@example.com": "1",
                                          "saw@example.com": "1", "the@example.com": "3"}
    assert len(list((tmp_path / "out").glob("part-*"))) == 4  # num_reducers = reducers


def test_near_misses_of_hooks_warn_once_each_and_the_job_runs(tmp_path):
    job, result = _run(tmp_path, NEAR_MISSES)
    assert result.returncode == 0, result.stderr
    assert read_tsv(tmp_path / "out") == {"The": "1", "cat": "1", "saw": "1", "the": "2", "dog": "1", "end": "1"}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("mrengine: warning: ")]
    assert warnings == [
        f"mrengine: warning: job file {job} defines 'mapers', which mrengine does not use; did you mean 'mapper'? "
        "(if it is a name of your own, call it '_mapers' to silence this warning)",
        f"mrengine: warning: job file {job} defines reducer_init(), which mrengine never calls: it has no such hook "
        "(the task hooks are mapper_init and mapper_final); if it is a name of your own, call it '_reducer_init' "
        "to silence this warning",
        f"mrengine: warning: job file {job} defines 'combinr', which mrengine does not use; did you mean 'combiner'? "
        "(if it is a name of your own, call it '_combinr' to silence this warning)",
    ], result.stderr


def test_a_leading_underscore_silences_the_warning(tmp_path):
    silenced = NEAR_MISSES.replace("def mapers", "def _mapers").replace("def reducer_init", "def _reducer_init")
    _, result = _run(tmp_path, silenced.replace("def combinr", "def _combinr"))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr


def test_a_near_miss_of_the_only_mapper_warns_before_the_error(tmp_path):
    _, result = _run(tmp_path, "def maper(k, v):\n    yield k, v\n")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].endswith("defines 'maper', which mrengine does not use; did you mean 'mapper'? "
                             "(if it is a name of your own, call it '_maper' to silence this warning)")
    assert lines[1].startswith("mrengine: error: ") and "defines no mapper" in lines[1] and len(lines) == 2


# The similarity rule on its own: a near miss must be close in spelling AND of the hook's kind (a
# function taking the hook's arguments, an int for num_reducers, a list for steps).
@pytest.mark.parametrize("definition, hook", [
    ("def mapers(k, v): pass", "mapper"),
    ("def Reducer(k, vs): pass", "reducer"),
    ("def reduce(k, vs): pass", "reducer"),
    ("def partitoner(k, n): pass", "partitioner"),
    ("def mapper_intt(): pass", "mapper_init"),
    ("num_reducer = 3", "num_reducers"),
    ("imput_format = 'jsonlines'", "input_format"),
    ("stepz = []", "steps"),
    ("def mian(ctx): pass", "main"),
    # names of the job's own
    ("def mapper2(k, v): pass", None),
    ("def mapper_words(k, v): pass", None),
    ("reducers = 4", None),
    ("domain = 'example.com'", None),
    ("combiner_ok = True", None),
    ("def reader(file, url): pass", None),
    ("def mapped(x): pass", None),  # one argument: cannot be the two-argument mapper
    ("partitions = 8", None),
    ("def wrapper(fn): pass", None),
    ("from functools import reduce", None),
    ("import math as main_math", None),
])
def test_which_names_count_as_near_misses(tmp_path, capsys, definition, hook):
    job = tmp_path / "job.py"
    job.write_text(f"def mapper(k, v):\n    yield k, v\n\n{definition}\n")
    load_job(str(job))
    err = capsys.readouterr().err
    if hook is None:
        assert err == ""
    else:
        assert err.count("\n") == 1 and f"did you mean {hook!r}?" in err, err
