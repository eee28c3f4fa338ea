"""GhostModel: a byte-level stack of Mamba + FFN blocks with optional memory / attention.

    h_0 = embed(bytes)                                             (B, L, D)
    for each layer:  h = h + mamba(norm(h))
                     h = h + extra(norm(h))      extra: memory | sparse attention | none
                     h = h + ffn(norm(h))
    logits = head(norm(h))                                         (B, L, 256)

The layout (which layers carry memory or attention) comes from `GhostConfig`; one
`Block` class reads it. `model(input_ids, labels=None, memory=None)` returns a
`ModelOutput(loss, logits, cache)`; labels are shifted inside (position t predicts t+1)
and -100 is ignored. `model.step(byte, cache)` is the recurrent mode used by generation.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ghost.config import GhostConfig
from ghost.data.batches import IGNORE
from ghost.model.attention import AttentionCache, SparseSelfAttention
from ghost.model.context_copy import ContextCache, ContextCopyHead
from ghost.model.mamba import MambaMixer, MambaState
from ghost.model.memory import ByteMemoryEncoder, FactMemory
from ghost.model.memory_batch import MemoryBatch
from ghost.model.memory_read import CopyHead, MemoryCrossAttention
from ghost.model.norm import RMSNorm, SwiGLU


def _row_bytes(input_ids: torch.Tensor) -> list[bytes]:
    """Each row's bytes without its right padding (byte 0): what retrieval is keyed by."""
    return [bytes(row).rstrip(b"\0") or b" " for row in input_ids.tolist()]


def scored_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, L) labels -> (B, L) bool: the positions whose logits are scored (position t
    predicts labels[t + 1]), what `forward(logits_at=...)` takes."""
    return F.pad(labels[:, 1:] != IGNORE, (0, 1), value=False)


def _unpack(packed: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """(K, E) values at the K True positions of `at` (B, L) -> (B, L, E), zeros elsewhere."""
    full = packed.new_zeros(*at.shape, packed.shape[-1])
    return full.index_put((at,), packed)


def _recent_bytes(input_ids: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """(B, L) -> (B, L, CopyHead.MATCHES): the byte at each position and the ones before it,
    latest first (-1 before the start, or the bytes of `previous`, a cache's, (B, MATCHES -
    1) latest first): what the copy head's continuation matches compare."""
    length = input_ids.shape[1]
    if previous is not None:
        input_ids = torch.cat([previous.flip(-1), input_ids], 1)
    start = input_ids.shape[1] - length
    shifted = [
        F.pad(input_ids, (i, 0), value=-1)[:, start : start + length]
        for i in range(CopyHead.MATCHES)
    ]
    return torch.stack(shifted, -1)


def next_byte_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"):
    """Cross-entropy of each position's prediction of the next byte, in nats.

    logits (B, L, 256); labels (B, L) with IGNORE (-100) where there is no target: position
    t predicts labels[t + 1]. reduction: 'mean' or 'sum' over the target bytes, or 'none'
    for a (B, L-1) tensor with 0 at ignored positions. The one definition of the loss,
    used by the model, the trainer, the recipes and bits per byte.
    """
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
        reduction=reduction,
    )
    return loss.view(labels.shape[0], -1) if reduction == "none" else loss


@dataclass
class LayerCache:
    mamba: MambaState
    attention: AttentionCache | None = None


@dataclass
class Cache:
    """Everything generation carries from one byte to the next."""

    layers: list[LayerCache]
    memory: MemoryBatch | None = None
    previous: torch.Tensor | None = None  # (B, 3) the last bytes read, latest first (copy head)
    context: ContextCache | None = None  # the context copy head's recent keys and bytes

    def select(self, rows: torch.Tensor) -> Cache:
        """The cache of the batch rows `rows`: generation drops rows that have finished."""
        layers = [
            LayerCache(
                layer.mamba.select(rows),
                layer.attention.select(rows) if layer.attention is not None else None,
            )
            for layer in self.layers
        ]
        return Cache(
            layers,
            self.memory.select(rows) if self.memory is not None else None,
            self.previous[rows] if self.previous is not None else None,
            self.context.select(rows) if self.context is not None else None,
        )


@dataclass
class ModelOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, L, 256)
    cache: Cache | None = None


class Block(nn.Module):
    def __init__(self, config: GhostConfig, kind: str):
        super().__init__()
        c = config
        self.kind = kind
        self.mixer_norm = RMSNorm(c.dim, c.norm_eps, feeds_matmul=True)
        self.mixer = MambaMixer(c.dim, c.d_state, c.d_conv, c.expand, c.dt_rank)
        self.extra_norm = RMSNorm(c.dim, c.norm_eps, feeds_matmul=True) if kind else None
        if kind == "memory":
            self.extra = MemoryCrossAttention(c.dim, c.n_heads)
        elif kind == "attention":
            self.extra = SparseSelfAttention(
                c.dim, c.n_heads, c.attention_window, c.attention_stride
            )
        else:
            self.extra = None
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps, feeds_matmul=True)
        self.ffn = SwiGLU(c.dim, c.ffn_hidden)

    def forward(
        self,
        h,
        memory: MemoryBatch | None = None,
        want_cache: bool = False,
        mamba_state: MambaState | None = None,
        previous: LayerCache | None = None,
        ffn_at: torch.Tensor | None = None,
    ):
        """`previous`: the layer's cache after the bytes h continues (its mixer state and
        attention cache; `mamba_state` alone carries only the mixer's). `ffn_at` (B, L) bool:
        the feed-forward runs at those positions only, and h comes back packed, (K, D): what
        the last layer does when only some positions' logits are wanted."""
        cache = LayerCache(mamba=None)
        if previous is not None:
            mamba_state = previous.mamba
        if want_cache or mamba_state is not None:
            y, cache.mamba = self.mixer(self.mixer_norm(h), mamba_state, want_state=True)
        else:
            y = self.mixer(self.mixer_norm(h))
        h = h + y
        if self.kind == "attention":
            seen = previous.attention if previous is not None else None
            if want_cache:
                y, cache.attention = self.extra(self.extra_norm(h), want_cache=True, cache=seen)
            else:
                y = self.extra(self.extra_norm(h), cache=seen)
            h = h + y
        elif self.kind == "memory" and memory is not None and memory.n_entries:
            h = h + self.extra(self.extra_norm(h), memory)
        if ffn_at is not None:
            h = h[ffn_at]
        h = h + self.ffn(self.ffn_norm(h))
        return (h, cache) if want_cache else h

    def step(self, h, cache: LayerCache, memory: MemoryBatch | None = None):
        """h (B, D) -> (B, D) for one byte."""
        h = h + self.mixer.step(self.mixer_norm(h), cache.mamba)
        if self.kind == "attention":
            h = h + self.extra.step(self.extra_norm(h), cache.attention)
        elif self.kind == "memory" and memory is not None and memory.n_entries:
            h = h + self.extra.step(self.extra_norm(h), memory)
        return h + self.ffn(self.ffn_norm(h))


class GhostModel(nn.Module):
    def __init__(self, config: GhostConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config, kind) for kind in config.layer_kinds())
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.memory = FactMemory(
            ByteMemoryEncoder(
                config.dim, config.memory_max_bytes, config.d_state, config.memory_key_dim
            ),
            top_k=config.memory_top_k,
        )
        self.copy = CopyHead(config.dim, config.memory_key_dim, ord(config.end_of_answer))
        self.context_copy = None
        if config.context_copy:
            self.context_copy = ContextCopyHead(
                config.dim, config.memory_key_dim, config.context_copy_window
            )
        self.gradient_checkpointing = False
        self._init_weights()
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def _init_weights(self):
        # GPT-2 style: N(0, 0.02), residual output projections scaled down by depth. The
        # Mamba parameters keep the mixer's own initialisation: conv1d and dt_proj (the step
        # sizes), and A_log = log(1..N), the S4D-real spectrum A = -(1..N) per channel.
        for name, p in self.named_parameters():
            skip = ("conv1d", "dt_proj", "A_log", "copy.gate")  # keep their own initialisation
            # (context_copy.gate ends with "copy.gate" too)
            if p.dim() < 2 or any(part in name for part in skip):
                continue
            std = 0.02
            if name.endswith(("out_proj.weight", "down.weight", "o_proj.weight")):
                std = 0.02 / math.sqrt(2 * self.config.n_layers)
            nn.init.normal_(p, mean=0.0, std=std)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GhostModel:
        return cls(GhostConfig.from_preset(name, **overrides))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def memory_parameter_names(self) -> list[str]:
        """The parameters that only reading memory uses: the memory's encoder, the memory
        layers' cross-attention and its norm, the copy head. With an empty bank none of them
        touches a logit."""
        readers = [f"layers.{i}.extra" for i, b in enumerate(self.layers) if b.kind == "memory"]
        prefixes = (
            "memory.",
            "copy.",
            *(f"{r}." for r in readers),
            *(f"{r}_norm." for r in readers),
        )
        return [name for name, _ in self.named_parameters() if name.startswith(prefixes)]

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        memory: MemoryBatch | None = None,
        use_cache: bool = False,
        mamba_states: list[MambaState] | None = None,
        cache: Cache | None = None,
        logits_at: torch.Tensor | None = None,
    ) -> ModelOutput:
        """input_ids (B, L) int -> ModelOutput; `memory` defaults to what the written bank
        gives these rows (`FactMemory.batch`: the whole bank, or each row's top-k entries).
        With memory, `logits` are log-probabilities that include the copy head's.

        `mamba_states` (one per layer) start each Mamba mixer from a carried state instead of
        zeros (attention layers start fresh); gradients flow into the states' tensors. With
        `use_cache`, `output.cache` holds every layer's state after the last byte. With
        `cache` (a `use_cache` output's, left unchanged), input_ids continue the bytes it has
        seen, every row from the same position, reading the cache's memory: the same logits
        as one forward over the whole rows (tested).

        `logits_at` (B, L) bool: compute logits only at these positions (the last layer's
        feed-forward, the norm and the head run there alone; elsewhere the logits are 0), e.g.
        `scored_positions(labels)` where only some bytes are scored: the same logits there.
        """
        if cache is not None and mamba_states is not None:
            raise ValueError("forward: pass cache or mamba_states, not both")
        if cache is not None:
            memory = cache.memory
        elif memory is None and len(self.memory):
            memory = self.memory.batch(_row_bytes(input_ids))  # each row keys its retrieval
        h = self.embed(input_ids)  # (B, L, D)
        caches = []
        last = len(self.layers) - 1
        # The context copy head keys every position by its final hidden state, so the last
        # feed-forward runs everywhere and `logits_at` only masks the logits.
        pack_at = logits_at if self.context_copy is None else None
        for i, layer in enumerate(self.layers):
            initial = mamba_states[i] if mamba_states is not None else None
            previous = cache.layers[i] if cache is not None else None
            at = pack_at if i == last else None
            if use_cache:
                h, layer_cache = layer(
                    h, memory, want_cache=True, mamba_state=initial, previous=previous, ffn_at=at
                )
                caches.append(layer_cache)
            elif initial is not None or previous is not None:  # no cache wanted back
                h = layer(h, memory, mamba_state=initial, previous=previous, ffn_at=at)
            elif self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(layer, h, memory, ffn_at=at, use_reentrant=False)
            else:
                h = layer(h, memory, ffn_at=at)
        recent = None
        if memory is not None or use_cache:
            recent = _recent_bytes(input_ids, cache.previous if cache is not None else None)
        if pack_at is not None and memory is not None and memory.n_entries:
            h = _unpack(h, pack_at)  # the copy head reads whole rows
        h = self.norm(h)
        logits = self._output(h, memory, recent)
        context = None
        if self.context_copy is not None:
            logits, context = self.context_copy(
                h, logits, input_ids, cache.context if cache is not None else None, use_cache
            )
        if logits.dim() == 2:  # packed: (K, 256) at logits_at
            logits = _unpack(logits, logits_at)
        elif logits_at is not None:  # log-probabilities of a copy head, over whole rows
            logits = logits.masked_fill(~logits_at[..., None], 0.0)
        loss = next_byte_loss(logits, labels) if labels is not None else None
        cache = Cache(caches, memory, recent[:, -1, :-1], context) if use_cache else None
        return ModelOutput(loss, logits, cache)

    def prepare_memory(self, memory: MemoryBatch) -> MemoryBatch:
        """`memory` with every reader's keys and values computed now, with gradient when it is
        on, and kept: forward passes over groups of its rows (`memory.select(rows)`, as the
        trainer's length groups) then share them instead of each projecting every entry
        again. Call it outside any checkpointed layer."""
        if memory.n_entries:
            for module in self.modules():
                if isinstance(module, (MemoryCrossAttention, CopyHead)):
                    module.prepare(memory)
        return memory

    def _output(
        self, h: torch.Tensor, memory: MemoryBatch | None, recent: torch.Tensor | None
    ) -> torch.Tensor:
        """Normed final hidden -> next-byte logits, mixed with the copy head's distribution
        when there are entries to copy from (then log-probabilities). `recent` (B, L,
        CopyHead.MATCHES): the byte at each position and the ones before it, latest first."""
        logits = self.head(h)
        if memory is not None and memory.n_entries:
            logits = self.copy(h, logits, memory, recent)
        return logits

    def empty_cache(self, batch: int, memory: MemoryBatch | None = None) -> Cache:
        """A cache before any byte; `memory` defaults to the whole bank when it holds at most
        top_k entries (a larger bank needs the prompts it is retrieved for: `memory.batch`)."""
        if memory is None and len(self.memory):
            if len(self.memory) > self.memory.top_k:
                raise ValueError(
                    "empty_cache: the bank is larger than top_k; pass "
                    "memory=model.memory.batch(prompts)"
                )
            memory = self.memory.batch()
        device = self.embed.weight.device
        layers = [
            LayerCache(
                layer.mixer.empty_state(batch, device),
                AttentionCache() if layer.kind == "attention" else None,
            )
            for layer in self.layers
        ]
        return Cache(layers, memory)

    def step(self, byte_ids: torch.Tensor, cache: Cache) -> torch.Tensor:
        """byte_ids (B,) -> next-byte logits (B, 256), advancing `cache` by one byte."""
        h = self.embed(byte_ids)  # (B, D)
        for layer, layer_cache in zip(self.layers, cache.layers, strict=True):
            h = layer.step(h, layer_cache, cache.memory)
        previous = cache.previous
        if previous is None:
            previous = torch.full((byte_ids.shape[0], CopyHead.MATCHES - 1), -1, dtype=torch.long,
                                  device=byte_ids.device)  # fmt: skip
        recent = torch.cat([byte_ids[:, None], previous], -1)  # (B, MATCHES), latest first
        cache.previous = recent[:, :-1]
        recent = recent[:, None]  # (B, 1, MATCHES)
        h = self.norm(h).unsqueeze(1)  # (B, 1, D)
        logits = self._output(h, cache.memory, recent)
        if self.context_copy is not None:
            logits, cache.context = self.context_copy(
                h, logits, byte_ids[:, None], cache.context, want_cache=True
            )
        return logits.squeeze(1)

    def generate(
        self,
        prompt: bytes | str,
        max_bytes: int = 128,
        fim_suffix: bytes | str | None = None,
        **sampling,
    ) -> bytes:
        """Continue `prompt`; returns the new bytes. See `ghost.model.generate.generate`.

        Generation ends at the end-of-answer marker, as at an end-of-sequence token (valid data
        never contains it, so only a Q&A- or fim-trained model produces it); pass
        `stop_bytes=b""` to go on to `max_bytes`. With `fim_suffix`, the result fills the
        hole between `prompt` (the prefix) and it (a model trained with `--recipe fim`).
        """
        from ghost.data.template import QATemplate
        from ghost.model.generate import generate

        if fim_suffix is not None:
            from ghost.data.fim import fim_prompt

            prompt = fim_prompt(prompt, fim_suffix)
        sampling.setdefault("stop_bytes", bytes([QATemplate.from_config(self.config).marker]))
        return generate(self, [prompt], max_bytes=max_bytes, **sampling)[0]

    @contextlib.contextmanager
    def trace_memory(self):
        """Within the block, the memory readers (the memory layers and the copy head) add up
        the attention each bank entry receives; yields a dict filled on exit: {bank index:
        share}, each reader's attention normalised to 1 and averaged over the readers."""
        readers = [layer.extra for layer in self.layers if layer.kind == "memory"] + [self.copy]
        for reader in readers:
            reader.reads = torch.zeros(0)
        shares: dict[int, float] = {}
        try:
            yield shares
        finally:
            totals = [reader.reads for reader in readers if float(reader.reads.sum()) > 0]
            for reader in readers:
                reader.reads = None
            if totals:
                size = max(t.numel() for t in totals)
                mean = sum(F.pad(t / t.sum(), (0, size - t.numel())) for t in totals) / len(totals)
                shares.update({i: float(v) for i, v in enumerate(mean) if v > 0})

    # Persistence: config.json + model.safetensors (+ memory.jsonl and memory.safetensors).
    # Nothing is unpickled.

    def save_pretrained(self, directory: str | Path) -> None:
        from ghost.model.io import save_model

        save_model(self, Path(directory))

    @classmethod
    def from_pretrained(cls, directory: str | Path, memory: bool = True) -> GhostModel:
        """Load a run directory; `memory=False` leaves the bank empty and its files unread."""
        from ghost.model.io import load_model

        return load_model(Path(directory), memory=memory)
