"""An S3 output that cannot be written is found before any task runs, by writing (and removing) one
empty object; and that object never stays behind. The read-only user is a real IAM user of the moto
server, with a policy that allows reading and listing but not writing."""

import json

import boto3
import pytest

from s3_cli import WORDCOUNT, clean_env, mrengine
from s3server import s3_bucket, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

STORAGE_ERROR = 3
READ_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["s3:GetObject", "s3:ListBucket", "s3:ListAllMyBuckets", "s3:GetBucketLocation"]}]}


@pytest.fixture
def read_only_env(s3_server, s3_bucket):
    """The environment of a user who may read and list the bucket but not write to it."""
    iam = boto3.client("iam", endpoint_url=s3_server.endpoint_url, region_name=s3_server.region,
                       aws_access_key_id=s3_server.key, aws_secret_access_key=s3_server.secret)
    user = f"reader-{s3_bucket}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-only", PolicyDocument=json.dumps(READ_ONLY))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return clean_env(**{**s3_server.env, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})


def test_a_bucket_the_user_may_not_write_is_refused_before_any_task(s3_server, s3_bucket, read_only_env, tmp_path):
    fs = s3_server.fs()
    fs.pipe_file(f"{s3_bucket}/in/words.txt", b"to be or not to be\n")
    with s3_server.auth_enforced():
        r = mrengine("run", WORDCOUNT, f"s3://{s3_bucket}/in/words.txt", "-o", f"s3://{s3_bucket}/out", "--workers", 1,
                     env=read_only_env)
    assert r.returncode == STORAGE_ERROR, r.stderr
    assert "Traceback" not in r.stderr
    assert "map 0/" not in r.stderr, "no job may be submitted"
    (line,) = [line for line in r.stderr.splitlines() if line.startswith("mrengine: error: ")]
    assert f"output directory 's3://{s3_bucket}/out': access denied" in line and "check the credentials" in line
    assert fs.find(s3_bucket) == [f"{s3_bucket}/in/words.txt"]


def test_the_write_check_object_goes_again(s3_server, s3_bucket, tmp_path):
    words = tmp_path / "words.txt"
    words.write_bytes(b"to be or not to be\n")
    r = mrengine("run", WORDCOUNT, words, "-o", f"s3://{s3_bucket}/out", "--workers", 1, env=clean_env(**s3_server.env))
    assert r.returncode == 0, r.stderr
    probes = [q for q in s3_server.requests() if q.method == "PUT" and "/_write-check-" in q.path]
    assert len(probes) == 1 and probes[0].path.startswith(f"/{s3_bucket}/out/")  # the check did write, there
    assert sorted(s3_server.fs().ls(f"{s3_bucket}/out")) == [f"{s3_bucket}/out/{n}" for n in ("_REPORT.json", "_SUCCESS", "part-00000", "part-00001")]
