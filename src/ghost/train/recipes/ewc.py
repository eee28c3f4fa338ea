"""`ewc` and `online-ewc`: elastic weight consolidation, a penalty that holds the weights an
earlier task relies on near the values that task ended with (Kirkpatrick et al. 2017).

    penalty(theta) = (lambda / 2) * sum_k sum_i F_k,i * (theta_i - theta*_k,i)^2

theta*_k, the anchor: the weights at the end of earlier task k. F_k: the diagonal of the
Fisher information of task k's data at theta*_k, estimated from N of its records as

    F_i = (1 / N) * sum_n ( d/d theta_i  log p(y_n | x_n; theta*) )^2

log p(y_n | x_n) is the record's log-likelihood: the sum of the log-probabilities of its
target bytes (the answer and the end-of-answer marker, the bytes training scores), given the
question. y_n is the record's own answer (`targets="empirical"`, the empirical Fisher) or an
answer the model samples for the question at temperature 1 (`targets="model"`, one draw per
record, or `draws` of them averaged: a Monte Carlo estimate of the true Fisher, whose
expectation is over the model's own predictions). Every record gets its own forward and
backward pass (a batch of one), so F is the mean of squared per-record gradients. Squaring a
minibatch's mean gradient instead, a known mistake, gives the square of an average: for B
records with independent gradients about 1/B of the Fisher, and mostly the mean gradient's
direction, which is ~0 at a minimum.

Online EWC (Schwarz et al. 2018, "Progress & Compress") keeps one running Fisher instead of
one term per task, decayed by gamma, and anchors at the latest weights only:

    F~_k    = gamma * F~_{k-1} + F_k
    penalty = (lambda / 2) * sum_i F~_k,i * (theta_i - theta*_k,i)^2

The estimate of one task is one safetensors file (`save_fisher`): `fisher.<param>` and
`anchor.<param>` for every trainable parameter, and metadata saying how it was made (task,
record count, targets, estimator). The recipe takes the files of the earlier tasks, oldest
first (`fisher = ["a.safetensors", "b.safetensors"]` in a TOML `[recipes.ewc]` table; a
single file also as `--recipe ewc:fisher=a.safetensors:ewc_lambda=1000`). `ewc` adds one
term per file; `online-ewc` folds them with `running_fisher` and anchors at the last file.

The penalty is added in `on_loss`, before backward, so its gradient lambda * F * (theta -
theta*) joins the data gradient; `metrics["ewc_penalty"]` logs its value. Nothing is saved
in checkpoints: the files define the penalty, and a resume reads them again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError, safe_open

from ghost.data.batches import IGNORE, qa_row
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.generate import generate
from ghost.model.ghost import next_byte_loss
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option

FISHER_FORMAT = "ghost-fisher-1"
TARGETS = ("empirical", "model")
ESTIMATOR = (
    "mean over records of the squared gradient of each record's log-likelihood (the sum of "
    "the log-probabilities of its target bytes: answer and end-of-answer marker), one "
    "backward pass per record"
)


# --- Estimating the Fisher --------------------------------------------------------------


def _sampled_row(model, template: QATemplate, record: dict, seed: int, temperature: float = 1.0):
    """(ids, labels) of the record's question followed by an answer the model samples at
    `temperature` (the marker included when the model produced it)."""
    prompt = template.prompt(record["question"])
    limit = len(record["answer"].encode("utf-8")) + 16
    (answer,) = generate(
        model,
        [prompt],
        max_bytes=limit,
        temperature=temperature,
        seed=seed,
        stop_bytes=bytes([template.marker]),
    )
    if len(answer) < limit:  # it stopped at the marker, which is then a target too
        answer += bytes([template.marker])
    ids = torch.tensor(list(prompt + answer), dtype=torch.long)
    labels = ids.clone()
    labels[: len(prompt)] = IGNORE
    return ids, labels


def estimate_fisher(
    model,
    records: list[dict],
    targets: str = "empirical",
    seed: int = 0,
    temperature: float = 1.0,
    draws: int = 1,
) -> dict[str, torch.Tensor]:
    """{parameter name: F} for every trainable parameter: the mean over `records` (Q&A) of
    the squared gradient of each record's log-likelihood, one backward pass per record.

    targets: "empirical" (the records' answers) or "model" (one answer sampled from the
    model per record, seeded by `seed` + the record's position). `temperature` T > 1 is the
    Fisher of the softened model softmax(logits / T), answers sampled from it: a memorised
    task's probabilities are near 1 and its Fisher near 0 everywhere, the softened one says
    which weights its margins depend on (as distillation's temperature does). `draws` > 1
    (model targets only) samples that many answers per record, each its own backward pass,
    and averages over all of them: the same expectation with less variance. A memorised task
    samples its own answer almost every time, whose gradient is ~0, so with one draw the few
    records that happened to sample something else make up most of the estimate."""
    if targets not in TARGETS:
        raise GhostInputError(
            f"Fisher targets must be one of {', '.join(TARGETS)}, got {targets!r}"
        )
    if not (temperature > 0 and math.isfinite(temperature)):
        raise GhostInputError(f"the Fisher temperature must be positive, got {temperature}")
    if not records:
        raise GhostInputError("the Fisher needs at least one record")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise GhostInputError(f"Fisher draws must be a positive integer, got {draws!r}")
    if draws > 1 and targets != "model":
        raise GhostInputError("more than one Fisher draw per record needs model targets")
    template = QATemplate.from_config(model.config)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout in Ghost; eval mode is the same maths, said explicitly
    hops = template.hops(records)  # as the model was trained
    for n, record in enumerate(records):
        for d in range(draws):  # draw d of record n: seed + n + d * N (draw 0 as with one)
            if targets == "empirical":
                ids, labels = qa_row(template, record, hops=hops.get(n))
            else:
                draw_seed = seed + n + d * len(records)
                ids, labels = _sampled_row(model, template, record, draw_seed, temperature)
            logits = model(ids[None]).logits / temperature  # (1, L, 256)
            log_likelihood = -next_byte_loss(logits, labels[None], "sum")
            grads = torch.autograd.grad(log_likelihood, list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads, strict=True):
                if grad is not None:  # unused: a part this record does not reach (the memory)
                    fisher[name] += grad.float() ** 2
    model.train(was_training)
    return {name: f / (len(records) * draws) for name, f in fisher.items()}


def save_fisher(path: Path, model, fisher: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write the Fisher and the anchor (the model's current weights) to `path`, atomically.
    `metadata` (task, samples, targets, ...) is stored beside the format and estimator."""
    from ghost.model.io import _save_tensors

    tensors = {}
    for name, p in model.named_parameters():
        if name in fisher:
            tensors[f"fisher.{name}"] = fisher[name].detach().float().contiguous()
            tensors[f"anchor.{name}"] = p.detach().float().contiguous()
    info = {"format": FISHER_FORMAT, "estimator": ESTIMATOR, "model": model.config.to_dict()}
    info.update(metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_tensors(tensors, path, {k: json.dumps(v) for k, v in info.items()})


@dataclass
class FisherFile:
    """One task's estimate: {name: F}, {name: theta*}, and how it was made."""

    path: Path
    fisher: dict[str, torch.Tensor]
    anchor: dict[str, torch.Tensor]
    metadata: dict = field(default_factory=dict)


def load_fisher(path: str | Path) -> FisherFile:
    """Read and check a file of `save_fisher`; anything wrong is a `GhostInputError`."""
    path = Path(path)
    if not path.is_file():
        raise GhostInputError(f"{path}: Fisher file not found")
    fix = "(estimate it again: `ghost continual --resume` remakes a deleted one)"
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = {k: json.loads(v) for k, v in raw.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise GhostInputError(f"{path}: corrupt Fisher file ({_first_line(e)}) {fix}") from None
    if metadata.get("format") != FISHER_FORMAT:
        raise GhostInputError(
            f"{path}: not a Ghost Fisher file (format {metadata.get('format')!r}) {fix}"
        )
    fisher = {k[len("fisher.") :]: v for k, v in tensors.items() if k.startswith("fisher.")}
    anchor = {k[len("anchor.") :]: v for k, v in tensors.items() if k.startswith("anchor.")}
    if not fisher or set(fisher) != set(anchor):
        raise GhostInputError(f"{path}: corrupt Fisher file (Fisher and anchor differ) {fix}")
    for name, f in fisher.items():
        if f.shape != anchor[name].shape:
            raise GhostInputError(f"{path}: corrupt Fisher file ({name}: shapes differ) {fix}")
        if not torch.isfinite(f).all() or (f < 0).any() or not torch.isfinite(anchor[name]).all():
            raise GhostInputError(
                f"{path}: corrupt Fisher file ({name}: negative or non-finite values) {fix}"
            )
    return FisherFile(path, fisher, anchor, metadata)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def running_fisher(
    previous: dict[str, torch.Tensor] | None, new: dict[str, torch.Tensor], gamma: float
) -> dict[str, torch.Tensor]:
    """Online EWC's update F~_k = gamma * F~_{k-1} + F_k (F~_1 = F_1)."""
    if previous is None:
        return {name: f.clone() for name, f in new.items()}
    return {name: gamma * previous[name] + f for name, f in new.items()}


# --- The penalty ------------------------------------------------------------------------


@dataclass
class PenaltyTerm:
    """(lambda / 2) * sum_i F_i (theta_i - anchor_i)^2 over the named parameters."""

    fisher: dict[str, torch.Tensor]
    anchor: dict[str, torch.Tensor]

    def value(self, params: dict[str, torch.Tensor], ewc_lambda: float) -> torch.Tensor:
        total = sum(
            (f * (params[name] - self.anchor[name]) ** 2).sum() for name, f in self.fisher.items()
        )
        return 0.5 * ewc_lambda * total


def _fisher_paths(option) -> list[Path]:
    paths = [option] if isinstance(option, str | Path) else option
    if (
        not isinstance(paths, list)
        or not paths
        or not all(isinstance(p, str | Path) and str(p) for p in paths)
    ):
        raise GhostInputError(
            "recipe 'ewc': fisher must name a Fisher file or a list of them, oldest first "
            f"(see docs/continual.md), got {option!r}"
        )
    return [Path(p) for p in paths]


UPDATES = ("gradient", "proximal")


@dataclass
class ElasticWeightConsolidation(Recipe):
    """(lambda/2) sum_k sum_i F_k,i (theta_i - theta*_k,i)^2: one term per Fisher file."""

    name: ClassVar[str] = "ewc"

    fisher: str | list = ""
    """The Fisher file(s) of the earlier tasks (`save_fisher`), oldest first."""
    ewc_lambda: float = 1.0
    """lambda: how strongly the earlier tasks' weights are held (>= 0)."""
    update: str = "gradient"
    """'gradient': the penalty is added to the loss, its gradient goes through the optimiser
    (AdamW scales every weight's step to about the learning rate, so a weight held hard
    oscillates around its anchor); 'proximal': after each optimiser step, the exact minimiser
    of the penalty plus the distance to the step's result (the proximal step, decoupled from
    AdamW as its weight decay is): theta <- (theta + c sum_k F_k theta*_k) / (1 + c sum_k
    F_k), c = learning rate x lambda."""

    def __post_init__(self):
        self.ewc_lambda = number_option(self.name, "ewc_lambda", self.ewc_lambda)
        if not (self.ewc_lambda >= 0 and math.isfinite(self.ewc_lambda)):
            raise GhostInputError(
                f"recipe {self.name!r}: ewc_lambda must be a finite number >= 0, "
                f"got {self.ewc_lambda}"
            )
        if self.update not in UPDATES:
            raise GhostInputError(
                f"recipe {self.name!r}: update must be one of {', '.join(UPDATES)}, "
                f"got {self.update!r}"
            )
        self.files = [load_fisher(p) for p in _fisher_paths(self.fisher)]
        self.terms = self._terms()
        self.last_penalty: float | None = None

    def _terms(self) -> list[PenaltyTerm]:
        return [PenaltyTerm(f.fisher, f.anchor) for f in self.files]

    def on_train_begin(self, state: TrainState) -> None:
        params = dict(state.model.named_parameters())
        for file in self.files:
            _fill_later_parameters(file, params)
            _check_fits(file, params)
        self.terms = self._terms()
        device = next(iter(params.values())).device
        for term in self.terms:
            term.fisher = {k: v.to(device) for k, v in term.fisher.items()}
            term.anchor = {k: v.to(device) for k, v in term.anchor.items()}

    def penalty(self, model) -> torch.Tensor:
        params = dict(model.named_parameters())
        return sum(term.value(params, self.ewc_lambda) for term in self.terms)

    def on_loss(self, state: TrainState, loss: torch.Tensor, output, batch) -> torch.Tensor:
        if self.update == "proximal":  # applied after the optimiser step; logged here
            with torch.no_grad():
                self.last_penalty = float(self.penalty(state.model))
            return loss
        penalty = self.penalty(state.model)
        self.last_penalty = float(penalty.detach())
        return loss + penalty

    def on_optimizer_step(self, state: TrainState) -> None:
        if self.update != "proximal":
            return
        lr = {id(p): group["lr"] for group in state.optimizer.param_groups for p in group["params"]}
        with torch.no_grad():
            for name, p in state.model.named_parameters():
                if name not in self.terms[0].fisher:
                    continue
                weight = sum(term.fisher[name] for term in self.terms)
                pull = sum(term.fisher[name] * term.anchor[name] for term in self.terms)
                c = lr[id(p)] * self.ewc_lambda
                p.copy_((p + c * pull) / (1 + c * weight))

    def on_step_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        if self.last_penalty is not None:
            metrics["ewc_penalty"] = self.last_penalty


def _fill_later_parameters(file: FisherFile, params: dict[str, torch.Tensor]) -> None:
    """A file made before the copy head gained parameters (`LATER_PARAMETERS`) holds no
    Fisher for them: they get 0 (no penalty), as they had no effect on that task."""
    from ghost.model.io import later_parameters

    for name in later_parameters(params):
        if params[name].requires_grad and name not in file.fisher:
            file.fisher[name] = torch.zeros_like(params[name], dtype=torch.float32)
            file.anchor[name] = params[name].detach().float().clone()


def _check_fits(file: FisherFile, params: dict[str, torch.Tensor]) -> None:
    """The file covers exactly this model's trainable parameters, with their shapes."""
    trainable = {name for name, p in params.items() if p.requires_grad}
    missing, extra = sorted(trainable - set(file.fisher)), sorted(set(file.fisher) - trainable)
    if missing or extra:
        raise GhostInputError(
            f"{file.path}: the Fisher file does not match this model "
            f"(missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for name, f in file.fisher.items():
        if f.shape != params[name].shape:
            raise GhostInputError(
                f"{file.path}: the Fisher file does not match this model ({name} has shape "
                f"{tuple(f.shape)}, the model's is {tuple(params[name].shape)})"
            )


@dataclass
class OnlineElasticWeightConsolidation(ElasticWeightConsolidation):
    """One term: the running Fisher gamma-folded over the files, anchored at the last one."""

    name: ClassVar[str] = "online-ewc"

    gamma: float = 1.0
    """Decay of the running Fisher per task: F~ = gamma * F~ + F_new (0 < gamma <= 1)."""

    def __post_init__(self):
        self.gamma = number_option(self.name, "gamma", self.gamma)
        if not 0 < self.gamma <= 1:
            raise GhostInputError(f"recipe 'online-ewc': gamma must be in (0, 1], got {self.gamma}")
        super().__post_init__()

    def _terms(self) -> list[PenaltyTerm]:
        running = None
        for file in self.files:
            running = running_fisher(running, file.fisher, self.gamma)
        return [PenaltyTerm(running, self.files[-1].anchor)]
