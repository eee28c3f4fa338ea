"""`train(...)`: the training loop, one readable function, and what it needs to start.

    data -> batcher -> [recipes: on_batch] -> this rank's rows -> forward (autocast)
         -> loss, per-row stats -> [on_loss] -> backward -> [on_backward] -> clip
         -> AdamW step at the scheduled LR -> update multipliers -> [on_optimizer_step]
         -> [on_step_end: check, log, save]

The schedule is linear warm-up, then cosine decay to `min_lr_ratio` for a fixed number of
steps, or constant (lowered on plateaus by `ProgressCheck`) for `--steps auto`.

What the loop guarantees (docs/guarantees.md):
- a step whose loss or gradient is NaN/inf changes nothing (no optimiser step) and is
  counted; `max_nonfinite_steps` of them in a row stop the run with `TrainingDiverged`,
  and no checkpoint is written while the latest step was non-finite, so the last one
  saved holds good weights;
- Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and returns with
  `interrupted=True`; a second signal aborts at once;
- under torchrun the ranks train one global batch together (`train/distributed.py`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ghost.config import GhostConfig, TrainConfig
from ghost.data.batches import (
    IGNORE,
    Batch,
    QABatcher,
    TextBatcher,
    length_batches,
    run_in_groups,
)
from ghost.data.mixture import load_training_data, split_validation
from ghost.data.records import Dataset, load_data
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.ghost import GhostModel, ModelOutput, next_byte_loss, scored_positions
from ghost.model.io import CONFIG_NAME, load_memory, load_model, read_run_config
from ghost.model.memory_batch import MemoryBatch
from ghost.runtime import autocast, configure, resolve_precision
from ghost.train.checkpoint import (
    STATE_NAME,
    latest_checkpoint,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trim_metrics,
)
from ghost.train.distributed import DataParallel
from ghost.train.hooks import Recipe, RowStats, TrainState
from ghost.train.recipes import build_recipes
from ghost.train.services import Checkpointer, MetricsLogger, ProgressCheck

if TYPE_CHECKING:
    from ghost.train.memory import MemoryTraining

INTERRUPTED = "interrupted"


class TrainingDiverged(RuntimeError):
    """The loss or gradients stayed NaN/inf for `max_nonfinite_steps` steps in a row."""


@dataclass
class TrainResult:
    model: GhostModel
    run_dir: Path
    steps: int
    stop_reason: str
    seconds: float
    metrics: dict[str, float]
    interrupted: bool = False  # Ctrl-C: a checkpoint of step `steps` was saved
    nonfinite_steps: int = 0  # steps skipped because the loss or gradients were NaN/inf


def learning_rate(cfg: TrainConfig, step: int, total_steps: int | None) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if total_steps is None:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on vectors (norms, biases, D), A_log or the embedding.

    The fused implementation (one kernel over all parameters) takes 5 ms a step for v5-fast
    on 2 cores against 16 ms for the per-parameter loop; same update rule."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.dim() < 2 or getattr(p, "_no_weight_decay", False) or "embed" in name
        (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True)


def make_batcher(dataset: Dataset, model_config: GhostConfig, cfg: TrainConfig):
    if dataset.kind == "qa":
        return QABatcher(
            dataset,
            QATemplate.from_config(model_config),
            cfg.batch_size,
            cfg.seq_len,
            cfg.answer_only_loss,
            cfg.seed,
            cfg.augment,
            cfg.group_by_length,
        )
    return TextBatcher(dataset, cfg.batch_size, cfg.seq_len, cfg.seed)


def row_stats(per_byte_loss: torch.Tensor, logits: torch.Tensor, batch: Batch) -> RowStats:
    """Per-row loss, confidence and correctness from a forward pass's (B, L-1) losses."""
    with torch.no_grad():
        targets = batch.labels[:, 1:]
        is_target = targets != IGNORE
        n = is_target.sum(1)
        per_byte = per_byte_loss.detach().float()
        wrong = (logits[:, :-1].detach().argmax(-1) != targets) & is_target
        return RowStats(
            indices=batch.indices,
            loss=per_byte.sum(1) / n.clamp(min=1),
            confidence=(torch.exp(-per_byte) * is_target).sum(1) / n.clamp(min=1),
            correct=~wrong.any(1) & (n > 0),
            n_targets=n,
        )


def forward_by_length(net, batch: Batch, memory: MemoryBatch | None = None) -> ModelOutput:
    """The batch's forward pass with logits only where a byte is scored, its rows run in
    groups of similar length (`length_batches`) and the logits put back in place: rows are
    independent and padded on the right, so each row's logits are the one-pass ones (up to
    rounding), while the padding a short row would get in a batch of long ones is not
    computed (~30% of a facts200 batch's bytes). `memory` (per row, as memory training
    gives it) is split with the rows."""
    at = scored_positions(batch.labels)
    rows, width = batch.labels.shape
    scored = at.any(1)
    # A row's length: through its last target byte (the rest is padding).
    last = torch.where(scored, width - 1 - at.flip(1).int().argmax(1), 0)
    lengths = (last + 2).clamp(max=width).tolist()
    groups = length_batches(list(range(rows)), lengths, rows)
    if len(groups) == 1:
        return net(batch.input_ids, logits_at=at, memory=memory)
    if memory is not None:  # the entries' keys and values, projected once for all groups
        memory = net.prepare_memory(memory)

    def run(group: list[int], w: int) -> torch.Tensor:
        index = torch.tensor(group, device=at.device)
        rows_memory = None
        if memory is not None:
            rows_memory = memory.select(index)
            if rows_memory.read_at is not None:
                rows_memory.read_at = rows_memory.read_at[:, :w]
        output = net(batch.input_ids[index, :w], logits_at=at[index, :w], memory=rows_memory)
        return output.logits

    return ModelOutput(None, run_in_groups(run, groups, lengths, width))


def apply_update_scale(
    model: torch.nn.Module, scale: dict, before: dict[str, torch.Tensor]
) -> None:
    """p = p_before + m * (p_after - p_before) for every parameter with a multiplier m."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, m in scale.items():
            p = params[name]
            p.lerp_(before[name], 1 - m if isinstance(m, float) else (1 - m).to(p.dtype))


class NonfiniteGuard:
    """Counts steps whose loss or gradients were NaN/inf; too many in a row stop the run."""

    def __init__(self, limit: int):
        self.limit, self.streak, self.first_bad_step = limit, 0, 0

    def record(self, state: TrainState, finite: bool) -> None:
        """Called after step `state.step` (1-based) was taken or skipped."""
        if finite:
            self.streak = 0
            return
        state.nonfinite_steps += 1
        self.streak += 1
        if self.streak == 1:
            self.first_bad_step = state.step
        if self.streak >= self.limit:
            state.stop_reason = (
                f"the loss or gradients were NaN or infinite for {self.streak} "
                f"steps in a row (steps {self.first_bad_step}-{state.step})"
            )

    @property
    def tripped(self) -> bool:
        return self.streak >= self.limit


class StopOnInterrupt:
    """Ctrl-C (SIGINT) or SIGTERM during training asks the loop to stop after the current
    step and save; a second signal aborts at once.

    SIGTERM is what `kill`, `docker stop`, Slurm and torchrun send before they kill, so a
    stopped job keeps its last step. Only the main thread can take signals, and a handler
    someone else installed (or an ignored signal) is left alone.
    """

    SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def __init__(self):
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            for signum, default in self.SIGNALS.items():
                if signal.getsignal(signum) is default:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _resume_point(cfg: TrainConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from (None for a fresh run), checking the run directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GhostInputError(f"{run_dir}: is a file, expected a run directory (--out)")
    if not cfg.resume:
        if (run_dir / CONFIG_NAME).exists():
            raise GhostInputError(
                f"{run_dir}: already holds a run; pass --resume to continue "
                "it, or choose another --out"
            )
        return None
    read_run_config(run_dir)  # a clear error if the run directory is missing or broken
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise GhostInputError(f"{run_dir}: nothing to resume (no complete checkpoint)")
    return checkpoint


def _memory_training(cfg: TrainConfig, dataset: Dataset, dp) -> list[Recipe]:
    """The memory-training service when the config and the data call for it."""
    from ghost.train.memory import MemoryTraining, records_carry_facts

    if cfg.memory_training == "off":
        return []
    if dataset.kind != "qa":
        if cfg.memory_training == "on":
            raise GhostInputError(
                f"--memory-training on: {dataset.name} holds text records; memory training "
                "needs Q&A records"
            )
        return []
    if cfg.memory_training == "auto" and not records_carry_facts(dataset.records):
        return []  # "on" without facts: reading is practised on generated facts alone
    if dp.world_size > 1:
        raise GhostInputError(
            "memory training does not run under torchrun yet: pass --memory-training off"
        )
    frozen = cfg.memory_stage_trains == "memory"
    return [
        MemoryTraining(
            stage_steps=cfg.memory_steps,
            freeze_weights=frozen,
            stage_own_rows=cfg.memory_stage_own_rows,
        )
    ]


def train(
    config: TrainConfig | None = None,
    model_config: GhostConfig | None = None,
    recipes: list[Recipe] | None = None,
    dataset: Dataset | None = None,
    **overrides,
) -> TrainResult:
    """Train a Ghost model; what `ghost train` calls. Keyword overrides set TrainConfig fields.

    Under torchrun, `batch_size` is per process: the global batch is batch_size x ranks.
    """
    cfg = replace(config or TrainConfig(), **overrides)
    precision = resolve_precision(cfg.precision)
    dp = DataParallel.from_environment()
    threads = configure(cfg.threads or dp.threads_per_process(), cfg.seed)
    run_dir = Path(cfg.out)
    dataset = dataset or load_training_data(cfg.data)
    val_dataset = None
    if cfg.val_fraction:
        dataset, val_dataset = split_validation(dataset, cfg.val_fraction, cfg.seed)
    elif cfg.val_data:
        val_dataset = load_data(cfg.val_data, kind=dataset.kind)
    checkpoint = _resume_point(cfg, run_dir)
    if checkpoint is not None:
        model = load_model(checkpoint)
        load_memory(model, run_dir)  # the run's own bank: entries added since the checkpoint
    elif cfg.init_from:
        if model_config is not None:
            raise GhostInputError(
                "--init-from takes the model config of its run; give no model config with it"
            )
        model = load_model(Path(cfg.init_from))
    else:
        model = GhostModel(model_config or GhostConfig.from_preset(cfg.preset))
    if cfg.reasoning == "chain" and not model.config.qa_steps:  # the model answers through hops
        model.config = replace(model.config, qa_steps=True)
    built = build_recipes(cfg.recipes)  # before anything is written: a bad option is exit 2
    batcher = make_batcher(
        dataset, model.config, replace(cfg, batch_size=cfg.batch_size * dp.world_size)
    )
    val_batcher = make_batcher(val_dataset, model.config, cfg) if val_dataset else None
    optimizer = make_optimizer(model, cfg)
    total = None if cfg.steps == "auto" else int(cfg.steps)
    state = TrainState(
        cfg, model, optimizer, batcher, run_dir, total_steps=total, precision=precision
    )
    every = cfg.eval_every or max(20, batcher.steps_per_epoch)
    run_config = {
        "train": {
            **cfg.to_dict(),
            "threads": threads,
            "precision_used": precision,
            "data_name": dataset.name,
            "val_data_name": val_dataset.name if val_dataset else None,
            "world_size": dp.world_size,
        }
    }
    guard = NonfiniteGuard(cfg.max_nonfinite_steps)
    memory_hooks = _memory_training(cfg, dataset, dp)
    memory_stage = memory_hooks[0] if memory_hooks else None
    with torch.no_grad():  # a model that does not learn to read keeps its copy gate shut
        bias = model.copy.gate.bias
        fresh = checkpoint is None and not cfg.init_from
        if not memory_hooks or (cfg.memory_steps and fresh):  # (a stage opens it: -4)
            bias.fill_(-30.0)
        elif not cfg.memory_steps and float(bias.max()) < -10:  # it never read before (an
            bias.fill_(-4.0)  # older run, --init-from)
    hooks = [*(recipes or []), *built, *memory_hooks]
    hooks.append(ProgressCheck(every, cfg.patience, val_batcher, stage=memory_stage))
    if dp.is_main:  # one writer: rank 0 alone logs and saves; the logger runs first, so a
        # checkpoint of step N never exists without metrics.csv's row N on disk
        hooks += [
            MetricsLogger(cfg.quiet),
            Checkpointer(
                cfg.save_every or every, lambda s: _save(s, hooks, run_config, guard, memory_stage)
            ),
        ]

    if checkpoint is not None:
        _restore(state, hooks, load_trainer_state(checkpoint / STATE_NAME))
        if dp.is_main:
            trim_metrics(run_dir, state.step)  # rows a killed run wrote after its checkpoint
    run_dir.mkdir(parents=True, exist_ok=True)
    model.gradient_checkpointing = cfg.grad_checkpoint
    net = dp.wrap(model)
    model.train()
    for hook in hooks:
        hook.on_train_begin(state)

    with StopOnInterrupt() as interrupt:
        while state.stop_reason is None:
            started = time.perf_counter()
            state.forward_kwargs, state.rows = {}, None
            batch = batcher.next_batch(state.seq_len)
            for hook in hooks:
                batch = hook.on_batch(state, batch) if batch is not None else None
            local = dp.shard(batch) if batch is not None else None
            (n_targets,) = dp.sum(local.n_target_bytes if local is not None else 0)
            if n_targets == 0:  # every rank agrees: nothing to learn from this batch
                state.skipped_steps += 1
                state.step += 1
                _, interrupts = dp.sum(0, interrupt.requested)
                _end_step(state, hooks, dp, interrupts > 0, {"loss": math.nan})
                continue
            lr = learning_rate(cfg, state.step, total) * state.lr_scale
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(precision):
                if set(state.forward_kwargs) - {"memory"} or dp.world_size > 1:  # one pass
                    at = scored_positions(local.labels)
                    output = net(local.input_ids, logits_at=at, **state.forward_kwargs)
                else:
                    output = forward_by_length(net, local, **state.forward_kwargs)
            per_byte = next_byte_loss(output.logits, local.labels, "none")  # (B, L-1)
            state.rows = row_stats(per_byte, output.logits, local)
            # This rank's share of the global mean; DDP's averaging of W ranks gives the mean.
            loss = per_byte.sum() * dp.world_size / n_targets
            for hook in hooks:
                loss = hook.on_loss(state, loss, output, local)
            loss.backward()
            for hook in hooks:
                hook.on_backward(state)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            loss_total, interrupts = dp.sum(loss.detach(), interrupt.requested)
            mean_loss = loss_total / dp.world_size
            finite = math.isfinite(mean_loss) and math.isfinite(grad_norm)
            if finite:  # a NaN/inf step must not reach the weights or the optimiser state
                before = {
                    name: p.detach().clone()
                    for name, p in model.named_parameters()
                    if name in state.update_scale
                }
                optimizer.step()
                if before:
                    apply_update_scale(model, state.update_scale, before)
                for hook in hooks:
                    hook.on_optimizer_step(state)
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            guard.record(state, finite)
            metrics = {
                "loss": mean_loss,
                "lr": lr,
                "seq_len": batch.input_ids.shape[1],
                "batch_rows": batch.input_ids.shape[0],
                "target_bytes": int(n_targets),
            }
            if isinstance(batcher, QABatcher):
                metrics["batch_exact_match"] = float(state.rows.correct.float().mean())
            metrics["step_seconds"] = time.perf_counter() - started
            _end_step(state, hooks, dp, interrupts > 0, metrics)

        for hook in hooks:
            hook.on_train_end(state)
    dp.close()
    if guard.tripped:
        last = latest_checkpoint(run_dir)
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was saved"
        raise TrainingDiverged(
            f"training stopped: {state.stop_reason}; {where} "
            "(lower --lr, then continue it with --resume)"
        )
    model.eval()
    model.memory.refresh()
    return TrainResult(
        model,
        run_dir,
        state.step,
        state.stop_reason,
        state.elapsed,
        dict(state.history),
        interrupted=state.stop_reason == INTERRUPTED,
        nonfinite_steps=state.nonfinite_steps,
    )


def _end_step(
    state: TrainState,
    hooks: list[Recipe],
    dp: DataParallel,
    interrupted: bool,
    metrics: dict[str, float],
) -> None:
    metrics["elapsed_seconds"] = state.elapsed
    metrics["nonfinite_steps"] = state.nonfinite_steps
    if interrupted and state.stop_reason is None:
        state.stop_reason = INTERRUPTED  # the hooks save a checkpoint at this step
    for hook in hooks:
        hook.on_step_end(state, metrics)
    state.history.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    dp.follow_main(state)


def _save(
    state: TrainState,
    hooks: list[Recipe],
    run_config: dict,
    guard: NonfiniteGuard,
    memory: MemoryTraining | None,
) -> None:
    if guard.streak:  # keep the last checkpoint taken after a good step
        return
    # How the memory was trained (None: it was not, yet), so a run says what its memory can do.
    run_config["train"]["memory_trained_with"] = memory.record() if memory else None
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
    save_checkpoint(
        state.run_dir, state.model, trainer_state, run_config, state.config.keep_checkpoints
    )


def _restore(state: TrainState, hooks: list[Recipe], saved: dict) -> None:
    try:
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
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise GhostInputError(
            f"{state.run_dir}: the checkpoint's trainer state does not fit "
            f"this run ({type(e).__name__}: {e})"
        ) from None
