"""Worker processes must not outlive the command that started them.

Our process pools use multiprocessing's forkserver: a server process forks the workers. If
the command is killed with SIGKILL, nothing in Python runs, and the forkserver, its workers
(still converting rasters) and the resource tracker were left behind. On Linux, each of
them now asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``): the
forkserver when the command dies (``_forkserver_lifeline`` is preloaded into it), each
worker when the forkserver dies (the pool initializer). The resource tracker then sees its
pipe close and exits by itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing import forkserver, get_context

PR_SET_PDEATHSIG = 1
ENV_PARENT = "FULLMAJA_STAC_LIFELINE_PID"  # the command's pid, inherited by the forkserver
# Imported once by the forkserver, so that each worker forked from it starts with rasterio,
# GDAL and rio-cogeo loaded instead of importing them again: the modules of every function a
# worker runs (the COGs, the footprint), and nothing of the catalog.
PRELOAD = ("fullmaja_stac.ingest.cog", "fullmaja_stac.ingest.footprint")


def die_with_parent(expected_parent: int | None = None) -> None:
    """Ask the kernel for SIGKILL when this process's parent dies (Linux; elsewhere nothing),
    and exit at once if it is already gone (re-parented to init or a subreaper)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    parent = os.getppid()
    if parent == 1 or (expected_parent is not None and parent != expected_parent):
        os._exit(1)  # the parent died before the request took effect


def ingest_workers(workers: int | None) -> int:
    """How many processes an ingest runs: as asked, else one per core. One means inline, with
    no pool and no forkserver."""
    return workers or os.cpu_count() or 1


def worker_context(also_preload: tuple[str, ...] = ()):
    """The forkserver context, with the forkserver bound to this process's life. The server
    is started at once: its imports (a third of a second) run while the caller goes on, for
    instance reading the products, instead of delaying the first task.

    ``also_preload``: modules the caller's main script imports. multiprocessing has every
    worker import the main script before its first task (Python 3.11's forkserver does not
    preload ``__main__`` itself); what the forkserver has imported, a worker finds loaded.
    Only the first call's list counts: it applies when the server starts."""
    os.environ[ENV_PARENT] = str(os.getpid())
    context = get_context("forkserver")
    context.set_forkserver_preload(["fullmaja_stac._forkserver_lifeline", *PRELOAD, *also_preload])
    forkserver.ensure_running()
    return context
