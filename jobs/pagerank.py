"""PageRank by power iteration on mrengine: each round's map tasks read the links and send every
page's rank, shared out over its links, to the pages it links to; the reduce adds up what each page
receives, and the driver applies the damping.

    mrengine run jobs/pagerank.py sample_data/graphs/karate.txt -o out/karate -p undirected=true
    mrengine run jobs/pagerank.py sample_data/graphs/pagerank_data.txt -o out/spark -p variant=spark

Input: text, one line per page: `src dst` (a link, as in Apache Spark's pagerank.py example) or
`src dst1 dst2 ...` (a page and all it links to); a line of one name is a page without links. Names
are any words. Blank lines and lines starting with `#` are skipped. A link given twice counts once.
Parameters (-p name=value):

    damping=0.85        the probability of following a link rather than jumping to a random page
    iterations=10       at most this many rounds
    tol=0               stop once the ranks changed by at most this (the L1 norm of the change)
    variant=normalized  normalized: ranks are a probability distribution over all N pages, starting at
                        1/N; rank' = (1 - d)/N + d * (what the page receives + dangling/N), where
                        `dangling` is the rank of the pages without links, spread evenly over all
                        pages: the power iteration of the Google matrix.
                        spark: the semantics of Spark's examples/src/main/python/pagerank.py: ranks
                        start at 1.0 for the pages that have links; rank' = (1 - d) + d * (what the page
                        receives), for the pages that receive something; the rank of pages without
                        links is lost, and pages nobody links to drop out after the first round.
    undirected=false    true: each line's links go both ways

It prints the change per iteration and the top ranks, and writes to the output directory `ranks.tsv`
(`page<TAB>rank`, highest first, ties by name) and `log.csv` (iteration, change, seconds).
"""

import time

from mrengine import ctx

VARIANTS = ("normalized", "spark")


def links(line):
    """The page a line is about and the pages it links to ([] for a page alone); None for no page."""
    words = line.split()
    if not words or words[0].startswith("#"):
        return None
    return words[0], words[1:]


def edges(parsed, undirected):
    src, dsts = parsed
    for dst in dsts:
        yield src, dst
        if undirected:
            yield dst, src


def distinct(key, values):
    for value in dict.fromkeys(values):  # first occurrence order, so sums add up in a fixed order
        yield key, value


def out_degree(page, values):
    yield page, len({v for v in values if v is not None})


def received(page, values):
    yield page, sum(share for _, share in dict.fromkeys(values))  # (src, share): a link given twice counts once


# ---------------------------------------------------------------- map tasks (map_split over text lines)


def pages_and_links(lines):
    """(page, page it links to) for every link, and (page, None) for every page named, so none is missed."""
    undirected, out = ctx.params.get("undirected", False) is True, []
    for line in lines:
        parsed = links(line)
        if parsed:
            out.extend((page, None) for page in (parsed[0], *parsed[1]))
            out.extend(edges(parsed, undirected))
    return out


def contributions(lines):
    """(page linked to, (page linking, its share)) for every link from a page that has a share this round."""
    undirected, share, out = ctx.params.get("undirected", False) is True, ctx.broadcast, []
    for line in lines:
        parsed = links(line)
        if parsed:
            out.extend((dst, (src, share[src])) for src, dst in edges(parsed, undirected) if src in share)
    return out


# ---------------------------------------------------------------- the driver


def check_params(p):
    d, variant = p.get("damping", 0.85), p.get("variant", "normalized")
    if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d <= 1:
        raise ValueError(f"-p damping= must be a number from 0 to 1, not {d!r}")
    iterations = p.get("iterations", 10)
    if type(iterations) is not int or iterations < 0:
        raise ValueError(f"-p iterations= must be a non-negative integer, not {iterations!r}")
    tol = p.get("tol", 0.0)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or tol < 0:
        raise ValueError(f"-p tol= must be a number >= 0, not {tol!r}")
    if variant not in VARIANTS:
        raise ValueError(f"-p variant= must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if p.get("undirected", False) not in (True, False):
        raise ValueError(f"-p undirected= must be true or false, not {p['undirected']!r}")
    return float(d), iterations, float(tol), variant


def next_ranks(ranks, degree, inflow, d, variant):
    if variant == "spark":
        return {page: (1 - d) + d * got for page, got in inflow.items()}
    n = len(degree)
    dangling = sum(rank for page, rank in ranks.items() if degree[page] == 0)
    return {page: (1 - d) / n + d * (inflow.get(page, 0.0) + dangling / n) for page in degree}


def l1_change(old, new):
    return sum(abs(new.get(page, 0.0) - old.get(page, 0.0)) for page in {**old, **new})


def main(ctx):
    d, iterations, tol, variant = check_params(ctx.params)
    degree = dict(ctx.map_reduce(ctx.inputs, map_split=pages_and_links, reducer=out_degree, combiner=distinct))
    if not degree:
        raise ValueError(f"the input {ctx.inputs} names no pages")
    dangling = sum(1 for out in degree.values() if out == 0)
    print(f"{len(degree)} pages, {sum(degree.values())} links, {dangling} without links; {variant}, damping {d}, "
          f"at most {iterations} iterations, tol {tol}", flush=True)
    if variant == "spark":
        ranks = {page: 1.0 for page, out in degree.items() if out > 0}
    else:
        ranks = dict.fromkeys(degree, 1.0 / len(degree))

    done, change = 0, None
    with ctx.open("log.csv", "w") as log:
        log.write("iteration,change,seconds\n")
        while done < iterations and not (change is not None and change <= tol):
            started = time.monotonic()
            shares = {page: rank / degree[page] for page, rank in ranks.items() if degree[page] > 0}
            inflow = dict(ctx.map_reduce(ctx.inputs, map_split=contributions, reducer=received, combiner=distinct,
                                         broadcast=shares))
            new = next_ranks(ranks, degree, inflow, d, variant)
            done, change, ranks = done + 1, l1_change(ranks, new), new
            seconds = time.monotonic() - started
            print(f"iteration {done:3d}  change {change:.6g}  ({seconds:.2f}s)", flush=True)
            log.write(f"{done},{change!r},{seconds:.3f}\n")

    ordered = sorted(ranks.items(), key=lambda item: (-item[1], item[0]))
    print("top: " + ", ".join(f"{page} {rank:.6f}" for page, rank in ordered[:5]), flush=True)
    with ctx.open("ranks.tsv", "w") as f:
        for page, rank in ordered:
            f.write(f"{page}\t{rank!r}\n")
