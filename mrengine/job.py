"""Loading a job file and checking what it defines.

A job file is a plain Python module. It defines `mapper(key, value)` (or `map_split(records)`) and
usually `reducer(key, values)`; optionally `combiner`, `partitioner(key, n)`, `num_reducers`,
`mapper_init()`/`mapper_final()`, `input_format`/`output_format`, a list of `steps`, or `main(ctx)`
for iterative drivers. Mistakes are reported as `JobDefinitionError` in one paragraph. Any other
name is the job's own business; one that looks like a mistyped hook gets a one-line warning.

>>> step = Step(mapper=lambda k, v: [(v, 1)], reducer=lambda k, vs: [(k, sum(vs))])
>>> step.num_reducers is None
True
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import itertools
import linecache
import marshal
import os
import re
import sys
import traceback
import types
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Callable

import cloudpickle

from .errors import JobDefinitionError
from .inputs import INPUT_FORMATS, InputFormat
from .outputs import OUTPUT_FORMATS

# name -> number of positional arguments the function must accept
_STEP_FUNCTIONS = {
    "mapper": 2,
    "map_split": 1,
    "reducer": 2,
    "combiner": 2,
    "partitioner": 2,
    "mapper_init": 0,
    "mapper_final": 0,
    "reduce_partition": 1,
}
_STEP_VALUES = ("num_reducers", "sort_values", "partition_fields", "field_separator", "total_order")
_JOB_NAMES = ("input_format", "output_format", "steps", "main")
KNOWN_NAMES = frozenset(_STEP_FUNCTIONS) | frozenset(_STEP_VALUES) | frozenset(_JOB_NAMES)
# Hooks other engines have (mrjob's) that mrengine does not call.
_OTHER_ENGINES_HOOKS = ("reducer_init", "reducer_final", "combiner_init", "combiner_final")


@dataclass
class Step:
    """One map/reduce step. A job file names its functions at top level, or lists `steps = [Step(...), ...]`.

    With no reducer the step's output is the sorted map output, one line per (key, value);
    `num_reducers=0` makes it map-only instead: one part per map, in the order the mapper yielded.
    `sort_values`, `partition_fields`/`field_separator` and `total_order` are the sort orders of
    `mrengine.sorting`. `reduce_partition(groups)`, in place of reducer, is called once per reduce task
    with an iterator of (key, values) and yields its output pairs (task-wide setup and teardown).
    """

    mapper: Callable | None = None
    reducer: Callable | None = None
    combiner: Callable | None = None
    partitioner: Callable | None = None
    num_reducers: int | None = None
    mapper_init: Callable | None = None
    mapper_final: Callable | None = None
    map_split: Callable | None = None
    reduce_partition: Callable | None = None
    sort_values: bool = False
    partition_fields: int | None = None
    field_separator: str = "\t"
    total_order: bool = False

    def __post_init__(self):
        _check_step(self, "Step")


@dataclass
class JobSpec:
    """A loaded job: its steps (or `main`), formats, and where it came from."""

    path: str
    source: str
    steps: list[Step] = field(default_factory=list)
    input_format: Any = "text"
    output_format: str = "text"
    main: Callable | None = None
    # Set on the rounds of a `main(ctx)` job: the rounds of one run share `session` (workers keep
    # parsed splits under it) and carry `broadcast`, the pickled value tasks see as `ctx.broadcast`.
    session: str | None = None
    broadcast: bytes | None = None

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    def dumps(self) -> bytes:
        """The job's functions, pickled by value so workers need no copy of the file."""
        buffer = io.BytesIO()
        _CodeKeepingPickler(buffer).dump(self)
        return buffer.getvalue()


def _reduce_code(code: types.CodeType) -> tuple:
    return marshal.loads, (marshal.dumps(code),)


class _CodeKeepingPickler(cloudpickle.Pickler):
    """cloudpickle, with code objects sent whole as marshal writes them into a .pyc.

    cloudpickle 3.1+ sets every code object's `co_filename` to "<dynamic-code>", so a traceback from a
    worker would name no file and show no line. marshal keeps the job file's path (and the rest of the
    code object exactly); workers run the same Python version anyway, as cloudpickle requires.
    """

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def _check_step(step: Step, where: str) -> None:
    for name, nargs in _STEP_FUNCTIONS.items():
        fn = getattr(step, name)
        if fn is not None:
            _check_callable(fn, name, nargs, where)
    if step.mapper is not None and step.map_split is not None:
        raise JobDefinitionError(f"{where}: can't define both mapper and map_split; map_split replaces mapper for a whole split")
    if step.mapper is None and step.map_split is None:
        raise JobDefinitionError(f"{where} defines no mapper: define mapper(key, value) or map_split(records)")
    if step.map_split is not None and (step.mapper_init or step.mapper_final):
        raise JobDefinitionError(f"{where}: mapper_init/mapper_final go with mapper, not with map_split (which sees the whole split in one call)")
    n = step.num_reducers
    if n is not None and (type(n) is not int or n < 0):
        raise JobDefinitionError(f"{where}: num_reducers must be an int, 0 for a map-only step, not {n!r}")
    if step.reducer is not None and step.reduce_partition is not None:
        raise JobDefinitionError(f"{where}: can't define both reducer and reduce_partition; reduce_partition replaces reducer for a whole reduce task")
    _check_sort_options(step, where)


def _check_sort_options(step: Step, where: str) -> None:
    if n_fields := step.partition_fields:
        if type(n_fields) is not int or n_fields < 1:
            raise JobDefinitionError(f"{where}: partition_fields must be a positive int, not {n_fields!r}")
    if not isinstance(step.field_separator, str) or not step.field_separator:
        raise JobDefinitionError(f"{where}: field_separator must be a non-empty str, not {step.field_separator!r}")
    for name in ("sort_values", "total_order"):
        if type(getattr(step, name)) is not bool:
            raise JobDefinitionError(f"{where}: {name} must be True or False, not {getattr(step, name)!r}")
    if step.num_reducers == 0 and (step.reducer or step.reduce_partition or step.combiner or step.sort_values or step.total_order):
        raise JobDefinitionError(f"{where}: num_reducers = 0 makes a map-only step, which has no reducer, combiner "
                                 f"or sort; remove them or give num_reducers > 0")
    if step.total_order and (step.partitioner or step.partition_fields):
        raise JobDefinitionError(f"{where}: can't give both total_order and partitioner/partition_fields: "
                                 f"total_order partitions by sampled key ranges")
    if step.partitioner and step.partition_fields:
        raise JobDefinitionError(f"{where}: can't give both partitioner and partition_fields")


def _check_callable(fn: Any, name: str, nargs: int, where: str) -> None:
    if not callable(fn):
        raise JobDefinitionError(f"{where}: {name} must be a function, not {type(fn).__name__}")
    if not _takes(fn, nargs):
        expected = {0: "no arguments", 1: "one argument", 2: "two arguments"}[nargs]
        raise JobDefinitionError(f"{where}: {name}{inspect.signature(fn)} must take {expected}")


def _takes(fn: Callable, nargs: int) -> bool:
    """Whether fn can be called with `nargs` positional arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # builtins without signatures: trust them
    try:
        sig.bind(*range(nargs))
    except TypeError:
        return False
    return True


def load_job(path: str, job_args: list[str] | None = None) -> JobSpec:
    """Import a job file and check it; every problem becomes a JobDefinitionError.

    A file that defines an mrjob `MRJob` class runs as mrjob would run it with the arguments `job_args`.
    """
    if not os.path.isfile(path):
        raise JobDefinitionError(f"job file {path!r} does not exist")
    path = os.path.abspath(path)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if "mrjob" in source:
        from .mrjob import compat
        compat.install()  # so that the file's `import mrjob` works on Pythons without distutils and pipes
    module = _import(path, source)
    mrjob_spec = _mrjob_spec(module, path, source, job_args or [])
    if mrjob_spec is not None:
        return mrjob_spec
    if job_args:
        raise JobDefinitionError(f"job file {path}: arguments after -- ({' '.join(job_args)}) are for mrjob jobs; "
                                 f"this one defines no MRJob class (use -p name=value for parameters)")
    return _spec_from_module(module, path, source)


def import_job_libraries(path: str) -> None:
    """Import mrjob's job API, without running the file, when the job file at `path` is written against
    it. `mrengine run` does this before it forks an embedded cluster, whose task processes then have
    mrjob already: each would otherwise import it again, a quarter of a second of CPU (mrjob's imports
    reach setuptools, yaml and email). Anything wrong with the file or with mrjob is load_job's to report."""
    try:
        with open(path, encoding="utf-8") as f:
            if "mrjob" not in f.read():
                return
        from .mrjob import compat
        compat.install()
        import mrjob.job  # noqa: F401
    except Exception:  # noqa: BLE001 - load_job, next, says what is wrong in a sentence
        return


def _mrjob_spec(module, path: str, source: str, job_args: list[str]) -> JobSpec | None:
    """The job of an MRJob class the module defines, if it defines one."""
    if "mrjob.job" not in sys.modules:
        return None
    from .mrjob import adapter
    cls = adapter.mrjob_class(module)
    return adapter.job_spec(cls, path, source, job_args) if cls is not None else None


def job_from_module(module) -> JobSpec:
    """Check an imported job module, as `load_job` checks a job file; every problem becomes a JobDefinitionError."""
    path = getattr(module, "__file__", None)
    if not path or not os.path.isfile(path):
        raise JobDefinitionError(f"module {getattr(module, '__name__', module)!r} has no source file to run as a job")
    path = os.path.abspath(path)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    return _spec_from_module(module, path, source)


_counter = itertools.count()


def _import(path: str, source: str):
    name = f"mrengine_job_{os.getpid()}_{next(_counter)}"
    try:
        compile(source, path, "exec")
    except SyntaxError as exc:
        line = (exc.text or "").rstrip()
        raise JobDefinitionError(f"job file {path} has a syntax error at line {exc.lineno}: {exc.msg}\n    {line}") from None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    job_dir = os.path.dirname(path)
    before = set(sys.modules)
    sys.path.insert(0, job_dir)  # so a job can import helpers that sit beside it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise JobDefinitionError(f"job file {path} failed to import:\n{user_traceback(exc)}") from None
    finally:
        sys.path.remove(job_dir)
    cloudpickle.register_pickle_by_value(module)
    for helper in _local_modules(set(sys.modules) - before, job_dir):
        cloudpickle.register_pickle_by_value(helper)
    return module


def _local_modules(names: set, job_dir: str) -> list:
    """The modules among `names` that the job imported from beside its file (a `helpers.py`, a package):
    pickled by value with the job, so workers need no copy of them and run the version the driver loaded."""
    package_dir = os.path.dirname(os.path.abspath(__file__)) + os.sep
    found = []
    for name in sorted(names):
        module = sys.modules.get(name)
        file = os.path.abspath(getattr(module, "__file__", None) or "/")
        if (file.startswith(job_dir + os.sep) and not file.startswith(package_dir)
                and "site-packages" not in file and "dist-packages" not in file and "." not in name):
            found.append(module)  # a package's submodules go with it
    return found


def _spec_from_module(module, path: str, source: str) -> JobSpec:
    where = f"job file {path}"
    defined = {n: v for n, v in vars(module).items() if not n.startswith("_")}
    _warn_of_near_misses(module, defined, where)
    spec = JobSpec(path=path, source=source)
    spec.input_format = defined.get("input_format", "text")
    spec.output_format = defined.get("output_format", "text")
    _check_formats(spec, where)
    spec.main = defined.get("main")
    if spec.main is not None:
        _check_callable(spec.main, "main", 1, where)
    steps = defined.get("steps")
    top = {n: defined[n] for n in (*_STEP_FUNCTIONS, *_STEP_VALUES) if n in defined}
    if steps is not None:
        if top:
            raise JobDefinitionError(f"{where}: can't define both steps and top-level {', '.join(sorted(top))}; put them in a Step")
        if not isinstance(steps, (list, tuple)) or not steps or not all(isinstance(s, Step) for s in steps):
            raise JobDefinitionError(f"{where}: steps must be a non-empty list of mrengine.Step(...)")
        spec.steps = list(steps)
    elif top:
        spec.steps = [_step_from(top, where)]
    elif spec.main is None:
        raise JobDefinitionError(f"{where} defines no mapper: define mapper(key, value) or map_split(records) (and usually reducer(key, values)), a list of steps, or main(ctx)")
    return spec


def _step_from(names: dict, where: str) -> Step:
    step = Step.__new__(Step)
    for name, f in Step.__dataclass_fields__.items():
        setattr(step, name, names.get(name, f.default))
    _check_step(step, where)
    return step


def _warn_of_near_misses(module, defined: dict, where: str) -> None:
    """One line on stderr for each name the job defines that looks meant as a hook mrengine would call."""
    for name, value in defined.items():
        if name in KNOWN_NAMES or inspect.ismodule(value):
            continue
        if callable(value) and getattr(value, "__module__", module.__name__) != module.__name__:
            continue  # imported from elsewhere, not the user's own name
        silence = f"if it is a name of your own, call it '_{name}' to silence this warning"
        if name in _OTHER_ENGINES_HOOKS and callable(value):
            _warn(f"{where} defines {name}(), which mrengine never calls: it has no such hook (the task hooks "
                  f"are mapper_init and mapper_final); {silence}")
            continue
        hook = next((h for h in sorted(KNOWN_NAMES) if _looks_mistyped(name, h) and _fits(h, value)), None)
        if hook is not None:
            _warn(f"{where} defines {name!r}, which mrengine does not use; did you mean {hook!r}? ({silence})")


def _looks_mistyped(name: str, hook: str) -> bool:
    """`name` is an edit away from `hook` or its plural (two edits for names of 8 letters or more).

    `mapers`, `combinr`, `Reducer` and `partitoner` are slips; a hook's name with digits or an
    underscore and more after it (`mapper2`, `combiner_ok`) is a name of its own, and so is anything
    further off (`domain`, `mapper_helper`).

    >>> [n for n in ("mapers", "mapper2", "mapped", "domain", "mapper_fast", "maper_init") if _looks_mistyped(n, "mapper")]
    ['mapers', 'mapped']
    """
    name = name.lower()
    if re.fullmatch(re.escape(hook) + r"(\d+|_\w+)", name):
        return False
    limit = 2 if len(hook) >= 8 else 1
    return min(_edit_distance(name, hook, limit), _edit_distance(name, hook + "s", limit)) <= limit


def _fits(hook: str, value: Any) -> bool:
    """Whether `value` could stand for `hook`: a near miss of a function's name that holds a number is no slip."""
    nargs = _STEP_FUNCTIONS.get(hook, 1 if hook == "main" else None)
    if nargs is not None:
        return callable(value) and _takes(value, nargs)
    if hook in ("num_reducers", "partition_fields"):
        return type(value) is int
    if hook in ("sort_values", "total_order"):
        return type(value) is bool
    if hook == "field_separator":
        return isinstance(value, str)
    if hook == "steps":
        return isinstance(value, (list, tuple))
    return isinstance(value, (str, InputFormat)) or callable(value)  # input_format, output_format


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn a into b; past `limit`, limit + 1.

    >>> _edit_distance("combinr", "combiner", 2), _edit_distance("mapepr", "mapper", 2), _edit_distance("domain", "main", 1)
    (1, 1, 2)
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, row = row, current
    return min(row[-1], limit + 1)


def _warn(message: str) -> None:
    print(f"mrengine: warning: {message}", file=sys.stderr)


def _check_formats(spec: JobSpec, where: str) -> None:
    fmt = spec.input_format
    if not isinstance(fmt, InputFormat) and not callable(fmt) and fmt not in INPUT_FORMATS:
        raise JobDefinitionError(f"{where}: input_format must be one of {', '.join(INPUT_FORMATS)}, an InputFormat "
                                 f"such as CsvInput(delimiter=';'), or a reader function, not {fmt!r}")
    if spec.output_format not in OUTPUT_FORMATS:
        raise JobDefinitionError(f"{where}: output_format must be one of {', '.join(OUTPUT_FORMATS)}, not {spec.output_format!r}")


def prime_linecache(job: JobSpec) -> None:
    """Let tracebacks show the lines of the source the job was loaded from, wherever it runs.

    Also where the file is missing, or is not the same file (another host's, or edited since): an entry
    without an mtime is never checked against the disk.
    """
    linecache.cache[job.path] = (len(job.source), None, job.source.splitlines(True), job.path)


def user_traceback(exc: BaseException) -> str:
    """The traceback of an exception raised in user code, without mrengine's own frames."""
    package_dir = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frames = [
        fs for fs in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(fs.filename).startswith(package_dir) and "importlib._bootstrap" not in fs.filename
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()
