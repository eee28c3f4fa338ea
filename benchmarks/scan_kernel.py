"""Forward + backward time of the selective scan: PyTorch reference vs the fused C kernel.

    PYTHONPATH=src python benchmarks/scan_kernel.py [--threads 2] [--repeats 15]

One Mamba layer's scan at the training shape (B=32, L=64, ED=512, N=16 by default), with
z, D and delta_bias as the model passes them. Each repeat times the reference and the fused
kernel back to back (paired, after a warm-up), so a slow moment on a shared machine hits
both; medians are reported. Errors are relative to the same maths in float64 (the
reference itself computes in fp32): max |x - x64| / max |x64| over the output and every
input gradient.
Writes benchmarks/results/scan_kernel.json with the machine, threads, dtype and commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ghost.model.scan import selective_scan_ref
from ghost.model.scan_fused import kernel_status, selective_scan_fused

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, length, channels, n):
    g = torch.Generator().manual_seed(0)
    return {
        "u": torch.randn(batch, length, channels, generator=g),
        "delta": torch.randn(batch, length, channels, generator=g) * 0.5,
        "A": -torch.exp(torch.randn(channels, n, generator=g) * 0.5),
        "B": torch.randn(batch, length, n, generator=g),
        "C": torch.randn(batch, length, n, generator=g),
        "D": torch.randn(channels, generator=g),
        "z": torch.randn(batch, length, channels, generator=g),
        "delta_bias": torch.randn(channels, generator=g) * 0.3,
    }


def exact_scan(u, delta, A, B, C, D, z, delta_bias):
    """`selective_scan_ref`'s maths kept in float64, as the yardstick for both scans."""
    delta = F.softplus(delta + delta_bias)
    decay = torch.exp(delta.unsqueeze(-1) * A)  # (B, L, ED, N)
    drive = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, ED, N)
    h, ys = torch.zeros_like(drive[:, 0]), []
    for t in range(u.shape[1]):
        h = decay[:, t] * h + drive[:, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    return (torch.stack(ys, dim=1) + u * D) * F.silu(z)


def forward_backward(scan, inputs, grad_out):
    """(forward seconds, backward seconds, output, gradients)."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    start = time.perf_counter()
    y = scan(**leaves)
    middle = time.perf_counter()
    y.backward(grad_out.to(y.dtype))
    end = time.perf_counter()
    return middle - start, end - middle, y.detach(), {k: v.grad for k, v in leaves.items()}


def max_relative_error(result, exact):
    """Worst of max|x - x64| / max|x64| over the output and each gradient, with its name."""
    (y, grads), (y64, grads64) = result, exact
    pairs = [("y", y, y64)] + [(f"d{k}", grads[k], grads64[k]) for k in NAMES]
    errors = {name: ((a.double() - b).abs().max() / b.abs().max()).item() for name, a, b in pairs}
    worst = max(errors, key=errors.get)
    return errors[worst], worst


def machine_info(threads):
    cpu = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    # Fresh output buffers page-fault on every call under glibc malloc, not under tcmalloc
    # (which `ghost` preloads when the machine has it): say which one this run had.
    maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "commit": commit or "unknown",
        "kernel": kernel_status(),
        "allocator": "tcmalloc" if "tcmalloc" in maps else "libc",
        "load_average_1min": os.getloadavg()[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "scan_kernel.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    inputs = make_inputs(args.batch, args.length, args.channels, args.state)
    grad_out = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1))
    wide = {k: v.double() for k, v in inputs.items()}
    exact = forward_backward(exact_scan, wide, grad_out)[2:]
    scans = {"reference": selective_scan_ref, "fused": selective_scan_fused}
    for scan in scans.values():  # warm-up: the kernel's first call may compile it
        forward_backward(scan, inputs, grad_out)
    times = {name: [] for name in scans}
    for _ in range(args.repeats):
        for name, scan in scans.items():
            times[name].append(forward_backward(scan, inputs, grad_out)[:2])

    results = {}
    for name, scan in scans.items():
        error, where = max_relative_error(forward_backward(scan, inputs, grad_out)[2:], exact)
        forward = statistics.median(t[0] for t in times[name]) * 1e3
        backward = statistics.median(t[1] for t in times[name]) * 1e3
        total = statistics.median(sum(t) for t in times[name]) * 1e3
        results[name] = {
            "forward_ms": round(forward, 2),
            "backward_ms": round(backward, 2),
            "forward_backward_ms": round(total, 2),
            "max_relative_error": error,
            "worst_tensor": where,
        }
        print(
            f"{name:9s}  fwd {forward:8.2f} ms  bwd {backward:8.2f} ms  fwd+bwd {total:8.2f} ms  "
            f"max rel err {error:.2e} ({where})"
        )
    speedup = results["reference"]["forward_backward_ms"] / results["fused"]["forward_backward_ms"]
    print(f"speed-up {speedup:.1f}x  [{kernel_status()}]")

    record = {
        "config": {
            **{k: getattr(args, k) for k in ("batch", "length", "channels", "state")},
            "dtype": "float32",
            "repeats": args.repeats,
            "statistic": "median",
            "inputs": "z, D, delta_bias given; delta_softplus",
        },
        "machine": machine_info(args.threads),
        "results": results,
        "speedup": round(speedup, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
