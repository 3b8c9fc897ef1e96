"""A failing job's traceback names the job file's own path, lines and source, whatever cloudpickle does
to the code it ships (3.1+ renames every function's file to "<dynamic-code>")."""

import textwrap

from conftest import PACKAGE, run_cli

# The job deletes its own file before it fails, as on a worker host that never had a copy: the source
# lines must come from the source the job was loaded from.
JOB = textwrap.dedent('''\
    import os


    def mapper_init():
        if os.path.exists(__file__):
            os.remove(__file__)


    def check(word):
        if word == "boom":
            raise ValueError("no boom here")
        return word


    def mapper(path, line):
        for word in line.split():
            yield check(word), 1
    ''')


def test_traceback_names_the_job_file_its_lines_and_source_on_a_host_without_it(tmp_path):
    job = tmp_path / "selfdeleting.py"
    job.write_text(JOB)
    text = tmp_path / "in.txt"
    text.write_text("fine words\nthen boom\n")
    result = run_cli("run", job, text, "-o", tmp_path / "out", "--workers", "1", "--max-attempts", "1")
    assert result.returncode == 5, result.stderr
    assert not job.exists()  # the worker ran without the file
    assert (f'  File "{job}", line 17, in mapper\n'
            "    yield check(word), 1\n") in result.stderr, result.stderr
    assert (f'  File "{job}", line 11, in check\n'
            '    raise ValueError("no boom here")\n'
            "ValueError: no boom here") in result.stderr, result.stderr
    assert "<dynamic-code>" not in result.stderr and PACKAGE not in result.stderr.split("Traceback")[1]
