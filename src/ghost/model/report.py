"""What `ghost info` prints: parameter counts by part, the layer layout, FLOPs per byte."""

from __future__ import annotations

import torch.nn as nn


def matmul_params(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def flops_per_byte(model, seq_len: int) -> dict[str, float]:
    """Forward FLOPs per byte at a context of seq_len: 2 x matmul weights, plus attention.

    The memory encoder runs when facts are written, not per byte; memory layers read an
    empty bank by default and cost nothing then. The scan's own element-wise work is not
    counted (as in MFU, DESIGN.md section 5).
    """
    c = model.config
    dense = 0
    for layer in model.layers:
        dense += matmul_params(layer.mixer) + matmul_params(layer.ffn)
        if layer.kind == "attention":
            dense += matmul_params(layer.extra)
    dense += model.head.weight.numel()
    visible = min(seq_len, c.attention_window) + seq_len // c.attention_stride
    attention = 2 * 2 * c.dim * visible * len(c.attention_layers)  # scores + weighted values
    if model.context_copy is not None:  # its projections, and scores over its window
        dense += matmul_params(model.context_copy)
        attention += 2 * c.memory_key_dim * min(seq_len, c.context_copy_window)
    return {"matmul": 2.0 * dense, "attention": float(attention), "total": 2.0 * dense + attention}


def describe_model(model, seq_len: int = 256) -> str:
    c = model.config
    total = model.num_parameters()
    parts = {
        "embedding (tied head)"
        if c.tie_embeddings
        else "embedding + head": model.embed.weight.numel()
        + (0 if c.tie_embeddings else model.head.weight.numel()),
        "mamba mixers": sum(p.numel() for layer in model.layers for p in layer.mixer.parameters()),
        "ffn": sum(p.numel() for layer in model.layers for p in layer.ffn.parameters()),
        "sparse attention": sum(
            p.numel()
            for layer in model.layers
            if layer.kind == "attention"
            for p in layer.extra.parameters()
        ),
        "memory cross-attention": sum(
            p.numel()
            for layer in model.layers
            if layer.kind == "memory"
            for p in layer.extra.parameters()
        ),
        "memory encoder": sum(p.numel() for p in model.memory.parameters()),
        "memory copy head": sum(p.numel() for p in model.copy.parameters()),
    }
    if model.context_copy is not None:
        parts["context copy head"] = sum(p.numel() for p in model.context_copy.parameters())
    parts["norms"] = total - sum(parts.values())
    lines = [f"parameters: {total:,} ({total / 1e6:.2f}M)"]
    lines += [f"  {name:<24} {count:>10,}" for name, count in parts.items()]
    lines.append(
        f"layout: dim {c.dim}, {c.n_layers} layers, d_state {c.d_state}, expand {c.expand}, "
        f"dt_rank {c.dt_rank}, ffn {c.ffn_hidden} (SwiGLU), heads {c.n_heads}"
    )
    for i, kind in enumerate(c.layer_kinds()):
        extra = {
            "memory": " + memory cross-attention",
            "attention": (
                f" + sparse attention (window {c.attention_window}, stride {c.attention_stride})"
            ),
            "": "",
        }[kind]
        lines.append(f"  layer {i}: mamba{extra} + ffn")
    if model.context_copy is not None:
        lines.append(f"  output: + context copy head (the last {c.context_copy_window} bytes)")
    flops = flops_per_byte(model, seq_len)
    lines.append(
        f"FLOPs per byte (forward, context {seq_len}): {flops['total'] / 1e6:.2f}M "
        f"(matmuls {flops['matmul'] / 1e6:.2f}M, attention {flops['attention'] / 1e6:.3f}M); "
        "training is about 3x that"
    )
    return "\n".join(lines)
