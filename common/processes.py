"""Worker processes that never outlive the command that started them.

A killed `sif import` or `sif generate` (SIGKILL, an OOM kill, a closed terminal) cannot clean
up after itself, and each of its workers holds hundreds of MB. On Linux a worker asks the kernel
to kill it when its parent dies (PR_SET_PDEATHSIG); pass `exit_with_parent` as the pool's
initializer with the parent's pid.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def exit_with_parent(parent: int) -> None:
    """Worker initializer: die with `parent` (Linux; elsewhere nothing is armed)."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that was armed
        os._exit(0)
