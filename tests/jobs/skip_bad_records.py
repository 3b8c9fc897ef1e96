"""Input lines "record N"; the mapper raises on the numbers `-p bad=17,23` names, the reducer on the
keys (numbers) `-p bad_keys=...` names. Every other record comes out as `N<TAB>record N`."""

from mrengine import ctx


def _numbers(name: str) -> set:
    return {int(n) for n in str(ctx.params.get(name, "")).split(",") if n}


def mapper(path, line):
    number = int(line.split()[1])
    if number in _numbers("bad"):
        raise ValueError(f"cannot parse {line!r}")
    yield number, line


def reducer(number, lines):
    if number in _numbers("bad_keys"):
        raise KeyError(number)
    for line in lines:
        yield number, line
