"""Give freed heap memory back to the operating system (glibc), so a daemon's RSS follows its
live data instead of its largest moment.

A model forward pass allocates and frees hundreds of MB of activations, a polling cycle
thousands of response bodies and rows; glibc keeps freed pages in per-thread arenas, so without
a trim a long-running daemon's RSS settles near the peak of every thread it ever ran.
Measured: 3,000 stream texts embedded in calls of 512, RSS 868 MB without, 552 MB with a trim
after each call; the trim itself takes about a millisecond. On other C libraries (musl, macOS)
this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any


def _glibc_malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def release_free_memory() -> None:
    """Return free pages of every malloc arena to the OS (``malloc_trim(0)``)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
