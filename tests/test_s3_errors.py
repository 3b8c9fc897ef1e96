"""Storage errors: one clear paragraph, exit code 3, and no task started when the problem can be
seen up front (the driver checks the output location, the master lists the inputs on submit).
"""

import socket

import pytest

from s3_cli import WORDCOUNT, clean_env, mrengine
from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

STORAGE_ERROR = 3


def assert_storage_error(r, *fragments):
    assert r.returncode == STORAGE_ERROR, r.stderr
    assert "Traceback" not in r.stderr
    assert "map 0/" not in r.stderr, "no job may be submitted"
    (line,) = [line for line in r.stderr.splitlines() if line.startswith("mrengine: error: ")]
    for fragment in fragments:
        assert fragment in line


@pytest.fixture
def words(s3_server, s3_bucket, tmp_path):
    s3_server.fs().pipe_file(f"{s3_bucket}/in/words.txt", b"to be or not to be\n")
    local = tmp_path / "words.txt"
    local.write_bytes(b"to be or not to be\n")
    return local


def run(*args, env):
    return mrengine("run", WORDCOUNT, *args, "--workers", 1, env=env)


@pytest.mark.parametrize("source, fragments", [
    ("s3://mrtest-no-such-bucket/in/*.txt", ["input path 's3://mrtest-no-such-bucket/in/*.txt'",
                                             "bucket 'mrtest-no-such-bucket' does not exist"]),
    ("s3://mrtest-no-such-bucket/in/words.txt", ["bucket 'mrtest-no-such-bucket' does not exist"]),
    ("s3://{bucket}/in/missing.txt", ["input path 's3://{bucket}/in/missing.txt' does not exist"]),
    ("s3://{bucket}/nothing/", ["input path 's3://{bucket}/nothing/' does not exist"]),
    ("s3://{bucket}/in/*.csv", ["input pattern 's3://{bucket}/in/*.csv' matched no files"]),
])
def test_missing_inputs(s3_server, s3_bucket, words, tmp_path, source, fragments):
    r = run(source.format(bucket=s3_bucket), "-o", tmp_path / "out", env=clean_env(**s3_server.env))
    assert_storage_error(r, *(f.format(bucket=s3_bucket) for f in fragments))


def test_missing_output_bucket(s3_server, words):
    r = run(words, "-o", "s3://mrtest-no-such-bucket/out", env=clean_env(**s3_server.env))
    assert_storage_error(r, "output directory 's3://mrtest-no-such-bucket/out'",
                         "bucket 'mrtest-no-such-bucket' does not exist")
    assert "mrtest-no-such-bucket" not in s3_server.fs().ls("")  # and it was not created


@pytest.mark.parametrize("where", ["input", "output"])
def test_bad_credentials(s3_server, s3_bucket, words, tmp_path, where):
    env = clean_env(**{**s3_server.env, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong"})
    if where == "input":
        args = (f"s3://{s3_bucket}/in/words.txt", "-o", tmp_path / "out")
    else:
        args = (words, "-o", f"s3://{s3_bucket}/out")
    with s3_server.auth_enforced():
        r = run(*args, env=env)
    assert_storage_error(r, "access denied", "check the credentials")


def test_no_credentials(s3_server, s3_bucket, words, tmp_path):
    env = clean_env(AWS_ENDPOINT_URL=s3_server.endpoint_url, AWS_DEFAULT_REGION="us-east-1",
                    AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
                    AWS_EC2_METADATA_DISABLED="true")
    r = run(words, "-o", f"s3://{s3_bucket}/out", env=env)
    assert_storage_error(r, f"output directory 's3://{s3_bucket}/out': no credentials found")


def test_unreachable_endpoint(s3_server, s3_bucket, tmp_path):
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # Local output, so the master meets the endpoint first, listing the input on submit.
        r = run(f"s3://{s3_bucket}/in/words.txt", "-o", tmp_path / "out", "--endpoint-url", endpoint,
                env=clean_env(**s3_server.env))
    assert_storage_error(r, f"input path 's3://{s3_bucket}/in/words.txt': cannot reach the storage endpoint",
                         endpoint, "gave up after retrying")


def test_verify_errors(s3_server, s3_bucket):
    env = clean_env(**s3_server.env)
    r = mrengine("verify", "s3://mrtest-no-such-bucket/out", env=env)
    assert r.returncode == STORAGE_ERROR and "bucket 'mrtest-no-such-bucket' does not exist" in r.stderr
    s3_server.fs().pipe_file(f"{s3_bucket}/out/part-00000", b"a\t1\n")
    r = mrengine("verify", f"s3://{s3_bucket}/out", env=env)
    assert r.returncode == 2 and "it has no _SUCCESS" in r.stderr
