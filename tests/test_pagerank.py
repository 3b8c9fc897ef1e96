"""jobs/pagerank.py end to end: the normalised variant against a power iteration of the Google matrix in
numpy (on Zachary's karate club and on a graph with pages without links, repeated links, self-links
and adjacency lines), the Spark variant against the semantics of Apache Spark's pagerank.py written
out in plain Python below (and against what that example prints, recorded), bad parameters refused,
and the Spark runner giving the same bytes as the native one.

Tolerances: 1e-9 against numpy and 1e-12 against the Spark semantics; the sums add the same terms
in another order.
"""

import re

import numpy as np
import pytest

from conftest import run_cli
from sgd_support import JOBS, ROOT, mrengine_run

pytestmark = pytest.mark.slow

PAGERANK = JOBS / "pagerank.py"
KARATE = ROOT / "sample_data" / "graphs" / "karate.txt"
SPARK_SAMPLE = ROOT / "sample_data" / "graphs" / "pagerank_data.txt"
SPARK = ["--runner", "spark", "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false"]

# Pages without links (6, and 7 alone on its line), a link given twice (1 2), a self-link (4 4), an
# adjacency line (5 ...), a comment; page 3 is linked to only.
MIXED = """# a small web
1 2
1 2
1 3
2 1
4 4
4 1
5 1 2 4 6

7
2 5
"""


def rank(out, inputs, *args, workers=2):
    proc = mrengine_run(PAGERANK, inputs, out, *args, workers=workers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (out / "ranks.tsv").read_text().splitlines()
    return {page: float(r) for page, r in (line.split("\t") for line in lines)}, proc


def links_of(path, undirected=False):
    """{page: set of pages it links to}, every page named included, read independently of the job."""
    graph = {}
    for line in path.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        graph.setdefault(words[0], set())
        for dst in words[1:]:
            graph[words[0]].add(dst)
            graph.setdefault(dst, set())
            if undirected:
                graph[dst].add(words[0])
    return graph


def numpy_pagerank(graph, d=0.85, iterations=None, tol=0.0):
    """Power iteration of the Google matrix d(P + dangling/N) + (1 - d)/N, from the uniform vector."""
    pages = sorted(graph)
    index = {p: i for i, p in enumerate(pages)}
    n = len(pages)
    m = np.zeros((n, n))  # m[j, i]: the share of page i's rank that goes to page j
    for src, dsts in graph.items():
        for dst in dsts:
            m[index[dst], index[src]] = 1 / len(dsts)
    dangling = np.array([not graph[p] for p in pages])
    r, done = np.full(n, 1 / n), 0
    while done < iterations:
        new = (1 - d) / n + d * (m @ r + r[dangling].sum() / n)
        change, r, done = np.abs(new - r).sum(), new, done + 1
        if change <= tol:
            break
    return dict(zip(pages, r)), done


def spark_semantics(lines, iterations):
    """What Spark's examples/src/main/python/pagerank.py computes, spelled out without Spark."""
    links = {}
    for line in lines:
        parts = re.split(r"\s+", line)
        links.setdefault(parts[0], set()).add(parts[1])  # parseNeighbors, distinct, groupByKey
    ranks = {url: 1.0 for url in links}
    for _ in range(iterations):
        contribs = {}
        for url, neighbours in links.items():
            if url in ranks:  # links.join(ranks)
                for n in neighbours:
                    contribs[n] = contribs.get(n, 0.0) + ranks[url] / len(neighbours)
        ranks = {url: c * 0.85 + 0.15 for url, c in contribs.items()}
    return ranks


def assert_close(got, expected, tol):
    assert set(got) == set(expected)
    assert max(abs(got[p] - expected[p]) for p in expected) <= tol


@pytest.mark.parametrize("args", [["-p", "iterations=40"], ["-p", "iterations=500", "-p", "tol=1e-12"]])
def test_normalized_ranks_are_numpy_s_power_iteration_on_the_karate_club(tmp_path, args):
    ranks, proc = rank(tmp_path / "out", [KARATE], "-p", "undirected=true", "--split-size", "128", *args)
    params = dict(a.split("=") for a in args if "=" in a)
    expected, iterations = numpy_pagerank(links_of(KARATE, undirected=True), iterations=int(params["iterations"]),
                                          tol=float(params.get("tol", 0)))
    assert_close(ranks, expected, 1e-9)
    assert abs(sum(ranks.values()) - 1) <= 1e-12
    assert "34 pages, 156 links, 0 without links; normalized, damping 0.85" in proc.stdout
    log = (tmp_path / "out" / "log.csv").read_text().splitlines()
    assert log[0] == "iteration,change,seconds" and len(log) == 1 + iterations
    if "tol=1e-12" in args:
        assert iterations < 500 and float(log[-1].split(",")[1]) <= 1e-12 < float(log[-2].split(",")[1])
    # Highest first: the club's instructor (1) and administrator (34).
    assert list(ranks)[:2] == ["34", "1"]


def test_normalized_ranks_spread_the_rank_of_pages_without_links(tmp_path):
    (tmp_path / "web.txt").write_text(MIXED)
    ranks, proc = rank(tmp_path / "out", [tmp_path / "web.txt"], "-p", "iterations=30", "-p", "damping=0.7",
                       "--split-size", "16")
    expected, _ = numpy_pagerank(links_of(tmp_path / "web.txt"), d=0.7, iterations=30)
    assert_close(ranks, expected, 1e-9)
    assert abs(sum(ranks.values()) - 1) <= 1e-12
    assert "7 pages, 10 links, 3 without links; normalized, damping 0.7" in proc.stdout


@pytest.mark.parametrize("graph", ["spark sample", "with pages without links"])
def test_spark_variant_has_the_semantics_of_spark_s_pagerank_example(tmp_path, graph):
    path = SPARK_SAMPLE
    if graph != "spark sample":
        path = tmp_path / "web.txt"  # 2 and 9 are linked to only, 8 nobody links to: it drops out
        path.write_text("1 2\n1 3\n3 1\n3 9\n8 3\n3 1\n")
    ranks, _ = rank(tmp_path / "out", [path], "-p", "variant=spark", "-p", "iterations=10", "--split-size", "8")
    assert_close(ranks, spark_semantics(path.read_text().splitlines(), 10), 1e-12)


@pytest.mark.parametrize("args,message", [
    (["-p", "damping=1.5"], "-p damping= must be a number from 0 to 1, not 1.5"),
    (["-p", "variant=google"], "-p variant= must be one of normalized, spark, not 'google'"),
    (["-p", "iterations=ten"], "-p iterations= must be a non-negative integer, not 'ten'"),
])
def test_bad_parameters_are_refused_in_one_line(tmp_path, args, message):
    proc = mrengine_run(PAGERANK, [KARATE], tmp_path / "out", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()


# What Spark's own example prints for its sample graph and 10 iterations (pyspark 4.3.0):
#   PYSPARK_SUBMIT_ARGS="--master local[2] pyspark-shell" python .../pyspark/examples/src/main/python/pagerank.py \
#       sample_data/graphs/pagerank_data.txt 10
SPARK_EXAMPLE_RANKS = {"1": 1.7380073041193354, "2": 0.7539975652935547, "3": 0.7539975652935547,
                       "4": 0.7539975652935547}


def test_spark_variant_gives_what_spark_s_own_example_prints(tmp_path):
    ranks, _ = rank(tmp_path / "out", [SPARK_SAMPLE], "-p", "variant=spark", "-p", "iterations=10")
    assert_close(ranks, SPARK_EXAMPLE_RANKS, 1e-12)


@pytest.mark.spark
def test_pagerank_on_spark_writes_the_native_bytes(tmp_path, spark_submit_env):
    args = ["-p", "undirected=true", "-p", "iterations=20", "--split-size", "128"]
    native = mrengine_run(PAGERANK, [KARATE], tmp_path / "native", *args)
    assert native.returncode == 0, native.stderr
    spark = run_cli("run", PAGERANK, KARATE, "-o", tmp_path / "spark", *args, *SPARK, timeout=600, env=spark_submit_env)
    assert spark.returncode == 0, spark.stderr
    assert (tmp_path / "spark" / "ranks.tsv").read_bytes() == (tmp_path / "native" / "ranks.tsv").read_bytes()
    strip = lambda path: [line.rsplit(",", 1)[0] for line in path.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "spark" / "log.csv") == strip(tmp_path / "native" / "log.csv")
