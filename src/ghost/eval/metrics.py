"""The metrics, one definition each (DESIGN.md section 5), used everywhere.

- exact match: the greedy answer, up to the end-of-answer marker, equals the reference after
  stripping surrounding whitespace (`evaluate_qa`, generation in step mode).
- `answers_all_correct`: the same verdict from one teacher-forced forward pass: a greedy
  answer equals the reference exactly when the argmax at every answer byte and at the marker
  is the reference byte. Cheap enough to run during training; it is stricter than exact
  match only where the two differ by surrounding whitespace.
- bits per byte: mean next-byte cross-entropy, in bits, over held-out text.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import torch

from ghost.data.batches import IGNORE, QABatcher, length_batches, pad_rows, qa_row
from ghost.data.records import Dataset, load_data
from ghost.data.template import QATemplate
from ghost.model.generate import generate
from ghost.model.ghost import next_byte_loss, scored_positions


def exact_match(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


@torch.no_grad()
def answers_all_correct(
    model, batcher: QABatcher, indices: list[int] | None = None, batch_size: int = 128
) -> torch.Tensor:
    """(n,) bool: whether greedy decoding reproduces each record's answer and marker. The
    records are batched by length (`length_batches`), the verdicts returned in their order."""
    was_training = model.training
    model.eval()
    indices = list(range(len(batcher))) if indices is None else indices
    verdicts = torch.zeros(len(indices), dtype=torch.bool)
    lengths = [len(batcher.samples[i][0]) for i in indices]
    for chunk in length_batches(list(range(len(indices))), lengths, batch_size):
        batch = batcher.collate([indices[k] for k in chunk], max_len=10**9)
        at = scored_positions(batch.labels)
        logits = model(batch.input_ids, logits_at=at).logits[:, :-1]  # predicts bytes 1..L-1
        targets = batch.labels[:, 1:]
        wrong = (logits.argmax(-1) != targets) & (targets != IGNORE)
        verdicts[chunk] = ~wrong.any(dim=1).cpu()
    model.train(was_training)
    return verdicts


@torch.no_grad()
def mean_loss(model, batcher, indices: list[int], batch_size: int = 128) -> float:
    """Mean next-byte cross-entropy (nats) over the target bytes of the batcher's rows
    `indices` (records or window starts), without gradient: a validation loss."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(indices), batch_size):
        batch = batcher.collate(indices[start : start + batch_size])
        logits = model(batch.input_ids, logits_at=scored_positions(batch.labels)).logits
        total += float(next_byte_loss(logits, batch.labels, "sum"))
        count += batch.n_target_bytes
    model.train(was_training)
    return total / max(1, count)


# Bytes a model trained with hops may write before its answer: a 3-hop chain of ~60-byte
# questions and their answers in the template's form.
STEPS_ALLOWANCE = 320

# A greedy answer is taken from one teacher-forced pass only where its argmax beats the
# runner-up by this many logits at every byte: step mode and the full forward agree to ~1e-5
# (fp32, tested), so no near-tie decided differently by rounding can slip through.
CHECK_MARGIN = 0.05


@torch.no_grad()
def checked_answers(
    model,
    template: QATemplate,
    records: list[dict],
    batch_size: int = 64,
    hops: dict[int, list[tuple[str, str]]] | None = None,
) -> list[bool]:
    """Per record: whether greedy generation from its prompt is certain to produce exactly
    its answer and then the end-of-answer marker, decided by one teacher-forced forward pass
    over the rendered record (`qa_row`): the reference byte is the argmax at every answer
    position and the marker's, by at least `CHECK_MARGIN` over the runner-up. A record that
    fails is not wrong, only unproven: `evaluate_qa` generates it. `hops` (by position in
    `records`) gives answers through their hops (template.py); by default a template with
    steps takes them from `records` themselves (`QATemplate.hops`)."""
    was_training = model.training
    model.eval()
    if hops is None:
        hops = template.hops(records)
    rows = [qa_row(template, r, hops=hops.get(i)) for i, r in enumerate(records)]
    prompts = [template.prompt(r["question"]) for r in records]
    device = model.embed.weight.device
    # A question stem many prompts share is run once and its cache continued for each of
    # them; with a bank, each prompt retrieves its own entries, so nothing is shared.
    stems = [0] * len(rows) if len(model.memory) else shared_stems(prompts)
    by_stem: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(stems):
        by_stem[n].append(i)
    verdicts = [False] * len(rows)
    for n, members in sorted(by_stem.items()):
        if n:
            unique = sorted({prompts[i][:n] for i in members})
            where = {stem: j for j, stem in enumerate(unique)}
            stem_ids = torch.tensor([list(stem) for stem in unique], device=device)
            none = torch.zeros_like(stem_ids, dtype=torch.bool)  # no stem byte is scored
            cache = model(stem_ids, use_cache=True, logits_at=none).cache
        lengths = [len(rows[i][0]) - n for i in members]
        for chunk in length_batches(members, lengths, batch_size):
            # The stem ends inside the prompt, whose bytes have no targets: nothing is lost.
            input_ids, labels = pad_rows([(rows[i][0][n:], rows[i][1][n:]) for i in chunk])
            input_ids, at = input_ids.to(device), scored_positions(labels).to(device)
            if n:
                rows_cache = cache.select(torch.tensor([where[prompts[i][:n]] for i in chunk]))
                logits = model(input_ids, cache=rows_cache, logits_at=at).logits
            else:
                memory = (
                    model.memory.batch([prompts[i] for i in chunk]) if len(model.memory) else None
                )  # as generate's
                logits = model(input_ids, memory=memory, logits_at=at).logits
            top2 = logits[:, :-1].float().topk(2, dim=-1)  # predictions of bytes 1..L-1
            targets = labels[:, 1:].to(device)
            sure = (top2.indices[..., 0] == targets) & (
                top2.values[..., 0] - top2.values[..., 1] > CHECK_MARGIN
            )
            proven = (sure | (targets == IGNORE)).all(dim=1).tolist()
            for i, ok in zip(chunk, proven, strict=True):
                verdicts[i] = ok
    model.train(was_training)
    return verdicts


# Question stems: prompts' first bytes, cut at multiples of STEM_STEP, that at least
# STEM_ROWS prompts begin with ("Q: What is the capital of ").
STEM_STEP = 8
STEM_ROWS = 4


def shared_stems(prompts: list[bytes], step: int = STEM_STEP, min_rows: int = STEM_ROWS):
    """Per prompt, the length of the longest stem shorter than it that at least `min_rows`
    prompts begin with, a multiple of `step`; 0 where there is none."""
    counts = Counter(p[:n] for p in prompts for n in range(step, len(p), step))
    return [
        max((n for n in range(step, len(p), step) if counts[p[:n]] >= min_rows), default=0)
        for p in prompts
    ]


def evaluate_qa(
    model,
    dataset: Dataset,
    max_answer_bytes: int | None = None,
    batch_size: int = 64,
    check_first: bool = True,
) -> tuple[dict, list[dict]]:
    """Greedy exact match over Q&A records: (summary, per-question predictions).

    With `check_first` (the default), the answers one teacher-forced pass proves greedy
    generation would produce (`checked_answers`) are taken from it, and only the rest are
    generated: the same predictions, most of the time saved on a model that knows its data.
    """
    template = QATemplate.from_config(model.config)
    longest = max(len(r["answer"].encode("utf-8")) for r in dataset.records)
    # A model that answers through hops writes each hop's question and answer first.
    max_bytes = max_answer_bytes or longest + 16 + (STEPS_ALLOWANCE if template.steps else 0)
    prompts = [template.prompt(r["question"]) for r in dataset.records]
    hops = template.hops(dataset.records)
    references = [
        (template.stepped_answer(hops[i]) if i in hops else r["answer"]).encode("utf-8")
        for i, r in enumerate(dataset.records)
    ]
    answers: dict[int, bytes] = {}
    if check_first:
        # Only answers generation would not cut short can be proven whole.
        fits = [i for i, a in enumerate(references) if len(a) < max_bytes]
        sure = checked_answers(
            model,
            template,
            [dataset.records[i] for i in fits],
            hops={k: hops[i] for k, i in enumerate(fits) if i in hops},
        )
        answers = {i: references[i] for i, ok in zip(fits, sure, strict=True) if ok}
    # Batches of prompts of similar length: generation prefills up to the shortest one.
    rest = sorted(
        (i for i in range(len(prompts)) if i not in answers), key=lambda i: len(prompts[i])
    )
    for start in range(0, len(rest), batch_size):
        chunk = rest[start : start + batch_size]
        outputs = generate(
            model,
            [prompts[i] for i in chunk],
            max_bytes=max_bytes,
            stop_bytes=bytes([template.marker]),
        )
        answers.update(zip(chunk, outputs, strict=True))
    predictions = []
    for i, record in enumerate(dataset.records):
        wrote_hops, prediction = template.split_steps(template.written(answers[i]))
        prediction = prediction.strip()  # as clean_answer: the exact-match form
        predictions.append(
            {
                "question": record["question"],
                "reference": record["answer"],
                "prediction": prediction,
                "kind": record.get("kind", "qa"),
                "correct": exact_match(prediction, record["answer"]),
            }
        )
        if template.steps:  # the hops it wrote before its answer
            predictions[-1]["hops"] = wrote_hops
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for p in predictions:
        by_kind[p["kind"]].append(p["correct"])
    summary = {
        "data": dataset.name,
        "n": len(predictions),
        "exact_match": sum(p["correct"] for p in predictions) / max(1, len(predictions)),
        "by_kind": {
            k: {"exact_match": sum(v) / len(v), "n": len(v)} for k, v in sorted(by_kind.items())
        },
    }
    return summary, predictions


@torch.no_grad()
def bits_per_byte(model, dataset: Dataset, seq_len: int = 512, batch_size: int = 8) -> dict:
    """Mean next-byte cross-entropy in bits over the text, in non-overlapping windows.

    Each window's first byte has no context inside the window and is not scored, so the
    score covers every byte but the first of each window.
    """
    was_training = model.training
    model.eval()
    data = "\n\n".join(r["text"] for r in dataset.records).encode("utf-8")
    stream = torch.tensor(list(data), dtype=torch.long)
    windows = [stream[s : s + seq_len] for s in range(0, len(stream), seq_len)]
    windows = [w for w in windows if len(w) > 1]
    total_nats, total_bytes = 0.0, 0
    for start in range(0, len(windows), batch_size):
        ids, labels = pad_rows([(w, w) for w in windows[start : start + batch_size]])
        total_nats += float(next_byte_loss(model(ids).logits, labels, "sum"))
        total_bytes += int((labels[:, 1:] != IGNORE).sum())
    model.train(was_training)
    return {
        "data": dataset.name,
        "n": len(dataset.records),
        "bytes": total_bytes,
        "bits_per_byte": total_nats / max(1, total_bytes) / math.log(2),
    }


def evaluate(model, dataset: Dataset | str, **kwargs) -> tuple[dict, list[dict]]:
    """Exact match for Q&A data, bits per byte for text; (summary, predictions).

    `dataset` is a loaded `Dataset`, a built-in NAME[:SPLIT] or a path.
    """
    if isinstance(dataset, str):
        dataset = load_data(dataset)
    if dataset.kind == "qa":
        return evaluate_qa(model, dataset, **kwargs)
    return bits_per_byte(model, dataset, **kwargs), []
