"""CPU allocator settings for training loops (glibc on Linux).

A PINN step on the CPU allocates and frees hundreds of tensors of 0.1–10 MB. glibc serves
those above its mmap threshold with fresh ``mmap`` calls and returns freed memory at the top
of the heap to the system, so every step page-faults its working set back in: about 450 page
faults per Poisson-2D step of a [2, 10, 1] KAN, 15–20 % of the step's time on a 2-core VM.
Raising both thresholds keeps freed memory in the process for the next step (about one fault
per step). The setting is process-wide and lasts; the memory kept is bounded by the trim
threshold. ``KANPDE_MALLOPT=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def retain_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep freed CPU memory for reuse instead of returning it to the system (glibc only).

    Parameters
    ----------
    mmap_threshold : int
        Bytes above which an allocation gets its own ``mmap`` (glibc's upper limit is 32 MiB).
    trim_threshold : int
        Free bytes at the top of the heap kept before returning them to the system.

    Returns
    -------
    bool
        Whether the setting is in effect (False off Linux/glibc or with ``KANPDE_MALLOPT=0``).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("KANPDE_MALLOPT", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # Both or neither: setting either one alone disables glibc's dynamic adjustment of the
    # other and makes things worse (measured: trim alone 3x slower, mmap alone 10 % slower).
    if mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) != 1:
        return False
    _applied = mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    return _applied
