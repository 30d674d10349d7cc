"""Fit a straight line to 2D data: the synthesize → train → evaluate → visualize stages."""

import sys

# `python -m pipeline.<stage>` loads this package first, with sys.argv[0] "-m" until the stage's module is found
# (the documented behaviour of -m): the stage's process starts here, before its modules load.
if sys.argv[:1] == ["-m"]:
    from pipeline.errors import start_stage_process

    start_stage_process()
