import math
import random
import re

import pytest
import torch

from ghost.config import GhostConfig
from ghost.errors import GhostInputError
from ghost.model import GhostModel
from ghost.model.ghost import next_byte_loss, scored_positions
from ghost.model.io import load_model
from ghost.model.memory_text import LexicalIndex, next_word_ends, question_cues, value_start


@pytest.fixture
def model():
    return GhostModel.from_preset("tiny").eval()


def test_presets_have_the_documented_sizes():
    assert abs(GhostModel.from_preset("v5-fast").num_parameters() / 6.58e6 - 1) < 0.02
    assert abs(GhostModel.from_preset("v5").num_parameters() / 7.17e6 - 1) < 0.02
    assert GhostModel.from_preset("12m").num_parameters() >= 12e6
    tiny = GhostModel.from_preset("tiny")
    assert tiny.num_parameters() < 300_000
    assert {layer.kind for layer in tiny.layers} == {"", "memory", "attention"}


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="attention_layers"):
        GhostConfig(n_layers=4, memory_layers=(1,), attention_layers=(7,))
    with pytest.raises(ValueError, match="n_heads"):
        GhostConfig(dim=30, n_heads=4)
    with pytest.raises(GhostInputError, match="unknown preset"):
        GhostConfig.from_preset("huge")


def test_labels_shift_inside_and_ignore_minus_100(model):
    x = torch.randint(0, 256, (2, 10))
    labels = x.clone()
    labels[:, :4] = -100
    out = model(x, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 256)
    expected = torch.nn.functional.cross_entropy(
        logits, labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


def test_step_mode_equals_full_forward_including_attention_layers(model):
    x = torch.randint(0, 256, (2, 30))  # longer than the tiny window and several strides
    with torch.no_grad():
        full = model(x).logits
        cache = model.empty_cache(2)
        steps = torch.stack([model.step(x[:, t], cache) for t in range(30)], 1)
        prefix = model(x[:, :17], use_cache=True).cache
        rest = torch.stack([model.step(x[:, t], prefix) for t in range(17, 30)], 1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rest, full[:, 17:], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("with_memory", [False, True])
def test_a_forward_continuing_a_cache_equals_the_full_forward(model, with_memory):
    """A prefix's cache, selected for several rows (as a shared question stem is), then
    their different continuations: the full rows' logits, the copy head's included."""
    if with_memory:
        open_memory(model)
        model.memory.write(["The capital of Peru is Lima.", "Lima stands on the Rimac."])
    x = torch.randint(0, 256, (3, 30))
    x[:, :13] = x[0, :13]  # one shared prefix, longer than the tiny window
    with torch.no_grad():
        full = model(x).logits
        shared = model(x[:1, :13], use_cache=True).cache
        rows = torch.zeros(3, dtype=torch.long)
        rest = model(x[:, 13:], cache=shared.select(rows)).logits
        # a cache continued twice, and its last bytes kept for the copy head
        middle = model(x[:, 13:21], cache=shared.select(rows), use_cache=True).cache
        last = model(x[:, 21:], cache=middle).logits
    torch.testing.assert_close(rest, full[:, 13:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(last, full[:, 21:], atol=1e-4, rtol=1e-4)


def open_memory(model):
    """Open the gates a model that never learned to read keeps (nearly) shut."""
    for layer in model.layers:
        if layer.kind == "memory":
            layer.extra.gate.data.fill_(1.0)
            layer.extra.relevance.data.copy_(torch.tensor([0.0, 0.0, 30.0]))  # reads fully
    model.copy.gate.bias.data.fill_(0.0)


def test_an_empty_memory_bank_changes_nothing(model):
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        open_memory(model)  # open gates: only the empty bank keeps memory a no-op
        before = model(x).logits
        rows_without_facts, _, _ = model.memory.encode_rows([[], []])
        assert rows_without_facts is None
        assert torch.equal(model(x, memory=rows_without_facts).logits, before)
        model.memory.write(["The capital of Peru is Lima."])
        assert not torch.allclose(model(x).logits.log_softmax(-1), before.log_softmax(-1))


def test_a_row_without_facts_is_unchanged_by_its_neighbours_facts(model):
    """Per-row banks: the row with an empty bank gets exactly the no-memory distribution."""
    open_memory(model)
    x = torch.randint(0, 256, (2, 12))
    with torch.no_grad():
        plain = model(x).logits.log_softmax(-1)
        banks, _, _ = model.memory.encode_rows([["The capital of Peru is Lima."], []])
        mixed = model(x, memory=banks).logits
    torch.testing.assert_close(mixed[1], plain[1])
    assert not torch.allclose(mixed[0], plain[0])


def _lexical_by_hand(query: str, text: str, texts: list[str]) -> float:
    """The rarity-weighted share of the query's naming words found in `text`, brute force."""

    def words(t):
        return {w for w in re.findall(r"[a-z0-9]+", t.lower()) if len(w) > 1}

    asked = words(query) - {"what", "does", "which", "who", "how", "where", "when"}
    weight = {
        w: math.log((len(texts) + 1) / (sum(w in words(t) for t in texts) + 0.5)) for w in asked
    }
    total = sum(weight.values())
    return sum(weight[w] for w in asked if w in words(text)) / total if total else 0.0


def test_lexical_score_finds_the_entity_and_weighs_rare_words():
    texts = [
        "The capital of Zorvania is Quessaro.",
        "The capital of Peru is Lima.",
        "Lima is a city.",
    ]
    texts += [f"The capital of {c} is {v}." for c, v in [("Chad", "N'Djamena"), ("Fiji", "Suva")]]
    index = LexicalIndex(texts)
    (scores,) = index.scores(["What is the capital of Zorvania?"]).tolist()
    assert scores[0] == max(scores) and scores[0] > 2 * scores[1]
    assert scores[2] < scores[1]  # only "is" in common ("what" asks rather than names)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for i, text in enumerate(texts):
        assert (
            abs(scores[i] - _lexical_by_hand("What is the capital of Zorvania?", text, texts))
            < 1e-6
        )


def test_value_start_is_where_the_fact_s_value_begins():
    assert value_start(b"The capital of Zorvania is Quessaro.") == len(
        b"The capital of Zorvania is "
    )
    assert value_start(b"Hamlet was written by William Shakespeare.") == len(
        b"Hamlet was written by "
    )
    assert value_start(b"The national animal of Brelia is the crane.") == len(
        b"The national animal of Brelia is the "
    )
    assert value_start(b"Hello world.") is None


def _cues(question: str, fact: str) -> tuple[torch.Tensor, bytes]:
    data = fact.encode()
    texts = [fact, "The capital of Peru is Lima.", "Lima is a city in Peru."]
    ids = torch.tensor([[list(data)]])
    out = question_cues(
        LexicalIndex(texts), [question], ids, torch.ones_like(ids, dtype=torch.bool)
    )
    return out[0, 0], data


def test_question_cues_say_where_an_answer_copied_from_an_entry_starts_and_ends():
    # A value at the end: the space inside it has none of the question after it.
    cues, data = _cues(
        "Who is the author of The Silent Archive of Stuvoris?",
        "The Silent Archive of Stuvoris is a book by Rintria Krumanin.",
    )
    ends = cues[..., :2]
    assert ends[data.index(b" Krumanin")].tolist() == [0.0, 0.0]
    to_come = [float(ends[i][1]) for i, c in enumerate(data) if c == 32]
    assert to_come == sorted(to_come, reverse=True) and to_come[0] > 0.5  # the subject first
    spaces = torch.tensor([c == 32 for c in data])
    assert not ends[~spaces].any()  # end features only at spaces
    # The question's words, wherever they are in the entry, and nothing else.
    asked = {i for i, flag in enumerate(cues[:, 2].tolist()) if flag}
    stuvoris = data.index(b"Stuvoris")
    assert set(range(stuvoris, stuvoris + 8)) <= asked and data.index(b"Rintria") not in asked
    assert data.index(b"book") not in asked and 0 in asked  # "The": a word of the question
    # A value first: the word after it is the question's, and so is most of what follows.
    cues, data = _cues(
        "Which city is the seat of Krumbrondland?",
        "Norkthao is where the government of Krumbrondland sits.",
    )
    after = cues[data.index(b" is where"), :2]
    assert after[0] == 1.0 and after[1] > 0.5
    assert cues[data.index(b" sits"), :2].tolist() == [0.0, 0.0]
    assert not cues[: len(b"Norkthao"), 2].any()
    # A bank shared by every row gives each query its own features; a question of asking
    # words only gives none.
    ids = torch.tensor([[list(data)]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    index = LexicalIndex([data.decode()])
    both = question_cues(index, ["Which city is the seat of Krumbrondland?", "What?"], ids, mask)
    assert both.shape == (2, 1, len(data), 3)
    alone = question_cues(index, ["Which city is the seat of Krumbrondland?"], ids, mask)
    torch.testing.assert_close(both[0], alone[0])
    assert not both[1].any()


def test_the_copy_head_ends_an_answer_at_a_space_the_question_says_ends_it():
    """The copy head's end of a value mid-entry: at a space, the pointer's mass goes to the
    end-of-answer marker with probability sigmoid(stop . h + b + end_scale . ends)."""
    from ghost.model.memory_batch import MemoryBatch

    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    head = model.copy
    data = torch.tensor([[list(b"ab cd.")]])
    mask = torch.ones_like(data, dtype=torch.bool)
    h = torch.randn(1, 1, model.config.dim)
    vocab = torch.log_softmax(torch.randn(1, 1, 256), -1)
    recent = torch.tensor([[[ord("b"), ord("a"), -1, -1]]])  # "ab" read: the space comes next
    with torch.no_grad():
        head.gate.bias.fill_(30.0)  # copy only
        head.match.fill_(30.0)  # the pointer follows the continuation: the space
        head.stop_weight.zero_()
        head.stop_bias.fill_(-4.0)
        head.end_scale.copy_(torch.tensor([4.0, 4.0]))

        def entry(states, **extra):  # the one entry, read by the one row
            one = torch.tensor([[0]])
            return MemoryBatch(states, index=one, data=data, mask=mask, entries=one, **extra)

        def p(cues):
            memory = entry(torch.randn(1, 6, model.config.dim), cues=cues)
            out = head(h, vocab, memory, recent)[0, 0].exp()
            return float(out[ord(" ")]), float(out[head.stop_byte])

        zero = torch.zeros(1, 1, 6, 3)
        ended = zero.clone()
        ended[0, 0, 2] = torch.tensor([1.0, 1.0, 0.0])
        space, stop = p(zero)
        assert abs(stop - torch.sigmoid(torch.tensor(-4.0))) < 1e-3 and space > 0.98
        space, stop = p(ended)
        assert abs(stop - torch.sigmoid(torch.tensor(4.0))) < 1e-3 and space < 0.02
        assert p(None) == p(zero)  # no features: the state alone decides, as before

        # The encoder's state where the next word ends ("cd." ends at 5) is read too.
        states = torch.zeros(1, 6, model.config.dim)
        states[0, 5, 0] = 1.0
        head.stop_ahead.zero_()
        head.stop_ahead[0] = 8.0
        memory = entry(states, cues=zero, ahead=next_word_ends(data[0], mask[0])[None])
        out = head(h, vocab, memory, recent)[0, 0].exp()
        assert abs(float(out[head.stop_byte]) - torch.sigmoid(torch.tensor(4.0))) < 1e-3

        # The bytes of the question's own words are not what the pointer copies.
        head.match.zero_()
        head.stop_ahead.zero_()
        head.asked_scale.fill_(-30.0)
        asked = torch.zeros(1, 1, 6, 3)
        asked[..., 2] = 1.0
        asked[0, 0, 3, 2] = 0.0  # every byte but the "c"
        memory = entry(torch.zeros(1, 6, model.config.dim), cues=asked)
        assert head(h, vocab, memory, recent)[0, 0].exp()[ord("c")] > 0.99


def test_next_word_ends_points_each_byte_at_the_end_of_the_word_after_it():
    data = b"ab cd  efg."
    ids = torch.tensor([[*data, 0, 0]])
    mask = torch.tensor([[True] * len(data) + [False, False]])
    ends = next_word_ends(ids, mask)[0].tolist()
    assert ends[2] == 4 and ends[0] == 4  # the space before "cd" (and "ab"'s bytes): "cd"
    assert ends[5] == ends[6] == 10  # the spaces before "efg.": its "."
    assert ends[8] == 10 and ends[11:] == [10, 10]  # no word follows: the last real byte


def test_next_word_ends_agrees_with_a_word_by_word_reading_of_each_text():
    rng = random.Random(3)
    texts = ["", " ", "a", "lead", " lead", "trail ", "a  b"]
    texts += ["".join(rng.choice("ab  ") for _ in range(rng.randint(0, 16))) for _ in range(200)]
    width = max(map(len, texts)) + 2
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = torch.tensor(list(text.encode()), dtype=torch.long)
        mask[row, : len(text)] = True
    got = next_word_ends(ids, mask).tolist()
    for row, text in enumerate(texts):
        words = [(m.start(), m.end() - 1) for m in re.finditer(r"[^ ]+", text)]
        for j in range(width):
            after = [end for start, end in words if start > j]
            want = after[0] if after and j < len(text) else max(len(text) - 1, 0)
            assert got[row][j] == want, (text, j)


def test_retrieval_returns_the_top_k_entries_a_brute_force_search_finds():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny", memory_top_k=3).eval()
    texts = [f"Fact number {i} says {i * 7 % 13}." for i in range(40)]
    model.memory.write(texts)
    queries = ["What does fact 5 say?", "Fact number 31", "x"]
    found = model.memory.retrieve(queries)
    with torch.no_grad():
        enc = model.memory.encoder
        ids, mask = enc.tokenize(queries, keep_end=True)
        q = enc.keys(enc.states(ids), mask)
        for row, query_key in enumerate(q):
            scores = [
                float(query_key @ enc(texts[i : i + 1])[3][0])
                + _lexical_by_hand(queries[row], texts[i], texts)
                for i in range(len(texts))
            ]
            best = sorted(range(len(texts)), key=lambda i: -scores[i])[:3]
            assert set(found[row].tolist()) == set(best)  # the order may differ at near-ties
    # A bank larger than top_k is read per row: each row reads its own top-k entries.
    batch = model.memory.batch(queries)
    assert batch.index.shape == (3, 3)
    assert batch.entries.tolist() == found.tolist()


def test_generation_with_a_large_bank_equals_the_full_forward_and_projects_it_once():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny", memory_top_k=2).eval()
    open_memory(model)
    model.memory.write([f"The capital of Land{i} is City{i}." for i in range(6)])
    prompt = b"Q: What is the capital of Land3?\nA: "
    calls = []
    hook = model.copy.k_proj.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    out = model.generate(prompt, max_bytes=10, stop_bytes=b"")
    hook.remove()
    assert len(calls) == 1  # the bank's keys: once per generation, not once per byte
    with torch.no_grad():
        full = model(torch.tensor([list(prompt + out)]), memory=model.memory.batch([prompt]))
    assert bytes(full.logits[0, len(prompt) - 1 : -1].argmax(-1).tolist()) == out


def test_save_then_load_gives_identical_logits(model, tmp_path):
    model.memory.write(["Lima is the capital of Peru."])
    model.save_pretrained(tmp_path / "run")
    loaded = GhostModel.from_pretrained(tmp_path / "run")
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.memory.texts == model.memory.texts


def test_corrupt_weights_are_refused_with_the_file_named(model, tmp_path):
    model.save_pretrained(tmp_path / "run")
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(GhostInputError, match="model.safetensors"):
        load_model(tmp_path / "run")


def test_generate_is_greedy_and_deterministic(model):
    a = model.generate(b"Q: hello", max_bytes=8, stop_bytes=b"")
    assert a == model.generate(b"Q: hello", max_bytes=8, stop_bytes=b"") and len(a) == 8
    s1 = model.generate(b"abc", max_bytes=8, temperature=1.0, top_k=20, top_p=0.9, seed=3)
    s2 = model.generate(b"abc", max_bytes=8, temperature=1.0, top_k=20, top_p=0.9, seed=3)
    assert s1 == s2


def test_batched_generation_equals_one_prompt_at_a_time(model):
    from ghost.model.generate import generate

    prompts = [b"Q: a", b"Q: longer prompt", b"x"]
    together = generate(model, prompts, max_bytes=6)
    alone = [generate(model, [p], max_bytes=6)[0] for p in prompts]
    assert together == alone


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").train()
    model.memory.write(["The capital of Peru is Lima."])
    x = torch.randint(0, 256, (2, 24))

    def loss_and_grads():
        model.zero_grad()
        loss = model(x, labels=x).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return loss.detach(), grads

    loss_plain, grads_plain = loss_and_grads()
    model.gradient_checkpointing = True
    loss_ckpt, grads_ckpt = loss_and_grads()
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=0)
    assert grads_ckpt.keys() == grads_plain.keys() and len(grads_plain) > 10
    for name, g in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], g, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("with_memory", [False, True])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_logits_only_at_scored_positions_equal_the_full_ones_with_the_same_gradients(
    with_memory, checkpointing
):
    """`logits_at`: the scored positions' logits and the loss's gradients are those of the
    full forward; the other positions' logits are 0 (never computed)."""
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").train()
    model.gradient_checkpointing = checkpointing
    if with_memory:
        open_memory(model)
        model.memory.write(["The capital of Peru is Lima.", "Lima stands on the Rimac."])
    x = torch.randint(1, 256, (3, 20))
    labels = torch.full_like(x, -100)
    labels[0, 12:] = x[0, 12:]  # an answer at the end of each row, of different lengths
    labels[1, 17:] = x[1, 17:]
    labels[2, 5:9] = x[2, 5:9]
    at = scored_positions(labels)
    # each label is predicted by the position before it
    assert at.nonzero()[:, 1].tolist() == [*range(11, 19), *range(16, 19), *range(4, 8)]

    def logits_and_grads(**kwargs):
        model.zero_grad()
        logits = model(x, **kwargs).logits
        next_byte_loss(logits, labels).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return logits.detach(), grads

    full, grads_full = logits_and_grads()
    part, grads_part = logits_and_grads(logits_at=at)
    assert part.shape == full.shape
    torch.testing.assert_close(part[at], full[at], rtol=1e-5, atol=1e-6)
    assert torch.equal(part[~at], torch.zeros_like(part[~at]))
    assert grads_part.keys() == grads_full.keys() and len(grads_full) > 10
    for name, g in grads_full.items():
        torch.testing.assert_close(grads_part[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_memory_attention_over_packed_entry_bytes_equals_the_padded_one():
    """The memory layers attend over each row's real entry bytes only (padding dropped:
    `MemoryBatch.projected_packed`); tracing computes the weights by hand over the padded
    (M*T) layout: the same output, with gradients on (training) and off (cached)."""
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    with torch.no_grad():
        for layer in model.layers:
            if layer.kind == "memory":
                layer.extra.gate.fill_(1.0)
    x = torch.randint(0, 256, (3, 10))
    banks = [
        ["The capital of Peru is Lima.", "x."],
        [],
        ["Hamlet was written by Shakespeare.", "The capital of Zorvania is Quessaro.", "y."],
    ]
    memory, _, _ = model.memory.encode_rows(banks, queries=["Q: a", "Q: b", "Q: c"])
    packed = model(x, memory=memory).logits
    with torch.no_grad():
        cached = model(x, memory=memory).logits
        with model.trace_memory():
            padded = model(x, memory=memory).logits
    torch.testing.assert_close(packed.detach(), padded, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cached, padded, atol=1e-5, rtol=1e-4)
    _, real = memory.projected_packed(model, lambda s: s)  # (B, S, D), (B, S)
    assert real.shape[1] == len("Hamlet was written by Shakespeare.") + 36 + 2 < 3 * 36


def test_memory_attention_in_bf16_training_equals_the_traced_one():
    """Training under bf16 autocast reads the packed entry bytes with plain masked matmuls
    (SDPA's CPU backward is slow in bf16): each memory layer's update equals the one from
    weights computed by hand over the padded layout, up to bf16 rounding, with gradients."""
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny")
    banks = [["The capital of Peru is Lima.", "x."], [], ["Hamlet was written by Shakespeare."]]
    memory, _, _ = model.memory.encode_rows(banks, queries=["Q: a", "Q: b", "Q: c"])
    readers = [layer.extra for layer in model.layers if layer.kind == "memory"]
    for reader in readers:
        with torch.no_grad():
            reader.gate.fill_(1.0)
        h = torch.randn(3, 10, model.config.dim, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            update = reader(h, memory)
            with torch.no_grad(), model.trace_memory():
                traced = reader(h, memory)
        scale = float(traced.abs().amax())
        assert scale > 0  # the rows with entries read something
        torch.testing.assert_close(update.float(), traced.float(), atol=0.02 * scale, rtol=0.02)
        update.float().sum().backward()
        assert reader.q_proj.weight.grad.abs().sum() > 0 and h.grad.abs().sum() > 0


def test_copy_head_at_chosen_positions_equals_the_full_mix_there():
    """Training mixes the copy head in only where a byte is scored (`MemoryBatch.read_at`):
    those positions get exactly what the full forward gives, the others the plain output."""
    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    with torch.no_grad():
        model.copy.gate.bias.fill_(0.0)  # open, so the copy distribution shows
        for layer in model.layers:  # the memory layers read too (their gates start at 0)
            if layer.kind == "memory":
                layer.extra.gate.fill_(1.0)
        x = torch.randint(0, 256, (3, 10))
        banks = [["The capital of Peru is Lima."], [], ["Hamlet was written by Shakespeare.", "x."]]
        queries = ["Q: What is the capital of Peru?", "Q: x", "Q: Who wrote Hamlet?"]
        memory, _, _ = model.memory.encode_rows(banks, queries=queries)
        full = model(x, memory=memory).logits
        read_at = torch.zeros(3, 10, dtype=torch.bool)
        read_at[0, 6:9] = read_at[2, 2] = read_at[1, 4] = True
        memory.read_at = read_at
        part = model(x, memory=memory).logits
        memory.read_at = None
        model.copy.gate.bias.fill_(-60.0)  # shut: the vocabulary's distribution alone
        plain = model(x, memory=memory).logits
    torch.testing.assert_close(part[read_at], full[read_at])
    torch.testing.assert_close(part[~read_at], plain[~read_at])
    assert not torch.allclose(full[0, 7], plain[0, 7])


def test_a_run_saved_before_the_newer_copy_head_parameters_loads_and_answers_as_before(tmp_path):
    """Without the copy head's newer parameters (io.LATER_PARAMETERS) a saved run loads them
    with values that leave its output as it was: no lexical or value-start term, and the
    answer never ends at a space."""
    from safetensors.torch import load_file, save_file

    from ghost.model.io import later_parameters

    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    with torch.no_grad():
        model.copy.gate.bias.fill_(0.0)
        for block in model.layers:
            if block.kind == "memory":
                block.extra.gate.fill_(0.5)  # the memory layers read: their gate matters
    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    later = later_parameters(state)
    assert {"layers.1.extra.relevance", "copy.stop_bias", "copy.end_scale"} <= set(later)
    save_file(
        {k: v for k, v in state.items() if k not in later},
        str(tmp_path / "model.safetensors"),
    )
    loaded = GhostModel.from_pretrained(tmp_path)
    for name, value in later.items():
        assert torch.equal(
            dict(loaded.named_parameters())[name],
            torch.tensor(value).expand_as(dict(loaded.named_parameters())[name]),
        )
    # The same as the fresh model with those parts switched off by hand.
    with torch.no_grad():
        for name, value in later.items():
            dict(model.named_parameters())[name].copy_(torch.tensor(value))
        x = torch.tensor([list(b"Q: What is the capital of Peru?\nA: Lima is")])
        asked = ["Q: What is the capital of Peru?"]  # (words: the end features are not 0)
        banks, _, _ = model.memory.encode_rows([["The capital of Peru is Lima."]], queries=asked)
        assert banks.cues.any()
        torch.testing.assert_close(loaded(x, memory=banks).logits, model(x, memory=banks).logits)
        bare = GhostModel.from_preset("tiny").eval()
        bare.load_state_dict(model.state_dict())
        bare.copy.stop_bias.fill_(0.0)  # a space may end the answer: the output changes
        assert not torch.allclose(bare(x, memory=banks).logits, model(x, memory=banks).logits)


def test_a_memory_layer_reads_each_row_as_much_as_its_bank_matches_the_question():
    """The relevance gate: a row's cross-attention update is scaled by sigmoid(w_cos * best
    cosine + w_lex * best lexical + b) of its bank's best entry, so a bank of facts about
    other things leaves the row nearly alone; a bank read without scores is read fully."""
    from ghost.model.memory_batch import MemoryBatch
    from ghost.model.memory_read import MemoryCrossAttention

    torch.manual_seed(0)
    layer = MemoryCrossAttention(32, 4).eval()
    with torch.no_grad():
        layer.gate.fill_(1.0)
        layer.relevance.copy_(torch.tensor([2.0, 10.0, -3.0]))
    x = torch.randn(2, 3, 32)

    def bank(prior=None, lexical=None):
        return MemoryBatch(
            torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(1)),
            index=torch.tensor([[0, 1]]),
            data=torch.full((1, 2, 5), 65),
            mask=torch.ones(1, 2, 5, dtype=torch.bool),
            entries=torch.tensor([[0, 1]]),
            prior=prior,
            lexical=lexical,
        )

    with torch.no_grad():
        full = layer(x, bank())
        prior = torch.tensor([[0.9, 0.1], [0.2, 0.3]])
        lexical = torch.tensor([[1.0, 0.2], [0.1, 0.0]])
        scored = layer(x, bank(prior, lexical))
    r = torch.sigmoid(torch.tensor([2.0 * 0.9 + 10.0 - 3.0, 2.0 * 0.3 + 10.0 * 0.1 - 3.0]))
    torch.testing.assert_close(scored, full * r[:, None, None])
    assert r[0] > 0.99 and r[1] < 0.25  # the matching bank is read, the other mostly not
