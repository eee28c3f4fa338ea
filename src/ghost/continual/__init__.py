"""Continual learning: learn tasks in sequence and measure what is forgotten.

    from ghost.continual import run_continual
    results = run_continual(tasks="facts200,bash100,math1k", strategies="naive,ewc,replay",
                            seeds=3, steps_per_task=100, out="runs/cl")

`ghost continual` calls `run_continual`. The parts: `config` (what an experiment is),
`tasks` (loading, fixed samples, replay buffers), `runner` (the runs, shared where two
strategies train the same thing; resume), `metrics` (accuracy matrix, forgetting, backward
transfer), `report` (results.json, report.md, plots), `cli`. The EWC penalty itself is a
training recipe, `ghost.train.recipes.ewc`: the trainer's own loop runs every task.
docs/continual.md describes the method.
"""

from ghost.continual.config import STRATEGIES, ContinualConfig

__all__ = ["STRATEGIES", "ContinualConfig", "run_continual"]


def __getattr__(name: str):
    if name == "run_continual":  # imports torch: only when used
        from ghost.continual.runner import run_continual

        return run_continual
    raise AttributeError(f"module 'ghost.continual' has no attribute {name!r}")
