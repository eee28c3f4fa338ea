"""Memory training: on when the records carry facts, the rows it adds, what it records."""

import csv
import json
import random
import sys
from dataclasses import replace

import pytest
import torch
from tiny_runs import CAPITALS, assert_resumes_exactly, tiny_config

from ghost.data.fictional import RELATIONS, fictional_facts, reword, reworded_templates
from ghost.distill.shapes import fill
from ghost.distill.similarity import rouge_l
from ghost.errors import GhostInputError
from ghost.model.memory_text import LexicalIndex
from ghost.train import loop
from ghost.train.hooks import Recipe
from ghost.train.loop import train
from ghost.train.memory import MemoryTraining


def write_qa_with_facts(path):
    with open(path, "w", encoding="utf-8") as f:
        for country, city in CAPITALS.items():
            record = {
                "question": f"What is the capital of {country}?",
                "answer": city,
                "facts": [f"The capital of {country} is {city}."],
            }
            f.write(json.dumps(record) + "\n")
    return path


class Spy(Recipe):
    """Records what the memory service handed to each forward pass (runs after it)."""

    name = "spy"

    def __init__(self):
        self.seen = []

    def on_batch(self, state, batch):
        self.seen.append((batch.indices.clone(), state.forward_kwargs.get("memory")))
        return batch


def test_auto_trains_the_memory_when_the_records_carry_facts(tmp_path):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    spy = Spy()
    train(tiny_config(data, tmp_path / "default", steps=1, memory_steps=2))  # auto by default
    config = json.loads((tmp_path / "default" / "config.json").read_text())
    assert config["train"]["memory_training"] == "auto"
    assert config["train"]["memory_trained_with"]["started"] == 1  # a stage, after the weights
    train(tiny_config(data, tmp_path / "run", steps=3, memory_training="auto", memory_steps=0))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["memory_training"] == "auto"
    trained_with = config["train"]["memory_trained_with"]  # the run records how
    assert trained_with["bank_size"] == 8 and trained_with["fictional"] > 0
    assert trained_with["started"] == 0  # jointly, from the first step
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("retrieval_loss")
    assert all(float(row.split(",")[column]) > 0 for row in metrics[1:])

    # The service's batches, seen from a recipe after it (hook order: memory, then this).
    from ghost.train import loop

    original = loop._memory_training
    loop._memory_training = lambda *a: [*original(*a), spy]
    try:
        train(tiny_config(data, tmp_path / "run2", steps=2, memory_steps=0))
    finally:
        loop._memory_training = original
    indices, memory = spy.seen[0]
    n_records = 8
    assert (indices[:n_records] >= 0).all() and (indices[n_records:] == -1).all()
    assert len(indices) > n_records  # fictional and counterfactual rows were added
    assert memory is not None and memory.index.shape[0] == len(indices)
    assert memory.states.requires_grad  # the encoder learns from the step's loss


def test_memory_training_off_and_on(tmp_path, qa_file):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    spy = Spy()
    train(tiny_config(data, tmp_path / "off", steps=2, memory_training="off"), recipes=[spy])
    assert all(memory is None for _, memory in spy.seen)
    config = json.loads((tmp_path / "off" / "config.json").read_text())
    assert config["train"]["memory_trained_with"] is None
    # "on" over Q&A records without facts: reading is practised on generated facts alone,
    # and the data rows read distractors or nothing, never a fact of their own.
    train(tiny_config(qa_file, tmp_path / "on", steps=2, memory_training="on", memory_steps=0))
    config = json.loads((tmp_path / "on" / "config.json").read_text())
    assert config["train"]["memory_trained_with"] is not None
    with open(tmp_path / "on" / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(int(r["batch_rows"]) == 8 + 2 for r in rows)  # + 2 rows of fictional facts
    # how well the fictional rows (answerable only from the bank) are read, every step
    assert all(0.0 <= float(r["memory_exact_match"]) <= 1.0 for r in rows)
    with open(tmp_path / "off" / "metrics.csv", encoding="utf-8") as f:
        assert all(r["memory_exact_match"] == "" for r in csv.DictReader(f))
    # "auto" over the same records: no memory training
    train(tiny_config(qa_file, tmp_path / "auto", steps=2, memory_training="auto"))
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["train"]["memory_trained_with"] is None
    with pytest.raises(GhostInputError, match="must be 'auto', 'on' or 'off'"):
        tiny_config(qa_file, tmp_path / "x", memory_training="sometimes")


def test_the_progress_line_says_how_well_new_facts_are_read(tmp_path, capsys):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    config = tiny_config(
        data, tmp_path / "run", steps=4, eval_every=2, memory_training="on", memory_steps=0
    )
    train(replace(config, quiet=False))
    said = capsys.readouterr().err
    checks = [line for line in said.splitlines() if line.startswith("step ") and "loss" in line]
    assert len(checks) == 2 and all("new facts read from memory" in line for line in checks)


def test_the_memory_parts_get_gradients(tmp_path):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    before = {}

    class Grab(Recipe):
        name = "grab"

        def on_train_begin(self, state):
            before.update({n: p.detach().clone() for n, p in state.model.named_parameters()})

    result = train(
        tiny_config(data, tmp_path / "run", steps=3, memory_training="on", memory_steps=0),
        recipes=[Grab()],
    )
    after = dict(result.model.named_parameters())
    for name in ("copy.gate.bias", "copy.q_proj.weight", "memory.encoder.key.weight"):
        assert not torch.equal(after[name].detach(), before[name]), name
    assert any(
        not torch.equal(after[n].detach(), before[n]) for n in after if n.endswith("extra.gate")
    )


def test_the_memory_encoder_trains_in_fp32_under_bf16_precision(tmp_path, monkeypatch):
    """bf16 autocast in the encoder pass cost the memory most of its reach to wordings
    training never used (41% against 76% in benchmarks/memory_facts.py): it stays fp32."""
    from ghost.model.memory import FactMemory

    seen = []
    encode = FactMemory.encode

    def spying(self, texts):
        seen.append(torch.is_autocast_enabled("cpu"))
        encoded = encode(self, texts)
        seen.append(encoded.states.dtype)
        return encoded

    monkeypatch.setattr(FactMemory, "encode", spying)
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    train(
        tiny_config(
            data, tmp_path / "run", steps=2, memory_training="on", memory_steps=0, precision="bf16"
        )
    )
    assert seen and set(seen) == {False, torch.float32}


def _banks_setup(bank_size: int, pool_size: int, step: int):
    """A tiny model and a MemoryTraining whose pool is the eight capitals, as `_banks` sees
    them at `step` (the parts of the training state it reads)."""
    from types import SimpleNamespace

    from ghost.model.ghost import GhostModel

    torch.manual_seed(0)
    model = GhostModel.from_preset("tiny").eval()
    service = MemoryTraining(bank_size=bank_size, pool_size=pool_size)
    service.all_facts = [f"The capital of {c} is {city}." for c, city in CAPITALS.items()]
    service.seed = 0
    return model, service, SimpleNamespace(model=model, step=step, precision="fp32")


def test_a_rows_bank_holds_its_facts_and_the_distractors_nearest_its_question():
    import random

    model, service, state = _banks_setup(bank_size=4, pool_size=12, step=3)
    prompts = ["Q: What is the capital of Peru?\nA: ", "Q: Who wrote Hamlet?\nA: ", "Q: x\nA: "]
    owns = [["The capital of Peru is Lima."], [], ["Hamlet was written by Shakespeare."]]
    excluded = [set(), {"The capital of Peru is Lima."}, {"The capital of Japan is Tokyo."}]
    banks, encoded, queries, corpus, _, lexical = service._banks(
        state, random.Random(0), prompts, owns, excluded, made=[]
    )
    for row in (0, 1, 2):
        bank = banks[row]
        assert len(bank) == 4 and len(set(bank)) == 4 and set(owns[row]) <= set(bank)
        assert not excluded[row] & set(bank)  # a row answering from its weights: distractors
    # The distractors are the candidates nearest the question by the encoder's keys plus
    # the lexical score (word weights from the step's pool and the facts read), as retrieval
    # ranks them: the step's one encoder pass (with gradient) ranks as encoding them apart.
    extra = fictional_facts(12, seed="0-3-distractors")  # the step's fictional candidates
    pool = sorted(set(service.all_facts) | {f.fact for f in extra})
    assert sorted(corpus) == sorted(set(pool) | {"Hamlet was written by Shakespeare."})
    by_hand = LexicalIndex(corpus).scores(prompts)
    torch.testing.assert_close(lexical, by_hand)
    with torch.no_grad():
        query = model.memory.query_keys(prompts)
        keys = model.memory.encode_texts(pool)
    assert encoded.keys.requires_grad
    torch.testing.assert_close(encoded.keys_of(queries), query, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(encoded.keys_of(pool), keys, atol=1e-5, rtol=1e-4)
    for row in (0, 2):
        scores = (query[row] @ keys.T).tolist()
        weights = dict(zip(corpus, by_hand[row].tolist(), strict=True))
        ranked = sorted(
            ((s + weights[c], c) for s, c in zip(scores, pool, strict=True)), reverse=True
        )
        skip = set(owns[row]) | excluded[row]
        nearest = [c for _, c in ranked if c not in skip][: 4 - len(owns[row])]
        assert set(banks[row]) - set(owns[row]) == set(nearest)


def test_the_read_rows_come_from_the_steps_one_encoder_pass():
    """The batch the rows read is built from the same pass: its states are the encoded
    entries' (only those read, only as wide as the widest), its scores the pass's keys and
    the lexical scores over the corpus, the same as encoding the banks on their own."""
    import random

    model, service, state = _banks_setup(bank_size=3, pool_size=6, step=5)
    prompts = ["Q: What is the capital of Peru?\nA: ", "Q: Who wrote Hamlet?\nA: "]
    owns = [["The capital of Peru is Lima."], None]
    banks, encoded, queries, corpus, lexicon, lexical = service._banks(
        state, random.Random(1), prompts, owns, [set(), set()], made=[]
    )
    assert banks[1] == []
    keys = encoded.keys_of(queries)
    read = model.memory.read_rows(encoded, banks, keys, lexical, corpus, queries, lexicon)
    alone, _, _ = model.memory.encode_rows(banks, queries=prompts, corpus=corpus)
    assert read.states.shape[0] == len(banks[0])  # no pool entry no row reads, no query
    assert read.states.shape[1] == max(len(t.encode()) for t in banks[0])
    assert torch.equal(read.mask, alone.mask) and torch.equal(read.starts, alone.starts)
    assert torch.equal(read.data[read.mask], alone.data[alone.mask])  # (padding: any byte)
    present = read.mask.any(-1)
    read_states, alone_states = read.states[read.index], alone.states[alone.index]
    torch.testing.assert_close(read_states[present], alone_states[present], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(read.prior[present], alone.prior[present], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(read.lexical[present], alone.lexical[present])
    torch.testing.assert_close(read.cues[present], alone.cues[present])


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A tiny model trained 200 steps with memory on the eight capitals, with 2 fictional
    rows per data row (so copying is learnt in a test's time): ~1 minute on one thread."""
    import functools

    from ghost.train import memory as service

    data = write_qa_with_facts(tmp_path_factory.mktemp("reader") / "facts.jsonl")
    original = service.MemoryTraining
    service.MemoryTraining = functools.partial(original, fictional=2.0)
    try:
        result = train(
            tiny_config(data, data.parent / "run", steps=200, memory_training="on", memory_steps=0)
        )
    finally:
        service.MemoryTraining = original
    return result.run_dir


def answers(model, facts):
    from ghost.data.template import QATemplate
    from ghost.model.generate import generate

    template = QATemplate.from_config(model.config)
    prompts = [template.prompt(f.question) for f in facts]
    with torch.no_grad():
        out = generate(model, prompts, max_bytes=32, stop_bytes=bytes([template.marker]))
    return [o.decode("utf-8", "replace") for o in out]


def test_a_trained_model_answers_facts_it_never_saw_once_they_are_written(reader):
    from ghost.model.ghost import GhostModel

    unseen = fictional_facts(16, seed=0, pool="bench")  # entities training never drew
    model = GhostModel.from_pretrained(reader).eval()
    assert not any(a == f.answer for a, f in zip(answers(model, unseen), unseen, strict=True))
    right = 0
    for i in range(0, 16, 4):  # banks of four facts: each question has three distractors
        group = unseen[i : i + 4]
        model.memory.clear()
        model.memory.write([f.fact for f in group])
        right += sum(a == f.answer for a, f in zip(answers(model, group), group, strict=True))
    assert right >= 5, f"{right}/16 unseen facts answered from memory"  # 0 without them


def test_written_facts_persist_and_removing_one_takes_its_answer_away(reader, tmp_path):
    import shutil

    from ghost.model.ghost import GhostModel

    run = tmp_path / "run"
    shutil.copytree(reader, run)
    facts = fictional_facts(4, seed=1, pool="bench")
    model = GhostModel.from_pretrained(run).eval()
    ids = model.memory.write([f.fact for f in facts])
    before = answers(model, facts)
    model.save_pretrained(run)
    loaded = GhostModel.from_pretrained(run).eval()
    assert answers(loaded, facts) == before  # write -> save -> load: the same answers
    known = [i for i, (a, f) in enumerate(zip(before, facts, strict=True)) if a == f.answer]
    assert known, f"no written fact was answered: {before}"
    loaded.memory.remove([ids[known[0]]])
    assert answers(loaded, facts)[known[0]] != facts[known[0]].answer


def test_fictional_questions_reworded_keep_entity_and_answer_and_avoid_held_out_wordings():
    rng = random.Random(0)
    facts = fictional_facts(60, seed="reword-test")
    changed = 0
    for fact in facts:
        question = reword(fact, rng)
        assert fact.entity and fact.entity.lower() in question.lower()
        changed += question != fact.question
    assert changed >= 50
    for relation, (_, heldout) in RELATIONS.items():
        options = reworded_templates(relation)
        if heldout is None or not options:
            continue
        held = heldout[1].format(e="Qentity")
        assert all(rouge_l(fill(t, S="Qentity"), held) < 0.7 for t in options)
        # training's templates and the validation ones never meet
        assert not set(options) & set(reworded_templates(relation, "validation"))


def test_reworded_rows_ask_the_fictional_facts_in_other_words(tmp_path, monkeypatch):
    asked = []

    class Recording(MemoryTraining):
        def on_batch(self, state, batch):
            batch = super().on_batch(state, batch)
            for row, index in zip(batch.input_ids, batch.indices.tolist(), strict=True):
                if index == -1:  # the added (here: fictional) rows
                    asked.append(bytes(row[row > 0].tolist()).decode().split("\n")[0])
            return batch

    monkeypatch.setattr(
        loop, "_memory_training", lambda cfg, ds, dp: [Recording(reword=1.0, counterfactual=0)]
    )
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    train(tiny_config(data, tmp_path / "run", steps=3, memory_training="on", memory_steps=0))
    own = tuple(q.split("{e}")[0] for trained, _ in RELATIONS.values() for _, q in trained)
    # (a distillation template may begin as a fictional wording does: "In which country is")
    in_own_words = sum(q.removeprefix("Q: ").startswith(own) for q in asked)
    assert asked and in_own_words <= len(asked) // 3


def test_the_memory_stage_follows_the_weights_training(tmp_path, capsys, monkeypatch):
    """By default the weights learn the data first, as without memory training; then
    `memory_steps` more steps teach the readers, at the run's peak learning rate, warmed up
    and decayed again over the stage."""
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    config = tiny_config(data, tmp_path / "run", steps=4, memory_steps=3, warmup_steps=1)
    result = train(replace(config, quiet=False))
    assert result.steps == 7 and result.stop_reason == "memory stage done (3 steps)"
    with open(tmp_path / "run" / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["batch_rows"]) for r in rows[:4]] == [8] * 4  # no fictional rows yet
    assert all(r["memory_exact_match"] == "" for r in rows[:4])
    assert all(r["memory_exact_match"] for r in rows[4:])  # (its rows: the test below)
    peak = config.lr  # (the weights are frozen: the readers get the run's peak)
    assert float(rows[3]["lr"]) < peak
    stage = [loop.learning_rate(replace(config, lr=peak), k, 3) for k in range(3)]
    assert [float(r["lr"]) for r in rows[4:]] == pytest.approx(stage)
    assert "memory stage: 3 steps teaching the model to read" in capsys.readouterr().err
    with monkeypatch.context() as m:  # on a terminal: the progress bar's end moves with it
        m.setattr(sys.stderr, "isatty", lambda: True)
        train(replace(config, out=str(tmp_path / "bar"), quiet=False))
    assert "7/7" in capsys.readouterr().err
    trained_with = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert trained_with["memory_trained_with"]["started"] == 4
    assert float(result.model.copy.gate.bias.detach()) > -10  # opened at the stage


def test_the_stage_trains_only_the_memory_and_the_weights_answer_as_before(tmp_path):
    """In the stage only the memory's parameters move: every other weight is bit-identical
    to where the weights' training left it, so with an empty bank every logit is too."""
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    at_stage = {}

    class Grab(Recipe):
        name = "grab"

        def on_step_end(self, state, metrics):
            if state.step == 4:  # the weights' last step: the stage begins after it
                at_stage.update({n: p.detach().clone() for n, p in state.model.named_parameters()})
                at_stage["logits"] = state.model(probe).logits.detach()

    probe = torch.randint(0, 256, (2, 24))
    config = tiny_config(data, tmp_path / "run", steps=4, memory_steps=3, warmup_steps=1)
    result = train(config, recipes=[Grab()])
    model = result.model
    reading = set(model.memory_parameter_names())
    assert {"copy.gate.bias", "memory.encoder.key.weight"} <= reading
    assert any(n.endswith("extra.q_proj.weight") for n in reading)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), at_stage[n])}
    assert moved and moved <= reading, moved - reading
    assert "memory.encoder.key.weight" in moved
    model.memory.clear()
    assert torch.equal(model(probe).logits, at_stage["logits"])
    assert all(p.requires_grad for p in model.parameters())  # trainable again afterwards
    weights = replace(config, out=str(tmp_path / "all"), memory_stage_trains="all")
    everything = train(weights, recipes=[Grab()]).model  # every weight trains in the stage
    moved = {
        n for n, p in everything.named_parameters() if not torch.equal(p.detach(), at_stage[n])
    }
    assert moved - reading
    with open(tmp_path / "all" / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    peak = float(rows[3]["lr"])  # at the weights' last learning rate
    stage = [loop.learning_rate(replace(config, lr=peak), k, 3) for k in range(3)]
    assert [float(r["lr"]) for r in rows[4:]] == pytest.approx(stage)
    trained_with = json.loads((tmp_path / "all" / "config.json").read_text())["train"]
    assert trained_with["memory_trained_with"]["freeze_weights"] is False


def test_the_memorys_scalars_step_scalar_update_times_as_far(tmp_path, monkeypatch):
    """The gates' and the copy head's scales and biases (4 values or fewer) take updates
    `scalar_update` times the learning rate's; every other parameter steps as before."""
    data = write_qa_with_facts(tmp_path / "facts.jsonl")

    class Snap(Recipe):
        name = "snap"

        def on_train_begin(self, state):
            self.start = {n: p.detach().clone() for n, p in state.model.named_parameters()}

        def on_train_end(self, state):
            self.step = {n: p.detach() - self.start[n] for n, p in state.model.named_parameters()}

    runs = {}
    for m in (1.0, 10.0):
        monkeypatch.setattr(
            loop, "_memory_training", lambda cfg, ds, dp, m=m: [MemoryTraining(scalar_update=m)]
        )
        config = tiny_config(
            data, tmp_path / f"run-{m}", steps=1, lr=1e-2, warmup_steps=0, memory_steps=0
        )
        snap = Snap()
        model = train(config, recipes=[snap]).model
        runs[m] = snap.step
    reading = set(model.memory_parameter_names())
    scalars = {n for n, p in model.named_parameters() if n in reading and p.numel() <= 4}
    assert {"copy.gate.bias", "copy.asked_scale", "layers.2.extra.relevance"} & scalars
    for name, plain in runs[1.0].items():
        if name in scalars:
            torch.testing.assert_close(runs[10.0][name], 10 * plain, atol=1e-5, rtol=1e-4)
        else:
            torch.testing.assert_close(runs[10.0][name], plain, atol=1e-6, rtol=1e-5)
    assert any(runs[1.0][n].abs().max() > 0 for n in scalars)  # they did step


def test_a_budget_that_ends_before_the_stage_leaves_the_memory_untrained(tmp_path):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    result = train(tiny_config(data, tmp_path / "run", max_steps=3, memory_steps=3))
    assert result.steps == 3
    assert result.stop_reason.endswith("before the memory stage: the memory is not trained")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["memory_trained_with"] is None
    assert float(result.model.copy.gate.bias.detach()) == -30.0  # writing facts changes no answer


@pytest.mark.parametrize("stop_at", [3, 4, 5], ids=["before", "at-the-start", "in-the-stage"])
def test_a_staged_run_resumes_exactly(tmp_path, stop_at):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")

    def config(out, **overrides):
        return tiny_config(data, out, steps=4, memory_steps=3, eval_every=2, **overrides)

    straight, resumed = assert_resumes_exactly(config, 7, stop_at, tmp_path)
    for run in (straight, resumed):
        trained_with = json.loads((run / "config.json").read_text())["train"]
        assert trained_with["memory_trained_with"]["started"] == 4


def test_rows_reading_only_distractors_weigh_distractor_weight_in_the_loss():
    """on_loss adds (w - 1) x those rows' summed byte losses / the batch's target bytes: their
    bytes count w times, every other row's once, the loop's normalisation unchanged."""
    from types import SimpleNamespace

    from ghost.data.batches import IGNORE, Batch
    from ghost.model.ghost import next_byte_loss

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 256)
    labels = torch.randint(0, 256, (3, 6))
    labels[:, :2] = IGNORE
    labels[2, 4:] = IGNORE
    batch = Batch(torch.zeros(3, 6, dtype=torch.long), labels, torch.arange(3))
    per_row = next_byte_loss(logits, labels, "none").sum(1)
    plain = per_row.sum() / batch.n_target_bytes
    service = MemoryTraining(distractor_weight=3.0)
    service._distractor_rows, service._fact_keys = [0, 2], None  # (no retrieval loss here)
    output = SimpleNamespace(logits=logits)
    weighted = service.on_loss(None, plain, output, batch)
    expected = (3 * per_row[0] + per_row[1] + 3 * per_row[2]) / batch.n_target_bytes
    torch.testing.assert_close(weighted, expected)
    service.distractor_weight = 1.0
    assert service.on_loss(None, plain, output, batch) is plain


def bank_texts(memory, row: int) -> set[str]:
    """The texts of the entries in `row`'s bank of a training MemoryBatch."""
    return {
        bytes(memory.data[row, m][memory.mask[row, m]].tolist()).decode()
        for m in range(memory.data.shape[1])
        if memory.mask[row, m].any()
    }


def test_the_rows_weighted_as_distractor_only_are_those_whose_bank_lacks_their_facts(tmp_path):
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    records = [json.loads(line) for line in open(data, encoding="utf-8")]
    service = MemoryTraining()

    class Check(Recipe):
        name = "check"

        def __init__(self):
            self.flagged = 0

        def on_batch(self, state, batch):
            memory = state.forward_kwargs["memory"]
            for row, index in enumerate(batch.indices.tolist()):
                if index < 0:  # an added (fictional or counterfactual) row
                    assert row not in service._distractor_rows
                    continue
                texts = bank_texts(memory, row)
                facts = set(records[index]["facts"])
                if row in service._distractor_rows:
                    assert texts and not facts & texts
                    self.flagged += 1
                else:  # its own facts, or (training every weight) no bank at all
                    assert facts <= texts or not texts
            return batch

    check = Check()  # (hook order: the memory service, then this)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "_memory_training", lambda cfg, ds, dp: [service, check])
        train(tiny_config(data, tmp_path / "run", steps=3, memory_steps=0))
    assert check.flagged > 0


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_a_frozen_stage_keeps_the_asked_share_of_the_rows_reading_their_own_facts(tmp_path, share):
    """`memory_stage_own_rows` 0: every dataset row of a frozen stage reads distractors only
    (the added rows still read their facts); 1: the rows reading their own facts all stay.
    The run records the share."""
    data = write_qa_with_facts(tmp_path / "facts.jsonl")
    records = [json.loads(line) for line in open(data, encoding="utf-8")]
    reads_own, added = [], []

    class Check(Recipe):
        name = "check"

        def on_batch(self, state, batch):
            memory = state.forward_kwargs.get("memory")
            if memory is None:  # before the stage
                return batch
            for row, index in enumerate(batch.indices.tolist()):
                texts = bank_texts(memory, row)
                assert texts  # a frozen stage has no row without a bank
                if index >= 0:
                    reads_own.append(set(records[index]["facts"]) <= texts)
            added.append(int((batch.indices < 0).sum()))  # the fictional rows: every step
            return batch

    with pytest.MonkeyPatch.context() as patch:
        built = loop._memory_training
        patch.setattr(loop, "_memory_training", lambda *a: [*built(*a), Check()])
        config = tiny_config(data, tmp_path / "run", steps=2, memory_steps=3)
        result = train(replace(config, memory_stage_own_rows=share))
    assert result.steps == 5 and reads_own and len(added) == 3 and min(added) > 0
    assert any(reads_own) == (share == 1.0)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert recorded["memory_trained_with"]["stage_own_rows"] == share
