"""Tests of the moto S3 test server helper (tests/s3server.py)."""

import os
import socket
import subprocess
import sys

import pytest

from s3server import S3Server, s3_bucket, s3_server  # noqa: F401  (fixtures)

import fsspec  # noqa: E402
import s3fs  # noqa: E402
from botocore.exceptions import EndpointConnectionError  # noqa: E402

pytestmark = pytest.mark.slow


def test_write_list_glob(s3_server, s3_bucket):
    fs = s3_server.fs()
    fs.pipe_file(f"{s3_bucket}/in/a.txt", b"alpha\n")
    fs.pipe_file(f"{s3_bucket}/in/b.txt", b"beta\n")
    fs.pipe_file(f"{s3_bucket}/in/c.csv", b"x,y\n")
    fs.pipe_file(f"{s3_bucket}/top.txt", b"top\n")

    assert sorted(fs.ls(f"{s3_bucket}/in")) == [
        f"{s3_bucket}/in/a.txt", f"{s3_bucket}/in/b.txt", f"{s3_bucket}/in/c.csv"]
    assert fs.glob(f"{s3_bucket}/in/*.txt") == [
        f"{s3_bucket}/in/a.txt", f"{s3_bucket}/in/b.txt"]
    assert fs.glob(f"s3://{s3_bucket}/**/*.txt") == [
        f"{s3_bucket}/in/a.txt", f"{s3_bucket}/in/b.txt", f"{s3_bucket}/top.txt"]
    assert fs.cat_file(f"{s3_bucket}/in/b.txt") == b"beta\n"
    assert fs.info(f"{s3_bucket}/in/a.txt")["size"] == 6

    puts = [r for r in s3_server.requests() if r.method == "PUT"]
    assert [r.path for r in puts] == [
        f"/{s3_bucket}/in/a.txt", f"/{s3_bucket}/in/b.txt",
        f"/{s3_bucket}/in/c.csv", f"/{s3_bucket}/top.txt"]


def test_storage_options_work_with_fsspec(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/x.txt"
    with fsspec.open(url, "wb", **s3_server.storage_options) as f:
        f.write(b"via fsspec")
    with fsspec.open(url, "rb", **s3_server.storage_options) as f:
        assert f.read() == b"via fsspec"
    fs, path = fsspec.core.url_to_fs(url, **s3_server.storage_options)
    assert isinstance(fs, s3fs.S3FileSystem) and path == f"{s3_bucket}/x.txt"


def test_ranged_reads_are_logged(s3_server, s3_bucket):
    fs = s3_server.fs()
    path = f"{s3_bucket}/data.bin"
    fs.pipe_file(path, b"0123456789")

    s3_server.clear_requests()
    assert fs.cat_file(path, start=2, end=5) == b"234"  # keywords! 2nd arg is version_id
    reqs = s3_server.requests()
    assert len(reqs) == 1
    (get,) = reqs
    assert (get.method, get.path, get.range) == ("GET", f"/{s3_bucket}/data.bin", "bytes=2-4")
    assert (get.status, get.content_length) == (206, 3)

    s3_server.clear_requests()
    with fs.open(path, "rb", cache_type="none") as f:
        f.seek(3)
        assert f.read(4) == b"3456"
    gets = [r for r in s3_server.requests() if r.method == "GET"]
    assert [(g.range, g.content_length) for g in gets] == [("bytes=3-6", 4)]


def test_subprocess_uses_env_only(s3_server, s3_bucket):
    s3_server.fs().pipe_file(f"{s3_bucket}/k.txt", b"from subprocess")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "FSSPEC_"))}
    env.update(s3_server.env)
    code = ("import sys, s3fs; "
            f"sys.stdout.buffer.write(s3fs.S3FileSystem().cat_file('{s3_bucket}/k.txt'))")
    s3_server.clear_requests()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"from subprocess"
    assert any(r.method == "GET" and r.path == f"/{s3_bucket}/k.txt"
               for r in s3_server.requests())


def test_missing_bucket_and_key(s3_server, s3_bucket):
    fs = s3_server.fs()
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):
        fs.cat_file("no-such-bucket-mrtest/k.txt")
    with pytest.raises(FileNotFoundError, match="bucket does not exist"):
        fs.ls("no-such-bucket-mrtest")
    with pytest.raises(FileNotFoundError, match=f"{s3_bucket}/missing.txt"):
        fs.cat_file(f"{s3_bucket}/missing.txt")
    with pytest.raises(FileNotFoundError, match=f"{s3_bucket}/missing.txt"):
        fs.open(f"{s3_bucket}/missing.txt", "rb")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{s3_bucket}/no/such/dir")
    assert fs.glob(f"{s3_bucket}/nothing/*") == []


def test_credentials_checked_only_when_enforced(s3_server, s3_bucket):
    s3_server.fs().pipe_file(f"{s3_bucket}/k.txt", b"secret data")
    bad = s3_server.fs(key="wrong", secret="wrong")
    assert bad.cat_file(f"{s3_bucket}/k.txt") == b"secret data"  # not checked

    with s3_server.auth_enforced():
        with pytest.raises(PermissionError, match="Forbidden"):  # HEAD: no body
            bad.cat_file(f"{s3_bucket}/k.txt")
        with pytest.raises(PermissionError, match="Access Key Id you provided does not"):
            bad.ls(s3_bucket)
    assert bad.cat_file(f"{s3_bucket}/k.txt") == b"secret data"


def test_unreachable_endpoint():
    # A bound but not listening socket: connections to it are refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        fs = s3fs.S3FileSystem(endpoint_url=f"http://127.0.0.1:{port}", key="k",
                               secret="s", skip_instance_cache=True,
                               config_kwargs={"retries": {"max_attempts": 1}})
        fs.retries = 1  # s3fs's own retry loop (default 5)
        with pytest.raises(EndpointConnectionError, match="Could not connect"):
            fs.cat_file("bucket/key")
    assert not issubclass(EndpointConnectionError, OSError)  # callers must catch it


def test_server_stops_on_error():
    with pytest.raises(RuntimeError, match="boom"):
        with S3Server() as server:
            host, port = server.endpoint_url.rsplit("/", 1)[1].split(":")
            socket.create_connection((host, int(port)), timeout=5).close()
            raise RuntimeError("boom")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
