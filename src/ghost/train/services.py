"""The trainer's own services, written as recipes so the hook interface is used from day one.

- `ProgressCheck`: every `eval_every` steps, measures training exact match (Q&A data) and
  the mean loss since the last check, and with a validation set its loss (no gradient) and
  exact match; for `--steps auto` lowers the learning rate (x0.3, at most twice) when the
  loss (the validation loss when there is a validation set) stalls for `patience` checks or
  the training exact match falls 3 points below its best (the steps overshoot), and stops
  at 100% training exact match, when the loss stalls with no decay left, or when the step /
  time budget runs out.
- `Checkpointer`: saves at each check (or every `save_every` steps) and at the end.
- `MetricsLogger`: metrics.csv, TensorBoard events and a progress bar (quiet off a terminal).
"""

from __future__ import annotations

import csv
import math
import sys

import torch
from tqdm.auto import tqdm

from ghost.data.batches import QABatcher
from ghost.eval.metrics import answers_all_correct
from ghost.eval.metrics import mean_loss as validation_loss
from ghost.train.hooks import Recipe, TrainState

MAX_CHECK_RECORDS = 1024  # larger training sets are checked on a fixed sample of this size


class ProgressCheck(Recipe):
    name = "progress"

    # A training exact match this far below its best means the LR is too high to settle.
    FALLBACK = 0.03

    def __init__(
        self,
        every: int,
        patience: int,
        val_batcher=None,
        lr_decays: int = 2,
        decay: float = 0.3,
        stage=None,
    ):
        """`stage`: a final stage (the memory's, `ghost.train.memory.MemoryTraining`) that
        begins when the run would stop on its own and ends the run after its steps."""
        self.every, self.patience, self.val_batcher = every, patience, val_batcher
        self.stage = stage
        self.lr_decays_left, self.decay = lr_decays, decay
        self.best_loss = math.inf
        self.best_match = 0.0
        self.bad_checks = 0
        self.loss_sum, self.loss_count = 0.0, 0
        self.sample: list[int] | None = None
        self.val_sample: list[int] = []

    def on_train_begin(self, state: TrainState) -> None:
        if isinstance(state.batcher, QABatcher):
            self.sample = state.batcher.check_sample(MAX_CHECK_RECORDS)
        if self.val_batcher is not None:
            self.val_sample = self.val_batcher.check_sample(MAX_CHECK_RECORDS)

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if math.isfinite(metrics.get("loss", math.nan)):
            self.loss_sum += metrics["loss"]
            self.loss_count += 1
        cfg = state.config
        budget_over = state.step >= cfg.max_steps or state.elapsed >= cfg.max_minutes * 60
        staged = self.stage is not None and self.stage.stage_steps and self.stage.reading
        stage_done = staged and self.stage.stage_done(state)
        fixed_done = (
            not staged and state.total_steps is not None and state.step >= state.total_steps
        )
        if state.step % self.every and not (budget_over or fixed_done or stage_done):
            return
        if self.sample is not None:
            correct = answers_all_correct(state.model, state.batcher, self.sample)
            metrics["train_exact_match"] = float(correct.float().mean())
        mean_loss = self.loss_sum / max(1, self.loss_count)
        metrics["check_loss"] = mean_loss
        self.loss_sum, self.loss_count = 0.0, 0
        if self.val_batcher is not None:
            mean_loss = metrics["val_loss"] = validation_loss(
                state.model, self.val_batcher, self.val_sample
            )
            if isinstance(self.val_batcher, QABatcher):
                correct = answers_all_correct(state.model, self.val_batcher, self.val_sample)
                metrics["val_exact_match"] = float(correct.float().mean())
        if stage_done:
            state.stop_reason = f"memory stage done ({self.stage.stage_steps} steps)"
            return
        if fixed_done:
            self._finish(state, metrics, f"reached the requested {state.total_steps} steps")
            return
        if state.total_steps is None and not staged:  # --steps auto
            match = metrics.get("train_exact_match")
            if match == 1.0:
                self._finish(state, metrics, "training exact match reached 100%")
                return
            if mean_loss < self.best_loss * 0.99:
                self.best_loss, self.bad_checks = mean_loss, 0
            else:
                self.bad_checks += 1
            # Answers learnt and then lost again: the steps overshoot, so lower the LR now
            # (the loss can keep creeping down for a long time while the answers oscillate).
            oscillating = match is not None and match < self.best_match - self.FALLBACK
            self.best_match = max(self.best_match, match or 0.0)
            if oscillating and self.lr_decays_left:
                self._lower_lr(state, metrics, "answers it had learnt were lost again")
                self.best_match = match  # judge the next fall from here
            elif self.bad_checks >= self.patience:
                if not self.lr_decays_left:
                    self._finish(state, metrics, "the loss stopped improving")
                    return
                self._lower_lr(state, metrics, f"the loss was flat for {self.patience} checks")
        if state.step >= cfg.max_steps:
            ended = f"step budget ended ({cfg.max_steps} steps)"
        elif state.elapsed >= cfg.max_minutes * 60:
            ended = f"time budget ended ({cfg.max_minutes:g} minutes)"
        else:
            return
        if self.stage is not None and not self.stage.reading:
            ended += " before the memory stage: the memory is not trained"
        state.stop_reason = ended

    def _finish(self, state: TrainState, metrics: dict, reason: str) -> None:
        """The weights are done: the run stops, or its final stage begins."""
        if self.stage is None or not self.stage.begin_stage(state, metrics):
            state.stop_reason = reason

    def _lower_lr(self, state: TrainState, metrics: dict, why: str) -> None:
        self.lr_decays_left -= 1
        self.bad_checks = 0
        state.lr_scale *= self.decay
        metrics["event"] = f"learning rate lowered to {state.lr_scale:.2g}x: {why}"

    def state_dict(self) -> dict:
        return {
            "best_loss": self.best_loss,
            "best_match": self.best_match,
            "bad_checks": self.bad_checks,
            "lr_decays_left": self.lr_decays_left,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_loss, self.bad_checks = float(state["best_loss"]), int(state["bad_checks"])
        self.best_match = float(state.get("best_match", 0.0))  # absent before 2026-11-23
        self.lr_decays_left = int(state["lr_decays_left"])
        self.loss_sum, self.loss_count = float(state["loss_sum"]), int(state["loss_count"])


class Checkpointer(Recipe):
    name = "checkpoint"

    def __init__(self, every: int, save):
        self.every, self._save = every, save
        self.saved_step = -1

    def save(self, state: TrainState) -> None:
        if self.saved_step != state.step:
            self._save(state)
            self.saved_step = state.step

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if state.step % self.every == 0 or state.stop_reason:
            self.save(state)

    def on_train_end(self, state: TrainState) -> None:
        self.save(state)


class MetricsLogger(Recipe):
    """metrics.csv (one row per step), TensorBoard events and a progress bar."""

    name = "log"
    COLUMNS = [
        "step",
        "loss",
        "lr",
        "seq_len",
        "batch_rows",
        "target_bytes",
        "step_seconds",
        "elapsed_seconds",
        "train_exact_match",
        "check_loss",
        "val_loss",
        "val_exact_match",
        "batch_exact_match",
        "skip_fraction",
        "retrieval_loss",
        "ewc_penalty",
        "memory_exact_match",
    ]

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.memory_reads: list[float] = []  # memory_exact_match since the last check
        self.bar = None
        self.writer = None
        self.csv_file = None

    def on_train_begin(self, state: TrainState) -> None:
        path = state.run_dir / "metrics.csv"
        new = not path.exists() or state.step == 0
        if new:
            path.unlink(missing_ok=True)
        columns = self.COLUMNS
        if not new:  # a resumed run keeps the columns its file has (an older run: fewer)
            with open(path, newline="", encoding="utf-8") as f:
                columns = next(csv.reader(f), None) or self.COLUMNS
        # Line-buffered: a row is on disk once written, so a kill loses no logged step.
        self.csv_file = open(path, "a", newline="", encoding="utf-8", buffering=1)
        self.csv = csv.DictWriter(self.csv_file, fieldnames=columns, extrasaction="ignore")
        if new:
            self.csv.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(state.run_dir / "tensorboard"))
        except ImportError:  # tensorboard is a dependency; a broken install only loses the events
            self.writer = None
        if not self.quiet:
            cfg = state.config
            precision = state.precision
            if cfg.precision == "auto":
                native = "native" if precision == "bf16" else "no native"
                precision += f" (auto: {native} bf16 matmul on this CPU)"
            recipes = f", recipes: {', '.join(cfg.recipes)}" if cfg.recipes else ""
            if getattr(state.batcher, "augment", "none") == "surface":
                recipes += ", half the questions typed casually (--augment surface)"
            if getattr(state.batcher, "hops", None):
                recipes += f", {len(state.batcher.hops)} multi-hop answers through their hops"
            self._say(
                f"training {state.model.num_parameters() / 1e6:.2f}M parameters on {cfg.data}, "
                f"{precision}, {torch.get_num_threads()} threads{recipes}"
            )
            cut = getattr(state.batcher, "n_cut", 0)
            if cut:
                self._say(
                    f"note: {cut} of {len(state.batcher)} records are longer than --seq-len "
                    f"{cfg.seq_len} bytes and lose the start of their question"
                )
        self.bar = tqdm(
            total=state.total_steps,
            initial=state.step,
            unit="step",
            dynamic_ncols=True,
            disable=self.quiet or not sys.stderr.isatty(),
        )

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        row = {"step": state.step, **metrics}
        self.csv.writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(f"train/{key}", value, state.step)
        if "stage_steps" in metrics and not self.bar.disable:  # a final stage began
            self.bar.total = state.step + int(metrics["stage_steps"])
        self.bar.update(1)
        shown = {"loss": f"{metrics.get('loss', math.nan):.4f}"}
        if "train_exact_match" in metrics:
            shown["train_em"] = f"{metrics['train_exact_match']:.1%}"
        self.bar.set_postfix(shown, refresh=False)
        if "memory_exact_match" in metrics:
            self.memory_reads.append(metrics["memory_exact_match"])
        reads = None  # their mean since the last check, said at each check
        if "check_loss" in metrics and self.memory_reads:
            reads = sum(self.memory_reads) / len(self.memory_reads)
            self.memory_reads.clear()
        if self.quiet:
            return
        if "check_loss" in metrics and not sys.stderr.isatty():
            # The mean of the training losses since the last check, not metrics.csv's per-step
            # `loss`: labelled so that the two cannot be confused.
            parts = [f"step {state.step}: mean train loss {metrics['check_loss']:.4f}"]
            for key, label in (
                ("train_exact_match", "train exact match"),
                ("val_loss", "val loss"),
                ("val_exact_match", "val exact match"),
            ):
                if key in metrics:
                    value = metrics[key]
                    parts.append(
                        f"{label} {value:.1%}" if "match" in key else f"{label} {value:.4f}"
                    )
            if reads is not None:  # memory training: facts never seen, read from the bank
                parts.append(f"new facts read from memory {reads:.1%}")
            self._say("  ".join(parts) + f"  ({state.elapsed:.0f}s)")
        if "event" in metrics:
            self._say(f"step {state.step}: {metrics['event']}")

    def _say(self, line: str) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.csv_file is not None:
            self.csv_file.close()
        if self.writer is not None:
            self.writer.close()
