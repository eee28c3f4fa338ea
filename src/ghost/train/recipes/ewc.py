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
from torch import nn

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


def _check_estimate(targets: str, temperature: float, records: list, draws: int) -> None:
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


def _log_likelihoods(model, records, targets, seed, temperature, draws):
    """Each record's log-likelihood (a scalar with its graph), `draws` times a record with
    model targets (draw d of record n seeded by seed + n + d * N, draw 0 as with one)."""
    template = QATemplate.from_config(model.config)
    was_training = model.training
    model.eval()  # no dropout in Ghost; eval mode is the same maths, said explicitly
    hops = template.hops(records)  # as the model was trained
    try:
        for n, record in enumerate(records):
            for d in range(draws):
                if targets == "empirical":
                    ids, labels = qa_row(template, record, hops=hops.get(n))
                else:
                    draw_seed = seed + n + d * len(records)
                    ids, labels = _sampled_row(model, template, record, draw_seed, temperature)
                logits = model(ids[None]).logits / temperature  # (1, L, 256)
                yield -next_byte_loss(logits, labels[None], "sum")
    finally:
        model.train(was_training)


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
    fisher, _ = _estimate(model, records, targets, seed, temperature, draws, layers={})
    return fisher


def kronecker_layers(model) -> dict[str, nn.Linear]:
    """{weight name: layer} of the layers a Kronecker-factored Fisher covers: every bias-free
    `nn.Linear` whose weight is its own trainable parameter (not the output head, whose weight
    is the embedding's). A layer the records never call (the memory's when the bank is empty)
    gets no factors and keeps its diagonal."""
    names = {id(p): name for name, p in model.named_parameters() if p.requires_grad}
    return {
        f"{module_name}.weight": module
        for module_name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.bias is None
        and names.get(id(module.weight)) == f"{module_name}.weight"
    }


def estimate_kfac(
    model,
    records: list[dict],
    targets: str = "empirical",
    seed: int = 0,
    temperature: float = 1.0,
    draws: int = 1,
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """(fisher, factors): the diagonal Fisher of `estimate_fisher` (same records, targets and
    draws, one pass) and, for every layer of `kronecker_layers` the records reach, the
    Kronecker factors (A, G) of its weight's Fisher (K-FAC, Martens & Grosse 2015; for EWC,
    Ritter et al. 2018):

        F(W) ~ G (x) A,   A = mean over positions of a a^T,   G = (1/N) sum_n sum_t g g^T

    a: the layer's input at a position, g: the gradient of the record's log-likelihood with
    respect to the layer's output there. The record's gradient of W is sum_t g_t a_t^T;
    treating positions as independent and inputs as independent of output gradients gives
    the product above (its diagonal is the diagonal Fisher under the same assumptions). The
    penalty it defines, (lambda/2) tr(dW^T G dW A), holds W in the directions the task's
    inputs and gradients actually use, together, rather than weight by weight."""
    return _estimate(model, records, targets, seed, temperature, draws, kronecker_layers(model))


def _estimate(model, records, targets, seed, temperature, draws, layers: dict[str, nn.Linear]):
    """(diagonal Fisher, {weight: (A, G)} of the `layers` the records reach), one pass."""
    _check_estimate(targets, temperature, records, draws)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    sums = {
        name: [
            torch.zeros(layer.in_features, layer.in_features),
            torch.zeros(layer.out_features, layer.out_features),
            0,
        ]
        for name, layer in layers.items()
    }

    def watch(name):
        def forward_hook(module, inputs, output):
            if not output.requires_grad:  # sampling an answer: no gradient will come
                return
            a = inputs[0].detach().reshape(-1, module.in_features).float()

            def output_grad_hook(grad):
                g = grad.detach().reshape(-1, module.out_features).float()
                total = sums[name]
                total[0] += a.T @ a
                total[1] += g.T @ g
                total[2] += a.shape[0]

            output.register_hook(output_grad_hook)

        return forward_hook

    handles = [layer.register_forward_hook(watch(name)) for name, layer in layers.items()]
    try:
        for log_likelihood in _log_likelihoods(model, records, targets, seed, temperature, draws):
            grads = torch.autograd.grad(log_likelihood, list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads, strict=True):
                if grad is not None:  # unused: a part this record does not reach (the memory)
                    fisher[name] += grad.float() ** 2
    finally:
        for handle in handles:
            handle.remove()
    count = len(records) * draws
    factors = {
        name: (a_sum / positions, g_sum / count)
        for name, (a_sum, g_sum, positions) in sums.items()
        if positions  # a layer no record reaches (the memory's) keeps its diagonal, 0
    }
    return {name: f / count for name, f in fisher.items()}, factors


def save_fisher(
    path: Path,
    model,
    fisher: dict[str, torch.Tensor],
    metadata: dict,
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> None:
    """Write the Fisher and the anchor (the model's current weights) to `path`, atomically,
    with the Kronecker factors of `estimate_kfac` when given (`kfac_in.<weight>` = A,
    `kfac_out.<weight>` = G). `metadata` (task, samples, targets, ...) is stored beside the
    format, the estimator and the form ("diagonal" or "kfac")."""
    from ghost.model.io import _save_tensors

    tensors = {}
    for name, p in model.named_parameters():
        if name in fisher:
            tensors[f"fisher.{name}"] = fisher[name].detach().float().contiguous()
            tensors[f"anchor.{name}"] = p.detach().float().contiguous()
    for name, (a, g) in (factors or {}).items():
        tensors[f"kfac_in.{name}"] = a.detach().float().contiguous()
        tensors[f"kfac_out.{name}"] = g.detach().float().contiguous()
    info = {
        "format": FISHER_FORMAT,
        "estimator": ESTIMATOR,
        "form": "kfac" if factors else "diagonal",
        "model": model.config.to_dict(),
    }
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
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """{weight: (A, G)} where the file is Kronecker-factored (`estimate_kfac`), else empty."""


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
    factors = {}
    for key, a in tensors.items():
        if not key.startswith("kfac_in."):
            continue
        name = key[len("kfac_in.") :]
        g = tensors.get(f"kfac_out.{name}")
        shape = anchor[name].shape if name in anchor else None
        if g is None or shape is None or len(shape) != 2:
            raise GhostInputError(f"{path}: corrupt Fisher file ({name}: incomplete factors) {fix}")
        if a.shape != (shape[1], shape[1]) or g.shape != (shape[0], shape[0]):
            raise GhostInputError(
                f"{path}: corrupt Fisher file ({name}: factor shapes do not fit the weight) {fix}"
            )
        if not (torch.isfinite(a).all() and torch.isfinite(g).all()):
            raise GhostInputError(f"{path}: corrupt Fisher file ({name}: non-finite factors) {fix}")
        factors[name] = (a, g)
    if sum(k.startswith("kfac_out.") for k in tensors) != len(factors):
        raise GhostInputError(f"{path}: corrupt Fisher file (unpaired Kronecker factors) {fix}")
    return FisherFile(path, fisher, anchor, metadata, factors)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def running_fisher(
    previous: dict[str, torch.Tensor] | None, new: dict[str, torch.Tensor], gamma: float
) -> dict[str, torch.Tensor]:
    """Online EWC's update F~_k = gamma * F~_{k-1} + F_k (F~_1 = F_1)."""
    if previous is None:
        return {name: f.clone() for name, f in new.items()}
    return {name: gamma * previous[name] + f for name, f in new.items()}


def running_factors(
    previous: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] | None,
    new: dict[str, tuple[torch.Tensor, torch.Tensor]],
    gamma: float,
) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The same update for Kronecker-factored weights: a sum of Kronecker products is not one,
    so the running Fisher of a weight is kept as its list of (A, gamma^age * G) pairs."""
    running = {name: [(a, gamma * g) for a, g in pairs] for name, pairs in (previous or {}).items()}
    for name, pair in new.items():
        running.setdefault(name, []).append(pair)
    return running


# --- The penalty ------------------------------------------------------------------------


@dataclass
class PenaltyTerm:
    """(lambda / 2) * sum_i F_i (theta_i - anchor_i)^2 over the named parameters; a weight
    with Kronecker factors instead contributes (lambda / 2) sum_pairs tr(dW^T G dW A)."""

    fisher: dict[str, torch.Tensor]
    anchor: dict[str, torch.Tensor]
    factors: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    def curvature(self, name: str, delta: torch.Tensor) -> torch.Tensor:
        """F delta for one parameter: F * delta (diagonal), or the sum over its pairs of
        G delta A (Kronecker-factored); delta . F delta is its share of the quadratic form."""
        if name in self.factors:
            return sum(g @ delta @ a for a, g in self.factors[name])
        return self.fisher[name] * delta

    def value(self, params: dict[str, torch.Tensor], ewc_lambda: float) -> torch.Tensor:
        total = 0.0
        for name in self.fisher:
            delta = params[name] - self.anchor[name]
            total = total + (delta * self.curvature(name, delta)).sum()
        return 0.5 * ewc_lambda * total

    @torch.no_grad()
    def curvature_times_delta(self, params: dict[str, torch.Tensor]):
        """(name, delta, F delta) for each parameter, without autograd: the penalty is
        (lambda / 2) sum delta . F delta, its gradient lambda * F delta."""
        for name in self.fisher:
            delta = params[name].detach().float() - self.anchor[name]
            yield name, delta, self.curvature(name, delta)


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
        self.kronecker = any(f.factors for f in self.files)
        if self.kronecker and self.update == "proximal":
            raise GhostInputError(
                f"recipe {self.name!r}: update=proximal needs diagonal Fisher files "
                "(Kronecker-factored ones have no closed-form proximal step here)"
            )
        self.terms = self._terms()
        self.last_penalty: float | None = None
        self._penalty_grads: dict[str, torch.Tensor] = {}

    def _terms(self) -> list[PenaltyTerm]:
        return [
            PenaltyTerm(f.fisher, f.anchor, {n: [pair] for n, pair in f.factors.items()})
            for f in self.files
        ]

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
            term.factors = {
                k: [(a.to(device), g.to(device)) for a, g in pairs]
                for k, pairs in term.factors.items()
            }

    def penalty(self, model) -> torch.Tensor:
        params = dict(model.named_parameters())
        return sum(term.value(params, self.ewc_lambda) for term in self.terms)

    def on_loss(self, state: TrainState, loss: torch.Tensor, output, batch) -> torch.Tensor:
        if self.update == "proximal":  # applied after the optimiser step; logged here
            with torch.no_grad():
                self.last_penalty = float(self.penalty(state.model))
            return loss
        if self.kronecker:  # value and gradient from one product each: see on_backward
            value = self._kronecker_penalty(state.model)
            self.last_penalty = value
            return loss + value
        penalty = self.penalty(state.model)
        self.last_penalty = float(penalty.detach())
        return loss + penalty

    def _kronecker_penalty(self, model) -> float:
        """The penalty's value, its gradient lambda * F delta kept for `on_backward`:
        autograd through tr(dW^T G dW A) would cost twice the two products it needs."""
        params = dict(model.named_parameters())
        value, grads = 0.0, {}
        for term in self.terms:
            for name, delta, f_delta in term.curvature_times_delta(params):
                value += 0.5 * self.ewc_lambda * float((delta * f_delta).sum())
                grad = self.ewc_lambda * f_delta
                grads[name] = grads[name] + grad if name in grads else grad
        self._penalty_grads = grads
        return value

    def on_backward(self, state: TrainState) -> None:
        if not self._penalty_grads:
            return
        params = dict(state.model.named_parameters())
        for name, grad in self._penalty_grads.items():
            p = params[name]
            if p.grad is None:
                p.grad = grad.to(p.dtype).clone()
            else:
                p.grad.add_(grad.to(p.grad.dtype))
        self._penalty_grads = {}

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
        if len({bool(f.factors) for f in self.files}) > 1:
            raise GhostInputError(
                "recipe 'online-ewc': its Fisher files must all be diagonal or all "
                "Kronecker-factored, not a mix"
            )

    def _terms(self) -> list[PenaltyTerm]:
        running, factors = None, None
        for file in self.files:
            running = running_fisher(running, file.fisher, self.gamma)
            factors = running_factors(factors, file.factors, self.gamma)
        return [PenaltyTerm(running, self.files[-1].anchor, factors)]
