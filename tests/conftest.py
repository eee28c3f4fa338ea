import pytest
import torch
from tiny_runs import word_text, write_qa


@pytest.fixture(autouse=True)
def _deterministic():
    """Each test starts from the same seed and two threads, and restores the thread count."""
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def qa_file(tmp_path):
    """A small memorisable Q&A set."""
    return write_qa(tmp_path / "capitals.jsonl")


@pytest.fixture
def text_file(tmp_path):
    """Seeded code-like text, a few KB."""
    path = tmp_path / "code.txt"
    path.write_text(word_text(), encoding="utf-8")
    return path
