"""The built-in datasets tell the truth: chains resolve, sums add up, commands are valid."""

import ast
import shlex
import shutil
import subprocess
from fractions import Fraction

import pytest

from ghost.data import builtin, math1k


def _load(spec):
    return builtin.load_builtin(spec)


# Facts-200 --------------------------------------------------------------------------------


def _trained_facts():
    return {r["question"]: r for r in _load("facts200:train") if r["kind"] == "fact"}


@pytest.mark.parametrize("split", ["train", "test_hard", "novel"])
def test_every_multi_hop_chain_resolves_through_trained_facts(split):
    facts = _trained_facts()
    records = [r for r in _load(f"facts200:{split}") if r["kind"] != "fact"]
    assert records
    for record in records:
        chain = record["chain"]
        assert 2 <= len(chain) <= 3, record["question"]
        assert record["kind"] in ("2hop", "3hop", "novel")
        if record["kind"] != "novel":
            assert record["kind"] == f"{len(chain)}hop"
        hops = [facts[hop] for hop in chain]  # KeyError: a hop that is not a trained fact
        assert record["answer"] == hops[-1]["answer"]
        assert record["facts"] == [hop["facts"][0] for hop in hops]
        # Each hop's answer is the entity the next hop asks about.
        for before, after in zip(hops, hops[1:], strict=False):
            assert before["answer"].lower() in after["question"].lower(), record["question"]


def test_novel_combinations_are_never_trained():
    trained_chains = {tuple(r["chain"]) for r in _load("facts200:train") if "chain" in r}
    novel = _load("facts200:novel")
    assert all(r["kind"] == "novel" for r in novel)
    assert not [r["question"] for r in novel if tuple(r["chain"]) in trained_chains]
    assert {len(r["chain"]) for r in novel} == {2, 3}


def test_paraphrases_ask_a_trained_fact_in_new_words():
    facts = _trained_facts()
    paraphrases = _load("facts200:paraphrase")
    for record in paraphrases:
        (original,) = record["chain"]
        assert original in facts and record["question"] != original
        assert record["answer"] == facts[original]["answer"]
        assert record["facts"] == facts[original]["facts"]
    assert len({r["chain"][0] for r in paraphrases}) >= 100


def test_fact_answers_are_short():
    for record in _load("facts200:train"):
        assert len(record["answer"].split()) <= 5, record


# Math-1K ----------------------------------------------------------------------------------


def _evaluate(node):
    """Value of an integer + - * / expression tree; every division must be exact."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Fraction(node.value)
    assert isinstance(node, ast.BinOp), ast.dump(node)
    left, right = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Add):
        return left + right
    if isinstance(node.op, ast.Sub):
        return left - right
    if isinstance(node.op, ast.Mult):
        return left * right
    assert isinstance(node.op, ast.Div) and right != 0
    assert (left / right).denominator == 1, "inexact division"
    return left / right


@pytest.mark.parametrize("split", ["train", "test"])
def test_math_answers_recomputed(split):
    for record in _load(f"math1k:{split}"):
        question = record["question"]
        assert question.endswith("=") and set(question) <= set("0123456789+-*/=")
        value = _evaluate(ast.parse(question[:-1], mode="eval").body)
        assert str(int(value)) == record["answer"], question


def test_math_shipped_jsonl_equals_the_generator():
    assert _load("math1k:train") == math1k.generate_train()
    assert _load("math1k:test") == math1k.generate_test()


def test_math_held_out_is_not_trained_and_commuted_pairs_are_novel():
    train = {r["question"]: r["answer"] for r in _load("math1k:train")}
    test = _load("math1k:test")
    assert not {r["question"] for r in test} & set(train)
    for record in (r for r in test if r["kind"] == "commuted"):
        for op in "+*":
            a, found, b = record["question"][:-1].partition(op)
            if found:
                assert train[f"{b}{op}{a}="] == record["answer"]


def test_math_covers_every_operator_and_both_lengths():
    questions = [r["question"] for r in _load("math1k:train")]
    assert all(any(op in q for q in questions) for op in "+-*/")
    operand_counts = {sum(q.count(op) for op in "+-*/") + 1 for q in questions}
    assert operand_counts == {2, 3}
    assert {len(q.split("+")[0]) for q in questions if q.count("+") == 1} >= {1, 2, 3}


def test_math_text_stream_holds_every_equation_once():
    lines = [line for r in _load("math1k:text") for line in r["text"].split("\n")]
    assert lines == [r["question"] + r["answer"] for r in _load("math1k:train")]


# Bash-100 ---------------------------------------------------------------------------------

# Well-known tools that a minimal machine (a slim container) may not have installed.
PROCPS = {"ps", "pgrep", "pkill", "free", "uptime"}
ALLOWED_MISSING = PROCPS | set(
    "git curl wget ssh scp rsync zip unzip xz bzip2 zstd jq make file lsof dig host ping ip ss"
    " tree".split()
)
# Wrappers run the program named after their own options (numbers, -flags, NAME=value).
WRAPPERS = {"nohup", "timeout", "nice", "xargs", "env", "exec", "time", "command"}
SEPARATORS = {"|", "||", "&&", ";", "&", "|&", ";;", "(", ")"}
REDIRECTIONS = {">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", ">|", "&>>"}


def _shell_words(kind):
    out = subprocess.run(["bash", "-c", f"compgen -{kind}"], capture_output=True, text=True)
    return set(out.stdout.split())


def _substitutions(command):
    """`command` with each $(...) replaced by a word, and the inner commands."""
    inner, out, i = [], [], 0
    while i < len(command):
        if command.startswith("$(", i):
            depth, j = 1, i + 2
            while depth:
                depth += {"(": 1, ")": -1}.get(command[j], 0)
                j += 1
            inner.append(command[i + 2 : j - 1])
            out.append("SUBST")
            i = j
        else:
            out.append(command[i])
            i += 1
    return "".join(out), inner


def programs_invoked(command, builtins, keywords):
    """Every external program a command line runs (shell builtins and keywords left out)."""
    command, inner = _substitutions(command)
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = [p for sub in inner for p in programs_invoked(sub, builtins, keywords)]
    at_command, skip_next, skip_to_separator, in_wrapper = True, False, False, False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in SEPARATORS:
            at_command, skip_to_separator, in_wrapper = True, False, False
        elif skip_to_separator:
            continue
        elif token in REDIRECTIONS:
            skip_next = True
        elif token in ("-exec", "-execdir", "-ok"):
            at_command = True
        elif not at_command:
            continue
        elif in_wrapper and (token.startswith("-") or token.isdigit() or "=" in token):
            continue
        elif "=" in token.split("/")[0] and token.split("=")[0].isidentifier():
            continue  # NAME=value before the program
        elif token in ("for", "case", "select"):
            skip_to_separator = True
        elif token in keywords:
            continue
        else:
            in_wrapper = token in WRAPPERS
            at_command = in_wrapper
            if token not in builtins and "/" not in token:
                found.append(token)
    return found


def test_program_parser_on_hand_made_lines():
    builtins, keywords = _shell_words("b"), _shell_words("k")

    def run(line):
        return programs_invoked(line, builtins, keywords)

    assert run("sort a | uniq -c > out.txt 2>&1 && echo done") == ["sort", "uniq"]
    assert run("LC_ALL=C nice -n 19 timeout 5 make -j2") == ["nice", "timeout", "make"]
    assert run("find . -name '*.o' -exec rm {} + ; cd x") == ["find", "rm"]
    assert run('for f in *.txt; do gzip "$f"; done') == ["gzip"]
    assert run("echo $(date +%s) | ./local.sh") == ["date"]


def _bash100_commands():
    return sorted({r["answer"] for r in _load("bash100:train") + _load("bash100:paraphrase")})


def test_bash_commands_parse():
    for command in _bash100_commands():
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, f"{command}: {result.stderr}"


def test_bash_programs_are_installed_or_well_known():
    builtins, keywords = _shell_words("b"), _shell_words("k")
    unknown = {}
    for command in _bash100_commands():
        programs = programs_invoked(command, builtins, keywords)
        for program in programs:
            if shutil.which(program) is None and program not in ALLOWED_MISSING:
                unknown[program] = command
    assert not unknown, unknown


def test_bash_paraphrases_reword_a_trained_description():
    trained = {r["question"]: r for r in _load("bash100:train")}
    for record in _load("bash100:paraphrase"):
        (original,) = record["chain"]
        assert trained[original]["answer"] == record["answer"]
        assert trained[original]["topic"] == record["topic"]
        assert record["question"] != original


def test_bash_commands_are_one_line():
    for command in _bash100_commands():
        assert "\n" not in command and command == command.strip()
