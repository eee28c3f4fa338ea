"""The reliability suite's helpers: run `ghost` in a child process, snapshot a run directory.

Child processes run exactly what a user runs (`python -m ghost ...`, tcmalloc re-exec
included) with one thread, so their fp32 results are bitwise reproducible.
"""

import os
import subprocess
import sys
from pathlib import Path

import ghost

SRC = str(Path(ghost.__file__).resolve().parents[1])


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    return env


def ghost_command(*args) -> list[str]:
    return [sys.executable, "-m", "ghost", *map(str, args)]


def run_ghost(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(
        ghost_command(*args), capture_output=True, text=True, env=child_env(), timeout=timeout
    )


def start_ghost(*args) -> subprocess.Popen:
    return subprocess.Popen(
        ghost_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, by relative path: compare before and after a command."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(Path(directory).rglob("*"))
        if p.is_file()
    }
