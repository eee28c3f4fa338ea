"""What `train_throughput.py` records beside its numbers, its targets, and its Markdown report.

- `evaluate_targets` : issue 4's targets, each as {target, value, limit, met}; a target whose
  numbers this run did not measure (a `--quick` or `--only` run) says so instead of passing.
- `markdown` : the targets table, then one table per section.
"""

from __future__ import annotations

# --- targets ------------------------------------------------------------------------------


def _step(results: dict, model: str, precision: str, shape: list[int]) -> dict | None:
    for row in results.get("steps", {}).get("configs", []):
        if row["model"] == model and row["precision"] == precision and row["shape"] == shape:
            return row
    return None


def _target(text: str, value: float | None, limit: float, higher_is_better: bool = False) -> dict:
    if value is None:
        return {"target": text, "value": None, "limit": limit, "met": None}
    met = value >= limit if higher_is_better else value <= limit
    return {"target": text, "value": round(value, 3), "limit": limit, "met": met}


def evaluate_targets(results: dict) -> list[dict]:
    """Issue 4's targets from this run's numbers; speed targets use paired round ratios."""
    out = []
    shapes = results["plan"]["shapes"]
    small = list(shapes[0])
    tag = f"{small[0]}x{small[1]}"
    ghost32, ghost16 = (
        _step(results, "ghost", "fp32", small),
        _step(results, "ghost", "bf16", small),
    )
    out.append(
        _target(
            f"Ghost fp32 step at {tag} / GPT fp32 (median of paired rounds) <= 1.0",
            ghost32 and ghost32["ratio_to_gpt_same_precision"]["median"],
            1.0,
        )
    )
    out.append(
        _target(
            f"Ghost bf16 step at {tag} / GPT bf16 <= 1.0",
            ghost16 and ghost16["ratio_to_gpt_same_precision"]["median"],
            1.0,
        )
    )
    out.append(
        _target(
            f"Ghost bf16 step at {tag} / GPT fp32 <= 0.6",
            ghost16 and ghost16["ratio_to_gpt_fp32"]["median"],
            0.6,
        )
    )
    for precision in ("fp32", "bf16"):
        rss = next(
            (
                r
                for r in results.get("rss", {}).get("runs", [])
                if r["model"] == "ghost"
                and r["precision"] == precision
                and r["shape"] == small
                and not r["grad_ckpt"]
                and "peak_rss_mib" in r
            ),
            None,
        )
        out.append(
            _target(
                f"Ghost {precision} peak RSS at {tag} (MiB) <= 1536",
                rss and rss["peak_rss_mib"],
                1536,
            )
        )
    growth = results.get("seqlen", {}).get("ghost_time_4096_over_512")
    out.append(_target("Ghost step time(L=4096) / time(L=512) <= 9", growth, 9.0))
    ckpt = results.get("ckpt", {})
    out.append(
        _target(
            "Grad checkpointing: peak step memory with / without <= 0.5",
            ckpt.get("peak_memory_ratio"),
            0.5,
        )
    )
    out.append(
        _target(
            "Grad checkpointing: step time with / without <= 1.35", ckpt.get("time_ratio"), 1.35
        )
    )
    gen = results.get("generate", {})
    out.append(
        _target(
            "Ghost generation: ms/byte at 4096 context / at 256 <= 1.2",
            gen.get("ghost_flatness_4096_over_256"),
            1.2,
        )
    )
    out.append(
        _target(
            "Ghost generation bytes/s / GPT (KV cache) at 2048 context > 1.0",
            gen.get("ghost_over_gpt_bytes_per_s_at_2048"),
            1.0,
            higher_is_better=True,
        )
    )
    return out


# --- Markdown -----------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _spread(stats: dict) -> str:
    return f"{stats['median']:.1f} ({stats['min']:.1f}-{stats['max']:.1f})"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"# Training throughput: Ghost v5-fast vs a GPT and mambapy ({results['date_utc']})",
        "",
    ]
    if results["plan"]["quick"]:
        lines += ["**Quick smoke run: tiny sizes and repetitions; not the real numbers.**", ""]
    lines += [
        f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads, torch {m['torch']}, "
        f"{m['allocator']}, scan: {m['scan_kernel']}, commit {m['commit'][:10]}"
        f"{' (dirty)' if m['dirty'] else ''}. Medians (min-max) over interleaved rounds.",
        "",
        "## Targets",
        "",
    ]
    rows = []
    for t in results["targets"]:
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        rows.append([t["target"], "-" if t["value"] is None else t["value"], met])
    lines += _table(["target", "measured", ""], rows)
    probe = results["bf16_probe"]
    if "bf16" not in results["plan"]["precisions"]:
        lines += [
            f"bf16 not run: matmul {probe['gflops']['bf16']} GFLOP/s in bf16 against "
            f"{probe['gflops']['fp32']} in fp32 (no native bf16 on this CPU); "
            "`--precisions fp32,bf16` forces it.",
            "",
        ]

    lines += ["## Models", ""]
    rows = [
        [
            name,
            info.get("params_total", "-"),
            info.get("params_without_position_table", "-"),
            info.get("flop_params", "-"),
            info.get("skipped", ""),
        ]
        for name, info in results["models"].items()
    ]
    header = ["model", "parameters", "without position table", "counted in MFU", "skipped"]
    lines += _table(header, rows)

    steps = results.get("steps")
    if steps:
        peak = ", ".join(f"{p} {v:.0f}" for p, v in steps["matmul_peak_gflops"].items())
        lines += [
            "## Training step",
            "",
            f"Matmul peak measured in this run (GFLOP/s): {peak}.",
            "",
        ]
        rows = [
            [
                r["model"],
                r["precision"],
                f"{r['shape'][0]}x{r['shape'][1]}",
                _spread(r["ms_per_step"]),
                f"{r['bytes_per_s']:.0f}",
                f"{100 * r['mfu']:.0f}%",
                r["ratio_to_gpt_same_precision"]["median"],
                r["ratio_to_gpt_fp32"]["median"],
            ]
            for r in steps["configs"]
        ]
        lines += _table(
            ["model", "prec", "BxL", "ms/step", "bytes/s", "MFU", "/GPT same prec", "/GPT fp32"],
            rows,
        )

    rss = results.get("rss")
    if rss:
        lines += ["## Peak RSS (each configuration in its own process)", ""]
        rows = [
            [
                r["model"],
                r["precision"],
                f"{r['shape'][0]}x{r['shape'][1]}",
                "yes" if r["grad_ckpt"] else "no",
                r.get("peak_rss_mib", r.get("error", "?")),
                r.get("rss_after_build_mib", "-"),
            ]
            for r in rss["runs"]
        ]
        lines += _table(["model", "prec", "BxL", "grad ckpt", "peak MiB", "after build MiB"], rows)

    seq = results.get("seqlen")
    if seq:
        lines += [f"## Step time against length (batch {seq['batch']}, fp32)", ""]
        rows = [
            [length, *(_spread(seq[model][str(length)]) for model in ("ghost", "gpt"))]
            for length in seq["lengths"]
        ]
        lines += _table(["L", "Ghost ms/step", "GPT ms/step"], rows)

    gen = results.get("generate")
    if gen:
        lines += [f"## Generation, batch 1, step mode ({gen['bytes_timed']} bytes timed)", ""]
        rows = [
            [
                ctx,
                *(
                    f"{gen[model][str(ctx)]['median']:.2f} "
                    f"({1e3 / gen[model][str(ctx)]['median']:.0f} B/s)"
                    for model in ("ghost", "gpt")
                ),
            ]
            for ctx in gen["contexts"]
        ]
        lines += _table(["context bytes", "Ghost ms/byte", "GPT (KV cache) ms/byte"], rows)

    ckpt = results.get("ckpt")
    if ckpt:
        b, length = ckpt["shape"]
        lines += [f"## Gradient checkpointing (Ghost, {b}x{length}, fp32)", ""]
        rows = [
            [
                mode,
                _spread(ckpt[mode]["ms_per_step"]),
                f"{ckpt[mode]['memory']['peak_bytes'] / 2**20:.0f}",
                f"{ckpt[mode]['memory']['held_after_forward_bytes'] / 2**20:.0f}",
                ckpt[mode].get("peak_rss_mib", "-"),
            ]
            for mode in ("off", "on")
        ]
        lines += _table(
            ["checkpointing", "ms/step", "peak step MiB", "held after forward MiB", "peak RSS MiB"],
            rows,
        )
        lines += [f"Memory method: {ckpt['memory_method']}", ""]
    return "\n".join(lines)
