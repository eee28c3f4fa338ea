"""Generation: the prefilled prompt (one forward pass returning the cache) continues exactly
as feeding the prompt one byte at a time would."""

import torch

from ghost.model import GhostModel
from ghost.model.generate import generate


def byte_by_byte(model, prompt: bytes, n: int) -> tuple[bytes, list[torch.Tensor]]:
    """The plain path: every byte through `model.step`, then n greedy bytes."""
    cache = model.empty_cache(1, model.memory.batch([prompt]))
    logits = None
    for b in prompt:
        logits = model.step(torch.tensor([b]), cache)
    out, seen = bytearray(), []
    for _ in range(n):
        seen.append(logits[0])
        b = int(logits.argmax(-1))
        out.append(b)
        logits = model.step(torch.tensor([b]), cache)
    return bytes(out), seen


def test_prefill_then_steps_equals_the_byte_by_byte_path():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()  # window 8, stride 4: prompts cross both
    for layer in model.layers:
        if layer.kind == "memory":
            layer.extra.gate.data.fill_(0.5)  # so that the memory is really read
    model.copy.gate.bias.data.fill_(0.0)  # ... and copied from
    model.memory.write(["The capital of Peru is Lima.", "Gold is Au."])
    prompts = [b"Q: What is the capital of Peru?\nA: ", b"Q: gold?\nA: ", b"Q: a much longer one"]
    with torch.no_grad():
        together = generate(model, prompts, max_bytes=12)
        for prompt, got in zip(prompts, together, strict=True):
            expected, _ = byte_by_byte(model, prompt, 12)
            assert got == expected
        # The prefilled cache itself: the next-byte logits after the prompt match.
        prompt = prompts[0]
        memory = model.memory.batch([prompt])
        cache = model(torch.tensor([list(prompt[:-1])]), memory=memory, use_cache=True).cache
        prefilled = model.step(torch.tensor([prompt[-1]]), cache)
        _, seen = byte_by_byte(model, prompt, 1)
        torch.testing.assert_close(prefilled[0], seen[0], atol=1e-5, rtol=1e-4)
