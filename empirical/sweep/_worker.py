"""Preloaded by the workers of the sweep's own LocalCluster (``preload=``): they leave a
Ctrl-C to the command, which stops them itself. Without this, Ctrl-C in a terminal (sent
to the whole process group) made every worker print a KeyboardInterrupt traceback."""

import signal


def dask_setup(worker) -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:      # not the main thread of the process: leave it as it is
        pass
