"""Configuration: the model's shape (`GhostConfig`) and how to train it (`TrainConfig`).

A model is a stack of `n_layers` blocks; each is Mamba mixer + FFN, and a block may carry one
extra sub-block, named by the layout: `memory` (cross-attention to the fact memory) or
`attention` (local + strided sparse self-attention). The layout is data (`memory_layers`,
`attention_layers`), so presets and user configs differ only in numbers.

Presets are small dicts of overrides; `GhostConfig.from_preset(name, **overrides)` builds one.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghost.errors import GhostInputError

# The version of a run directory's config.json, and what changed:
#   1  first release.
#   2  Mamba's A_log starts at log(1..N) per channel (version 1 re-drew it from N(0, 0.02), so
#      A was about -1 everywhere); the train section gained recipes with options, init_from,
#      val_data and val_fraction. Files are otherwise the same: version 1 runs load as before.
CONFIG_FORMAT_VERSION = 3
READABLE_FORMAT_VERSIONS = (1, 2, 3)
# Version 3: the memory is read byte by byte (per-byte entry states, a copy head, entry keys
# for retrieval) instead of through 4 pooled slots per entry; memory_slots is gone and
# memory_key_dim is new. Older runs never trained their memory (its gates were 0), so they
# load with fresh memory parts and a shut copy gate, and answer as before; their checkpoints
# cannot be resumed (the optimiser state lacks the new parameters): --init-from them instead.


@dataclass
class GhostConfig:
    """The model: sizes, layer layout and the Q&A rendering it was trained with."""

    dim: int = 256
    """Width of the residual stream (D)."""
    n_layers: int = 6
    """Number of Mamba + FFN blocks."""
    memory_layers: tuple[int, ...] = (2, 4)
    """0-based layers that cross-attend to the fact memory."""
    attention_layers: tuple[int, ...] = (3, 5)
    """0-based layers with local + strided sparse self-attention."""
    d_state: int = 16
    """SSM state size N (16 floats = one AVX-512 register)."""
    d_conv: int = 4
    """Width of the Mamba depthwise causal convolution."""
    expand: int = 2
    """Mamba inner width = expand * dim (ED)."""
    dt_rank: int = 0
    """Rank of the delta projection; 0 means ceil(dim / 16)."""
    ffn_hidden: int = 512
    """Hidden width of the SwiGLU feed-forward layer."""
    n_heads: int = 4
    """Heads of the attention and memory sub-blocks."""
    attention_window: int = 64
    """Each position sees the previous `attention_window` bytes (itself included)..."""
    attention_stride: int = 128
    """...and every position p with p % stride == stride - 1 before it."""
    memory_top_k: int = 8
    """Entries read per question: the whole bank when it holds at most this many, else the
    top-k by key (exact)."""
    memory_key_dim: int = 64
    """Width of the retrieval keys and of the copy head's pointer attention."""
    memory_max_bytes: int = 128
    """An entry keeps its first this-many bytes (a retrieval query its last)."""
    context_copy: bool = False
    """A pointer over the last `context_copy_window` bytes of the row mixed into the output
    (ghost.model.context_copy): the model can copy a span it has read, such as the question's
    entity into a hop question (`--reasoning chain`)."""
    context_copy_window: int = 128
    """How far back the context copy head looks, in bytes."""
    tie_embeddings: bool = True
    """Share the byte embedding with the output head."""
    norm_eps: float = 1e-5
    vocab_size: int = 256
    qa_template: str = "Q: {question}\nA: {answer}"
    """How a Q&A record becomes bytes; the end-of-answer marker follows the answer."""
    end_of_answer: str = "\x03"
    """One ASCII control byte that never occurs in data (ETX)."""
    qa_steps: bool = False
    """Trained to answer a multi-hop question through its hops (`ghost train --reasoning
    chain`): the answer first asks and answers each hop question, then ends with the last
    hop's answer (ghost.data.template.STEP). The exact-match answer is that last one."""

    def __post_init__(self):
        self.memory_layers = tuple(int(i) for i in self.memory_layers)
        self.attention_layers = tuple(int(i) for i in self.attention_layers)
        if self.dt_rank == 0:
            self.dt_rank = math.ceil(self.dim / 16)
        positive = [
            "dim",
            "n_layers",
            "d_state",
            "d_conv",
            "expand",
            "ffn_hidden",
            "n_heads",
            "attention_window",
            "attention_stride",
            "memory_top_k",
            "memory_key_dim",
            "memory_max_bytes",
            "context_copy_window",
            "dt_rank",
        ]
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"GhostConfig.{name} must be positive, got {getattr(self, name)}")
        if self.vocab_size != 256:
            raise ValueError("GhostConfig.vocab_size must be 256: Ghost models bytes")
        if self.dim % self.n_heads:
            raise ValueError(f"GhostConfig.n_heads ({self.n_heads}) must divide dim ({self.dim})")
        for name in ("memory_layers", "attention_layers"):
            bad = [i for i in getattr(self, name) if not 0 <= i < self.n_layers]
            if bad:
                raise ValueError(
                    f"GhostConfig.{name} has layers {bad} outside 0..{self.n_layers - 1}"
                )
        both = set(self.memory_layers) & set(self.attention_layers)
        if both:
            raise ValueError(
                f"GhostConfig.memory_layers and attention_layers overlap at {sorted(both)}"
                ": a block carries at most one extra sub-block"
            )
        if len(self.end_of_answer) != 1 or not (0 < ord(self.end_of_answer) < 32):
            raise ValueError("GhostConfig.end_of_answer must be one ASCII control character")
        if self.end_of_answer == "\x1e":
            raise ValueError("GhostConfig.end_of_answer must not be 0x1e, the hop separator")
        if self.end_of_answer in "\n\t\r":
            raise ValueError("GhostConfig.end_of_answer must not be a whitespace character")
        if "{question}" not in self.qa_template or not self.qa_template.endswith("{answer}"):
            raise ValueError(
                "GhostConfig.qa_template must contain {question} and end with {answer}"
            )

    @property
    def d_inner(self) -> int:
        return self.expand * self.dim

    def layer_kinds(self) -> list[str]:
        """The extra sub-block of each layer: 'memory', 'attention' or ''."""
        kinds = [""] * self.n_layers
        for i in self.memory_layers:
            kinds[i] = "memory"
        for i in self.attention_layers:
            kinds[i] = "attention"
        return kinds

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GhostConfig:
        if name not in PRESETS:
            raise GhostInputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["memory_layers"] = list(self.memory_layers)
        d["attention_layers"] = list(self.attention_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GhostConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise GhostInputError(f"unknown model config fields: {', '.join(unknown)}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    # The original's recommended model: 6 layers at dim 256, memory at 2 and 4, attention
    # at 3 and 5, stride 128.
    "v5-fast": {},
    # The original heavier variant: same layout, wider FFN (640) and denser attention
    # (stride 64).
    "v5": {"ffn_hidden": 640, "attention_stride": 64},
    # The scale-up: 8 layers at dim 320.
    "12m": {
        "dim": 320,
        "n_layers": 8,
        "memory_layers": (2, 5),
        "attention_layers": (3, 7),
        "ffn_hidden": 640,
        "n_heads": 5,
    },
    # The benchmark's screening size: every block kind of v5-fast at half its width
    # and two-thirds of its depth; learns facts200 in a few hundred steps on 2 cores.
    "small": {
        "dim": 128,
        "n_layers": 4,
        "memory_layers": (1,),
        "attention_layers": (2,),
        "ffn_hidden": 320,
        "n_heads": 4,
    },
    # Every block kind, small enough for tests: learns a few dozen Q&A pairs in seconds.
    "tiny": {
        "dim": 32,
        "n_layers": 3,
        "memory_layers": (1,),
        "attention_layers": (2,),
        "d_state": 16,
        "ffn_hidden": 64,
        "n_heads": 2,
        "attention_window": 8,
        "attention_stride": 4,
        "memory_key_dim": 16,
        "memory_max_bytes": 64,
    },
}


def _setting(name: str) -> str:
    """How a user names a training setting: the flag, and the config-file key beside it."""
    return f"--{name.replace('_', '-')} ({name} in a config file)"


@dataclass
class TrainConfig:
    """How to train: data, optimisation, stopping, precision and logging."""

    data: str = "facts200"
    """Built-in dataset NAME[:SPLIT] or a path to a .jsonl/.txt file."""
    preset: str = "v5-fast"
    """Model preset (ignored when resuming: the run's config.json wins)."""
    out: str = "runs/ghost"
    """Run directory."""
    steps: int | str = "auto"
    """Number of optimiser steps, or 'auto': until training exact match is 100%, the loss
    stops improving, or the budget (max_steps / max_minutes) ends."""
    batch_size: int = 32
    seq_len: int = 256
    """Longest sample in bytes (Q&A records are cut to it; text is windowed by it)."""
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    answer_only_loss: bool = True
    """For Q&A data, train only on the answer bytes (and the end-of-answer marker)."""
    augment: str = "surface"
    """Q&A questions as users type them: 'surface' (the default) gives half the training rows
    a casual form (lower case, no final '?', or both; answers unchanged), 'none' trains them
    as written. See ghost.data.batches.surface_variant."""
    group_by_length: bool = False
    """Q&A batches of records of similar length (seeded, per epoch): rows are padded to the
    longest of their batch, so this spares most of the padding's compute."""
    reasoning: str = "none"
    """'chain': multi-hop Q&A records whose hops are questions of the same data are answered
    through their hops (ask and answer each, then the last hop's answer; the model's config
    records it as `qa_steps`); 'none' trains every answer as written. See
    ghost.data.template."""
    eval_every: int = 0
    """Steps between checks (training exact match / loss); 0 picks about one epoch."""
    patience: int = 3
    """'auto': stop after this many checks without a 1% loss improvement (after LR decays)."""
    max_steps: int = 20000
    max_minutes: float = 40.0
    """Time budget of the whole run, the memory stage included (the default facts200 run:
    ~12 minutes learning the data and ~17 for the memory stage on a 2-core Zen 1)."""
    save_every: int = 0
    """Steps between checkpoints; 0 saves at each check."""
    keep_checkpoints: int = 1
    """Checkpoints kept under checkpoints/ (each ~71 MB for v5-fast: weights + optimiser);
    saving is crash-safe, so one is enough to resume."""
    max_nonfinite_steps: int = 10
    """Stop when the loss or gradients are NaN/inf this many steps in a row (each such step
    is skipped; the last good checkpoint is kept)."""
    seed: int = 0
    threads: int = 0
    """CPU threads; 0 means all cores."""
    precision: str = "auto"
    """'auto' (bf16 autocast where the CPU has native bf16 matmul, fp32 elsewhere), 'fp32'
    or 'bf16'. The run records what 'auto' chose."""
    memory_training: str = "auto"
    """'auto' (the default: train the fact memory when the Q&A records carry `facts`), 'on'
    (also without facts: reading is practised on generated facts) or 'off'. See
    ghost.train.memory."""
    memory_steps: int = 500
    """Memory training's stage: after the weights have learnt the data (the `steps` are done,
    or 'auto''s rule fired), this many steps teach the model to read its memory, training only
    the memory's parameters; 0 trains it jointly with every weight from the first step instead
    (slower to learn the data: docs/memory.md). (300 before 2026-12-05, with
    `memory_stage_own_rows` 1: chosen on validation, benchmarks/results/
    memory_stage_own_rows-zen4.md.)"""
    memory_stage_trains: str = "memory"
    """What the memory stage trains: 'memory' (its parameters only; the other weights keep
    what they learnt, so an empty bank answers as without memory training) or 'all' (every
    weight, at the weights' last learning rate: the default before 075c122)."""
    memory_stage_own_rows: float = 0.0
    """Share (0 to 1) of the data rows reading their own facts that a memory stage training
    only the memory keeps (the generated rows, whose answers are only in memory, always
    stay). 0, the default: a stage step costs ~1.1x a plain one (1.6-1.8x at 1); 500 such
    steps (the default `memory_steps`) read better on validation than 300 keeping every
    row, in about the same time (benchmarks/results/memory_stage_own_rows-zen4.md)."""
    grad_checkpoint: bool = False
    """Recompute each layer's activations in the backward pass: less memory, more time."""
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Training recipes in order, each with its options: {"skip": {"threshold": 0.8}}; also
    given as 'curriculum,skip:threshold=0.8' or a list of names (see `ghost.train.recipes`)."""
    init_from: str | None = None
    """Start from this run directory's weights (and its model config) with a fresh optimiser."""
    val_data: str | None = None
    """Validation data (NAME[:SPLIT] or a path): checks report its loss and exact match, and
    `--steps auto` judges a plateau on its loss."""
    val_fraction: float = 0.0
    """Hold out this fraction of the training records (seeded) as the validation set."""
    resume: bool = False
    quiet: bool = False

    def __post_init__(self):
        if isinstance(self.steps, str):
            if self.steps != "auto":
                try:
                    self.steps = int(self.steps)
                except ValueError:
                    raise GhostInputError(
                        f"--steps must be a positive integer or 'auto', got {self.steps!r}"
                    ) from None
        if isinstance(self.steps, int) and self.steps <= 0:
            raise GhostInputError(f"--steps must be positive, got {self.steps}")
        for name in (
            "batch_size",
            "seq_len",
            "max_steps",
            "keep_checkpoints",
            "patience",
            "max_nonfinite_steps",
        ):
            if int(getattr(self, name)) <= 0:
                raise GhostInputError(
                    f"{_setting(name)} must be positive, got {getattr(self, name)}"
                )
        for name in ("warmup_steps", "eval_every", "save_every", "threads", "seed", "memory_steps"):
            if int(getattr(self, name)) < 0:
                raise GhostInputError(f"{_setting(name)} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise GhostInputError(f"{_setting('lr')} must be positive, got {self.lr}")
        if not self.max_minutes > 0:
            raise GhostInputError(
                f"{_setting('max_minutes')} must be positive, got {self.max_minutes}"
            )
        if self.precision not in ("auto", "fp32", "bf16"):
            raise GhostInputError(
                f"{_setting('precision')} must be 'auto', 'fp32' or 'bf16', got {self.precision!r}"
            )
        if self.augment not in ("none", "surface"):
            raise GhostInputError(
                f"{_setting('augment')} must be 'none' or 'surface', got {self.augment!r}"
            )
        if self.reasoning not in ("none", "chain"):
            raise GhostInputError(
                f"{_setting('reasoning')} must be 'none' or 'chain', got {self.reasoning!r}"
            )
        if self.memory_stage_trains not in ("memory", "all"):
            raise GhostInputError(
                f"{_setting('memory_stage_trains')} must be 'memory' or 'all', "
                f"got {self.memory_stage_trains!r}"
            )
        if not 0.0 <= self.memory_stage_own_rows <= 1.0:
            raise GhostInputError(
                f"{_setting('memory_stage_own_rows')} must be in [0, 1], "
                f"got {self.memory_stage_own_rows}"
            )
        if self.memory_training not in ("auto", "on", "off"):
            raise GhostInputError(
                f"{_setting('memory_training')} must be 'auto', 'on' or 'off', "
                f"got {self.memory_training!r}"
            )
        self.recipes = parse_recipes(self.recipes)
        if not 0.0 <= self.val_fraction < 1.0:
            raise GhostInputError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_fraction and self.val_data:
            raise GhostInputError("give --val-data or --val-fraction, not both")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _option_value(text: str) -> Any:
    """A flag's option value: a TOML literal (1, 0.5, true, "x") or else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_recipes(spec: str | list | dict | None) -> dict[str, dict[str, Any]]:
    """The recipes of a flag ('a,b:key=value:key=value'), a list of names, or a TOML table."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        for name, options in spec.items():
            if not isinstance(options, dict):
                raise GhostInputError(
                    f"recipes.{name}: expected a table of options, got {options!r}"
                )
        return {str(name): dict(options) for name, options in spec.items()}
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    recipes: dict[str, dict[str, Any]] = {}
    for item in items:
        name, *pairs = str(item).strip().split(":")
        if not name:
            continue
        options = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise GhostInputError(
                    f"--recipe {item!r}: options are written NAME:key=value, got {pair!r}"
                )
            options[key.strip().replace("-", "_")] = _option_value(value.strip())
        recipes[name] = options
    return recipes


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or YAML) file into {'model': {...}, 'train': {...}} overrides.

    Top-level keys are training fields; a [model] table holds model fields.
    """
    path = Path(path)
    if not path.is_file():
        raise GhostInputError(f"{path}: config file not found")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        else:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
        raise GhostInputError(f"{path}: cannot parse config: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise GhostInputError(f"{path}: config must be a table of settings")
    model = raw.pop("model", {}) or {}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(GhostConfig)}
    unknown = sorted(set(raw) - train_fields)
    if unknown:
        raise GhostInputError(f"{path}: unknown training settings: {', '.join(unknown)}")
    unknown = sorted(set(model) - model_fields)
    if unknown:
        raise GhostInputError(f"{path}: unknown [model] settings: {', '.join(unknown)}")
    return {"model": model, "train": raw}
