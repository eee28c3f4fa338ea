"""Ghost: small byte-level hybrid Mamba language models trained on a CPU in minutes.

    from ghost import GhostConfig, GhostModel, train, evaluate

The names are imported on first use, so `import ghost` (and the `ghost` command's start-up)
does not pay for torch until it is needed.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "GhostConfig": "ghost.config",
    "TrainConfig": "ghost.config",
    "GhostModel": "ghost.model.ghost",
    "evaluate": "ghost.eval.metrics",
    "load_data": "ghost.data.records",
}
__all__ = ["__version__", "train", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "train":  # the package ghost.train is callable: train(data=..., out=...)
        import importlib

        return importlib.import_module("ghost.train")
    raise AttributeError(f"module 'ghost' has no attribute {name!r}")
