"""The context copy head: the chunked pass equals a per-position reference, one byte at a time
through the cache equals one pass, and a model with it learns to copy names it never saw."""

import math
import random

import pytest
import torch

import ghost.model.context_copy as context_copy
from ghost.model import GhostModel
from ghost.model.context_copy import AHEAD, MATCHES, ContextCopyHead


def reference(head: ContextCopyHead, h, logits, ids):
    """log p(next byte) position by position, straight from the module docstring's formulas."""
    b, length, _ = h.shape
    out = torch.empty(b, length, 256)
    for r in range(b):
        x = ids[r].tolist()
        vocab = torch.log_softmax(logits[r].float(), -1)
        for t in range(length):
            pairs = list(range(max(0, t - head.window), t))
            if not pairs:
                out[r, t] = vocab[t]
                continue
            q = head.q_proj(h[r, t]) / math.sqrt(head.key_dim)
            scores, any_match = [], [False] * MATCHES
            for j in pairs:
                s = float(q @ head.k_proj(h[r, j]))
                for n in range(MATCHES):  # the last n+1 bytes read == the n+1 ending at j
                    if j - n < 0 or x[t - n] != x[j - n]:
                        break
                    s += float(head.match[n])
                    any_match[n] = True
                scores.append(s)
            attention = torch.softmax(torch.tensor(scores), 0)
            copy = torch.zeros(256)
            for a, j in zip(attention, pairs, strict=True):
                copy[x[j + 1]] += a
            z = float(head.gate(h[r, t])) + sum(
                float(head.gate_match[n]) for n in range(MATCHES) if any_match[n]
            )
            for a, j in zip(attention, pairs, strict=True):  # the state AHEAD bytes past j
                if j + AHEAD <= t:
                    z += float(a) * float(head.ahead @ h[r, j + AHEAD])
            g = 1 / (1 + math.exp(-z))
            out[r, t] = torch.log((1 - g) * vocab[t].exp() + g * copy + 1e-12 * g)
    return out


def copying_model(window: int = 8) -> GhostModel:
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny", context_copy=True, context_copy_window=window).eval()
    model.context_copy.gate.bias.data.fill_(0.0)  # so that copying really mixes in
    model.context_copy.gate_match.data.normal_()
    model.context_copy.ahead.data.normal_()
    return model


@pytest.mark.parametrize("chunk", [256, 7])
def test_the_chunked_pass_equals_the_reference(monkeypatch, chunk):
    monkeypatch.setattr(context_copy, "CHUNK", chunk)
    head = copying_model().context_copy
    torch.manual_seed(1)
    ids = torch.randint(97, 100, (2, 21))  # 3 letters: many continuation matches
    h, logits = torch.randn(2, 21, 32), torch.randn(2, 21, 256)
    with torch.no_grad():
        got, _ = head(h, logits, ids)
        want = reference(head, h, logits, ids)
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(got[:, 0], torch.log_softmax(logits[:, 0], -1))  # nothing to copy yet
    assert torch.allclose(got.exp().sum(-1), torch.ones(2, 21), atol=1e-5)


@pytest.mark.parametrize("bank", [False, True])
def test_steps_and_prefix_caches_equal_one_pass(bank):
    model = copying_model(window=8)
    if bank:  # the memory's copy head mixes first, then this one
        model.copy.gate.bias.data.fill_(0.0)
        model.memory.write(["The capital of Peru is Lima.", "Gold is Au."])
    ids = torch.randint(97, 101, (3, 30))  # longer than the window: the cache is trimmed
    # One retrieval for every path (as generation keys it by the prompt, once).
    memory = model.memory.batch([bytes(row) for row in ids.tolist()]) if bank else None
    with torch.no_grad():
        full = model(ids, memory=memory).logits
        cache = model.empty_cache(3, memory)
        stepped = torch.stack([model.step(ids[:, t], cache) for t in range(30)], 1)
        assert cache.context.data.shape[1] == 8 + MATCHES
        prefix = model(ids[:, :17], memory=memory, use_cache=True)
        rest = model(ids[:, 17:], cache=prefix.cache).logits
        picked = prefix.cache.select(torch.tensor([2, 0]))  # rows of a shared prefix
        again = model(ids[[2, 0], 17:], cache=picked).logits
        at = torch.zeros_like(ids, dtype=torch.bool)
        at[:, 20:25] = True
        only = model(ids, memory=memory, logits_at=at).logits
    assert torch.allclose(stepped, full, atol=1e-5)
    assert torch.allclose(torch.cat([prefix.logits, rest], 1), full, atol=1e-5)
    assert torch.allclose(again, rest[[2, 0]], atol=1e-5)
    assert torch.allclose(only[at], full[at], atol=1e-5) and not only[~at].any()


def test_off_by_default_and_saved_with_the_run(tmp_path):
    assert GhostModel.from_preset("tiny").context_copy is None
    model = copying_model()
    model.save_pretrained(tmp_path)
    loaded = GhostModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def name_rows(rng: random.Random, n: int) -> torch.Tensor:
    """ "(<name>)=<name>." rows: the second name can only be known by copying the first (a
    row's first byte has no state before it to key it, so the name does not start the row)."""
    rows = []
    for _ in range(n):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        rows.append(list(f"({name})={name}.".encode()))
    return torch.tensor(rows)


def copy_accuracy(model, rows: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = model(rows).logits[:, 8:-1].argmax(-1)  # after "=": the copied bytes
    return float((predicted == rows[:, 9:]).all(-1).float().mean())


@pytest.mark.parametrize("with_head", [True, False])
def test_a_model_with_the_head_learns_to_copy_names_it_never_saw(with_head):
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny", context_copy=with_head)
    rng = random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        rows = name_rows(rng, 16)
        labels = rows.clone()
        labels[:, :9] = -100  # score the copy only
        loss = model(rows, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = copy_accuracy(model.eval(), name_rows(random.Random(1), 64))
    if with_head:
        assert accuracy >= 0.9
    else:
        assert accuracy <= 0.2  # a tiny SSM alone does not, in as many steps
