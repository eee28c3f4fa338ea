"""Mamba state momentum: truncated back-propagation through time (TBPTT) on a text stream,
each row's SSM state carried into its next window and pushed on by its last change.

Each of the B batch rows reads consecutive windows of its own stretch of the text stream,
read as a ring (the end joins the start with the blank line that joins records):

    M        = len(stream) + 2                      the ring: stream + "\n\n"
    p_r(0)   = (shift + r * M // B) mod M           shift seeded: B evenly spaced stretches
    w_r(k)   = ring[(p_r(k) + t) mod M], t < L      p_r(k+1) = (p_r(k) + L) mod M
    a window that reaches past the ring's end (or starts at 0) starts from zero states

so the batch covers the stream once every M / (B L) steps, and (for M >= B) rows never
meet. Every Mamba mixer starts window k+1 from the state it ended window k with:

    ssm_in(0)   = 0
    ssm_in(1)   = ssm_out(0)                                            plain carry
    ssm_in(k+1) = ssm_out(k) + momentum * (ssm_out(k) - ssm_out(k-1))   k >= 1
    conv_in(k+1) = conv_out(k)    the last d_conv inputs: exact history, carried as is

Shapes, per layer: ssm (B, ED, N), conv (B, ED, K). The carried states are detached, so no
gradient reaches the previous window (that is the truncation). k counts a row's windows
since its state was last zero: a wrap past the stream's end, `reset_every` windows (all
rows) or a non-finite state restarts it at 0.

The original computed a "velocity" of the state with an extra forward pass and dropped it
for its overhead; here the velocity is the difference of two states the forward passes
already produce, so the cost is the carry itself (the mixers return their final states).
The states go in through `state.forward_kwargs["mamba_states"]` and come back in
`output.cache` (`use_cache=True`); the mixer runs the fused scan with an initial state.

Everything needed to resume exactly is saved: row positions, the last two states, each
row's window count and the window counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.distributed as dist

from ghost.data.batches import Batch, TextBatcher
from ghost.errors import GhostInputError
from ghost.model.mamba import MambaState
from ghost.train.hooks import Recipe, TrainState
from ghost.train.recipes import number_option, whole_option

# Recipes whose batches are not the contiguous windows this one built: a carried state
# would continue text its row no longer holds.
ROW_CHANGING_RECIPES = ("skip", "fim")


@dataclass
class MambaStateMomentum(Recipe):
    """Carry each row's Mamba state across its consecutive text windows, extrapolated."""

    momentum: float = 0.5
    """ssm_in(k+1) = ssm_out(k) + momentum * (ssm_out(k) - ssm_out(k-1)); 0 is plain TBPTT."""
    reset_every: int = 0
    """Restart every row from zero states every this many windows; 0 never does."""

    name: ClassVar[str] = "state-momentum"

    def __post_init__(self):
        self.momentum = number_option("state-momentum", "momentum", self.momentum)
        if not 0 <= self.momentum <= 1:  # NaN fails this too
            raise GhostInputError(
                f"recipe 'state-momentum': momentum must be in [0, 1], got {self.momentum}"
            )
        self.reset_every = whole_option("state-momentum", "reset_every", self.reset_every, 0)
        # Set in on_train_begin (or by load_state_dict on a resume).
        self.positions: torch.Tensor | None = None  # (B,) start of each row's next window
        self.age: torch.Tensor | None = None  # (B,) windows read since the state was zero
        self.last: list[MambaState] = []  # per layer: the states window k ended with
        self.previous_ssm: list[torch.Tensor] = []  # per layer: ssm_out(k-1), (B, ED, N)
        self.windows = 0  # windows read so far, all rows together
        self.ring = torch.zeros(0, dtype=torch.long)  # (M,) the stream and its separator
        self._pending: tuple[torch.Tensor, int, torch.Tensor] | None = None

    # Hooks -------------------------------------------------------------------------------

    def on_train_begin(self, state: TrainState) -> None:
        if not isinstance(state.batcher, TextBatcher):
            raise GhostInputError(
                "state-momentum needs contiguous text data (a text dataset such as code50); "
                f"{state.config.data} holds Q&A records"
            )
        clashing = [name for name in state.config.recipes if name in ROW_CHANGING_RECIPES]
        if clashing:
            raise GhostInputError(
                f"state-momentum cannot be combined with {clashing[0]}: it drops or "
                "rearranges the rows whose states are carried"
            )
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each rank would carry the states of the rows it is given, but the shard of a
            # row can change with the world size, and the carried rows must stay put.
            raise GhostInputError("state-momentum runs in one process only, not under torchrun")
        separator = torch.tensor(list(b"\n\n"), dtype=torch.long)
        self.ring = torch.cat([state.batcher.stream, separator])  # (M,)
        rows, size = state.batcher.batch_size, len(self.ring)
        if self.positions is None:
            generator = torch.Generator().manual_seed(state.config.seed)
            shift = int(torch.randint(0, size, (1,), generator=generator))
            self.positions = (shift + torch.arange(rows) * size // rows) % size
            self.age = torch.zeros(rows, dtype=torch.long)
            self.last = [layer.mixer.empty_state(rows) for layer in state.model.layers]
            self.previous_ssm = [torch.zeros_like(s.ssm) for s in self.last]
        elif len(self.positions) != rows or len(self.last) != len(state.model.layers):
            raise GhostInputError(
                f"{state.run_dir}: the checkpoint's state-momentum carries {len(self.positions)} "
                f"rows of {len(self.last)} layers; this run has {rows} rows of "
                f"{len(state.model.layers)} layers"
            )

    def on_batch(self, state: TrainState, batch: Batch) -> Batch:
        """Replace the batch with each row's next window and hand the mixers their states."""
        size = len(self.ring)
        length = min(state.seq_len or state.config.seq_len, size)
        starts = self.positions  # (B,)
        wrapped = (starts + length > size) | (starts == 0)
        age = self.age.clone()
        age[wrapped] = 0
        if self.reset_every and self.windows % self.reset_every == 0:
            age.zero_()
        carry = (age >= 1).float().view(-1, 1, 1)  # rows with a state to carry
        extrapolate = (age >= 2).float().view(-1, 1, 1)  # rows with ssm_out(k-1) as well
        mamba_states = []
        for last, previous in zip(self.last, self.previous_ssm, strict=True):
            velocity = last.ssm - previous  # (B, ED, N)
            ssm = (last.ssm + self.momentum * extrapolate * velocity) * carry
            mamba_states.append(MambaState(conv=last.conv * carry, ssm=ssm))
        state.forward_kwargs["mamba_states"] = mamba_states
        state.forward_kwargs["use_cache"] = True
        self._pending = (starts, length, age)
        windows = self.ring[(starts.unsqueeze(1) + torch.arange(length)) % size]  # (B, L)
        return Batch(windows, windows.clone(), starts.clone())

    def on_loss(self, state: TrainState, loss: torch.Tensor, output, batch) -> torch.Tensor:
        """Keep the states this window ended with (detached) and move each row on."""
        if self._pending is None:
            return loss
        starts, length, age = self._pending
        self._pending = None
        if not torch.equal(batch.indices, starts) or output.cache is None:
            raise GhostInputError(
                "state-momentum needs its rows in the forward pass as it built them; a "
                "recipe after it dropped or changed rows"
            )
        ended = [
            MambaState(
                conv=layer.mamba.conv.detach().float().clone(),  # (B, ED, K)
                ssm=layer.mamba.ssm.detach().float().contiguous().clone(),  # (B, ED, N)
            )
            for layer in output.cache.layers
        ]
        finite = torch.ones(len(starts), dtype=torch.bool)  # (B,)
        for s in ended:
            finite &= torch.isfinite(s.ssm).flatten(1).all(1)
            finite &= torch.isfinite(s.conv).flatten(1).all(1)
        # A non-finite state would poison every later window of its row: restart that row.
        for s in ended:
            s.ssm[~finite] = 0
            s.conv[~finite] = 0
        self.previous_ssm = [s.ssm for s in self.last]
        self.last = ended
        self.age = torch.where(finite, age + 1, torch.zeros_like(age))
        self.positions = (starts + length) % len(self.ring)
        self.windows += 1
        return loss

    # Resume ------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        if self.positions is None:
            return {}
        return {
            "positions": self.positions,
            "age": self.age,
            "windows": self.windows,
            "last_conv": [s.conv for s in self.last],
            "last_ssm": [s.ssm for s in self.last],
            "previous_ssm": list(self.previous_ssm),
        }

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.positions = state["positions"].long()
        self.age = state["age"].long()
        self.windows = int(state["windows"])
        self.last = [
            MambaState(conv=conv.float(), ssm=ssm.float())
            for conv, ssm in zip(state["last_conv"], state["last_ssm"], strict=True)
        ]
        self.previous_ssm = [ssm.float() for ssm in state["previous_ssm"]]
