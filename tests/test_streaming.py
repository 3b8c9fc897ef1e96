"""Hadoop Streaming through `mrengine streaming`: the expected outputs of Hadoop's own streaming
tests (apache/hadoop hadoop-tools/hadoop-streaming/src/test/java/org/apache/hadoop/streaming/),
with shell tools standing in for their small Java helper apps (TrApp is `tr`, UniqApp `uniq`,
FailApp `exit 1`, ValueCountReduce `cut | uniq -c`)."""

import json
import os
from collections import Counter

import pytest

from conftest import part_files, run_cli

HERE = os.path.dirname(__file__)
ROSES = "roses.are.red\nviolets.are.blue\nbunnies.are.pink\n"
TR_MAP = "tr . '\\n'"  # TrApp(".", "\\n")
UNIQ_R = "uniq | sed 's/^/R/'"  # UniqApp("R")


def streaming(tmp_path, data: str, *args, runner=(), expect=0):
    (tmp_path / "input.txt").write_text(data)
    proc = run_cli("streaming", "--workers", "2", *runner, "-input", tmp_path / "input.txt",
                   "-output", tmp_path / "out", *args)
    assert proc.returncode == expect, proc.stderr
    return proc


def output(tmp_path) -> str:
    return "".join(open(p).read() for p in part_files(tmp_path / "out"))


def test_streaming(tmp_path):
    """TestStreaming: tr splits words into lines, uniq with an R prefix; every line ends in a tab."""
    streaming(tmp_path, ROSES, "-mapper", TR_MAP, "-reducer", UNIQ_R)
    assert output(tmp_path) == "Rare\t\nRblue\t\nRbunnies\t\nRpink\t\nRred\t\nRroses\t\nRviolets\t\n"


def test_streaming_combiner(tmp_path):
    """TestStreamingCombiner: the same with uniq as combiner, which counts records in and out."""
    proc = streaming(tmp_path, ROSES, "-mapper", TR_MAP, "-reducer", UNIQ_R, "-combiner", "uniq")
    assert output(tmp_path) == "Rare\t\nRblue\t\nRbunnies\t\nRpink\t\nRred\t\nRroses\t\nRviolets\t\n"
    assert proc.returncode == 0


def test_stream_data_protocol(tmp_path):
    """TestStreamDataProtocol: keys of two '.'-fields, partitioned on the first, values counted."""
    data = ("roses.smell.good\nroses.look.good\nroses.need.care\nroses.attract.bees\nroses.are.red\n"
            "roses.are.not.blue\nbunnies.are.pink\nbunnies.run.fast\nbunnies.have.short.tail\nbunnies.have.long.ears\n")
    streaming(tmp_path, data, "-mapper", "cat", "-reducer", "cut -f1 | uniq -c | awk '{print $2 \"\\t\" $1}'",
              "-partitioner", "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
              "-jobconf", "stream.map.output.field.separator=.", "-jobconf", "stream.num.map.output.key.fields=2",
              "-jobconf", "mapreduce.map.output.key.field.separator=.", "-jobconf", "num.key.fields.for.partition=1",
              "-jobconf", "mapreduce.job.reduces=2")
    expected = ("bunnies.are\t1\nbunnies.have\t2\nbunnies.run\t1\nroses.are\t2\nroses.attract\t1\nroses.look\t1\n"
                "roses.need\t1\nroses.smell\t1\n")
    assert sorted(output(tmp_path).splitlines()) == expected.splitlines()
    for part in part_files(tmp_path / "out"):  # a first field lives in one part
        firsts = [line.split(".")[0] for line in open(part)]
        assert all(f not in firsts for other in part_files(tmp_path / "out") if other != part
                   for f in (line.split(".")[0] for line in open(other)))


KEY_VALUE_INPUT = ("roses are \tred\t\n\tviolets are blue\nbunnies are pink\n"
                   "this is for testing a big\tinput line\nsmall input\n")


def test_streaming_key_value_without_key(tmp_path):
    """TestStreamingKeyValue: cat as mapper; key up to the first tab, no tab means all key."""
    streaming(tmp_path, KEY_VALUE_INPUT, "-mapper", "cat", "-jobconf", "stream.non.zero.exit.is.failure=true",
              "-jobconf", "stream.map.input.ignoreKey=true")
    assert output(tmp_path) == ("\tviolets are blue\nbunnies are pink\t\nroses are \tred\t\nsmall input\t\n"
                                "this is for testing a big\tinput line\n")


def test_streaming_key_value_with_key(tmp_path):
    """TestStreamingKeyValue with the input format's key: each line's byte offset."""
    streaming(tmp_path, KEY_VALUE_INPUT, "-mapper", "cat", "-jobconf", "stream.map.input.ignoreKey=false")
    assert output(tmp_path) == ("0\troses are \tred\t\n16\t\tviolets are blue\n34\tbunnies are pink\n"
                                "51\tthis is for testing a big\tinput line\n88\tsmall input\n")


def test_streaming_separator(tmp_path):
    """TestStreamingSeparator: every separator property, KeyValueTextInputFormat."""
    streaming(tmp_path, "roses1are.red\nviolets1are.blue\nbunnies1are.pink\n", "-mapper", "tr 2 3", "-reducer", "tr 3 4",
              "-inputformat", "KeyValueTextInputFormat",
              "-jobconf", "mapreduce.input.keyvaluelinerecordreader.key.value.separator=1",
              "-jobconf", "stream.map.input.field.separator=2", "-jobconf", "stream.map.output.field.separator=3",
              "-jobconf", "stream.reduce.input.field.separator=3", "-jobconf", "stream.reduce.output.field.separator=4",
              "-jobconf", "mapreduce.output.textoutputformat.separator=5")
    assert output(tmp_path) == "bunnies5are.pink\nroses5are.red\nviolets5are.blue\n"


def test_streaming_counters(tmp_path):
    """TestStreamingCounters: reporter:counter lines on stderr count (UserCounters/InputLines = 3)."""
    mapper = "awk '{ print \"reporter:counter:UserCounters,InputLines,1\" > \"/dev/stderr\"; gsub(/\\./, \"\\n\"); print }'"
    proc = streaming(tmp_path, ROSES, "-mapper", mapper, "-reducer", UNIQ_R)
    assert output(tmp_path) == "Rare\t\nRblue\t\nRbunnies\t\nRpink\t\nRred\t\nRroses\t\nRviolets\t\n"
    assert "UserCounters/InputLines = 3" in proc.stderr
    assert ["UserCounters", "InputLines", 3] in json.load(open(tmp_path / "out" / "_SUCCESS"))["counters"]


@pytest.mark.parametrize("fail_map", [True, False], ids=["map", "reduce"])
@pytest.mark.parametrize("is_failure", [True, False], ids=["failure", "ok"])
def test_streaming_exit_status(tmp_path, fail_map, is_failure):
    """TestStreamingExitStatus: a command exiting 1 fails the job unless stream.non.zero.exit.is.failure=false."""
    failing = "cat > /dev/null; echo 'cannot go on' >&2; exit 1"
    echo = "cat"
    proc = streaming(tmp_path, "hello\n", "-mapper", failing if fail_map else echo, "-reducer", echo if fail_map else failing,
                     "-jobconf", f"stream.non.zero.exit.is.failure={str(is_failure).lower()}", "--max-attempts", "1",
                     expect=5 if is_failure else 0)
    if is_failure:
        assert "exited with status 1" in proc.stderr and "cannot go on" in proc.stderr


def test_stream_reduce_none(tmp_path):
    """TestStreamReduceNone: -numReduceTasks 0, the map output as written, each line with its tab."""
    streaming(tmp_path, ROSES, "-mapper", TR_MAP, "-reducer", "org.apache.hadoop.mapred.lib.IdentityReducer",
              "-numReduceTasks", "0")
    assert output(tmp_path) == "roses\t\nare\t\nred\t\nviolets\t\nare\t\nblue\t\nbunnies\t\nare\t\npink\t\n"


def test_streaming_output_only_keys(tmp_path):
    """TestStreamingOutputOnlyKeys: keyonlytext reduce input and output, no tabs."""
    streaming(tmp_path, ROSES, "-mapper", TR_MAP, "-reducer", UNIQ_R, "-jobconf", "stream.reduce.input=keyonlytext",
              "-jobconf", "stream.reduce.output=keyonlytext")
    assert output(tmp_path) == "Rare\nRblue\nRbunnies\nRpink\nRred\nRroses\nRviolets\n"


def test_python_scripts_shipped_with_files(tmp_path):
    """A word count of Python scripts sent with -file and run by name from the task's directory."""
    text = "the cat\nthe dog and the cat\n"
    streaming(tmp_path, text, "-mapper", "python3 wc_mapper.py", "-reducer", "python3 wc_reducer.py",
              "-file", os.path.join(HERE, "..", "jobs", "streaming", "wc_mapper.py"), "-files", os.path.join(HERE, "..", "jobs", "streaming", "wc_reducer.py"),
              "-numReduceTasks", "2")
    got = dict(line.split("\t") for line in output(tmp_path).splitlines())
    assert got == {w: str(n) for w, n in Counter(text.split()).items()}


def test_cmdenv_reaches_the_command(tmp_path):
    streaming(tmp_path, "a\n", "-mapper", "sed \"s/^/$GREETING /\"", "-reducer", "NONE", "-cmdenv", "GREETING=hello")
    assert output(tmp_path) == "hello a\t\n"


def test_a_java_partitioner_is_refused_by_name(tmp_path):
    proc = streaming(tmp_path, "a\n", "-mapper", "cat", "-partitioner", "com.example.MyPartitioner", expect=2)
    assert "com.example.MyPartitioner" in proc.stderr and "Traceback" not in proc.stderr
