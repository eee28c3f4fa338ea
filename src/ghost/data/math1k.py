"""Math-1K: integer arithmetic equations generated from a fixed seed.

The data set is code, not a typed list: `generate_train()` and `generate_test()` rebuild the
splits from `random.Random(SEED)` and compute every answer. The shipped
`datasets/math1k/{train,test}.jsonl` are that output written out once, so that the data can
be read without Ghost; a test checks that they still equal the generator.

An equation is a compact question and its value, e.g. `{"question": "37*4=", "answer": "148"}`:

    two operands (70%):   a+b  a-b  (1-3 digits each)   a*b  (1-3 digits x 1-2 digits)
                          a/b  (b in 2..99, a = b x a 1-3 digit quotient)
    three operands (30%): a op b op c with op in + - * /, operands of 1-2 digits

Operators have their usual precedence (`*` and `/` bind tighter than `+` and `-`, equal
operators associate to the left), so `12+7*3=` is 33. Division is always exact: every `/`
divides a value by one of its own divisors, so floor and true division agree and no answer
has a fraction. Answers may be negative (`8-23=` is -15). Equations never repeat.

Held out (`test`): 150 equations from the same distribution but a different random stream,
none of them in `train`; and 50 commuted pairs: for a training equation `a+b=` or `a*b=`, the
never-trained `b+a=` / `b*a=` (kind "commuted"): the same answer reached through an operand
order the model has not seen.

`as_text()` joins equations into `{"text": ...}` records, one line `37*4=148` per equation and
50 equations per record: the stream for compression (bits per byte) tests.
"""

from __future__ import annotations

import random

SEED = 1000
TEST_SEED = SEED + 1
TRAIN_SIZE = 1000
TEST_SIZE = 200
COMMUTED_SIZE = 50
EQUATIONS_PER_TEXT_RECORD = 50


def _operand(rng: random.Random, max_digits: int) -> int:
    """A positive integer with 1..max_digits digits, each digit count equally likely."""
    digits = rng.randint(1, max_digits)
    return rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def _two_operand(rng: random.Random) -> tuple[list[int], list[str]]:
    op = rng.choice("+-*/")
    if op in "+-":
        return [_operand(rng, 3), _operand(rng, 3)], [op]
    if op == "*":
        return [_operand(rng, 3), _operand(rng, 2)], [op]
    divisor = rng.randint(2, 99)
    quotient = _operand(rng, 3)
    return [divisor * quotient, divisor], [op]


def _divisors(n: int) -> list[int]:
    """Divisors d of n with 2 <= d <= 99, in increasing order."""
    return [d for d in range(2, min(abs(n), 99) + 1) if n % d == 0]


def _three_operand(rng: random.Random) -> tuple[list[int], list[str]] | None:
    """Three operands, or None when a division cannot be made exact (the caller retries).

    A division's left side is the product/quotient term built so far; its right operand is
    drawn from that term's divisors, so every division is exact by construction.
    """
    ops = [rng.choice("+-*/"), rng.choice("+-*/")]
    operands = [_operand(rng, 2)]
    term = operands[0]
    for op in ops:
        if op == "/":
            choices = _divisors(term)
            if not choices:
                return None
            operand = rng.choice(choices)
            term //= operand
        else:
            operand = _operand(rng, 2)
            term = term * operand if op == "*" else operand
        operands.append(operand)
    return operands, ops


def evaluate(operands: list[int], ops: list[str]) -> int:
    """Value of operands[0] ops[0] operands[1] ... with the usual precedence, exactly.

    Products and exact quotients are folded into terms first, then terms are added.
    Raises ValueError if a division is not exact (the generator never makes one).
    """
    total, sign, term = 0, 1, operands[0]
    for op, operand in zip(ops, operands[1:], strict=True):
        if op == "*":
            term *= operand
        elif op == "/":
            if operand == 0 or term % operand:
                raise ValueError(f"inexact division {term}/{operand}")
            term //= operand
        else:
            total += sign * term
            sign, term = (1 if op == "+" else -1), operand
    return total + sign * term


def _render(operands: list[int], ops: list[str]) -> str:
    parts = [str(operands[0])]
    for op, operand in zip(ops, operands[1:], strict=True):
        parts += [op, str(operand)]
    return "".join(parts) + "="


def _equation(rng: random.Random) -> tuple[dict, list[int], list[str]]:
    while True:
        drawn = _two_operand(rng) if rng.random() < 0.7 else _three_operand(rng)
        if drawn is not None:
            operands, ops = drawn
            record = {
                "question": _render(operands, ops),
                "answer": str(evaluate(operands, ops)),
                "kind": "equation",
            }
            return record, operands, ops


def _draw(rng: random.Random, count: int, exclude: set[str]) -> list[tuple[dict, list, list]]:
    """`count` distinct equations whose questions are not in `exclude`."""
    out, seen = [], set(exclude)
    while len(out) < count:
        record, operands, ops = _equation(rng)
        if record["question"] not in seen:
            seen.add(record["question"])
            out.append((record, operands, ops))
    return out


def generate_train() -> list[dict]:
    """The 1,000 training equations, identical on every call and machine."""
    return [record for record, _, _ in _draw(random.Random(SEED), TRAIN_SIZE, set())]


def generate_test() -> list[dict]:
    """The 200 held-out equations: 150 unseen ones, then 50 commuted training equations."""
    train = _draw(random.Random(SEED), TRAIN_SIZE, set())
    train_questions = {record["question"] for record, _, _ in train}
    fresh = _draw(random.Random(TEST_SEED), TEST_SIZE - COMMUTED_SIZE, train_questions)
    taken = train_questions | {record["question"] for record, _, _ in fresh}
    commuted = []
    for record, operands, ops in train:
        if len(commuted) == COMMUTED_SIZE:
            break
        if len(ops) != 1 or ops[0] not in "+*" or operands[0] == operands[1]:
            continue
        swapped = _render(operands[::-1], ops)
        if swapped in taken:
            continue
        taken.add(swapped)
        commuted.append({"question": swapped, "answer": record["answer"], "kind": "commuted"})
    return [record for record, _, _ in fresh] + commuted


def as_text(records: list[dict], per_record: int = EQUATIONS_PER_TEXT_RECORD) -> list[dict]:
    """Equations as a text stream: `{"text": "37*4=148\\n12+7*3=33\\n..."}` records."""
    lines = [record["question"] + record["answer"] for record in records]
    return [
        {"text": "\n".join(lines[start : start + per_record])}
        for start in range(0, len(lines), per_record)
    ]
