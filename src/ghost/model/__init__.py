"""The model: scan kernels, Mamba mixer, sparse attention, fact memory and GhostModel."""

from ghost.model.ghost import Cache, GhostModel, ModelOutput

__all__ = ["Cache", "GhostModel", "ModelOutput"]
