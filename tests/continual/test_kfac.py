"""The Kronecker-factored Fisher (`--fisher-form kfac`): its factors are the second moments
of each linear layer's inputs and output gradients, computed independently here; its penalty
is (lambda/2) vec(dW)^T (G kron A) vec(dW) exactly, its gradient reaches the weights, and the
file refuses to load when its factors are damaged."""

import pytest
import torch

from ghost.data.batches import qa_row
from ghost.data.template import QATemplate
from ghost.errors import GhostInputError
from ghost.model.ghost import next_byte_loss
from ghost.train.recipes import build_recipes
from ghost.train.recipes.ewc import (
    estimate_fisher,
    estimate_kfac,
    kronecker_layers,
    load_fisher,
    save_fisher,
)


class State:
    def __init__(self, model):
        self.model = model


def by_retained_grads(model, records, name):
    """A and G of one layer by another route: keep the layer's input and output of each
    record's forward (retain_grad), backward the record's log-likelihood, and also check
    that sum_t g_t a_t^T is that record's gradient of the weight."""
    layer = dict(model.named_modules())[name.removesuffix(".weight")]
    weight = dict(model.named_parameters())[name]
    template = QATemplate.from_config(model.config)
    seen = []

    def keep(module, inputs, output):
        output.retain_grad()
        seen.append((inputs[0], output))

    handle = layer.register_forward_hook(keep)
    a_sum = torch.zeros(layer.in_features, layer.in_features, dtype=torch.float64)
    g_sum = torch.zeros(layer.out_features, layer.out_features, dtype=torch.float64)
    positions = 0
    try:
        for record in records:
            seen.clear()
            ids, labels = qa_row(template, record)
            log_likelihood = -next_byte_loss(model(ids[None]).logits, labels[None], "sum")
            model.zero_grad()
            log_likelihood.backward()
            grad_by_outer = torch.zeros_like(weight, dtype=torch.float64)
            for x, out in seen:
                a = x.detach().reshape(-1, layer.in_features).double()
                g = out.grad.reshape(-1, layer.out_features).double()
                a_sum += a.T @ a
                g_sum += g.T @ g
                positions += a.shape[0]
                grad_by_outer += g.T @ a
            torch.testing.assert_close(grad_by_outer, weight.grad.double(), rtol=1e-4, atol=1e-7)
    finally:
        handle.remove()
    return a_sum / positions, g_sum / len(records)


def test_kfac_factors_are_the_layer_input_and_output_gradient_second_moments(model, records):
    fisher, factors = estimate_kfac(model, records, targets="empirical")
    # The diagonal part is the ordinary diagonal Fisher, made in the same pass.
    plain = estimate_fisher(model, records, targets="empirical")
    for name, f in plain.items():
        torch.testing.assert_close(fisher[name], f)
    layers = kronecker_layers(model)
    assert "embed.weight" not in layers  # the tied head is not its own weight
    assert all(layer.bias is None for layer in layers.values())
    reached = {n for n in layers if float(fisher[n].sum()) > 0}  # not the unread memory
    assert len(reached) >= 12 and reached <= set(factors) <= set(layers)
    for name in ("layers.0.mixer.in_proj.weight", "layers.1.ffn.down.weight"):
        a, g = factors[name]
        expected_a, expected_g = by_retained_grads(model, records, name)
        for got, expected in ((a, expected_a), (g, expected_g)):  # float32 sums vs float64
            scale = float(expected.abs().max())
            torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5 * scale)
        assert torch.linalg.eigvalsh(a.double()).min() > -1e-6  # second moments: PSD
        assert torch.linalg.eigvalsh(g.double()).min() > -1e-9


def test_kfac_penalty_is_the_kronecker_quadratic_form_and_its_gradient(model, records, tmp_path):
    fisher, factors = estimate_kfac(model, records, targets="empirical")
    path = tmp_path / "kfac.safetensors"
    save_fisher(path, model, fisher, {"task": "t"}, factors)
    loaded = load_fisher(path)
    assert loaded.metadata["form"] == "kfac" and set(loaded.factors) == set(factors)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    (recipe,) = build_recipes({"ewc": {"fisher": str(path), "ewc_lambda": 5.0}})
    recipe.on_train_begin(State(model))
    assert float(recipe.on_loss(State(model), torch.tensor(0.0), None, None)) == 0.0
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    by_hand = 0.0
    for name, p in model.named_parameters():
        delta = (p.detach() - anchor[name]).double()
        if name in factors:
            a, gg = (t.double() for t in factors[name])
            flat = delta.reshape(-1)  # row-major: W[i, j] -> i * in + j, so F = G kron A
            by_hand += 0.5 * 5.0 * float(flat @ torch.kron(gg, a) @ flat)
        else:
            by_hand += 0.5 * 5.0 * float((fisher[name].double() * delta**2).sum())
    model.zero_grad()
    value = recipe.on_loss(State(model), torch.tensor(0.0), None, None)
    assert float(value) == pytest.approx(by_hand, rel=1e-4) and by_hand > 0
    assert float(recipe.penalty(model).detach()) == pytest.approx(by_hand, rel=1e-4)  # autograd
    recipe.on_backward(State(model))  # the penalty's gradient, added after backward
    for name, p in model.named_parameters():
        delta = p.detach() - anchor[name]
        if name in factors:
            a, gg = factors[name]
            expected = 5.0 * gg @ delta @ a
        else:
            expected = 5.0 * fisher[name] * delta
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-7)


def test_online_ewc_keeps_each_kronecker_pair_decayed(model, records, tmp_path):
    paths, pairs = [], []
    for k in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02)
        fisher, factors = estimate_kfac(model, records[k : k + 2], targets="empirical")
        pairs.append(factors)
        paths.append(tmp_path / f"{k}.safetensors")
        save_fisher(paths[-1], model, fisher, {"task": str(k)}, factors)
    (recipe,) = build_recipes(
        {"online-ewc": {"fisher": [str(p) for p in paths], "ewc_lambda": 1.0, "gamma": 0.5}}
    )
    (term,) = recipe.terms
    name = "layers.0.ffn.up.weight"
    (a0, g0), (a1, g1) = term.factors[name]
    torch.testing.assert_close(a0, pairs[0][name][0])
    torch.testing.assert_close(g0, 0.5 * pairs[0][name][1])
    torch.testing.assert_close(g1, pairs[1][name][1])


def test_kfac_files_refuse_damage_and_the_proximal_update(model, records, tmp_path):
    fisher, factors = estimate_kfac(model, records[:1], targets="empirical")
    path = tmp_path / "kfac.safetensors"
    save_fisher(path, model, fisher, {"task": "t"}, factors)
    with pytest.raises(GhostInputError, match="proximal needs diagonal"):
        build_recipes({"ewc": {"fisher": str(path), "ewc_lambda": 1.0, "update": "proximal"}})
    name = next(iter(factors))
    bad = dict(factors)
    bad[name] = (factors[name][0][:-1, :-1], factors[name][1])
    save_fisher(tmp_path / "shape.safetensors", model, fisher, {"task": "t"}, bad)
    bad[name] = (factors[name][0] * float("nan"), factors[name][1])
    save_fisher(tmp_path / "nan.safetensors", model, fisher, {"task": "t"}, bad)
    for file, reason in (("shape", "factor shapes"), ("nan", "non-finite factors")):
        with pytest.raises(GhostInputError, match=reason):
            load_fisher(tmp_path / f"{file}.safetensors")
    diagonal = tmp_path / "diagonal.safetensors"
    save_fisher(diagonal, model, fisher, {"task": "t"})
    assert load_fisher(diagonal).metadata["form"] == "diagonal"
    with pytest.raises(GhostInputError, match="not a mix"):
        build_recipes({"online-ewc": {"fisher": [str(diagonal), str(path)], "ewc_lambda": 1.0}})
