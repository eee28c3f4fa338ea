import pytest
import torch
from tiny_runs import write_qa
from two_tasks import write_tasks

from ghost.config import GhostConfig
from ghost.data.records import load_data
from ghost.model.ghost import GhostModel


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: exact arithmetic between runs, and no oversubscribed cores (the root
    conftest restores the thread count afterwards)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> list[str]:
    return write_tasks(tmp_path_factory.mktemp("tasks"))


@pytest.fixture
def model():
    """A tiny untrained model, the same weights every time."""
    torch.manual_seed(0)
    return GhostModel(GhostConfig.from_preset("tiny"))


@pytest.fixture
def records(tmp_path):
    """Five Q&A records (capitals) for Fisher estimates."""
    return load_data(str(write_qa(tmp_path / "qa.jsonl"))).records[:5]
