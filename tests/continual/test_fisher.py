"""The Fisher of a finished task: equal to a brute-force per-record computation, saved with
its anchor, and refused clearly when its file is corrupt or does not fit the model."""

import pytest
import torch
from tiny_runs import tiny_config, write_qa

from ghost.cli import main
from ghost.config import GhostConfig
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.ghost import GhostModel
from ghost.train.recipes.ewc import (
    ElasticWeightConsolidation,
    estimate_fisher,
    load_fisher,
    save_fisher,
)


def brute_force_fisher(model, records, temperature=1.0) -> dict[str, torch.Tensor]:
    """For each record on its own: log p(answer + marker | question) summed position by
    position from float64 log-softmax (of logits / temperature), backward, square; then the
    mean over records."""
    template = QATemplate.from_config(model.config)
    total = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in model.named_parameters()}
    for record in records:
        prompt = template.prompt(record["question"])
        target = record["answer"].encode() + bytes([template.marker])
        ids = torch.tensor([list(prompt + target)])
        log_p = torch.log_softmax(model(ids).logits.double() / temperature, dim=-1)[0]
        log_likelihood = sum(log_p[t - 1, ids[0, t]] for t in range(len(prompt), ids.shape[1]))
        model.zero_grad()
        log_likelihood.backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                total[name] += p.grad.double() ** 2
    return {name: t / len(records) for name, t in total.items()}


def test_fisher_equals_a_brute_force_per_record_computation(model, records):
    fisher = estimate_fisher(model, records, targets="empirical")
    expected = brute_force_fisher(model, records)
    assert set(fisher) == {name for name, _ in model.named_parameters()}
    assert sum(float(f.sum()) for f in fisher.values()) > 0
    for name, f in fisher.items():
        torch.testing.assert_close(f.double(), expected[name], rtol=1e-4, atol=1e-12)
    # The known mistake, squaring the gradient of the records' mean log-likelihood, is not it.
    template = QATemplate.from_config(model.config)
    model.zero_grad()
    mean = 0
    for record in records:
        prompt = template.prompt(record["question"])
        ids = torch.tensor([list(prompt + record["answer"].encode() + bytes([template.marker]))])
        log_p = torch.log_softmax(model(ids).logits, -1)[0]
        mean = mean + sum(log_p[t - 1, ids[0, t]] for t in range(len(prompt), ids.shape[1]))
    (mean / len(records)).backward()
    squared_mean = sum(float((p.grad**2).sum()) for p in model.parameters() if p.grad is not None)
    assert squared_mean < 0.9 * sum(float(f.sum()) for f in fisher.values())


def test_a_tempered_fisher_is_that_of_the_softened_distribution(model, records):
    """At T > 1 the Fisher of softmax(logits / T); on a confident model, whose own answers
    have probabilities near 1 and so gradients near 0, it is far larger than the plain one."""
    tempered = estimate_fisher(model, records, targets="empirical", temperature=4.0)
    expected = brute_force_fisher(model, records, temperature=4.0)
    for name, f in tempered.items():
        torch.testing.assert_close(f.double(), expected[name], rtol=1e-4, atol=1e-12)
    with torch.no_grad():
        model.head.weight.mul_(40.0)  # tied: sharper, near-certain predictions
    plain = estimate_fisher(model, records, targets="model")
    softened = estimate_fisher(model, records, targets="model", temperature=40.0)
    total = lambda f: sum(float(t.sum()) for t in f.values())  # noqa: E731
    assert total(softened) > 10 * total(plain)
    with pytest.raises(GhostInputError, match="temperature"):
        estimate_fisher(model, records, temperature=0.0)


def test_model_sampled_targets_are_seeded_and_differ_from_the_data(model, records):
    first = estimate_fisher(model, records, targets="model", seed=3)
    again = estimate_fisher(model, records, targets="model", seed=3)
    empirical = estimate_fisher(model, records, targets="empirical")
    for name in first:
        assert torch.equal(first[name], again[name])
    assert not torch.allclose(first["embed.weight"], empirical["embed.weight"])


def test_several_draws_average_the_one_draw_estimates_they_are_made_of(model, records):
    """draws=K: answer d of record n is sampled with seed + n + d * N, so the estimate is the
    mean of K one-draw estimates at seeds seed, seed + N, ...; the first is the one-draw one."""
    n, draws = len(records), 3
    several = estimate_fisher(model, records, targets="model", seed=5, draws=draws)
    singles = [estimate_fisher(model, records, targets="model", seed=5 + d * n) for d in range(3)]
    for name, f in several.items():
        torch.testing.assert_close(f, sum(s[name] for s in singles) / draws, rtol=1e-5, atol=0.0)
    with pytest.raises(GhostInputError, match="model targets"):
        estimate_fisher(model, records, targets="empirical", draws=2)
    with pytest.raises(GhostInputError, match="positive integer"):
        estimate_fisher(model, records, targets="model", draws=0)


def test_the_file_holds_fisher_anchor_and_how_it_was_made(model, records, tmp_path):
    fisher = estimate_fisher(model, records, targets="empirical")
    path = tmp_path / "fisher.safetensors"
    save_fisher(path, model, fisher, {"task": "capitals", "samples": 5, "targets": "empirical"})
    loaded = load_fisher(path)
    assert loaded.metadata["samples"] == 5 and loaded.metadata["targets"] == "empirical"
    assert "squared gradient" in loaded.metadata["estimator"]
    for name, p in model.named_parameters():
        assert torch.equal(loaded.anchor[name], p.detach())
        assert torch.equal(loaded.fisher[name], fisher[name])


def test_a_corrupt_or_mismatched_fisher_file_is_a_clear_error(model, records, tmp_path):
    path = tmp_path / "fisher.safetensors"
    save_fisher(path, model, estimate_fisher(model, records[:1], "empirical"), {"task": "t"})
    data = path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file at all")
    for name in ("truncated", "garbage"):
        with pytest.raises(GhostInputError, match="corrupt Fisher file"):
            load_fisher(tmp_path / f"{name}.safetensors")
    other = GhostModel(GhostConfig.from_preset("tiny", dim=16, n_heads=2))
    recipe = ElasticWeightConsolidation(fisher=str(path), ewc_lambda=1.0)
    with pytest.raises(GhostInputError, match="does not match this model"):
        recipe.on_train_begin(type("State", (), {"model": other})())


def test_a_corrupt_fisher_file_exits_2_with_one_line(tmp_path, capsys):
    data = write_qa(tmp_path / "qa.jsonl")
    bad = tmp_path / "fisher.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    config = tiny_config(data, tmp_path / "run")
    args = [
        "train",
        "--data",
        config.data,
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--threads",
        "1",
        "--recipe",
        f"ewc:fisher={bad}:ewc_lambda=10",
        "--out",
        config.out,
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt Fisher file" in err and str(bad) in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
