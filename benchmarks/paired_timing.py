"""Paired, interleaved timing: configurations run round-robin so drift hits them all.

    run_interleaved(cases, rounds)   warm-up of each case, then R rounds; in each round every
                                     case (that takes part) runs its k steps in turn
    summary(case.times)              median, quartiles, min, max (ms)
    paired_ratio(case, reference)    median over shared rounds of mean(case) / mean(reference)

The matmul timers give the peak that MFU is measured against, in the same rounds, and
`probe_bf16` tells whether bf16 matmul is native on this CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Case:
    """One configuration of a paired section; `run` may return its own timed seconds."""

    name: str
    run: Callable[[], float | None]
    steps: int = 1
    every: int = 1  # takes part in rounds r with r % every == 0
    warmup: int = 1
    times: list[list[float]] = field(default_factory=list)  # per round (empty: sat out)


def run_interleaved(cases: list[Case], rounds: int) -> None:
    for case in cases:
        for _ in range(case.warmup):
            case.run()
    for r in range(rounds):
        for case in cases:
            seconds = []
            if r % case.every == 0:
                for _ in range(case.steps):
                    start = time.perf_counter()
                    timed = case.run()
                    seconds.append(timed if timed is not None else time.perf_counter() - start)
            case.times.append(seconds)


def summary(times: list[list[float]], scale: float = 1e3) -> dict:
    """Median, quartiles, min and max of every timed step (ms by default)."""
    flat = sorted(t * scale for round_ in times for t in round_)
    q = statistics.quantiles(flat, n=4) if len(flat) > 1 else [flat[0]] * 3
    return {
        "median": round(statistics.median(flat), 3),
        "q1": round(q[0], 3),
        "q3": round(q[2], 3),
        "min": round(flat[0], 3),
        "max": round(flat[-1], 3),
        "n": len(flat),
    }


def paired_ratio(case: Case, reference: Case) -> dict:
    """Median over rounds both ran of mean(case) / mean(reference), and the ratio of medians."""
    ratios = [
        statistics.fmean(a) / statistics.fmean(b)
        for a, b in zip(case.times, reference.times, strict=True)
        if a and b
    ]
    of_medians = summary(case.times)["median"] / summary(reference.times)["median"]
    return {
        "median": round(statistics.median(ratios), 3),
        "min": round(min(ratios), 3),
        "max": round(max(ratios), 3),
        "rounds": len(ratios),
        "ratio_of_medians": round(of_medians, 3),
    }


def matmul_seconds(precision: str, m: int, k: int, n: int) -> Callable[[int, float], float]:
    """A timer of (m, k) @ (k, n): up to `reps` products or `budget` seconds, per product."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(m, k, generator=g).to(dtype), torch.randn(k, n, generator=g).to(dtype)

    def timed(reps: int, budget: float) -> float:
        start, done = time.perf_counter(), 0
        while done < reps and (done == 0 or time.perf_counter() - start < budget):
            torch.mm(a, b)
            done += 1
        return (time.perf_counter() - start) / done

    return timed


def matmul_case(precision: str, m: int, k: int, n: int, reps: int) -> Case:
    timed = matmul_seconds(precision, m, k, n)
    return Case(f"matmul {precision} {m}x{k}x{n}", lambda: timed(reps, 0.25), warmup=2)


def probe_bf16() -> dict:
    """Is bf16 matmul native here? Without AVX512-BF16/AMX it is emulated, many times slower
    than fp32, and a bf16 training step takes tens of seconds: not worth the run's time."""
    shape = (512, 256, 512)
    rates = {}
    for precision in ("fp32", "bf16"):
        timed = matmul_seconds(precision, *shape)
        timed(2, 0.5)
        rates[precision] = round(2 * 512 * 256 * 512 / timed(10, 0.5) / 1e9, 1)
    return {"shape": list(shape), "gflops": rates, "native": rates["bf16"] >= 0.5 * rates["fp32"]}
