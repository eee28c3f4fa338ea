"""`train(...)`: the training loop, one readable function, and what it needs to start.

    data -> batcher -> [recipes: on_batch] -> forward (autocast) -> [on_loss] -> backward
         -> clip -> AdamW step at the scheduled LR -> [on_step_end: check, save, log]

The schedule is linear warm-up, then cosine decay to `min_lr_ratio` for a fixed number of
steps, or constant (lowered on plateaus by `ProgressCheck`) for `--steps auto`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ghost.config import GhostConfig, TrainConfig
from ghost.data.batches import QABatcher, TextBatcher
from ghost.data.records import Dataset, load_data
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.ghost import GhostModel
from ghost.model.io import CONFIG_NAME, load_model, read_run_config
from ghost.runtime import autocast, configure
from ghost.train.checkpoint import (
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import build_recipes
from ghost.train.services import Checkpointer, MetricsLogger, ProgressCheck


@dataclass
class TrainResult:
    model: GhostModel
    run_dir: Path
    steps: int
    stop_reason: str
    seconds: float
    metrics: dict[str, float]


def learning_rate(cfg: TrainConfig, step: int, total_steps: int | None) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total_steps is None:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on vectors (norms, biases, D), A_log or the embedding."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.dim() < 2 or getattr(p, "_no_weight_decay", False) or "embed" in name
        (no_decay if skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def make_batcher(dataset: Dataset, model_config: GhostConfig, cfg: TrainConfig):
    if dataset.kind == "qa":
        return QABatcher(dataset, QATemplate.from_config(model_config), cfg.batch_size, cfg.seq_len,
                         cfg.answer_only_loss, cfg.seed)
    return TextBatcher(dataset, cfg.batch_size, cfg.seq_len, cfg.seed)


def _prepare_model(cfg: TrainConfig, model_config: GhostConfig | None, run_dir: Path) -> GhostModel:
    if cfg.resume:
        read_run_config(run_dir)  # a clear error if the run directory is missing or broken
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise GhostInputError(f"{run_dir}: nothing to resume (no complete checkpoint)")
        return load_model(checkpoint)
    if (run_dir / CONFIG_NAME).exists():
        raise GhostInputError(f"{run_dir}: already holds a run; pass --resume to continue it, "
                              "or choose another --out")
    return GhostModel(model_config or GhostConfig.from_preset(cfg.preset))


def train(config: TrainConfig | None = None, model_config: GhostConfig | None = None,
          recipes: list[Recipe] | None = None, dataset: Dataset | None = None,
          **overrides) -> TrainResult:
    """Train a Ghost model; what `ghost train` calls. Keyword overrides set TrainConfig fields."""
    cfg = replace(config or TrainConfig(), **overrides)
    threads = configure(cfg.threads, cfg.seed)
    run_dir = Path(cfg.out)
    dataset = dataset or load_data(cfg.data)
    model = _prepare_model(cfg, model_config, run_dir)
    batcher = make_batcher(dataset, model.config, cfg)
    optimizer = make_optimizer(model, cfg)
    total = None if cfg.steps == "auto" else int(cfg.steps)
    state = TrainState(cfg, model, optimizer, batcher, run_dir, total_steps=total)
    every = cfg.eval_every or max(20, batcher.steps_per_epoch)
    run_config = {"train": {**cfg.to_dict(), "threads": threads, "data_name": dataset.name}}
    hooks = [*(recipes or []), *build_recipes(cfg.recipes),
             ProgressCheck(every, cfg.patience),
             Checkpointer(cfg.save_every or every, lambda s: _save(s, hooks, run_config)),
             MetricsLogger(cfg.quiet)]

    if cfg.resume:
        saved = load_trainer_state(latest_checkpoint(run_dir) / "trainer_state.pt")
        _restore(state, hooks, saved)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    for hook in hooks:
        hook.on_train_begin(state)

    while state.stop_reason is None:
        started = time.perf_counter()
        batch = batcher.next_batch(state.seq_len)
        for hook in hooks:
            batch = hook.on_batch(state, batch) if batch is not None else None
        if batch is None or batch.n_target_bytes == 0:
            state.skipped_steps += 1
            state.step += 1
            _end_step(state, hooks, {"loss": math.nan})
            continue
        lr = learning_rate(cfg, state.step, total) * state.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(cfg.precision):
            output = model(batch.input_ids, labels=batch.labels)
        loss = output.loss
        for hook in hooks:
            loss = hook.on_loss(state, loss, output, batch)
        if not torch.isfinite(loss):
            state.nonfinite_steps += 1
            optimizer.zero_grad(set_to_none=True)
            if state.nonfinite_steps >= 20:
                raise FloatingPointError("the loss was NaN or infinite 20 times; "
                                         f"the last good checkpoint is in {run_dir / 'checkpoints'}")
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        state.step += 1
        _end_step(state, hooks, {
            "loss": float(loss.detach()), "lr": lr, "seq_len": batch.input_ids.shape[1],
            "batch_rows": batch.input_ids.shape[0], "target_bytes": batch.n_target_bytes,
            "step_seconds": time.perf_counter() - started})

    for hook in hooks:
        hook.on_train_end(state)
    model.eval()
    model.memory.refresh()
    return TrainResult(model, run_dir, state.step, state.stop_reason, state.elapsed, dict(state.history))


def _end_step(state: TrainState, hooks: list[Recipe], metrics: dict[str, float]) -> None:
    metrics["elapsed_seconds"] = state.elapsed
    for hook in hooks:
        hook.on_step_end(state, metrics)
    state.history.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})


def _save(state: TrainState, hooks: list[Recipe], run_config: dict) -> None:
    trainer_state = {
        "step": state.step,
        "optimizer": state.optimizer.state_dict(),
        "batcher": state.batcher.state_dict(),
        "rng": rng_state(),
        "lr_scale": state.lr_scale,
        "elapsed": state.elapsed,
        "skipped_steps": state.skipped_steps,
        "nonfinite_steps": state.nonfinite_steps,
        "hooks": {hook.name: hook.state_dict() for hook in hooks},
    }
    save_checkpoint(state.run_dir, state.model, trainer_state, run_config, state.config.keep_checkpoints)


def _restore(state: TrainState, hooks: list[Recipe], saved: dict) -> None:
    state.step = int(saved["step"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.batcher.load_state_dict(saved["batcher"])
    set_rng_state(saved["rng"])
    state.lr_scale = float(saved["lr_scale"])
    state.elapsed_before = float(saved["elapsed"])
    state.skipped_steps = int(saved["skipped_steps"])
    state.nonfinite_steps = int(saved["nonfinite_steps"])
    for hook in hooks:
        if hook.name in saved["hooks"]:
            hook.load_state_dict(saved["hooks"][hook.name])
