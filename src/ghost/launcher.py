"""Run the `ghost` command under tcmalloc when the machine has it.

PyTorch on CPU with glibc malloc page-faults fresh large buffers on every step; with
tcmalloc, Mamba-style training ran about 3x faster on this machine kind (DESIGN.md
section 6). The allocator must be chosen before the process starts, so the command
re-executes itself once with LD_PRELOAD set. GHOST_ALLOCATOR=system turns this off.
"""

from __future__ import annotations

import os
import sys

TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
)


def find_tcmalloc() -> str | None:
    return next((p for p in TCMALLOC_CANDIDATES if os.path.exists(p)), None)


def allocator_in_use() -> str:
    preload = os.environ.get("LD_PRELOAD", "")
    return "tcmalloc" if "tcmalloc" in preload else "system malloc"


def ensure_fast_allocator() -> None:
    """Re-exec this process with tcmalloc preloaded, once, if it exists and is not loaded."""
    if (
        os.environ.get("GHOST_ALLOCATOR", "tcmalloc") == "system"
        or "tcmalloc" in os.environ.get("LD_PRELOAD", "")
        or os.environ.get("_GHOST_REEXEC")
    ):
        return
    library = find_tcmalloc()
    if library is None or not sys.platform.startswith("linux"):
        return
    env = dict(os.environ, _GHOST_REEXEC="1")
    env["LD_PRELOAD"] = ":".join(p for p in (library, os.environ.get("LD_PRELOAD")) if p)
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:
        return  # could not re-exec: carry on with the system allocator
