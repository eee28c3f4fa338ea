"""Batches of records of similar length: every record once an epoch, less padding, exact
resume."""

import torch

from ghost.data.batches import QABatcher
from ghost.data.records import Dataset
from ghost.data.template import QATemplate


def _data(n: int = 200) -> Dataset:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 120, (n,), generator=g).tolist()
    return Dataset(
        "d", "qa", [{"question": f"q{i}?", "answer": "x" * k} for i, k in enumerate(lengths)]
    )


def _padded_bytes(batcher: QABatcher, batches: int) -> int:
    return sum(batcher.next_batch().input_ids.numel() for _ in range(batches))


def test_grouped_batches_cover_each_record_once_an_epoch_with_less_padding():
    data = _data()
    grouped = QABatcher(data, QATemplate(), 8, 512, seed=1, group_by_length=True)
    plain = QABatcher(data, QATemplate(), 8, 512, seed=1)
    assert sorted(grouped._order.tolist()) == list(range(len(data)))
    assert sorted(grouped._epoch_order(1).tolist()) == list(range(len(data)))
    assert not torch.equal(grouped._order, grouped._epoch_order(1))  # reshuffled each epoch
    real = sum(len(ids) for ids, _ in grouped.samples)
    assert _padded_bytes(grouped, 25) < 0.7 * _padded_bytes(plain, 25)
    assert _padded_bytes(grouped, 25) < 1.15 * real  # nearly no padding left
    # batches are not simply in length order: the groups' batches are shuffled
    widths = [
        QABatcher(data, QATemplate(), 8, 512, seed=1, group_by_length=True)
        .collate(grouped._order[i : i + 8].tolist())
        .input_ids.shape[1]
        for i in range(0, 64, 8)
    ]
    assert widths != sorted(widths)


def test_grouped_batches_resume_exactly():
    data = _data()
    a = QABatcher(data, QATemplate(), 8, 512, seed=3, augment="surface", group_by_length=True)
    for _ in range(30):  # into the second epoch
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch().input_ids.tolist() for _ in range(5)]
    b = QABatcher(data, QATemplate(), 8, 512, seed=3, augment="surface", group_by_length=True)
    b.load_state_dict(state)
    assert [b.next_batch().input_ids.tolist() for _ in range(5)] == expected


def test_length_batches_cut_where_calls_plus_padded_bytes_cost_least():
    import itertools

    from ghost.data.batches import length_batches

    def cost(batches, length, call):
        return sum(call + len(b) * max(length[i] for i in b) for b in batches)

    length = {"a": 3, "b": 30, "c": 4, "d": 31, "e": 5, "f": 60}
    items = list(length)
    ordered = sorted(items, key=length.get)
    for call, size in ((0, 6), (10, 6), (64, 6), (10, 2), (1000, 4)):
        batches = length_batches(items, [length[i] for i in items], size, call_bytes=call)
        assert sorted(i for b in batches for i in b) == sorted(items)
        assert all(len(b) <= size for b in batches)
        # the best of every contiguous cut of the length order, by brute force
        best = min(
            cost([ordered[i:j] for i, j in zip((0, *cuts), (*cuts, 6), strict=True)], length, call)
            for k in range(6)
            for cuts in itertools.combinations(range(1, 6), k)
            if all(j - i <= size for i, j in zip((0, *cuts), (*cuts, 6), strict=True))
        )
        assert cost(batches, length, call) == best
    # free calls: one batch per distinct length group; costly calls: as few as allowed
    assert len(length_batches(items, [length[i] for i in items], 6, call_bytes=0)) == 6
    assert len(length_batches(items, [length[i] for i in items], 4, call_bytes=1000)) == 2
