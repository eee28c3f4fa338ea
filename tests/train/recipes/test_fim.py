"""fim: PREFIX p SUFFIX s MIDDLE m END round-trips to the window p m s; the recipe keeps
batches (B, L), rearranges about `rate` of the rows, each from its window 4 bytes shorter;
a fim-trained model generates with a suffix (API and CLI); Q&A data, sentinel bytes and bad
rates are refused; a resume continues exactly."""

from pathlib import Path

import pytest
import torch
from tiny_runs import assert_resumes_exactly, tiny_config, word_text

from ghost.cli import main
from ghost.config import TrainConfig
from ghost.data.batches import TextBatcher
from ghost.data.fim import MIDDLE, PREFIX, SUFFIX, fim_prompt, fim_rearrange, fim_restore
from ghost.data.records import Dataset
from ghost.errors import GhostInputError
from ghost.model import GhostModel
from ghost.train.hooks import TrainState
from ghost.train.loop import train
from ghost.train.recipes import build_recipes
from ghost.train.recipes.fim import FillInTheMiddle

END = 0x03


def test_rearrangement_is_psm_order_and_round_trips_for_any_cuts():
    window = torch.tensor(list(b"def add(a, b):\n    return a + b\n"))
    n = len(window)
    example = fim_rearrange(window, 4, 10, END)
    assert bytes(example.tolist()) == (
        b"\x0edef " + b"\x0f" + bytes(window[10:].tolist()) + b"\x10" + b"add(a," + b"\x03"
    )
    g = torch.Generator().manual_seed(0)
    cuts = [(0, 0), (0, n), (n, n), (0, 5), (5, n), (7, 7)]
    cuts += [tuple(sorted(torch.randint(0, n + 1, (2,), generator=g).tolist())) for _ in range(50)]
    for cut1, cut2 in cuts:
        example = fim_rearrange(window, cut1, cut2, END)
        assert len(example) == n + 4 and example.dtype == window.dtype
        assert torch.equal(fim_restore(example, END), window), (cut1, cut2)
    empty = torch.tensor([], dtype=torch.long)
    assert torch.equal(fim_restore(fim_rearrange(empty, 0, 0, END), END), empty)
    with pytest.raises(ValueError):
        fim_rearrange(window, 5, 4, END)


def test_the_prompt_is_the_example_up_to_the_middle():
    assert fim_prompt(b"def f", b"return x\n") == b"\x0edef f\x0freturn x\n\x10"
    assert fim_prompt("é", "") == b"\x0e\xc3\xa9\x0f\x10"
    example = fim_rearrange(torch.tensor(list(b"abcdef")), 2, 4, END)
    assert bytes(example.tolist()).startswith(fim_prompt(b"ab", b"ef"))
    with pytest.raises(GhostInputError, match="sentinel byte 0x0f"):
        fim_prompt(b"a\x0fb", b"")


def _state(text: str, rows: int, seq_len: int, step: int = 0) -> TrainState:
    dataset = Dataset("code", "text", [{"text": text}])
    batcher = TextBatcher(dataset, rows, seq_len, seed=0)
    model = GhostModel.from_preset("tiny")
    config = TrainConfig(data="code", batch_size=rows, seq_len=seq_len, seed=0)
    return TrainState(config, model, None, batcher, Path("unused"), step=step)


def test_the_recipe_keeps_the_shape_and_rearranges_about_rate_of_the_rows():
    rate, rows, length = 0.3, 400, 48
    state = _state(word_text(200), rows, length)
    recipe = FillInTheMiddle(rate=rate)
    recipe.on_train_begin(state)
    batch = state.batcher.next_batch()
    out = recipe.on_batch(state, batch)
    assert out.input_ids.shape == (rows, length) and out.labels.shape == (rows, length)
    assert torch.equal(out.labels, out.input_ids)  # loss on every byte, as for text
    assert torch.equal(out.indices, batch.indices)
    rearranged = out.input_ids[:, 0] == PREFIX
    assert 0.22 < rearranged.float().mean() < 0.38
    for r in range(rows):
        if rearranged[r]:
            row = out.input_ids[r]
            assert int(row[-1]) == END and (row == SUFFIX).sum() == 1 and (row == MIDDLE).sum() == 1
            assert torch.equal(fim_restore(row, END), batch.input_ids[r, : length - 4])
        else:
            assert torch.equal(out.input_ids[r], batch.input_ids[r])
    # The same step draws the same rows and cuts (a resume repeats them); another step not.
    assert torch.equal(recipe.on_batch(state, batch).input_ids, out.input_ids)
    state.step = 1
    assert not torch.equal(recipe.on_batch(state, batch).input_ids, out.input_ids)


def test_rate_zero_changes_nothing_and_rate_one_everything():
    state = _state(word_text(), 16, 32)
    batch = state.batcher.next_batch()
    none, every = FillInTheMiddle(rate=0.0), FillInTheMiddle(rate=1)
    for recipe in (none, every):
        recipe.on_train_begin(state)
    assert torch.equal(none.on_batch(state, batch).input_ids, batch.input_ids)
    assert (every.on_batch(state, batch).input_ids[:, 0] == PREFIX).all()
    for rate in (-0.1, 1.5, "half"):
        with pytest.raises(GhostInputError, match="fim.*rate"):
            build_recipes({"fim": {"rate": rate}})


def test_a_fim_trained_model_fills_a_hole_from_the_api_and_the_cli(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(text_file, out, steps=6, seq_len=48, eval_every=50)
    result = train(cfg, recipes=build_recipes({"fim": {"rate": 0.5}}))
    middle = result.model.generate(b"def f", fim_suffix=b"return x\n", max_bytes=8)
    assert isinstance(middle, bytes) and len(middle) <= 8 and END not in middle
    # The prompt really is the FIM form: the same as continuing fim_prompt by hand.
    assert middle == result.model.generate(fim_prompt(b"def f", b"return x\n"), max_bytes=8)
    capsys.readouterr()
    code = main(["generate", str(out), "def f", "--fim-suffix", "return x", "--max-bytes", "8"])
    assert code == 0
    assert capsys.readouterr().out.endswith("\n")
    assert main(["generate", str(out), "def f", "--fim-suffix", "a\x0eb"]) == 2  # a sentinel


def test_qa_data_and_sentinel_bytes_in_the_data_are_refused(tmp_path, qa_file):
    with pytest.raises(GhostInputError, match="fim needs text data such as code50"):
        train(tiny_config(qa_file, tmp_path / "qa", steps=1, recipes={"fim": {}}))
    bad = tmp_path / "bad.txt"
    bad.write_text(word_text(4) + "\x10 oops", encoding="utf-8")
    with pytest.raises(GhostInputError, match="reserved byte 0x10"):
        train(tiny_config(bad, tmp_path / "bad", steps=1, recipes={"fim": {}}))
    assert not (tmp_path / "bad" / "config.json").exists()


def test_resume_continues_exactly(tmp_path, text_file):
    def config(out, **kw):
        return tiny_config(text_file, out, steps=8, seq_len=32, recipes={"fim": {}}, **kw)

    assert_resumes_exactly(config, steps=8, stop_at=4, tmp_path=tmp_path)
