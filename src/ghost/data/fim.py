"""The fill-in-the-middle (FIM) format, shared by training (`--recipe fim`) and generation.

A window of text is cut at two points into prefix, middle and suffix, and rearranged in PSM
order (prefix, suffix, middle) between three sentinel bytes, the middle ending with the
model's end-of-answer marker:

    window   = prefix + middle + suffix                                 n bytes
    example  = PREFIX + prefix + SUFFIX + suffix + MIDDLE + middle + END   n + 4 bytes
    prompt   = PREFIX + prefix + SUFFIX + suffix + MIDDLE                 (generation)

so a model trained on examples fills a hole by continuing the prompt until it emits END.
The sentinels are control bytes that text never holds, like the end marker (ETX, 0x03):
training refuses data containing them (`reserved_byte_at`), and a prompt may not hold them.
"""

from __future__ import annotations

import torch

from ghost.errors import GhostInputError

PREFIX = 0x0E  # SO: the prefix follows
SUFFIX = 0x0F  # SI: the suffix follows
MIDDLE = 0x10  # DLE: the middle follows, up to the end-of-answer marker
SENTINELS = bytes([PREFIX, SUFFIX, MIDDLE])


def fim_rearrange(window: torch.Tensor, cut1: int, cut2: int, end_byte: int) -> torch.Tensor:
    """window (n,) bytes -> (n + 4,): PREFIX w[:cut1] SUFFIX w[cut2:] MIDDLE w[cut1:cut2] END.

    0 <= cut1 <= cut2 <= n; any of prefix, middle and suffix may be empty.
    """
    if not 0 <= cut1 <= cut2 <= len(window):
        raise ValueError(f"FIM cuts must satisfy 0 <= {cut1} <= {cut2} <= {len(window)}")

    def byte(b: int) -> torch.Tensor:
        return torch.tensor([b], dtype=window.dtype, device=window.device)

    return torch.cat(
        [
            byte(PREFIX),
            window[:cut1],
            byte(SUFFIX),
            window[cut2:],
            byte(MIDDLE),
            window[cut1:cut2],
            byte(end_byte),
        ]
    )


def fim_restore(example: torch.Tensor, end_byte: int) -> torch.Tensor:
    """The inverse of `fim_rearrange`: (n + 4,) -> the window (n,) prefix + middle + suffix.

    Exact when the window holds no sentinel byte (training refuses data that does).
    """
    data = example.tolist()
    if len(data) < 4 or data[0] != PREFIX or data[-1] != end_byte:
        raise ValueError("not a FIM example: it must start with PREFIX and end with END")
    suffix_at = data.index(SUFFIX)
    middle_at = data.index(MIDDLE, suffix_at)
    prefix = example[1:suffix_at]
    suffix = example[suffix_at + 1 : middle_at]
    middle = example[middle_at + 1 : -1]
    return torch.cat([prefix, middle, suffix])


def fim_prompt(prefix: bytes | str, suffix: bytes | str) -> bytes:
    """The generation prompt for the hole between `prefix` and `suffix` (str is UTF-8): the
    model's continuation up to the end-of-answer marker is the middle."""
    prefix, suffix = (
        p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in (prefix, suffix)
    )
    for name, part in (("prefix", prefix), ("suffix", suffix)):
        found = next((b for b in part if b in SENTINELS), None)
        if found is not None:
            raise GhostInputError(
                f"the fill-in-the-middle {name} contains the reserved sentinel byte {found:#04x}"
            )
    return bytes([PREFIX]) + prefix + bytes([SUFFIX]) + suffix + bytes([MIDDLE])


def reserved_byte_at(stream: torch.Tensor, reserved: bytes) -> tuple[int, int] | None:
    """The first (offset, byte) of `stream` (n,) that is one of `reserved`, or None."""
    hits = torch.isin(stream, torch.tensor(list(reserved), dtype=stream.dtype))
    if not hits.any():
        return None
    offset = int(hits.nonzero()[0, 0])
    return offset, int(stream[offset])
