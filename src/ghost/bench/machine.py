"""What a benchmark records beside its numbers: the machine, the software, the commit.

    machine_record(threads) -> {"platform", "cpu", "cpu_family_model", "cpu_flags", "cores",
                                "python", "torch", "threads", "precision", "allocator",
                                "scan_kernel", "commit", "dirty", "load_average_1min_at_start"}

Speeds are only comparable as ratios measured in one run on one machine; these fields say
which machine, so a reader can tell two results apart.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from ghost.model.scan_fused import kernel_status
from ghost.runtime import resolve_precision

REPO = Path(__file__).resolve().parents[3]  # the checkout, when run from one


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_family_model() -> str:
    """x86 "family F model M": it tells apart CPUs that share a model name ("AMD EPYC")."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if len(fields) < 2:
        return "unknown"
    return f"family {fields['cpu family']} model {fields['model']}"


def cpu_flags() -> list[str]:
    """The CPU features that decide Ghost's speed (vector width, native bf16)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def allocator_loaded() -> str:
    """The allocator this process really has (not merely the one asked for)."""
    maps = Path("/proc/self/maps")
    text = maps.read_text() if maps.exists() else ""
    return "tcmalloc" if "tcmalloc" in text else "system malloc"


def code_version() -> dict:
    """{"commit", "dirty"} of the checkout as it is now: take it when the code is loaded, as
    a long run's record of the code it ran (a later commit does not change what it runs)."""
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def machine_record(threads: int, ghost_subprocesses: bool = False) -> dict:
    """The record; with `ghost_subprocesses`, "allocator" is the one the timed `ghost`
    commands (child processes, started through the tcmalloc launcher) run with, not this
    process's own."""
    if ghost_subprocesses:
        from ghost.launcher import find_tcmalloc

        allocator = "tcmalloc" if find_tcmalloc() else "system malloc"
    else:
        allocator = allocator_loaded()
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_family_model": _cpu_family_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "precision": resolve_precision("auto"),
        "allocator": allocator,
        "scan_kernel": kernel_status(),
        **code_version(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }
