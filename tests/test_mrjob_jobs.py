"""mrjob's own example jobs, unchanged, through `mrengine run`: against the results mrjob's own tests
expect (Yelp/mrjob tests/examples/), and line by line against what mrjob's local and inline runners
write on the same input (recorded in tests/data/mrjob_local_runner.json; a test of each checks the
record against the runner).

The example files are run from the installed mrjob package. On Python 3.12+, where `import mrjob`
fails, mrengine still runs them (its stand-ins for `pipes` and `distutils`); mrjob's own runner
cannot, so the tests that run it run where mrjob imports; the recorded lines hold mrengine to mrjob's
there too.
"""

import json
import os

import pytest

from conftest import mrjob_runner_unavailable, mrjob_unavailable, part_files, run_cli
from mrjob_facts import (CLASSIFIER, COMPARED, EXAMPLES, FACTS, FEATURES, PROTOCOLS, bible_files, byte_facts,
                         classifier_docs, facts_of, features_args, features_key, mrjob_inline_lines,
                         mrjob_local_lines, verse_files)

pytestmark = pytest.mark.skipif(mrjob_unavailable() is not None, reason=mrjob_unavailable() or "")
BUS = b"""
        The wheels on the bus go round and round,
        round and round, round and round
        The wheels on the bus go round and round,
        all through the town.
        """


def run_example(name, inputs, out, *job_args, extra=()):
    proc = run_cli("run", os.path.join(EXAMPLES, f"{name}.py"), *inputs, "-o", out, "--workers", "2", *extra,
                   *(("--", *job_args) if job_args else ()))
    assert proc.returncode == 0, proc.stderr
    return proc


def output_lines(out) -> list[str]:
    return sorted(line for part in part_files(out) for line in open(part, encoding="utf-8").read().splitlines())


def json_lines(expected: dict) -> list[str]:
    """The lines mrjob's JSONProtocol writes for these pairs."""
    return sorted(f"{json.dumps(k)}\t{json.dumps(v)}" for k, v in expected.items())


def _file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- mrjob's own expected results


def test_word_freq_count_the_wheels_on_the_bus(tmp_path):
    run_example("mr_word_freq_count", [_file(tmp_path, "bus.txt", BUS)], tmp_path / "out")
    assert output_lines(tmp_path / "out") == json_lines(
        {"all": 1, "and": 4, "bus": 2, "go": 2, "on": 2, "round": 8, "the": 5, "through": 1, "town": 1, "wheels": 2})


def test_words_containing_u_through_a_mapper_pre_filter(tmp_path):
    run_example("mr_words_containing_u_freq_count", [_file(tmp_path, "bus.txt", BUS)], tmp_path / "out")
    assert output_lines(tmp_path / "out") == json_lines({"bus": 2, "round": 8, "through": 1})


def test_wc_two_lines(tmp_path):
    run_example("mr_wc", [_file(tmp_path, "in.txt", b"dog dog dog\ncat cat\n")], tmp_path / "out")
    assert output_lines(tmp_path / "out") == json_lines({"chars": 20, "words": 5, "lines": 2})


def test_count_lines_right_over_files(tmp_path):
    files = [_file(tmp_path, "cats.txt", b"cats are the best"), _file(tmp_path, "dogs.txt", b"woof woof woof\nwoof woof"),
             _file(tmp_path, "empty.txt", b"")]
    run_example("mr_count_lines_right", files, tmp_path / "out")
    assert output_lines(tmp_path / "out") == json_lines({None: 3})


def test_count_lines_by_file_reads_the_input_file_from_jobconf(tmp_path):
    cats, dogs = _file(tmp_path, "cats.txt", b"cats are the best"), _file(tmp_path, "dogs.txt", b"woof woof woof\nwoof woof")
    run_example("mr_count_lines_by_file", [cats, dogs, _file(tmp_path, "empty.txt", b"")], tmp_path / "out")
    assert output_lines(tmp_path / "out") == json_lines({f"file://{cats}": 1, f"file://{dogs}": 2})


def test_most_used_word_ignores_stop_words_from_its_files(tmp_path):
    joke = b"\n        A Car Joke:\n        When is a car not a car?\n        When it turns into a driveway!\n        "
    run_example("mr_most_used_word", [_file(tmp_path, "joke.txt", joke)], tmp_path / "out")
    assert output_lines(tmp_path / "out") == ['"car"']  # its OUTPUT_PROTOCOL is JSONValueProtocol


def test_next_word_stats_frequency(tmp_path):
    text = b"Oh where, oh where, has my little dog gone?\nOh where, oh where can he be?"
    run_example("mr_next_word_stats", [_file(tmp_path, "in.txt", text)], tmp_path / "out")
    expected = {("can", "he"): [1, 1, 100.0], ("dog", "gone"): [1, 1, 100.0], ("has", "my"): [1, 1, 100.0],
                ("he", "be"): [1, 1, 100.0], ("little", "dog"): [1, 1, 100.0], ("my", "little"): [1, 1, 100.0],
                ("oh", "where"): [4, 4, 100.0], ("where", "can"): [4, 1, 25.0], ("where", "has"): [4, 1, 25.0],
                ("where", "oh"): [4, 2, 50.0]}
    assert output_lines(tmp_path / "out") == sorted(f"{json.dumps(list(k))}\t{json.dumps(v)}" for k, v in expected.items())


def test_grep_runs_its_mapper_command(tmp_path):
    text = b"mary had a little lamb\nlittle lamb\nlittle lamb\nmary had a little lamb\nits fleece was white as snow"
    run_example("mr_grep", [_file(tmp_path, "in.txt", text)], tmp_path / "out", "-e", "mary")
    assert output_lines(tmp_path / "out") == ["mary had a little lamb"] * 2


def test_grep_fails_with_the_commands_stderr_when_grep_fails(tmp_path):
    proc = run_cli("run", os.path.join(EXAMPLES, "mr_grep.py"), _file(tmp_path, "in.txt", b"a\n"), "-o", tmp_path / "out",
                   "--workers", "1", "--max-attempts", "1", "--", "-e", "*][")
    assert proc.returncode == 5, proc.stderr
    assert "exited with status 2" in proc.stderr and "grep" in proc.stderr and "Traceback" not in proc.stderr.split("\n")[0]


@pytest.mark.slow
def test_log_sampler_samples_about_the_size_asked(tmp_path):
    numbers = "".join("%f\n" % (i / 20000) for i in range(20000)).encode()  # in [0, 1)
    run_example("mr_log_sampler", [_file(tmp_path, "numbers.txt", numbers)], tmp_path / "out", "--sample-size", "2000")
    sample = [float(line) for line in output_lines(tmp_path / "out")]
    assert len(sample) == 2000 and 800 < sum(sample) < 1200  # a uniform sample's sum: 1000, give or take 13


def test_text_classifier_tells_milne_from_whitman(tmp_path):
    docs = os.path.join(EXAMPLES, "docs-to-classify")
    run_example("mr_text_classifier", [docs], tmp_path / "out", "--min-df", "1")
    output = [line.split("\t") for line in output_lines(tmp_path / "out")]
    test_docs = [json.loads(v) for k, v in output if json.loads(k)[0] == "doc" and not json.loads(v)["in_test_set"]]
    assert len(test_docs) > 3
    for doc in test_docs:
        for cat in ("milne", "whitman"):
            assert (doc["id"], bool(doc["cats"].get(cat))) == (doc["id"], doc["cat_to_score"][cat] > 0)


def test_a_job_argument_mrjob_rejects_is_one_paragraph(tmp_path):
    proc = run_cli("run", os.path.join(EXAMPLES, "mr_log_sampler.py"), _file(tmp_path, "in.txt", b"a\n"),
                   "-o", tmp_path / "out")
    assert proc.returncode == 2 and "mrjob rejected the job's arguments" in proc.stderr, proc.stderr


def test_a_jar_step_is_refused_naming_the_feature(tmp_path):
    proc = run_cli("run", os.path.join(EXAMPLES, "mr_jar_step_example.py"), _file(tmp_path, "in.txt", b"a\n"),
                   "-o", tmp_path / "out")
    assert proc.returncode == 2 and "jar steps (JarStep)" in proc.stderr, proc.stderr


# ---------------------------------------------------------------- against mrjob's own local runner
# What mrjob's local runner writes for these examples is recorded in tests/data/mrjob_local_runner.json
# (mrjob 0.7.4, `python EXAMPLE.py -r local INPUTS... JOB_ARGS...`; tests/mrjob_facts.py re-derives it),
# so that mrengine is held to it without seven seconds of mrjob's subprocesses a job; one test runs
# mrjob's runner live and checks that it still writes what was recorded.

with open(FACTS, encoding="utf-8") as _f:
    RECORDED = json.load(_f)["jobs"]
LIVE = "mr_wc"  # the example whose recorded facts are checked against mrjob's runner in every test run


@pytest.fixture(scope="module")
def bible(tmp_path_factory):
    """Two files of KJV text, about 120 KB."""
    return bible_files(tmp_path_factory.mktemp("kjv"))


def assert_recorded(lines: list[str], input_dir: str, name: str) -> None:
    """`lines` are those mrjob's runner wrote for `name` (the first and last lines compared first, to show a change)."""
    ours, theirs = facts_of(lines, input_dir), RECORDED[name]
    assert (ours["lines"], ours["first"], ours["last"]) == (theirs["lines"], theirs["first"], theirs["last"])
    assert ours["sha256"] == theirs["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("name, job_args", COMPARED, ids=[n for n, _ in COMPARED])
def test_same_lines_as_mrjobs_local_runner(name, job_args, bible, tmp_path):
    run_example(name, bible, tmp_path / "out", *job_args, extra=("--split-size", "20k"))  # three splits a file
    assert_recorded(output_lines(tmp_path / "out"), os.path.dirname(bible[0]), name)


@pytest.mark.slow
def test_mrjobs_local_runner_still_writes_the_recorded_lines(bible, tmp_path):
    if mrjob_runner_unavailable():
        pytest.skip(mrjob_runner_unavailable())
    [job_args] = [args for name, args in COMPARED if name == LIVE]
    assert_recorded(mrjob_local_lines(LIVE, bible, job_args, tmp_path), os.path.dirname(bible[0]), LIVE)


@pytest.mark.slow
def test_text_classifier_gives_mrjobs_keys(tmp_path):
    run_example(CLASSIFIER, classifier_docs(), tmp_path / "out")
    keys = [line.split("\t")[0] for line in output_lines(tmp_path / "out")]
    assert_recorded(keys, os.path.join(EXAMPLES, "docs-to-classify"), CLASSIFIER + " keys")


# ---------------------------------------------------------------- the job API, protocol by protocol
# mr_features.py's lines from mrjob's inline runner, each pair of protocols, are recorded beside the
# local runner's (`python tests/jobs/mr_features.py -r inline INPUT JOB_ARGS...`); one pair is run live.

LIVE_PROTOCOLS = PROTOCOLS[0]


@pytest.fixture(scope="module")
def verses(tmp_path_factory):
    """mr_features.py's input file and its --extra-stop file."""
    return verse_files(tmp_path_factory.mktemp("verses"))


def assert_recorded_bytes(lines: list[bytes], key: str) -> None:
    ours, theirs = byte_facts(lines), RECORDED[key]
    assert (ours["lines"], ours["first"], ours["last"]) == (theirs["lines"], theirs["first"], theirs["last"])
    assert ours["sha256"] == theirs["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("internal, out, as_bytes", PROTOCOLS, ids=[f"{i}-{o}" for i, o, _ in PROTOCOLS])
def test_job_api_and_protocols_as_mrjob_runs_them(verses, tmp_path, internal, out, as_bytes):
    """Task hooks, combiner, SORT_VALUES, FILES, add_file_arg, jobconf_from_env, counters, two steps."""
    matthew, stop = verses
    proc = run_cli("run", FEATURES, matthew, "-o", tmp_path / "out", "--workers", "2", "--split-size", "8k",
                   "--", *features_args(internal, out, as_bytes, stop))
    assert proc.returncode == 0, proc.stderr
    ours = [line.rstrip(b"\n") for p in part_files(tmp_path / "out") for line in open(p, "rb")]
    assert_recorded_bytes(ours, features_key(internal, out, as_bytes))
    words = sum(1 for line in open(matthew) for w in line.lower().split()
                if w.isalpha() and w not in ("the", "and", "lord"))
    assert f"features/words = {words}" in proc.stderr


@pytest.mark.slow
def test_mrjobs_inline_runner_still_writes_the_recorded_lines(verses, tmp_path):
    if mrjob_runner_unavailable():
        pytest.skip(mrjob_runner_unavailable())
    matthew, stop = verses
    lines = mrjob_inline_lines(FEATURES, [matthew], features_args(*LIVE_PROTOCOLS, stop), tmp_path)
    assert_recorded_bytes(lines, features_key(*LIVE_PROTOCOLS))


def test_counters_files_and_file_args_reach_the_tasks(verses, tmp_path):
    """Without mrjob's runner to compare with (Python 3.12+ too): the facts of mr_features' output."""
    matthew, stop = verses
    proc = run_cli("run", FEATURES, matthew, "-o", tmp_path / "out", "--workers", "2", "--split-size", "8k",
                   "--", "--extra-stop", stop)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split("\t") for line in output_lines(tmp_path / "out"))
    assert '"lord=' not in "".join(lines.values()) and '"the=' not in "".join(lines.values())
    assert json.loads(lines['"#"']) == "matthew.txt=400"  # jobconf_from_env saw the input file
    words = json.loads(lines['"j"']).split(",")
    assert words == sorted(words)  # SORT_VALUES
    assert "features/reducers = 2" in proc.stderr and "features/reducers_done = 2" in proc.stderr


JOBCONF_JOB = '''
from mrjob.compat import jobconf_from_env
from mrjob.job import MRJob
from mrjob.step import MRStep

NAMES = ["my.greeting", "my.flag", "my.method", "my.step", "my.cli", "my.short", "mapreduce.map.input.file"]


class MRJobconf(MRJob):
    JOBCONF = {"my.greeting": "hello", "my.flag": True, "my.cli": "from JOBCONF"}

    def jobconf(self):
        return {**super().jobconf(), "my.method": 7}

    def steps(self):
        return [MRStep(mapper=self.seen_by_mapper, reducer=self.seen_by_reducer, jobconf={"my.step": "one"})]

    def seen_by_mapper(self, _, line):
        yield "mapper", [jobconf_from_env(n) for n in NAMES]

    def seen_by_reducer(self, task, seen):
        yield task, list(seen)[0]
        yield "reducer", [jobconf_from_env(n) for n in NAMES]
'''


def test_jobconf_reaches_every_task_as_environment_variables(tmp_path):
    """JOBCONF, jobconf(), the step's jobconf and --jobconf/-D among the job's arguments, as Hadoop shows
    jobconf to tasks (and mrjob's local runner too): jobconf_from_env reads them in mapper and reducer."""
    job = _file(tmp_path, "mr_jobconf.py", JOBCONF_JOB.encode())
    data = _file(tmp_path, "in.txt", b"a\nb\n")
    proc = run_cli("run", job, data, "-o", tmp_path / "out", "--workers", "1",
                   "--", "--jobconf", "my.cli=from the command line", "-D", "my.short=2")
    assert proc.returncode == 0, proc.stderr
    common = ["hello", "true", "7", "one", "from the command line", "2"]
    assert output_lines(tmp_path / "out") == [f'"mapper"\t{json.dumps(common + [data.as_uri()])}',
                                              f'"reducer"\t{json.dumps(common + [None])}']
