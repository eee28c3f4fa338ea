"""The EWC penalty: zero at the anchor, quadratic away from it, (lambda/2) sum F d^2 exactly;
online EWC folds the Fisher files with decay gamma and anchors at the last one."""

import pytest
import torch

from ghost.train.recipes import build_recipes
from ghost.train.recipes.ewc import running_fisher, save_fisher


class State:
    def __init__(self, model):
        self.model = model


def random_fisher(model, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(p.shape, generator=g) for name, p in model.named_parameters()}


def shift(model, direction: dict[str, torch.Tensor], scale: float, anchor: dict) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(anchor[name] + scale * direction[name])


def earlier_tasks(model, tmp_path, step: float, seed: int, tasks: int = 2):
    """Fisher files of `tasks` earlier tasks, the model moved by `step` before each:
    (fishers, anchors, paths), oldest first."""
    fishers, anchors, paths = [], [], []
    for k in range(tasks):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(step)
        fishers.append(random_fisher(model, seed + k))
        anchors.append({n: p.detach().clone() for n, p in model.named_parameters()})
        paths.append(tmp_path / f"{k}.safetensors")
        save_fisher(paths[-1], model, fishers[-1], {"task": str(k)})
    return fishers, anchors, paths


def penalty(recipe, model) -> float:
    return float(recipe.on_loss(State(model), torch.tensor(0.0), None, None).detach())


def test_penalty_is_zero_at_the_anchor_and_quadratic_away_from_it(model, tmp_path):
    fisher = random_fisher(model, 1)
    path = tmp_path / "a.safetensors"
    save_fisher(path, model, fisher, {"task": "a"})
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    (recipe,) = build_recipes({"ewc": {"fisher": str(path), "ewc_lambda": 3.0}})
    recipe.on_train_begin(State(model))
    assert penalty(recipe, model) == 0.0
    g = torch.Generator().manual_seed(2)
    direction = {name: torch.randn(a.shape, generator=g) for name, a in anchor.items()}
    shift(model, direction, 0.01, anchor)
    small = penalty(recipe, model)
    by_hand = 0.5 * 3.0 * sum(float((fisher[n] * (0.01 * direction[n]) ** 2).sum()) for n in fisher)
    assert small == pytest.approx(by_hand, rel=1e-4) and small > 0
    shift(model, direction, 0.02, anchor)
    assert penalty(recipe, model) == pytest.approx(4 * small, rel=1e-4)
    shift(model, direction, -0.03, anchor)
    assert penalty(recipe, model) == pytest.approx(9 * small, rel=1e-4)
    # Its gradient, lambda * F * (theta - theta*), is what reaches the weights.
    model.zero_grad()
    recipe.on_loss(State(model), torch.tensor(0.0), None, None).backward()
    for name, p in model.named_parameters():
        expected = 3.0 * fisher[name] * (p.detach() - anchor[name])
        torch.testing.assert_close(p.grad, expected)


def test_ewc_adds_one_term_per_earlier_task(model, tmp_path):
    fishers, anchors, paths = earlier_tasks(model, tmp_path, step=0.05, seed=10)
    (recipe,) = build_recipes({"ewc": {"fisher": [str(p) for p in paths], "ewc_lambda": 2.0}})
    recipe.on_train_begin(State(model))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    params = dict(model.named_parameters())
    by_hand = sum(
        0.5 * 2.0 * float((f[n] * (params[n].detach() - a[n]) ** 2).sum())
        for f, a in zip(fishers, anchors, strict=True)
        for n in f
    )
    assert penalty(recipe, model) == pytest.approx(by_hand, rel=1e-4)


def test_online_ewc_folds_the_fisher_with_decay_gamma(model, tmp_path):
    fishers, paths = [], []
    for k in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * (k + 1))
        fishers.append(random_fisher(model, 20 + k))
        paths.append(tmp_path / f"{k}.safetensors")
        save_fisher(paths[-1], model, fishers[-1], {"task": str(k)})
    last_anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    gamma = 0.5
    running = None
    for f in fishers:
        running = running_fisher(running, f, gamma)
    options = {"fisher": [str(p) for p in paths], "ewc_lambda": 4.0, "gamma": gamma}
    (recipe,) = build_recipes({"online-ewc": options})
    (term,) = recipe.terms
    for name in fishers[0]:
        closed_form = gamma**2 * fishers[0][name] + gamma * fishers[1][name] + fishers[2][name]
        torch.testing.assert_close(running[name], closed_form)
        torch.testing.assert_close(term.fisher[name], closed_form)
        assert torch.equal(term.anchor[name], last_anchor[name])
    recipe.on_train_begin(State(model))
    assert penalty(recipe, model) == 0.0  # anchored at the latest weights


def test_the_proximal_update_minimises_the_penalty_plus_the_distance_to_the_step(model, tmp_path):
    """update=proximal: after the optimiser step, theta = argmin (1 / 2 lr) |theta - stepped|^2
    + (lambda / 2) sum_k F_k (theta - anchor_k)^2, the closed form; nothing is added to the
    loss (the penalty is still logged)."""
    fishers, anchors, paths = earlier_tasks(model, tmp_path, step=0.03, seed=30)
    options = {"fisher": [str(p) for p in paths], "ewc_lambda": 50.0, "update": "proximal"}
    (recipe,) = build_recipes({"ewc": options})
    state = State(model)
    state.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recipe.on_train_begin(state)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2)  # as if the optimiser had just stepped away from the anchors
    stepped = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = torch.tensor(1.5)
    assert recipe.on_loss(state, loss, None, None) is loss and recipe.last_penalty > 0
    recipe.on_optimizer_step(state)
    c = 0.1 * 50.0
    for name, p in model.named_parameters():
        weight = fishers[0][name] + fishers[1][name]
        pull = fishers[0][name] * anchors[0][name] + fishers[1][name] * anchors[1][name]
        torch.testing.assert_close(p.detach(), (stepped[name] + c * pull) / (1 + c * weight))
    # The gradient of the minimised objective is zero there.
    theta = {name: p.detach() for name, p in model.named_parameters()}
    for name in fishers[0]:
        grad = (theta[name] - stepped[name]) / 0.1 + 50.0 * sum(
            f[name] * (theta[name] - a[name]) for f, a in zip(fishers, anchors, strict=True)
        )
        # (up to fp32 rounding of the weights, some of which are ~10)
        assert float(grad.abs().max()) < 1e-4 * max(1.0, float(theta[name].abs().max()))


def test_bad_options_are_refused(tmp_path):
    from ghost.errors import GhostInputError

    with pytest.raises(GhostInputError, match="Fisher file not found"):
        build_recipes({"ewc": {"fisher": str(tmp_path / "none.safetensors")}})
    with pytest.raises(GhostInputError, match="fisher must name"):
        build_recipes({"ewc": {}})
    with pytest.raises(GhostInputError, match="ewc_lambda"):
        build_recipes({"ewc": {"fisher": "x", "ewc_lambda": -1}})
    with pytest.raises(GhostInputError, match="gamma"):
        build_recipes({"online-ewc": {"fisher": "x", "gamma": 1.5}})
    with pytest.raises(GhostInputError, match="update"):
        build_recipes({"ewc": {"fisher": "x", "update": "sideways"}})


def test_a_fisher_file_from_before_the_newer_copy_head_parameters_still_works(model, tmp_path):
    """Files written before the copy head gained parameters (io.LATER_PARAMETERS) lack them:
    those get no penalty, the others exactly theirs."""
    from ghost.model.io import later_parameters

    later = later_parameters(dict(model.named_parameters()))
    assert later
    fisher = {n: f for n, f in random_fisher(model, 1).items() if n not in later}
    path = tmp_path / "old.safetensors"
    save_fisher(path, model, fisher, {"task": "a"})
    anchor = {name: p.detach().clone() for name, p in model.named_parameters()}
    (recipe,) = build_recipes({"ewc": {"fisher": str(path), "ewc_lambda": 2.0}})
    recipe.on_train_begin(State(model))
    direction = {name: torch.ones_like(a) for name, a in anchor.items()}
    shift(model, direction, 0.1, anchor)
    by_hand = 0.5 * 2.0 * sum(float((f * 0.1**2).sum()) for f in fisher.values())
    assert penalty(recipe, model) == pytest.approx(by_hand, rel=1e-4)
