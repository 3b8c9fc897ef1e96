"""Ask a master once for a job's status, letting it wait: `python tests/status_wait.py MASTER SECRET_FILE JOB_ID WAIT`.

Prints one JSON object: the state the answer gave and the seconds it took (a test runs it on a
simulated host, where the master's address is reachable).
"""

import json
import sys
import time
from pathlib import Path

from mrengine.driver import connect_master
from mrengine.messages import JobStatusRequest, from_wire, to_wire

address, secret_file, job_id, wait = sys.argv[1:]
conn = connect_master(address, Path(secret_file).read_bytes().strip())
conn.settimeout(60)
started = time.monotonic()
status = from_wire(conn.request(to_wire(JobStatusRequest(job_id, wait=float(wait)))))
print(json.dumps({"state": status.state, "seconds": time.monotonic() - started}))
conn.close()
