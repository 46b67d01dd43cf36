"""Hand the BPF compiler's memory back to the kernel once every probe is loaded.

bcc compiles in-process with clang and LLVM: ~85 MB of their library pages and ~25 MB of
freed heap stay resident after the last compile, though nothing runs that code again until
the next load. ``malloc_trim`` returns the heap; ``MADV_PAGEOUT`` lets the kernel reclaim
the (clean, file-backed) library pages, which fault back in if a later load needs them.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

MADV_PAGEOUT = 21
COMPILER_LIBRARIES = re.compile(r"/lib(LLVM|clang)[^/]*\.so")


def release_compiler_memory(maps: Path = Path("/proc/self/maps")) -> int:
    """Bytes of compiler library mappings advised out (0 when none are mapped)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.malloc_trim(0)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and COMPILER_LIBRARIES.search(fields[5]):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if libc.madvise(start, end - start, MADV_PAGEOUT) == 0:
                released += end - start
    return released
