import pytest
import torch
from two_tasks import write_tasks


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: exact arithmetic between runs, and no oversubscribed cores (the root
    conftest restores the thread count afterwards)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> list[str]:
    return write_tasks(tmp_path_factory.mktemp("tasks"))
