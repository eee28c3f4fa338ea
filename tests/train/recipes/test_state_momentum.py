"""state-momentum: each row reads consecutive windows of the text stream, and every mixer
starts window k+1 from ssm_out(k) + momentum * (ssm_out(k) - ssm_out(k-1)) (conv window
carried as is), detached; wraps and `reset_every` restart from zero; the fused scan runs
it; Q&A data and bad options are refused; a resume continues exactly."""

from pathlib import Path

import pytest
import torch
from tiny_runs import assert_resumes_exactly, tiny_config, word_text

import ghost.model.scan_fused as scan_fused
from ghost.config import GhostConfig, TrainConfig
from ghost.data.batches import TextBatcher
from ghost.data.records import Dataset
from ghost.errors import GhostInputError
from ghost.model import GhostModel
from ghost.model.ghost import next_byte_loss
from ghost.train.hooks import TrainState
from ghost.train.loop import train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.state_momentum import MambaStateMomentum


class Windows:
    """Drives the recipe by hand, as the loop does: on_batch, forward (+ backward), on_loss.
    Records each window's batch, the states handed in and the states the forward ended with."""

    def __init__(self, recipe, text: str, rows=4, seq_len=32, model_config=None):
        torch.manual_seed(0)
        self.model = GhostModel(model_config or GhostConfig.from_preset("tiny"))
        self.model.train()
        dataset = Dataset("code", "text", [{"text": text}])
        config = TrainConfig(data="code", batch_size=rows, seq_len=seq_len)
        batcher = TextBatcher(dataset, rows, seq_len, seed=0)
        self.state = TrainState(config, self.model, None, batcher, Path("unused"))
        self.recipe = recipe
        recipe.on_train_begin(self.state)
        self.batches, self.states_in, self.states_out, self.outputs = [], [], [], []

    def step(self):
        state = self.state
        state.forward_kwargs = {}
        batch = self.recipe.on_batch(state, state.batcher.next_batch(state.seq_len))
        states_in = [(s.conv.clone(), s.ssm.clone()) for s in state.forward_kwargs["mamba_states"]]
        output = self.model(batch.input_ids, **state.forward_kwargs)
        loss = next_byte_loss(output.logits, batch.labels)
        loss = self.recipe.on_loss(state, loss, output, batch)
        loss.backward()
        self.batches.append(batch)
        self.states_in.append(states_in)
        self.states_out.append(
            [
                (c.mamba.conv.detach().clone(), c.mamba.ssm.detach().clone())
                for c in output.cache.layers
            ]
        )
        self.outputs.append(output)
        state.step += 1


def _ring(run) -> torch.Tensor:
    """The stream as the recipe reads it: its end joins its start with a blank line."""
    return torch.cat([run.state.batcher.stream, torch.tensor(list(b"\n\n"))])


def _wraps(start: int, length: int, size: int) -> bool:
    return start == 0 or start + length > size


def test_rows_read_consecutive_windows_and_carry_the_extrapolated_state():
    m, rows, length = 0.5, 4, 32
    run = Windows(MambaStateMomentum(momentum=m), word_text(), rows=rows, seq_len=length)
    for _ in range(3):
        run.step()
    ring = _ring(run)
    size = len(ring)
    starts = [b.indices for b in run.batches]
    for k, batch in enumerate(run.batches):
        assert batch.input_ids.shape == (rows, length)
        assert torch.equal(batch.labels, batch.input_ids)  # every byte a target
        for r, s in enumerate(starts[k].tolist()):
            assert torch.equal(batch.input_ids[r], ring[(s + torch.arange(length)) % size])
        if k:
            assert torch.equal(starts[k], (starts[k - 1] + length) % size)
    # B evenly spaced stretches from a seeded shift.
    spacing = sorted(((starts[0] - starts[0][0]) % size).tolist())
    assert spacing == [r * size // rows for r in range(rows)]

    carried = [r for r in range(rows) if not any(_wraps(int(s[r]), length, size) for s in starts)]
    assert len(carried) >= 2  # the long stream: most rows do not wrap in three windows
    for layer in range(len(run.model.layers)):
        conv_in, ssm_in = run.states_in[0][layer]
        assert not conv_in.any() and not ssm_in.any()  # window 0 starts from zero
        conv_in, ssm_in = (t[carried] for t in run.states_in[1][layer])
        conv_out, ssm_out = (t[carried] for t in run.states_out[0][layer])
        assert torch.equal(ssm_in, ssm_out) and torch.equal(conv_in, conv_out)  # plain carry
        conv_in, ssm_in = (t[carried] for t in run.states_in[2][layer])
        conv_out1, ssm_out1 = (t[carried] for t in run.states_out[1][layer])
        ssm_out0 = run.states_out[0][layer][1][carried]
        torch.testing.assert_close(ssm_in, ssm_out1 + m * (ssm_out1 - ssm_out0), rtol=0, atol=0)
        assert torch.equal(conv_in, conv_out1)  # the conv window: exact history, no momentum
        assert ssm_out1.abs().sum() > 0 and not torch.equal(ssm_out1, ssm_out0)
    # Detached: the carried state has no path back into the previous window's graph.
    assert all(not s.requires_grad for pair in run.states_in[2] for s in pair)


def test_with_zero_momentum_the_carry_continues_the_sequence_exactly():
    """No attention (it starts each window fresh): carried windows = one long forward."""
    config = GhostConfig.from_preset("tiny", attention_layers=(), memory_layers=())
    run = Windows(
        MambaStateMomentum(momentum=0.0), word_text(), rows=3, seq_len=24, model_config=config
    )
    for _ in range(3):
        run.step()
    ring = _ring(run)
    size = len(ring)
    rows = [
        r for r in range(3) if not any(_wraps(int(b.indices[r]), 24, size) for b in run.batches)
    ]
    assert rows
    whole = torch.stack([ring[int(run.batches[0].indices[r]) :][:72] for r in rows])
    with torch.no_grad():
        expected = run.model(whole).logits  # (rows, 72, 256)
    got = torch.cat([o.logits.detach()[rows] for o in run.outputs], dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_a_row_that_wraps_past_the_end_restarts_from_zero_states():
    text = "abcdefghij" * 10  # 100 bytes, a ring of 102: windows of 32 wrap every few steps
    run = Windows(MambaStateMomentum(), text, rows=4, seq_len=32)
    for _ in range(8):
        run.step()
    wrapped = 0
    for k in range(1, 8):
        starts = run.batches[k].indices.tolist()
        assert len(set(starts)) == 4  # rows never meet
        for r, start in enumerate(starts):
            conv_in, ssm_in = run.states_in[k][0][0][r], run.states_in[k][0][1][r]
            if _wraps(start, 32, 102):
                assert not ssm_in.any() and not conv_in.any()
                wrapped += 1
            else:  # carried from window k-1, wrapped or not
                assert ssm_in.abs().sum() > 0
    assert wrapped > 0


def test_reset_every_restarts_all_rows_from_zero():
    run = Windows(MambaStateMomentum(reset_every=2), word_text(), rows=2, seq_len=16)
    for _ in range(4):
        run.step()
    size = len(_ring(run))
    for k in range(4):
        for r in range(2):
            zero = not run.states_in[k][0][1][r].any()
            assert zero == (k % 2 == 0 or _wraps(int(run.batches[k].indices[r]), 16, size))


def test_the_fused_kernel_runs_the_scans_with_carried_states(tmp_path, text_file, monkeypatch):
    if "fused" not in scan_fused.kernel_status():
        pytest.skip(f"no fused kernel here: {scan_fused.kernel_status()}")
    monkeypatch.delenv("GHOST_SCAN", raising=False)
    calls = {"fused": 0, "fused_with_state": 0, "ref": 0}
    fused, ref = scan_fused.selective_scan_fused, scan_fused.selective_scan_ref

    def counting_fused(*args, **kwargs):
        calls["fused"] += 1
        calls["fused_with_state"] += args[-1] is not None  # initial_state, positional
        return fused(*args, **kwargs)

    def counting_ref(*args, **kwargs):
        calls["ref"] += 1
        return ref(*args, **kwargs)

    monkeypatch.setattr(scan_fused, "selective_scan_fused", counting_fused)
    monkeypatch.setattr(scan_fused, "selective_scan_ref", counting_ref)
    cfg = tiny_config(text_file, tmp_path / "run", steps=2, seq_len=32, eval_every=50)
    train(cfg, recipes=build_recipes({"state-momentum": {}}))
    layers = GhostConfig.from_preset("tiny").n_layers
    assert calls["ref"] == 0
    assert calls["fused"] >= 2 * layers
    assert calls["fused_with_state"] >= 2 * layers  # every window hands every mixer a state


def test_qa_data_clashing_recipes_and_bad_options_are_refused(tmp_path, qa_file, text_file):
    with pytest.raises(GhostInputError, match="needs contiguous text data.*Q&A"):
        train(tiny_config(qa_file, tmp_path / "run", steps=1, recipes={"state-momentum": {}}))
    for other in ("skip", "fim"):
        recipes = {"state-momentum": {}, other: {}}
        with pytest.raises(GhostInputError, match=f"cannot be combined with {other}"):
            train(tiny_config(text_file, tmp_path / other, steps=1, recipes=recipes))
    for options in (
        {"momentum": 1.5},
        {"momentum": -0.1},
        {"reset_every": -1},
        {"reset_every": 1.5},
    ):
        with pytest.raises(GhostInputError, match="state-momentum"):
            build_recipes({"state-momentum": options})


def test_resume_continues_exactly(tmp_path, text_file):
    def config(out, **kw):
        recipes = {"state-momentum": {"momentum": 0.5, "reset_every": 3}}
        return tiny_config(text_file, out, steps=8, seq_len=32, recipes=recipes, **kw)

    assert_resumes_exactly(config, steps=8, stop_at=4, tmp_path=tmp_path)
