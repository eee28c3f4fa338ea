"""Data-parallel training over several processes or machines, through PyTorch's own engine.

    torchrun --standalone --nproc_per_node=2 -m ghost train ...            one machine
    torchrun --nnodes=2 --nproc_per_node=2 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 -m ghost train ...                 two machines

torchrun starts W processes (ranks) and tells each one its rank through environment
variables. `DataParallel.from_environment()` joins them into one process group (gloo on
CPU, NCCL on CUDA) and, in a plain single process, is a no-op with the same methods, so
the training loop has one code path.

Why W ranks x batch B train exactly like one process with batch W*B:
- every rank draws the SAME global batch of W*B rows (same seed, same batcher state) and
  trains on its own contiguous slice of rows (`shard`);
- rank r's loss is W * (sum of its target-byte losses) / N, where N is the global number
  of target bytes (`sum`, an all-reduce of the ranks' counts);
- DistributedDataParallel averages the gradients of the W ranks, so every rank applies
  the gradient of (sum of all target-byte losses) / N: the global batch's mean loss, the
  single-process objective. Only the order of floating-point additions differs.
- after each step all ranks take rank 0's decisions (stop, learning-rate scale) and stop
  together when any rank was interrupted, so no rank waits on a collective the others left.

Rank 0 alone writes checkpoints, metrics and progress; every rank reads the same
checkpoint on resume.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ghost.data.batches import IGNORE, Batch
from ghost.errors import GhostInputError

STOPPED_WITH_MAIN = "stopped with rank 0"
LEAVE_SECONDS = 0.1  # see DataParallel.close


def backend_for(device: str) -> str:
    """The collective backend follows the device: NCCL between GPUs, gloo between CPUs."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def is_main_process() -> bool:
    """Whether this process should speak for the run (rank 0, or not distributed at all)."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class DataParallel:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    owns_group: bool = False  # whether `close` should destroy the group (we created it)

    @classmethod
    def from_environment(cls, device: str = "cpu") -> DataParallel:
        """Join torchrun's process group (WORLD_SIZE > 1), or a single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        owns_group = not dist.is_initialized()
        if owns_group:
            try:
                dist.init_process_group(backend=backend_for(device))
            except ValueError as e:  # torchrun's variables (MASTER_ADDR, ...) missing or bad
                raise GhostInputError(f"cannot join the process group: {e}") from None
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        return cls(dist.get_rank(), dist.get_world_size(), local, owns_group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def threads_per_process(self) -> int:
        """CPU threads for one rank when the user asked for 'all cores' (0): a fair share."""
        if self.world_size == 1:
            return 0
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.local_world_size)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call for training: DDP averages gradients during backward."""
        if self.world_size == 1:
            return model
        # Memory layers and the memory encoder get no gradient while the bank is empty, so
        # DDP must look for unused parameters instead of waiting for their gradients.
        return DistributedDataParallel(model, find_unused_parameters=True)

    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous slice of the global batch's rows."""
        if self.world_size == 1:
            return batch
        rows = torch.tensor_split(torch.arange(batch.input_ids.shape[0]), self.world_size)
        mine = rows[self.rank]
        if len(mine) == 0:
            # Fewer rows than ranks: DDP needs every rank's backward, so this one trains on
            # a row with no targets (zero loss, zero gradient).
            row = batch.select(torch.arange(1))
            return Batch(row.input_ids, torch.full_like(row.labels, IGNORE), row.indices)
        return batch.select(mine)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64: counts stay exact)."""
        if self.world_size == 1:
            return [float(v) for v in values]
        total = torch.tensor([float(v) for v in values], dtype=torch.float64)
        dist.all_reduce(total)
        return total.tolist()

    def follow_main(self, state) -> None:
        """Every rank takes rank 0's stop decision and learning-rate scale.

        Stopping rules read the clock, which differs between ranks; rank 0's verdict rules.
        """
        if self.world_size == 1:
            return
        mine = [float(state.stop_reason is not None), state.lr_scale] if self.is_main else [0, 0]
        decision = torch.tensor(mine, dtype=torch.float64)
        dist.broadcast(decision, src=0)
        stop, state.lr_scale = bool(decision[0]), float(decision[1])
        state.stop_reason = (state.stop_reason or STOPPED_WITH_MAIN) if stop else None

    def close(self) -> None:
        """Wait until every rank is done (rank 0 may still be saving), then leave the group."""
        if self.world_size == 1:
            return
        dist.barrier()
        if self.owns_group:
            dist.destroy_process_group()
        # A gloo worker thread frees a collective's tensors after the caller has been told it
        # finished (here the barrier, which holds the broadcast before it), and freeing a tensor
        # Python has seen takes the GIL. If the interpreter is already shutting down by then,
        # Python ends that thread and C++ aborts the process: SIGABRT, "terminate called
        # without an active exception", about 1 run in 35 of the 2-rank test. Releasing the
        # GIL for a moment lets the workers finish first.
        time.sleep(LEAVE_SECONDS)
