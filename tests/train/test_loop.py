import csv

import pytest
import torch
from tiny_runs import tiny_config

from ghost.config import GhostConfig, TrainConfig
from ghost.data.records import load_data
from ghost.errors import GhostInputError
from ghost.eval.metrics import evaluate
from ghost.model import GhostModel
from ghost.train.hooks import Recipe
from ghost.train.loop import learning_rate, train


def _tiny(tmp_path, qa_file, **kw):
    return tiny_config(qa_file, tmp_path / "run", **{"lr": 1e-2, "eval_every": 20, **kw})


def test_auto_steps_learn_a_memorisable_set_and_say_why_they_stopped(tmp_path, qa_file):
    result = train(_tiny(tmp_path, qa_file), model_config=GhostConfig.from_preset("tiny"))
    assert result.stop_reason == "training exact match reached 100%"
    summary, _ = evaluate(result.model, load_data(str(qa_file)))
    assert summary["exact_match"] == 1.0  # the teacher-forced check agrees with real decoding
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]) / 5
    reloaded = GhostModel.from_pretrained(tmp_path / "run")
    assert evaluate(reloaded, load_data(str(qa_file)))[0]["exact_match"] == 1.0


def test_hooks_run_in_order_every_step_and_a_skipped_step_changes_nothing(tmp_path, qa_file):
    class Spy(Recipe):
        name = "spy"

        def __init__(self):
            self.calls = []
            self.weights_before_skip = None

        def on_train_begin(self, state):
            self.calls.append("begin")

        def on_batch(self, state, batch):
            self.calls.append(f"batch{state.step}")
            if state.step == 1:
                self.weights_before_skip = {
                    k: v.clone() for k, v in state.model.state_dict().items()
                }
                return None  # skipped
            return batch.select(torch.arange(len(batch.indices)) < 4)

        def on_loss(self, state, loss, output, batch):
            assert batch.input_ids.shape[0] == 4 and state.rows.loss.shape == (4,)
            self.calls.append("loss")
            return loss

        def on_backward(self, state):
            assert state.model.embed.weight.grad is not None  # gradients exist, not yet stepped
            self.calls.append("backward")

        def on_optimizer_step(self, state):
            self.calls.append("optimizer")

        def on_step_end(self, state, metrics):
            self.calls.append(f"end{state.step}")

        def on_train_end(self, state):
            self.calls.append("end")

    class WeightsAtStepEnd(Recipe):
        name = "weights"

        def __init__(self):
            self.snapshots = {}

        def on_step_end(self, state, metrics):
            self.snapshots[state.step] = {k: v.clone() for k, v in state.model.state_dict().items()}

    spy, weights = Spy(), WeightsAtStepEnd()
    result = train(_tiny(tmp_path, qa_file, steps=3), recipes=[spy, weights])
    assert result.steps == 3 and result.stop_reason == "reached the requested 3 steps"
    trained = ["loss", "backward", "optimizer"]
    assert spy.calls == [
        "begin",
        "batch0", *trained, "end1",
        "batch1", "end2",  # skipped: no loss, backward or optimiser step
        "batch2", *trained, "end3",
        "end",
    ]  # fmt: skip
    for name, before in spy.weights_before_skip.items():
        assert torch.equal(weights.snapshots[2][name], before), name
    assert not torch.equal(
        weights.snapshots[3]["embed.weight"], weights.snapshots[2]["embed.weight"]
    )


def test_resume_continues_exactly(tmp_path, qa_file):
    straight = train(_tiny(tmp_path / "a", qa_file, steps=12, save_every=6))
    train(_tiny(tmp_path / "b", qa_file, steps=6, save_every=6))
    resumed = train(_tiny(tmp_path / "b", qa_file, steps=12, save_every=6, resume=True))
    assert resumed.steps == 12
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_resumed_run_keeps_the_columns_of_its_metrics_file(tmp_path, qa_file):
    """A run logged by an older Ghost (fewer columns) gets rows that fit its header."""
    import csv

    train(_tiny(tmp_path / "b", qa_file, steps=4, save_every=4))
    path = tmp_path / "b" / "run" / "metrics.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    older = [row[:-1] for row in rows]  # as if the last column did not exist yet
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(older)
    train(_tiny(tmp_path / "b", qa_file, steps=8, save_every=4, resume=True))
    with open(path, newline="", encoding="utf-8") as f:
        after = list(csv.reader(f))
    assert after[0] == older[0] and len(after) == 9
    assert all(len(row) == len(older[0]) for row in after)


def test_an_existing_run_is_never_overwritten(tmp_path, qa_file):
    train(_tiny(tmp_path, qa_file, steps=2))
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(GhostInputError, match="already holds a run"):
        train(_tiny(tmp_path, qa_file, steps=2))
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_schedule_warms_up_then_decays_by_cosine():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 10, 100) == pytest.approx(1.0)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 500, None) == 1.0  # auto: constant, lowered on plateaus


def test_bf16_autocast_training_follows_the_fp32_loss_curve(tmp_path, qa_file):
    """bf16 autocast changes rounding, not learning: its loss curve stays within seed noise.

    Seed noise is measured, not assumed: two fp32 runs that differ only in the seed. The bf16 run
    (same seed as the first) may differ from it by at most twice that, plus 0.05 nats.
    """

    def losses(tag, **kw):
        cfg = _tiny(tmp_path / tag, qa_file, steps=40, eval_every=0, **kw)
        train(cfg, model_config=GhostConfig.from_preset("tiny"))
        rows = list(csv.DictReader(open(tmp_path / tag / "run" / "metrics.csv")))
        return [float(r["loss"]) for r in rows if r["loss"]]

    fp32, fp32_other_seed = losses("fp32", seed=0), losses("fp32-seed1", seed=1)
    bf16 = losses("bf16", seed=0, precision="bf16")
    assert bf16[-1] < bf16[0] / 3  # it learns
    tail = slice(-10, None)  # the last logged losses, averaged, to smooth per-batch noise
    mean = lambda xs: sum(xs[tail]) / len(xs[tail])  # noqa: E731
    seed_noise = abs(mean(fp32) - mean(fp32_other_seed))
    assert abs(mean(bf16) - mean(fp32)) <= 2 * seed_noise + 0.05


def _check_sequence(losses, matches, patience=3):
    """Feed ProgressCheck one check per (loss, training exact match); return the LR scales."""
    from types import SimpleNamespace

    from ghost.train.services import ProgressCheck

    check = ProgressCheck(every=1, patience=patience)
    cfg = SimpleNamespace(max_steps=10**6, max_minutes=10**6)
    state = SimpleNamespace(
        config=cfg, step=0, elapsed=0.0, total_steps=None, stop_reason=None, lr_scale=1.0
    )
    scales = []
    for loss, match in zip(losses, matches, strict=True):
        state.step += 1
        metrics = {"loss": loss, "train_exact_match": match}
        check.on_step_end(state, metrics)
        scales.append(round(state.lr_scale, 6))
        if len(scales) > 1 and scales[-1] != scales[-2]:  # a drop is announced, with its reason
            assert metrics["event"].startswith(f"learning rate lowered to {state.lr_scale:.2g}x")
        else:
            assert "event" not in metrics
    return scales, state.stop_reason


def test_auto_lowers_the_lr_when_answers_oscillate_even_if_the_loss_creeps_down():
    losses = [1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.10, 0.09, 0.08]
    matches = [0.1, 0.4, 0.7, 0.85, 0.89, 0.85, 0.92, 0.88, 0.95]  # 0.85 < 0.89 - 0.03
    scales, reason = _check_sequence(losses, matches)
    assert scales == [1, 1, 1, 1, 1, 0.3, 0.3, 0.09, 0.09] and reason is None


def test_auto_lowers_the_lr_on_a_flat_loss_then_stops():
    losses = [1.0, 0.5] + [0.5] * 9
    matches = [0.1, 0.5] + [0.5] * 9
    scales, reason = _check_sequence(losses, matches)
    assert scales[:5] == [1, 1, 1, 1, 0.3] and scales[7] == 0.09
    assert reason == "the loss stopped improving"
    assert _check_sequence([1.0, 0.2], [0.5, 1.0])[1] == "training exact match reached 100%"


def test_auto_precision_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch, tmp_path, qa_file):
    import json

    import ghost.runtime as runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    assert runtime.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert runtime.resolve_precision("auto") == "fp32"
    assert runtime.resolve_precision("bf16") == "bf16"  # asked for: given, even if emulated
    train(_tiny(tmp_path, qa_file, steps=1))  # precision 'auto', the default
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["precision"] == "auto" and saved["precision_used"] == "fp32"


@pytest.mark.parametrize(
    "with_memory, checkpointing", [(False, False), (True, False), (True, True)]
)
def test_rows_run_in_length_groups_give_the_one_pass_logits_and_gradients(
    with_memory, checkpointing
):
    """forward_by_length: a batch of short and long Q&A rows runs in groups of similar
    length; the scored logits, the loss and every gradient are those of one padded pass,
    also with a per-row memory batch read only at the scored positions (memory training),
    whose entries each memory reader projects once for all the groups, with gradient
    checkpointing too."""
    from ghost.data.batches import IGNORE, Batch, pad_rows
    from ghost.model import GhostModel
    from ghost.model.ghost import next_byte_loss, scored_positions
    from ghost.train.loop import forward_by_length

    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").train()
    model.gradient_checkpointing = checkpointing
    rows = []
    for length in (6, 7, 90, 8, 95, 100, 5, 6, 7, 92):  # short rows and long ones, mixed
        ids = torch.randint(1, 256, (length,))
        labels = torch.full_like(ids, IGNORE)
        labels[-3:] = ids[-3:]  # an answer at the end of each row
        rows.append((ids, labels))
    input_ids, labels = pad_rows(rows)
    batch = Batch(input_ids, labels, torch.arange(len(rows)))
    at = scored_positions(labels)
    if with_memory:  # open gates (an untrained model keeps them shut); a bank per row
        for layer in model.layers:
            if layer.kind == "memory":
                layer.extra.gate.data.fill_(1.0)
        model.copy.gate.bias.data.fill_(0.0)
        facts = ["The capital of Peru is Lima.", "Lima stands on the Rimac.", "Oslo is cold."]
        banks = [facts[i % 3 : i % 3 + 2] if i % 4 else [] for i in range(len(rows))]

        def read():  # encoded anew for each pass: the encoder's gradients count too
            batch_memory = model.memory.encode_rows(banks)[0]
            batch_memory.read_at = at
            return batch_memory

    def logits_and_grads(forward):
        model.zero_grad()
        logits = forward()
        next_byte_loss(logits, labels).backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                 if p.grad is not None}  # fmt: skip

    def plain_pass():
        memory = read() if with_memory else None
        return model(input_ids, logits_at=at, memory=memory).logits

    def grouped_pass():
        memory = read() if with_memory else None
        return forward_by_length(model, batch, memory).logits

    plain, plain_grads = logits_and_grads(plain_pass)
    if with_memory:  # the banks are read
        without = model(input_ids, logits_at=at).logits.detach()
        assert not torch.allclose(plain[at], without[at])
    calls, projections = [], []
    handles = [model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))]
    for reader in (model.copy, *(layer.extra for layer in model.layers if layer.kind == "memory")):
        hook = reader.k_proj.register_forward_hook(lambda m, args, out: projections.append(m))
        handles.append(hook)
    grouped, grouped_grads = logits_and_grads(grouped_pass)
    for handle in handles:
        handle.remove()
    assert len(calls) > 1 and max(shape[1] for shape in calls[:-1]) < input_ids.shape[1]
    if with_memory:  # once per reader, not once per group
        assert len(projections) == len(set(projections)) and len(projections) >= 2
    assert grouped.shape == plain.shape
    torch.testing.assert_close(grouped[at], plain[at], rtol=1e-5, atol=1e-6)
    assert plain_grads.keys() == grouped_grads.keys() and len(plain_grads) > 10
    for name, g in plain_grads.items():
        torch.testing.assert_close(grouped_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
