"""Fixtures of the reliability suite (helpers live in ghost_process.py and ../tiny_runs.py)."""

from pathlib import Path

import pytest
from tiny_runs import write_qa


@pytest.fixture(scope="module")
def qa_path(tmp_path_factory) -> Path:
    return write_qa(tmp_path_factory.mktemp("data") / "capitals.jsonl")
