"""Word count whose mapper misbehaves as `-p what=...` says, on the lines of the file named by `-p on=NAME`
(every file without it).

- patch: leaves state behind in its process: replaces json.dumps and mrengine's own text rendering
  of values that are not strings, sets an environment variable, changes directory, plants a module
  and a global.
- probe: counts, as the key "leaked", every sign of what `patch` leaves behind that it finds.
- loop: loops for ever on the first line, reading and writing nothing.
- exit / os_exit: calls sys.exit(3) / os._exit(4).
- hog: holds 400 MiB and waits.
- fat: emits 4 MiB of incompressible values.
"""

import json
import os
import sys
import time

from mrengine import ctx, outputs

_touched = []


def mapper(path, line):
    what = ctx.params.get("what")
    if what and path.endswith(ctx.params.get("on", "")):
        _misbehave(what)
    if what == "fat" and path.endswith(ctx.params.get("on", "")):
        yield from ((f"fat{i}", os.urandom(1024).hex()) for i in range(20))
    for word in line.split():
        yield word, 1


def _misbehave(what):
    if what == "patch":
        json.dumps = lambda *args, **kwargs: "PATCHED"
        outputs.render = lambda x: x if isinstance(x, str) else "PATCHED"
        os.environ["MRENGINE_TEST_LEAK"] = "1"
        os.chdir("/")
        sys.modules["mrengine_test_leak"] = sys
        _touched.append(1)
    elif what == "probe":
        signs = [json.dumps(1) != "1", outputs.render(1) != "1", "MRENGINE_TEST_LEAK" in os.environ, os.getcwd() == "/",
                 "mrengine_test_leak" in sys.modules]
        _touched.append(sum(signs))
    elif what == "loop":
        while True:
            pass
    elif what == "exit":
        sys.exit(3)
    elif what == "os_exit":
        os._exit(4)
    elif what == "fat":
        pass
    elif what == "hog":
        _touched.append(b"x" * (400 << 20))
        time.sleep(60)


def mapper_final():
    if ctx.params.get("what") == "probe":
        yield "leaked", sum(_touched)


def reducer(word, counts):
    yield word, sum(counts)
