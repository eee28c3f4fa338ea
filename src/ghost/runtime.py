"""Seed, threads and precision, resolved once, in one place, for every entry point."""

from __future__ import annotations

import contextlib
import os
import random

import torch


def configure(threads: int = 0, seed: int | None = None) -> int:
    """Set the CPU thread count (0: all cores) and seed every generator; returns threads."""
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    if seed is not None:
        random.seed(seed)
        torch.manual_seed(seed)
    return threads


def autocast(precision: str):
    """The context a forward pass runs in: bf16 CPU autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
