"""The numeric input formats (csv, tsv, npy, numeric): splits cover every row exactly once, whatever the
split size; bad files fail with a message naming the file and place; and end to end through the CLI."""

import gzip
import json

import numpy as np
import pytest

from mrengine.errors import RecordError
from mrengine.inputs import CsvInput, NpyInput, NumericInput, TsvInput, input_format, list_inputs, make_splits

from sgd_support import mrengine_run


def read_all(path, fmt, split_size):
    """Every split's blocks, in split order: (number of splits, the rows stacked)."""
    splits = make_splits(list_inputs([str(path)]), split_size, fmt.splittable)
    blocks = [b.values for s in splits for b in fmt.read(s, None)]
    return len(splits), (np.concatenate(blocks) if blocks else None)


def write_csv(path, a, header="a,b,c,d", newline="\n", blank_every=0):
    lines = [header] if header else []
    for i, row in enumerate(a.tolist()):
        lines.append(",".join(map(repr, row)))
        if blank_every and i % blank_every == 0:
            lines.append("")
    path.write_bytes((newline.join(lines) + newline).encode())


@pytest.fixture
def table():
    return np.random.default_rng(0).standard_normal((600, 4)) * [1, 10, 1000, 1e-3]


@pytest.mark.parametrize("split_size", [13, 257, 4096, 1 << 20])
@pytest.mark.parametrize("newline,blank_every", [("\n", 0), ("\r\n", 7)])
def test_csv_splits_cover_every_row_once(tmp_path, table, split_size, newline, blank_every):
    path = tmp_path / "t.csv"
    write_csv(path, table, newline=newline, blank_every=blank_every)
    count, rows = read_all(path, CsvInput(), split_size)
    assert count == -(-path.stat().st_size // split_size)
    assert rows.dtype == np.float64 and rows.shape == table.shape
    assert np.array_equal(rows, table)  # repr round-trips float64 exactly


def test_csv_header_rules_tsv_and_dtype(tmp_path, table):
    numeric_header = tmp_path / "n.csv"
    write_csv(numeric_header, table[:5], header="1,2,3,4")
    assert read_all(numeric_header, CsvInput(), 1 << 20)[1].shape == (6, 4)  # auto: a numeric first line is data
    assert np.array_equal(read_all(numeric_header, CsvInput(header=True), 1 << 20)[1], table[:5])
    text_header = tmp_path / "h.csv"
    text_header.write_text("a,b\n1,2\n")
    with pytest.raises(RecordError, match=r"h\.csv: the line at byte offset 0 is not a row of numbers"):
        read_all(text_header, CsvInput(header=False), 1 << 20)
    tsv = tmp_path / "t.tsv"
    tsv.write_text("x\ty\n1.5\t2\n3\t4\n")
    _, rows = read_all(tsv, TsvInput(dtype="float32"), 1 << 20)
    assert rows.dtype == np.float32 and rows.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert read_all(tsv, input_format("numeric"), 1 << 20)[1].tolist() == [[1.5, 2.0], [3.0, 4.0]]


def test_csv_bad_rows_name_the_file_and_offset(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n5,6\n")
    with pytest.raises(RecordError, match=r"bad\.csv: the line at byte offset 8 is not a row of numbers separated by ',': '3,x'"):
        read_all(bad, CsvInput(), 1 << 20)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3,4\n5\n")
    with pytest.raises(RecordError, match=r"ragged\.csv: the line at byte offset 8 has 1 columns, the rows before it 2"):
        read_all(ragged, CsvInput(), 1 << 20)


def test_blocks_are_read_only(tmp_path, table):
    path = tmp_path / "t.csv"
    write_csv(path, table)
    np.save(tmp_path / "t.npy", table)
    for p, fmt in ((path, CsvInput()), (tmp_path / "t.npy", NpyInput())):
        split = make_splits(list_inputs([str(p)]), 1 << 20)[0]
        (block,) = fmt.read(split, None)
        with pytest.raises(ValueError, match="read-only"):
            block.values[0, 0] = 1.0


@pytest.mark.parametrize("array", [
    np.arange(1001, dtype=np.int64),
    np.random.default_rng(1).standard_normal((777, 5)).astype(np.float32),
    np.random.default_rng(2).standard_normal((50, 3, 4)),
    np.array([(i, i / 2) for i in range(300)], dtype=[("a", "<i4"), ("b", "<f8")]),
], ids=["1d-int64", "2d-float32", "3d-float64", "structured"])
@pytest.mark.parametrize("split_size", [7, 100, 1000, 1 << 20])
def test_npy_splits_cover_every_row_once(tmp_path, array, split_size):
    path = tmp_path / "a.npy"
    np.save(path, array)
    count, rows = read_all(path, NpyInput(), split_size)
    assert count == -(-path.stat().st_size // split_size)
    assert rows.dtype == array.dtype and np.array_equal(rows, array)


def test_npy_compressed_is_one_split_and_numeric_picks_by_name(tmp_path):
    array = np.arange(60.0).reshape(20, 3)
    with gzip.open(tmp_path / "a.npy.gz", "wb") as f:
        np.save(f, array)
    count, rows = read_all(tmp_path / "a.npy.gz", NpyInput(), 16)
    assert count == 1 and np.array_equal(rows, array)
    assert np.array_equal(read_all(tmp_path / "a.npy.gz", NumericInput(), 16)[1], array)


def test_npy_errors(tmp_path):
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((4, 3))))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None]), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not an array\n")
    np.save(tmp_path / "short.npy", np.ones((100, 2)))
    with open(tmp_path / "short.npy", "r+b") as f:
        f.truncate(f.seek(0, 2) - 24)
    cases = {
        "fortran.npy": "stored in Fortran order, which cannot be cut by rows",
        "objects.npy": "holds Python objects",
        "text.npy": r"is not a readable \.npy file .*pass only \.npy files",
        "short.npy": r"the file ends before row 98 of the 100 its header announces",
    }
    for name, message in cases.items():
        with pytest.raises(RecordError, match=message):
            read_all(tmp_path / name, NpyInput(), 1 << 20)


def test_a_job_may_name_a_configured_format(tmp_path):
    job = tmp_path / "semi.py"
    job.write_text(
        "from mrengine.inputs import CsvInput\n"
        "input_format = CsvInput(delimiter=';')\n"
        "def mapper(url, row):  # one 1-D row at a time\n"
        "    yield 'sum', float(row.sum())\n"
        "def reducer(k, vs):\n"
        "    yield k, sum(vs)\n")
    data = tmp_path / "d.csv"
    data.write_text("p;q\n1;2\n3;4.5\n")
    proc = mrengine_run(job, [data], tmp_path / "out", workers=1)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "part-00000").read_text() + (tmp_path / "out" / "part-00001").read_text() == "sum\t10.5\n"


def test_numeric_formats_end_to_end(tmp_path):
    """npy and csv through the CLI on 2 workers and many splits: map_split gets each split as one array."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3000, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a[:2000])
    write_csv(tmp_path / "b.csv", a[2000:].astype(np.float64), header="x,y,z")
    job = tmp_path / "colsums.py"
    job.write_text(
        "import numpy as np\n"
        "from mrengine import ctx\n"
        "input_format = 'numeric'\n"
        "def map_split(blocks):\n"
        "    for a in blocks:\n"
        "        yield ctx.split.url.rsplit('.', 1)[1], [1, len(a), a.astype(np.float64).sum(axis=0)]\n"
        "def reducer(kind, values):\n"
        "    vs = list(values)\n"
        "    yield kind, [sum(v[0] for v in vs), sum(v[1] for v in vs), sum(v[2] for v in vs)]\n")
    out = tmp_path / "out"
    proc = mrengine_run(job, [tmp_path / "a.npy", tmp_path / "b.csv"], out, "--split-size", "3k", "--reducers", "1")
    assert proc.returncode == 0, proc.stderr
    got = {k: json.loads(v) for k, v in (line.split("\t") for line in (out / "part-00000").read_text().splitlines())}
    npy_splits = -(-(tmp_path / "a.npy").stat().st_size // 3072)
    assert got["npy"][:2] == [npy_splits, 2000]  # one block per split, every row once
    assert got["csv"][1] == 1000
    assert np.allclose(got["npy"][2], a[:2000].astype(np.float64).sum(axis=0), rtol=1e-12)
    assert np.allclose(got["csv"][2], a[2000:].astype(np.float64).sum(axis=0), rtol=1e-12)
