"""Ghost: small byte-level hybrid Mamba language models trained on a CPU in minutes."""

__version__ = "0.1.0"
