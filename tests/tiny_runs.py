"""What many tests share: a small memorisable Q&A set and a tiny training config."""

import json
from pathlib import Path

from ghost.config import TrainConfig

CAPITALS = {
    "France": "Paris",
    "Peru": "Lima",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Chile": "Santiago",
    "Egypt": "Cairo",
    "Spain": "Madrid",
    "Italy": "Rome",
}


def write_qa(path: Path) -> Path:
    """The eight capitals as Q&A JSONL at `path`."""
    with open(path, "w", encoding="utf-8") as f:
        for country, city in CAPITALS.items():
            question = f"What is the capital of {country}?"
            f.write(json.dumps({"question": question, "answer": city, "kind": "fact"}) + "\n")
    return path


def tiny_config(data, out, **overrides) -> TrainConfig:
    """The tiny preset at batch 8 on one thread, quiet: a run takes seconds."""
    settings = dict(
        data=str(data), out=str(out), preset="tiny", batch_size=8, threads=1, quiet=True
    )
    settings.update(overrides)
    return TrainConfig(**settings)
