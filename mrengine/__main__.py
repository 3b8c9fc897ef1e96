"""`python -m mrengine ARGS`; and `spark-submit [OPTIONS] PATH/mrengine/__main__.py ARGS --runner spark`,
which runs this file as a script."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if not __package__ and sys.path and os.path.abspath(sys.path[0]) == HERE:
    del sys.path[0]  # run as a script: its own directory would shadow top-level modules (inputs, cache, ...)

from mrengine.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
