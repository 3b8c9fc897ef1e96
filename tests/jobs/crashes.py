"""A mapper that fails on every attempt, on a line it can name: for error reporting tests."""


def mapper(path, line):
    if "Methuselah" in line:
        return 1 / 0
    yield line, 1
