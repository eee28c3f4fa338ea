"""Two small Q&A tasks of one format and disjoint content, for continual-learning tests:
real capitals, then invented ones. A tiny model learns either in 80 steps and forgets the
first while learning the second."""

import json
from pathlib import Path

from tiny_runs import CAPITALS

INVENTED = {
    "Zorvan": "Quessa",
    "Brelia": "Tumok",
    "Ostrava": "Lindel",
    "Kaspor": "Vey",
    "Mirela": "Dunhal",
    "Praxen": "Orrim",
    "Tellos": "Saphi",
    "Ulmark": "Geddo",
}


def write_tasks(directory: Path, facts: bool = False) -> list[str]:
    """task_a.jsonl (the eight real capitals), task_b.jsonl (eight invented); their paths.
    With `facts`, task A's records carry their fact ("The capital of Peru is Lima.")."""
    paths = []
    for name, capitals in (("task_a", CAPITALS), ("task_b", INVENTED)):
        path = directory / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for country, city in capitals.items():
                record = {"question": f"What is the capital of {country}?", "answer": city}
                if facts and name == "task_a":
                    record["facts"] = [f"The capital of {country} is {city}."]
                f.write(json.dumps(record) + "\n")
        paths.append(str(path))
    return paths


def tiny_settings(tasks: list[str], **overrides) -> dict:
    """run_continual settings for the tiny preset on one thread: seconds per task."""
    settings = dict(
        tasks=tasks,
        preset="tiny",
        batch_size=8,
        lr=0.01,
        eval_size=8,
        seeds=1,
        threads=1,
        quiet=True,
    )
    settings.update(overrides)
    return settings
