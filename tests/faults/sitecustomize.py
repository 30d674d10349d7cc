"""A fault in one stage process, for tests/stages/test_faults.py.

With this folder on PYTHONPATH, Python imports this module at startup in every process, dvc's included.
It acts only in the stage named by FAULT_STAGE, when that stage first renames a finished temporary file
to its final name (the last step of an atomic write):
- FAULT=kill: the stage kills itself with SIGKILL, as `kill -9` or the out-of-memory killer would;
- FAULT=pause: it writes "paused" to stderr, then waits until the test writes to the FIFO FAULT_FIFO.
"""

import os
import signal
import sys

done = False


def _at_event(event: str, args: tuple) -> None:
    global done
    if done or event != "os.rename":
        return
    if not sys.argv[0].endswith(os.path.join("pipeline", f"{os.environ['FAULT_STAGE']}.py")):
        return
    done = True
    if os.environ["FAULT"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os.write(2, b"paused\n")
    with open(os.environ["FAULT_FIFO"]) as fifo:
        fifo.read()


if "FAULT_STAGE" in os.environ:
    sys.addaudithook(_at_event)
