import pytest
import torch


@pytest.fixture
def one_thread():
    """One thread unless a test sets more: the kernel tests' shapes are tiny, and on a busy
    2-core machine each parallel region (the reference scan runs hundreds) can wait a whole
    time slice for its second thread. The root conftest restores the thread count."""
    torch.set_num_threads(1)
