"""The Spark runner's pure parts: the configuration a run starts with, and failure reports in Spark's text."""

from __future__ import annotations

from mrengine.spark.session import settings
from mrengine.spark.tasks import find_report


def test_local_masters_retry_as_often_as_max_attempts():
    assert settings("local[2]", {}, 4, "app")["spark.master"] == "local[2,4]"
    assert settings("local[*]", {}, 3, "app")["spark.master"] == "local[*,3]"
    assert settings("local", {}, 4, "app")["spark.master"] == "local[1,4]"
    assert settings("local[2]", {"spark.task.maxFailures": "2"}, 4, "app")["spark.master"] == "local[2,2]"
    assert settings("local[2,5]", {}, 4, "app")["spark.master"] == "local[2,5]"  # the user said how often


def test_cluster_masters_get_max_attempts_as_max_failures_and_user_settings_win():
    conf = settings("spark://head:7077", {"spark.ui.showConsoleProgress": "true"}, 6, "mrengine wc")
    assert conf["spark.master"] == "spark://head:7077"
    assert conf["spark.task.maxFailures"] == "6"
    assert conf["spark.app.name"] == "mrengine wc"
    assert conf["spark.ui.showConsoleProgress"] == "true"


def test_a_report_is_found_in_the_text_spark_wraps_around_it():
    # TaskError's text as a Python worker's traceback ends, inside a Java exception's message.
    text = ("org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 0.0 failed 4 times\n"
            "mrengine.spark.tasks.TaskError: map task 0 failed: boom mrengine-task-error:"
            "eyJtZXNzYWdlIjogImJvb20iLCAidHJhY2ViYWNrIjogIiIsICJ0YXNrIjogIm1hcCB0YXNrIDAiLCAiYXR0ZW1wdCI6IDN9;\n"
            "\tat org.apache.spark.api.python.BasePythonRunner...")
    assert find_report(text) == {"message": "boom", "traceback": "", "task": "map task 0", "attempt": 3}
    assert find_report("java.lang.OutOfMemoryError: Java heap space") is None


def test_under_spark_submit_its_settings_sit_between_the_defaults_and_the_users():
    submitted = {"spark.master": "yarn", "spark.app.name": "__main__.py", "spark.executor.memory": "4g",
                 "spark.ui.showConsoleProgress": "true", "spark.task.maxFailures": "8"}
    conf = settings(None, {"spark.executor.memory": "2g"}, 4, "mrengine wc", submitted=submitted)
    assert conf["spark.master"] == "yarn"  # spark-submit's --master, where --spark-master is not given
    assert conf["spark.app.name"] == "mrengine wc"  # not the script's file name
    assert conf["spark.ui.showConsoleProgress"] == "true" and conf["spark.task.maxFailures"] == "8"
    assert conf["spark.executor.memory"] == "2g"  # --spark-conf wins
    assert settings("local[2]", {}, 4, "app", submitted=submitted)["spark.master"] == "local[2,8]"
    assert settings(None, {}, 4, "app", submitted={})["spark.master"] == "local[*,4]"
