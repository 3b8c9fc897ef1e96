"""The engine's errors: one base class and a few subclasses.

Every error a user can meet is a `MrEngineError`; the CLI prints its message as one paragraph and
exits with its `exit_code`. Fields live in `args` so errors survive pickling between processes.
"""


class MrEngineError(Exception):
    """Base of every error mrengine raises on purpose."""

    exit_code = 1

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __str__(self) -> str:
        return self.message


class JobDefinitionError(MrEngineError):
    """The job file is missing, does not import, or defines something wrong."""

    exit_code = 2


class UsageError(MrEngineError):
    """Bad command-line input: options that contradict each other, a bad output directory."""

    exit_code = 2


class StorageError(MrEngineError):
    """An input or output location cannot be listed, read or written."""

    exit_code = 3


class RecordError(MrEngineError):
    """A record cannot be decoded or encoded (bad bytes, an unsupported value type).

    Deterministic: the same records fail the same way on every attempt, so the task that meets one is
    not retried and the job fails at once (`not_retried` says so).
    """

    exit_code = 4

    @classmethod
    def not_retried(cls, task: str, message: str) -> "RecordError":
        """The error of a job whose `task` failed on a record; the same words from both runners."""
        return cls(f"{task} failed on its first attempt and was not retried, since a record that cannot be "
                   f"read or written fails every attempt alike: {message}")


class TaskFailedError(MrEngineError):
    """A task failed on every attempt; args: (message, task description, attempts, user traceback)."""

    exit_code = 5

    @property
    def traceback(self) -> str:
        return self.args[3] if len(self.args) > 3 else ""


class ProtocolError(MrEngineError):
    """A peer sent something that is not a valid frame, or failed authentication."""

    exit_code = 6


class ClusterError(MrEngineError):
    """The master or the workers cannot be reached or started."""

    exit_code = 7


class ParameterServerError(MrEngineError):
    """A parameter server refused a request (an unknown name, an update out of order)."""


class UserCodeError(MrEngineError):
    """A job's function raised; args: (message, the user's traceback[, the `messages.BadRecord` it raised on])."""

    @property
    def record(self):
        return self.args[2] if len(self.args) > 2 else None


class FetchFailedError(MrEngineError):
    """A reducer could not fetch (or verify) one map output; args: (message, map task index).

    Not the reducer's fault: the master re-runs that map task and then the reducer, without counting
    the reduce attempt as failed.
    """

    @property
    def map_index(self) -> int:
        return self.args[1]
