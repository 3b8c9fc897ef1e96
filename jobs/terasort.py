"""Sort Benchmark records into one global order: TeraSort.

Input: files of 100-byte records (a 10-byte key, then a 90-byte value), as `scripts/teragen.py`
writes them. The step samples the keys and partitions by key range (`total_order`), so the part
files, read in order, are one sorted sequence; `scripts/teravalidate.py` checks that and that the
records are exactly the input's (count and checksum).

    python scripts/teragen.py 1G /tmp/tera-in --files 16
    mrengine run jobs/terasort.py /tmp/tera-in -o /tmp/tera-out --reducers 4 --split-size 1g
    python scripts/teravalidate.py /tmp/tera-in /tmp/tera-out
"""

RECORD, KEY = 100, 10
total_order = True
output_format = "msgpack"  # [key, value] as raw bytes, so every byte of a record survives


def input_format(file, url):
    """The file's records, 100 bytes each (the format cannot be split: teragen writes many files)."""
    while True:
        chunk = file.read(RECORD * 10_000)
        if not chunk:
            return
        if len(chunk) % RECORD:
            raise ValueError(f"{url} is not a file of {RECORD}-byte records (a chunk of {len(chunk)} bytes)")
        yield from (chunk[i:i + RECORD] for i in range(0, len(chunk), RECORD))


def map_split(records):
    return ((r[:KEY], r[KEY:]) for r in records)


def reducer(key, values):
    for value in values:
        yield key, value
