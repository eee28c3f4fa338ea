"""Training and generation throughput of Ghost v5-fast against a same-size GPT and mambapy.

    .venv/bin/python benchmarks/train_throughput.py            # all: ~10 min fp32-only, 2 cores
    .venv/bin/python benchmarks/train_throughput.py --quick    # smoke run, under a minute
    .venv/bin/python benchmarks/train_throughput.py --only steps,ckpt --rounds 4

Sections (`--only` picks some):
- steps    ms per training step (forward with labels, backward, clip, AdamW, zero_grad) at
           batch 32 x 64 and 8 x 512, fp32 and bf16 autocast, for Ghost, the GPT and
           mambapy; bytes/s; MFU against the matmul peak timed in the same rounds. bf16
           runs only where a probe finds bf16 matmul native (emulated bf16 is ~100x slower
           than fp32 on AVX2-only CPUs); `--precisions fp32,bf16` forces it.
- rss      peak RSS of each configuration, each in its own process (`--one-rss`).
- seqlen   Ghost and GPT step time at lengths 64 ... 4096 (fixed batch, fp32).
- generate ms per byte at batch 1 in step mode (Ghost's recurrent cache, the GPT's KV cache)
           for the 64 bytes that bring the context to 256 ... 4096 bytes.
- ckpt     Ghost at 8 x 512 with and without gradient checkpointing: time, peak step memory
           (tensor bytes from the profiler's allocation events), peak RSS of both.

Comparisons are paired: each section runs its configurations round-robin (warm-up first,
then R rounds of k steps each), so a slow moment on a shared machine hits all of them; a
ratio is the median over rounds of (this configuration's mean step / the GPT's in the same
round). MFU = (6 x parameters x bytes per step + attention score/value FLOPs) / step time /
measured peak (DESIGN.md section 5): parameters are those that receive a gradient in a step
(Ghost's memory layers and encoder idle with an empty bank; the GPT's position table is a
lookup); attention counts only unmasked query-key pairs, 4 x dim FLOPs each forward, x3
with the backward. The scan's FLOPs are not counted.

The script re-executes itself under tcmalloc when the machine has it (as `ghost` does;
`--allocator system` turns that off). Writes benchmarks/results/train_throughput.json and
.md (a `--quick` or `--only` run writes train_throughput-quick / -only-SECTIONS instead), plus
a timestamped copy under results/history/ for full runs. mambapy comes with the bench extra
(scripts/setup.sh installs it); without it that peer is recorded as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn as nn

from ghost.launcher import find_tcmalloc
from ghost.model.ghost import GhostModel
from ghost.runtime import autocast, configure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_measure import proc_status_kib, step_memory  # noqa: E402
from paired_timing import Case, matmul_case, paired_ratio, probe_bf16, run_interleaved, summary  # noqa: E402
from peers import BytesGPT, MambaPyLM, mamba_layer_params  # noqa: E402
from throughput_report import evaluate_targets, markdown  # noqa: E402

from ghost.bench.machine import allocator_loaded, machine_record  # noqa: E402

SECTIONS = ("steps", "rss", "seqlen", "generate", "ckpt")
RESULTS = Path(__file__).resolve().parent / "results"
REEXEC_FLAG = "_GHOST_BENCH_ALLOCATOR_SET"


@dataclass
class Plan:
    """Sizes and repetitions of every section; `QUICK` shrinks them for a smoke run."""

    quick: bool = False
    shapes: tuple[tuple[int, int], ...] = ((32, 64), (8, 512))
    precisions: tuple[str, ...] = ("fp32", "bf16")
    warmup: int = 2
    rounds: int = 8
    steps_per_round: int = 2
    mambapy_every: int = 2  # mambapy steps take seconds: it runs one step every 2nd round
    matmul_reps: int = 20
    seqlen_batch: int = 2
    seqlens: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    seqlen_rounds: int = 3
    contexts: tuple[int, ...] = (256, 1024, 2048, 4096)
    generated_bytes: int = 64
    generate_rounds: int = 5
    ckpt_shape: tuple[int, int] = (8, 512)
    ckpt_rounds: int = 4
    rss_steps: int = 3
    rss_configs: str = "all"  # "all" or "fp32-small" (the quick run's subset)


QUICK = Plan(
    quick=True,
    shapes=((4, 64), (2, 128)),
    warmup=1,
    rounds=2,
    steps_per_round=1,
    matmul_reps=5,
    seqlen_batch=1,
    seqlens=(64, 128, 256),
    seqlen_rounds=1,
    contexts=(64, 128),
    generated_bytes=8,
    generate_rounds=1,
    ckpt_shape=(2, 128),
    ckpt_rounds=1,
    rss_steps=1,
    rss_configs="fp32-small",
)


# --- models and one training step ---------------------------------------------------------


def build_model(name: str, seed: int) -> nn.Module:
    """'ghost' (v5-fast), 'gpt' (8 x 256, SDPA) or 'mambapy' (sized to Ghost's parameters)."""
    torch.manual_seed(seed)
    if name == "ghost":
        return GhostModel.from_preset("v5-fast")
    if name == "gpt":
        return BytesGPT(dim=256, n_layers=8, n_heads=4, max_len=4096)
    if name == "mambapy":
        ghost_params = GhostModel.from_preset("v5-fast").num_parameters()
        # Blocks fill what Ghost has beyond the tied embedding and final norm (256 x 257).
        n_layers = round((ghost_params - 256 * 257) / mamba_layer_params(256))
        torch.manual_seed(seed)
        return MambaPyLM(dim=256, n_layers=n_layers)
    raise ValueError(f"unknown model {name!r}")


def byte_batch(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


class Trainer:
    """The step Ghost's loop takes: forward with labels, backward, clip, AdamW, zero_grad.
    Its phases are labelled for torch.profiler (`step_profile.py`; a label costs about a
    microsecond when nothing profiles)."""

    def __init__(self, model: nn.Module):
        self.model = model.train()
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=3e-4, weight_decay=0.1, fused=True
        )

    def step(self, precision: str, input_ids: torch.Tensor) -> None:
        with torch.profiler.record_function("forward"), autocast(precision):
            loss = self.model(input_ids, labels=input_ids).loss
        with torch.profiler.record_function("backward"):
            loss.backward()
        with torch.profiler.record_function("optimizer"):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def flop_params(model: nn.Module) -> int:
    """Parameters that receive a gradient in a step, less position tables (lookups only)."""
    ids = byte_batch(2, 16)
    model(ids, labels=ids).loss.backward()
    count = sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.grad is not None and "pos_embed" not in name
    )
    model.zero_grad(set_to_none=True)
    return count


def attention_flops(name: str, model: nn.Module, batch: int, length: int) -> int:
    """Score and value FLOPs of a training step over the unmasked pairs: 12 x dim per pair."""
    if name == "gpt":
        pairs = length * (length + 1) // 2
        return 12 * model.config["dim"] * model.config["n_layers"] * batch * pairs
    if name == "ghost":
        c = model.config
        w, s = c.attention_window, c.attention_stride
        pairs = sum(min(i + 1, w) + max(0, (i - w + 1) // s) for i in range(length))
        return 12 * c.dim * c.layer_kinds().count("attention") * batch * pairs
    return 0


def describe(name: str, model: nn.Module) -> dict:
    config = model.config.to_dict() if name == "ghost" else dict(model.config)
    info = {"config": config, "params_total": sum(p.numel() for p in model.parameters())}
    if name == "gpt":
        info["params_without_position_table"] = (
            info["params_total"] - model.pos_embed.weight.numel()
        )
    info["flop_params"] = flop_params(model)
    return info


# --- sections -----------------------------------------------------------------------------


def section_steps(plan: Plan, args, models: dict) -> dict:
    """Every model x precision x shape, plus the matmul peak, in one round-robin."""
    trainers = {name: Trainer(build_model(name, args.seed)) for name in models}
    cases, meta = [], {}
    for shape in plan.shapes:
        ids = byte_batch(*shape)
        for precision in plan.precisions:
            for name, trainer in trainers.items():
                slow = name == "mambapy"
                case = Case(
                    f"{name} {precision} {shape[0]}x{shape[1]}",
                    lambda t=trainer, p=precision, x=ids: t.step(p, x),
                    steps=1 if slow else plan.steps_per_round,
                    every=plan.mambapy_every if slow else 1,
                    warmup=1 if slow else plan.warmup,
                )
                cases.append(case)
                meta[case.name] = (name, precision, shape)
    peaks = [
        matmul_case(p, m, k, n, plan.matmul_reps)
        for p in plan.precisions
        for m, k, n in ((2048, 256, 1024), (2048, 1024, 256))
    ]
    run_interleaved(cases + peaks, plan.rounds)

    peak_gflops, per_shape = {}, {}
    for case in peaks:
        m, k, n = (int(v) for v in case.name.split()[-1].split("x"))
        gflops = 2 * m * k * n / (summary(case.times)["median"] / 1e3) / 1e9  # ms: sub-ms on AMX
        per_shape[case.name] = round(gflops, 1)
        precision = case.name.split()[1]
        peak_gflops[precision] = max(peak_gflops.get(precision, 0.0), gflops)

    by_name = {c.name: c for c in cases}
    rows = []
    for case in cases:
        name, precision, shape = meta[case.name]
        stats = summary(case.times)
        seconds = stats["median"] / 1e3
        model = trainers[name].model
        flops = 6 * models[name]["flop_params"] * shape[0] * shape[1]
        flops += attention_flops(name, model, *shape)
        gpt_same = by_name[f"gpt {precision} {shape[0]}x{shape[1]}"]
        gpt_fp32 = by_name[f"gpt fp32 {shape[0]}x{shape[1]}"]
        rows.append(
            {
                "model": name,
                "precision": precision,
                "shape": list(shape),
                "ms_per_step": stats,
                "bytes_per_s": round(shape[0] * shape[1] / seconds, 1),
                "flops_per_step": flops,
                "mfu": round(flops / seconds / (peak_gflops[precision] * 1e9), 4),
                "ratio_to_gpt_same_precision": paired_ratio(case, gpt_same),
                "ratio_to_gpt_fp32": paired_ratio(case, gpt_fp32),
            }
        )
    return {
        "configs": rows,
        "matmul_peak_gflops": {p: round(v, 1) for p, v in peak_gflops.items()},
        "matmul_gflops_by_shape": per_shape,
        "bytes_per_step": "batch x length (every input byte)",
    }


def one_rss(model_name: str, precision: str, shape: str, grad_ckpt: bool, steps: int, seed: int):
    """Child process: a few training steps, then this process's peak RSS as one JSON line."""
    batch, length = (int(v) for v in shape.split("x"))
    model = build_model(model_name, seed)
    if grad_ckpt:
        model.gradient_checkpointing = True
    trainer, ids = Trainer(model), byte_batch(batch, length)
    after_build = proc_status_kib("VmRSS")
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(precision, ids)
    # VmHWM, not ru_maxrss: Linux keeps the high-water mark of the memory a process had
    # before exec, so a child of a 1 GB parent reports ru_maxrss >= 1 GB.
    peak = proc_status_kib("VmHWM")
    record = {
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_after_build_mib": round(after_build / 1024, 1),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 2),
        "allocator": allocator_loaded(),
    }
    print(json.dumps(record))


def rss_in_child(args, plan: Plan, model: str, precision: str, shape, grad_ckpt=False) -> dict:
    tag = f"{shape[0]}x{shape[1]}"
    command = [sys.executable, str(Path(__file__).resolve()), "--one-rss", model, precision, tag]
    command += ["--threads", str(args.threads), "--seed", str(args.seed)]
    command += ["--rss-steps", str(plan.rss_steps)] + (["--grad-ckpt"] if grad_ckpt else [])
    row = {"model": model, "precision": precision, "shape": list(shape), "grad_ckpt": grad_ckpt}
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "error": f"exit {done.returncode}: {last}"}
    return {**row, **json.loads(lines[-1])}


def section_rss(plan: Plan, args, models: dict) -> dict:
    runs = []
    for shape in plan.shapes[:1] if plan.rss_configs == "fp32-small" else plan.shapes:
        for precision in ("fp32",) if plan.rss_configs == "fp32-small" else plan.precisions:
            for name in models:
                runs.append(rss_in_child(args, plan, name, precision, shape))
                print(f"  rss {runs[-1]}", flush=True)
    method = "VmHWM (peak RSS) of a child process running build + steps; ru_maxrss beside it"
    return {"runs": runs, "method": method}


def section_seqlen(plan: Plan, args) -> dict:
    trainers = {name: Trainer(build_model(name, args.seed)) for name in ("ghost", "gpt")}
    cases = {}
    for length in plan.seqlens:
        ids = byte_batch(plan.seqlen_batch, length)
        for name, trainer in trainers.items():
            cases[name, length] = Case(
                f"{name} L={length}", lambda t=trainer, x=ids: t.step("fp32", x), warmup=1
            )
    run_interleaved(list(cases.values()), plan.seqlen_rounds)
    out = {"batch": plan.seqlen_batch, "precision": "fp32", "lengths": list(plan.seqlens)}
    for name in trainers:
        out[name] = {str(length): summary(cases[name, length].times) for length in plan.seqlens}
    if 512 in plan.seqlens and 4096 in plan.seqlens:
        for name in trainers:
            ratio = paired_ratio(cases[name, 4096], cases[name, 512])
            out[f"{name}_time_4096_over_512"] = ratio["median"]
    return out


@torch.no_grad()
def time_generation(name: str, model: nn.Module, context: int, n_bytes: int) -> float:
    """Seconds per byte for the `n_bytes` steps that bring the context to `context` bytes."""
    prompt = byte_batch(1, context - n_bytes, seed=2)
    if name == "ghost":
        out = model(prompt, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1]
    else:
        cache = model.empty_cache(1, context)
        logits = model.prefill(prompt, cache)
    start = time.perf_counter()
    for _ in range(n_bytes):
        logits = model.step(logits.argmax(-1), cache)
    return (time.perf_counter() - start) / n_bytes


def section_generate(plan: Plan, args) -> dict:
    models = {name: build_model(name, args.seed).eval() for name in ("ghost", "gpt")}
    n = plan.generated_bytes
    cases = {
        (name, ctx): Case(
            f"{name} ctx={ctx}", lambda m=m, a=name, c=ctx: time_generation(a, m, c, n)
        )
        for ctx in plan.contexts
        for name, m in models.items()
    }
    run_interleaved(list(cases.values()), plan.generate_rounds)
    out = {"batch": 1, "precision": "fp32", "bytes_timed": n, "contexts": list(plan.contexts)}
    out["unit"] = "ms per generated byte (greedy argmax included, prefill excluded)"
    for name in models:
        out[name] = {str(ctx): summary(cases[name, ctx].times) for ctx in plan.contexts}
    if 256 in plan.contexts and 4096 in plan.contexts:
        out["ghost_flatness_4096_over_256"] = paired_ratio(
            cases["ghost", 4096], cases["ghost", 256]
        )["median"]
    if 2048 in plan.contexts:  # bytes/s ratio = inverse time ratio
        ratio = paired_ratio(cases["ghost", 2048], cases["gpt", 2048])["median"]
        out["ghost_over_gpt_bytes_per_s_at_2048"] = round(1 / ratio, 3)
    return out


def section_ckpt(plan: Plan, args) -> dict:
    trainer, ids = Trainer(build_model("ghost", args.seed)), byte_batch(*plan.ckpt_shape)
    model = trainer.model

    def step_with(flag: bool) -> None:
        model.gradient_checkpointing = flag
        trainer.step("fp32", ids)

    cases = {flag: Case(f"ckpt {flag}", lambda f=flag: step_with(f)) for flag in (False, True)}
    run_interleaved(list(cases.values()), plan.ckpt_rounds)
    out = {"shape": list(plan.ckpt_shape), "precision": "fp32"}
    for flag, mode in ((False, "off"), (True, "on")):
        model.gradient_checkpointing = flag
        rss = rss_in_child(args, plan, "ghost", "fp32", plan.ckpt_shape, grad_ckpt=flag)
        out[mode] = {
            "ms_per_step": summary(cases[flag].times),
            "memory": step_memory(model, "fp32", ids),
            "peak_rss_mib": rss.get("peak_rss_mib", rss.get("error")),
            "rss_after_build_mib": rss.get("rss_after_build_mib"),
        }
    model.gradient_checkpointing = False
    out["time_ratio"] = paired_ratio(cases[True], cases[False])["median"]
    out["peak_memory_ratio"] = round(
        out["on"]["memory"]["peak_bytes"] / out["off"]["memory"]["peak_bytes"], 3
    )
    out["memory_method"] = (
        "torch.profiler CPU memory events (tensor bytes allocated minus freed), relative to "
        "just before the forward; peak over forward + backward, optimizer step excluded; "
        "gradients count in the peak"
    )
    return out


# --- driver -------------------------------------------------------------------------------


def use_allocator(choice: str) -> None:
    """Re-execute once with tcmalloc preloaded (or removed, for 'system') if needed."""
    if os.environ.get(REEXEC_FLAG) or not sys.platform.startswith("linux"):
        return
    preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
    has = any("tcmalloc" in p for p in preload)
    if choice == "tcmalloc" and not has and (library := find_tcmalloc()):
        preload = [library, *preload]
    elif choice == "system" and has:
        preload = [p for p in preload if "tcmalloc" not in p]
    else:
        os.environ[REEXEC_FLAG] = "1"  # children keep this process's choice
        return
    env = dict(os.environ, LD_PRELOAD=":".join(preload))
    env[REEXEC_FLAG] = "1"
    with contextlib.suppress(OSError):
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def output_paths(args, sections: list[str], quick: bool) -> tuple[Path, Path | None]:
    """(JSON path, history copy or None): partial runs never overwrite the full result."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if args.out:
        return args.out, None
    if quick:
        return RESULTS / "train_throughput-quick.json", None
    if list(sections) != list(SECTIONS):
        tag = "-".join(sections)
        return RESULTS / f"train_throughput-only-{tag}.json", None
    return RESULTS / "train_throughput.json", RESULTS / "history" / f"train_throughput-{stamp}.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and reps: a smoke run")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma list of " + ",".join(SECTIONS)
    )
    parser.add_argument("--rounds", type=int, help="rounds of every interleaved section")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precisions",
        choices=("auto", "fp32", "fp32,bf16"),
        default="auto",
        help="auto: bf16 too when this CPU's bf16 matmul is native (probed)",
    )
    parser.add_argument("--allocator", choices=("tcmalloc", "system"), default="tcmalloc")
    parser.add_argument("--out", type=Path, help="JSON path (Markdown beside it, .md)")
    parser.add_argument(
        "--one-rss", nargs=3, metavar=("MODEL", "PRECISION", "BxL"), help=argparse.SUPPRESS
    )
    parser.add_argument("--grad-ckpt", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-steps", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    use_allocator(args.allocator)
    args.threads = configure(args.threads, args.seed)
    if args.one_rss:
        one_rss(*args.one_rss, args.grad_ckpt, args.rss_steps, args.seed)
        return

    plan = dataclasses.replace(QUICK if args.quick else Plan())
    if args.rounds:
        for name in ("rounds", "seqlen_rounds", "generate_rounds", "ckpt_rounds"):
            setattr(plan, name, args.rounds)
    probe = probe_bf16()
    if args.precisions == "fp32" or (args.precisions == "auto" and not probe["native"]):
        plan.precisions = ("fp32",)
    sections = [s for s in SECTIONS if s in args.only.split(",")]
    out_path, history_path = output_paths(args, sections, args.quick)
    began = time.perf_counter()
    results = {
        "benchmark": "train_throughput",
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine_record(args.threads),  # also builds the scan kernel if needed
        "plan": {**dataclasses.asdict(plan), "seed": args.seed, "sections": sections},
        "bf16_probe": probe,
        "optimizer": "AdamW(lr=3e-4, weight_decay=0.1, fused), clip_grad_norm 1.0, zero_grad(None)",
        "models": {},
        "wall_seconds": {},
    }
    print(f"machine: {results['machine']}", flush=True)
    for name in ("ghost", "gpt", "mambapy"):
        try:
            results["models"][name] = describe(name, build_model(name, args.seed))
        except ImportError as exc:
            results["models"][name] = {"skipped": f"mambapy not importable ({exc})"}
        info = results["models"][name]
        if "skipped" in info:
            print(f"{name}: skipped, {info['skipped']}", flush=True)
            continue
        line = f"{name}: {info['params_total']} parameters"
        if "params_without_position_table" in info:
            line += f" ({info['params_without_position_table']} without the position table)"
        print(line + f", {info['flop_params']} counted in MFU", flush=True)
    runnable = {n: m for n, m in results["models"].items() if "skipped" not in m}

    for section in sections:
        start = time.perf_counter()
        print(f"[{section}] ...", flush=True)
        if section == "steps":
            results["steps"] = section_steps(plan, args, runnable)
        elif section == "rss":
            results["rss"] = section_rss(plan, args, runnable)
        elif section == "seqlen":
            results["seqlen"] = section_seqlen(plan, args)
        elif section == "generate":
            results["generate"] = section_generate(plan, args)
        elif section == "ckpt":
            results["ckpt"] = section_ckpt(plan, args)
        results["wall_seconds"][section] = round(time.perf_counter() - start, 1)
        print(f"[{section}] {results['wall_seconds'][section]} s", flush=True)
    results["wall_seconds"]["total"] = round(time.perf_counter() - began, 1)
    results["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    results["targets"] = evaluate_targets(results)

    paths = [p for p in (out_path, history_path) if p]
    for path in paths:  # the numbers first, so a report bug never loses a run
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    for path in paths:
        path.with_suffix(".md").write_text(report + "\n")
    print(report)
    print(f"wrote {out_path}" + (f" and {history_path}" if history_path else ""))


if __name__ == "__main__":
    main()
