"""mrengine: a MapReduce engine. Write a job file of map/reduce functions; run it with `mrengine run`."""

from .context import ctx
from .job import Step

__all__ = ["ctx", "Step"]
__version__ = "0.1.0"
