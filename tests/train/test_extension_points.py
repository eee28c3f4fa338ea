"""The trainer's extension points: update multipliers, per-row stats, --init-from, mixed data,
validation sets, and recipe options."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from tiny_runs import CAPITALS, tiny_config, write_qa

from ghost.config import GhostConfig, TrainConfig, load_config_file, parse_recipes
from ghost.data.batches import QABatcher
from ghost.data.mixture import load_training_data, parse_data_spec, split_validation
from ghost.data.records import load_data
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model import GhostModel
from ghost.train.hooks import Recipe
from ghost.train.loop import train


class Snapshot(Recipe):
    """Weights at the start of training and after every step."""

    name = "snapshot"

    def __init__(self):
        self.weights = []

    def _take(self, state):
        self.weights.append({k: v.clone() for k, v in state.model.named_parameters()})

    def on_train_begin(self, state):
        self._take(state)

    def on_step_end(self, state, metrics):
        self._take(state)


class ScaleUpdates(Recipe):
    name = "scale"

    def __init__(self, scales):
        self.scales = scales

    def on_train_begin(self, state):
        state.update_scale.update(self.scales)


def _one_step(tmp_path, qa_file, tag, scales):
    snap = Snapshot()
    recipes = [snap] + ([ScaleUpdates(scales)] if scales else [])
    train(tiny_config(qa_file, tmp_path / tag, steps=1, lr=1e-2, warmup_steps=0), recipes=recipes)
    before, after = snap.weights
    return {name: after[name] - before[name] for name in before}


def test_update_multipliers_scale_the_step_per_parameter_and_per_row(tmp_path, qa_file):
    rows = torch.linspace(0.0, 3.0, 256).view(256, 1)
    plain = _one_step(tmp_path, qa_file, "plain", {})
    scaled = _one_step(
        tmp_path, qa_file, "scaled", {"layers.0.ffn.up.weight": 2.0, "embed.weight": rows}
    )
    torch.testing.assert_close(
        scaled["layers.0.ffn.up.weight"], 2 * plain["layers.0.ffn.up.weight"]
    )
    torch.testing.assert_close(
        scaled["embed.weight"], rows * plain["embed.weight"], atol=1e-7, rtol=1e-4
    )
    assert plain["layers.0.ffn.up.weight"].abs().sum() > 0
    untouched = set(plain) - {"layers.0.ffn.up.weight", "embed.weight"}
    for name in untouched:
        torch.testing.assert_close(scaled[name], plain[name], atol=1e-7, rtol=1e-5)


def test_row_stats_agree_with_the_loss_of_each_row(tmp_path, qa_file):
    class Rows(Recipe):
        name = "rows"

        def on_loss(self, state, loss, output, batch):
            self.rows, self.logits, self.batch, self.loss = state.rows, output.logits, batch, loss
            return loss

    spy = Rows()
    train(tiny_config(qa_file, tmp_path / "run", steps=1), recipes=[spy])
    per_row = [
        GhostModel.__module__
        and torch.nn.functional.cross_entropy(
            spy.logits[r, :-1].float(), spy.batch.labels[r, 1:], ignore_index=-100
        )
        for r in range(spy.batch.input_ids.shape[0])
    ]
    torch.testing.assert_close(spy.rows.loss, torch.stack(per_row).detach())
    weighted = (spy.rows.loss * spy.rows.n_targets).sum() / spy.rows.n_targets.sum()
    torch.testing.assert_close(weighted, spy.loss.detach())
    assert ((0 < spy.rows.confidence) & (spy.rows.confidence < 1)).all()
    assert torch.equal(spy.rows.indices, spy.batch.indices)


def test_init_from_starts_from_the_given_weights_with_a_fresh_optimiser(tmp_path, qa_file):
    source = train(tiny_config(qa_file, tmp_path / "source", steps=4))

    class AtStart(Recipe):
        name = "at-start"

        def on_train_begin(self, state):
            self.weights = {k: v.clone() for k, v in state.model.state_dict().items()}
            self.optimizer_state = len(state.optimizer.state)
            self.step = state.step

    spy = AtStart()
    cfg = tiny_config(qa_file, tmp_path / "child", steps=2, init_from=str(tmp_path / "source"))
    train(cfg, recipes=[spy])
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(spy.weights[name], tensor), name
    assert spy.optimizer_state == 0 and spy.step == 0
    saved = json.loads((tmp_path / "child" / "config.json").read_text())
    assert saved["train"]["init_from"] == str(tmp_path / "source")
    with pytest.raises(GhostInputError, match="run directory not found"):
        train(tiny_config(qa_file, tmp_path / "x", steps=1, init_from=str(tmp_path / "nope")))


def _pairs(path, prefix, n):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"{prefix} {i}?", "answer": str(i)}) + "\n")
    return str(path)


def test_mixed_data_draws_from_each_source_in_its_proportion(tmp_path):
    a, b = _pairs(tmp_path / "a.jsonl", "a", 30), _pairs(tmp_path / "b.jsonl", "b", 10)
    plain = load_training_data(f"{a},{b}")
    assert len(plain) == 40 and [s.weight for s in plain.sources] == [None, None]
    mixed = load_training_data(f"{a}@1,{b}@3")
    batcher = QABatcher(mixed, QATemplate(), batch_size=8, seq_len=64, seed=0)
    drawn = torch.tensor(batcher.take(40 * 5))  # five epochs
    from_b = (drawn >= 30).float().mean()
    assert from_b == pytest.approx(0.75, abs=0.01)  # 3 parts of 4, though b has 1/4 of records
    assert set(drawn[drawn >= 30].tolist()) == set(range(30, 40))  # every b record is used
    assert load_training_data({a: 1, b: 3}).name == mixed.name  # the TOML table form


def test_bad_mixtures_are_refused(tmp_path):
    a = _pairs(tmp_path / "a.jsonl", "a", 3)
    text = tmp_path / "t.txt"
    text.write_text("some text\n\nmore text\n")
    with pytest.raises(GhostInputError, match="every dataset a weight"):
        parse_data_spec(f"{a}@2,{a}")
    with pytest.raises(GhostInputError, match="weight must be positive"):
        parse_data_spec(f"{a}@0")
    with pytest.raises(GhostInputError, match="mixes Q&A and text"):
        load_training_data(f"{a},{text}")


def test_validation_split_never_overlaps_training_and_is_reported(tmp_path, qa_file):
    data = load_training_data(f"{qa_file},{_pairs(tmp_path / 'b.jsonl', 'b', 12)}")
    train_part, val = split_validation(data, 0.25, seed=0)
    questions = lambda d: {r["question"] for r in d.records}  # noqa: E731
    assert not questions(train_part) & questions(val)
    assert questions(train_part) | questions(val) == questions(data)
    assert len(val) == 2 + 3  # a quarter of each source, rounded
    assert split_validation(data, 0.25, seed=0)[1].records == val.records  # seeded
    train(tiny_config(qa_file, tmp_path / "run", steps=4, eval_every=2, val_fraction=0.25))
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    checked = [r for r in rows if r["val_loss"]]
    assert [r["step"] for r in checked] == ["2", "4"]
    assert all(0 <= float(r["val_exact_match"]) <= 1 for r in checked)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["val_fraction"] == 0.25 and "validation" in saved["val_data_name"]


def test_validation_data_must_be_of_the_training_kind(tmp_path, qa_file):
    text = tmp_path / "t.txt"
    text.write_text("some text\n")
    with pytest.raises(GhostInputError, match="expected qa records"):
        train(tiny_config(qa_file, tmp_path / "run", steps=1, val_data=str(text)))
    assert not (tmp_path / "run").exists()


def test_recipe_options_parse_from_flags_lists_and_toml_tables(tmp_path):
    assert parse_recipes("curriculum,skip:threshold=0.8:warmup=50:scoring=fresh") == {
        "curriculum": {},
        "skip": {"threshold": 0.8, "warmup": 50, "scoring": "fresh"},
    }
    assert parse_recipes(["curriculum", "skip"]) == {"curriculum": {}, "skip": {}}
    with pytest.raises(GhostInputError, match="NAME:key=value"):
        parse_recipes("skip:threshold")
    config = tmp_path / "run.toml"
    config.write_text('data = "facts200"\n[recipes.curriculum]\n[recipes.skip]\nthreshold = 0.9\n')
    settings = load_config_file(config)["train"]
    assert TrainConfig(**settings).recipes == {"curriculum": {}, "skip": {"threshold": 0.9}}


def test_help_and_data_list_do_not_import_torch():
    for args in (["--help"], ["train", "--help"], ["data", "list"]):
        code = (
            f"import sys\nfrom ghost.cli import main\ntry:\n    main({args!r})\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr[-500:])


def test_a_log_starts_at_the_s4d_real_spectrum():
    model = GhostModel(GhostConfig.from_preset("tiny"))
    mixers = [layer.mixer for layer in model.layers] + [model.memory.encoder.mixer]
    for mixer in mixers:
        expected = torch.log(torch.arange(1, mixer.d_state + 1, dtype=torch.float32))
        torch.testing.assert_close(mixer.A_log, expected.expand_as(mixer.A_log))


def test_the_capitals_fixture_is_what_it_says(tmp_path):
    records = load_data(str(write_qa(tmp_path / "c.jsonl"))).records
    assert [r["answer"] for r in records] == list(CAPITALS.values())
