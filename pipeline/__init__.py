"""Fit a straight line to 2D data: the synthesize → train → evaluate → visualize stages."""

import gc
import sys

# `python -m pipeline.<stage>` loads this package first, with sys.argv[0] "-m" until the stage's module is found
# (the documented behaviour of -m): from here on, Ctrl-C ends the stage with one line rather than a traceback.
# The garbage collector waits until the imports are done (errors.run_stage_process): they make hundreds of
# thousands of objects that live as long as the process, which each full collection walked again.
if sys.argv[:1] == ["-m"]:
    from pipeline.errors import exit_on_interrupt

    exit_on_interrupt()
    gc.disable()
