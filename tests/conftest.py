import pytest
import torch


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
    import json

    capitals = {
        "France": "Paris",
        "Peru": "Lima",
        "Japan": "Tokyo",
        "Kenya": "Nairobi",
        "Chile": "Santiago",
        "Egypt": "Cairo",
        "Spain": "Madrid",
        "Italy": "Rome",
    }
    path = tmp_path / "capitals.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for country, city in capitals.items():
            f.write(
                json.dumps(
                    {
                        "question": f"What is the capital of {country}?",
                        "answer": city,
                        "kind": "fact",
                    }
                )
                + "\n"
            )
    return path
