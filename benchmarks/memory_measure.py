"""How much memory a training step takes.

- `step_memory`: tensor bytes from the profiler's allocation events (allocated minus freed),
  relative to just before the forward: what the forward holds for the backward, and the
  peak over forward + backward. Independent of the allocator's caching.
- `proc_status_kib`: VmRSS / VmHWM of this process from /proc (peak RSS per process).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ghost.runtime import autocast


def _live_bytes(prof) -> tuple[int, int]:
    """(final, peak) of tensor bytes allocated minus freed during a profiled region."""
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        peak = max(peak, live)
    return live, peak


def step_memory(model: nn.Module, precision: str, ids: torch.Tensor) -> dict:
    """Tensor memory a forward holds for the backward, and the peak over forward + backward."""
    profile = torch.profiler.profile
    cpu = [torch.profiler.ProfilerActivity.CPU]
    with profile(activities=cpu, profile_memory=True) as forward_prof, autocast(precision):
        loss = model(ids, labels=ids).loss
    held, forward_peak = _live_bytes(forward_prof)
    with profile(activities=cpu, profile_memory=True) as backward_prof:
        loss.backward()
    _, backward_peak = _live_bytes(backward_prof)
    model.zero_grad(set_to_none=True)
    return {"held_after_forward_bytes": held, "peak_bytes": max(forward_peak, held + backward_peak)}


def proc_status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0
