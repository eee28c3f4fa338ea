"""Verifiers: checks of a candidate's answer where truth can be computed.

A verifier is `(question, answer) -> (verdict, reason)`: True (checked, right), False
(checked, wrong: the candidate is dropped) or None (not its domain, or cannot check).
`default_verifiers(spec, graph)` picks them for a data spec; `filters.VerifierFilter` runs them.

- math: evaluates a math1k-style equation with `ghost.data.math1k.evaluate` (the dataset's
  own arithmetic: precedence, left to right, exact division only);
- bash: `bash -n` for syntax, and every program a command runs exists (`command_programs`
  finds them through pipes, lists, redirections, substitutions and wrappers);
- facts: the answer agrees with the seed facts' graph where the question parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from ghost.distill.similarity import normalize

#
# A verifier is `(question, answer) -> (verdict, reason)`: True (checked, right), False
# (checked, wrong: the candidate is dropped) or None (not its domain, or cannot check).

_EQUATION = re.compile(r"\d+(?:\s*[-+*/]\s*\d+)*\s*=")


def math_verifier(question: str, answer: str) -> tuple[bool | None, str]:
    """Checks a math1k-style "A op B op C=" with math1k's own arithmetic.

    `ghost.data.math1k.evaluate` is the definition: usual precedence, left association,
    and division only where exact (math1k never divides inexactly, so such a question has no
    right answer). Spaces may surround operators; the answer must be the integer exactly as
    math1k writes it ("-15", not "-15.0"). Anything else (a prefixed "Please compute ...") is
    not judged.
    """
    from ghost.data.math1k import evaluate

    if not _EQUATION.fullmatch(question.strip()):
        return None, "not an equation"
    compact = "".join(question.split())
    parts = re.split(r"([-+*/])", compact[:-1])
    try:
        value = evaluate([int(p) for p in parts[0::2]], parts[1::2])
    except ValueError as error:
        return False, f"no exact value: {error}"
    if answer.strip() != str(value):
        return False, f"wrong: {compact}{value}, not {answer.strip()!r}"
    return True, "right"


math_verifier.name = "math"


# Bash 5.2's `compgen -b` and `compgen -k`: fixed by bash, so written down, not asked for.
_BASH_BUILTINS = frozenset(
    ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue "
    "declare dirs disown echo enable eval exec exit export false fc fg getopts hash help "
    "history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly "
    "return set shift shopt source suspend test times trap true type typeset ulimit umask "
    "unalias unset wait".split()
)
_STARTS_COMMAND = frozenset("if then else elif while until do ! { time coproc".split())
_ENDS_COMMAND = frozenset("fi done esac } ]]".split())
_OPERATORS = re.compile(r"\|\||&&|;;|\|&|&>>?|>>|<<<?|>&|<&|>\||[|&;()<>\n]")
# Commands that run another command; their options that take a value.
_WRAPPERS = {
    "nohup": set(),
    "nice": {"-n"},
    "timeout": {"-s", "-k"},
    "env": {"-u", "-C"},
    "sudo": {"-u", "-g", "-C"},
    "exec": {"-a"},
    "xargs": {"-I", "-n", "-P", "-d", "-L", "-s", "-E", "-a"},
    "stdbuf": set(),
    "ionice": {"-c", "-n"},
    "watch": {"-n"},
}
_FIND_EXEC = frozenset(["-exec", "-execdir", "-ok", "-okdir"])
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_DURATION = re.compile(r"\d+(\.\d+)?[smhd]?")
_SUBSTITUTED = "__ghost_substitution__"


def _lift_substitutions(command: str) -> tuple[str, list[str]]:
    """`command` with each $(...) / `...` outside single quotes replaced by a placeholder
    word, and the inner commands (checked separately). $((...)) is arithmetic, not a command."""
    out, inner, i, quote = [], [], 0, None
    while i < len(command):
        ch = command[i]
        if ch == "\\" and quote != "'":
            out.append(command[i : i + 2])
            i += 2
            continue
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif quote != "'" and (command.startswith("$(", i) or ch == "`"):
            arithmetic = command.startswith("$((", i)
            if ch == "`":
                end = command.find("`", i + 1)
                end = len(command) if end < 0 else end
                body, i = command[i + 1 : end], end + 1
            else:
                depth, j = 0, i + 1
                while j < len(command):
                    depth += {"(": 1, ")": -1}.get(command[j], 0)
                    if depth == 0:
                        break
                    j += 1
                body, i = command[i + 2 : j], j + 1
            if not arithmetic:
                inner.append(body)
            out.append(_SUBSTITUTED)
            continue
        out.append(ch)
        i += 1
    return "".join(out), inner


class _Operator(str):
    """An unquoted shell operator ("|", "&&", ">", ...), unlike a word that only looks like one
    (the quoted '|' of `grep '|' f`)."""


def _shell_words(command: str) -> list[str]:
    """Split a command like the shell does into words (quotes and escapes resolved) and
    `_Operator`s. Raises ValueError on an unclosed quote."""
    words: list[str] = []
    word, in_word, quote, i = [], False, None, 0
    while i < len(command):
        ch = command[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                word.append(ch)
        elif ch == "\\" and i + 1 < len(command):
            word.append(command[i + 1])
            in_word, i = True, i + 2
            continue
        elif quote == '"':
            if ch == '"':
                quote = None
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, in_word = ch, True
        elif ch in " \t\r" or ch in "|&;()<>\n":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            if ch not in " \t\r":
                op = _OPERATORS.match(command, i).group()
                words.append(_Operator(op))
                i += len(op)
                continue
        else:
            word.append(ch)
            in_word = True
        i += 1
    if quote:
        raise ValueError(f"no closing quotation ({quote})")
    if in_word:
        words.append("".join(word))
    return words


def _is_redirection(token: str) -> bool:
    return isinstance(token, _Operator) and ("<" in token or ">" in token)


def command_programs(command: str) -> list[str]:
    """The programs a one-line shell command runs, in order: the first word of each simple
    command (after pipes, &&, ;, subshells and $(...)), of wrapped commands (nohup, nice,
    timeout, xargs, ...) and of find's -exec. Assignments, redirections and their targets
    are skipped. Raises ValueError when the quoting does not parse."""
    lifted, inner = _lift_substitutions(command)
    words = _shell_words(lifted)
    programs: list[str] = []
    expect, wrapper, skip_value, in_exec = True, None, False, False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if in_exec and word in (";", "+"):  # a quoted or escaped ";" too
            in_exec = False  # the end of find's -exec (written \; or +)
            continue
        if isinstance(word, _Operator) and not _is_redirection(word):
            expect, wrapper = word != ")", None
            continue
        if _is_redirection(word):
            if i < len(words) and not isinstance(words[i], _Operator):
                i += 1  # the redirection's target
            continue
        if expect and word.isdigit() and i < len(words) and _is_redirection(words[i]):
            continue  # the file descriptor of "2>file"
        if wrapper is not None:
            if skip_value:
                skip_value = False
                continue
            if (
                word.startswith("-")
                or _ASSIGNMENT.match(word)
                or (wrapper == "timeout" and _DURATION.fullmatch(word))
            ):
                skip_value = word in _WRAPPERS[wrapper]
                continue
            wrapper, expect = None, True
        if expect:
            if word.startswith("#"):
                while i < len(words) and not (isinstance(words[i], _Operator) and words[i] == "\n"):
                    i += 1
                continue
            if _ASSIGNMENT.match(word) or word in _STARTS_COMMAND:
                continue
            if word in ("for", "select", "case", "function", "[["):
                stop = {
                    "for": ("do",),
                    "select": ("do",),
                    "case": ("esac",),
                    "function": ("{",),
                    "[[": ("]]",),
                }[word]
                while i < len(words) and words[i] not in stop:
                    i += 1
                continue
            expect = False
            if word in _ENDS_COMMAND:
                continue
            programs.append(word)
            if word in _WRAPPERS:
                wrapper = word
        elif word in _FIND_EXEC and programs and programs[-1] == "find" and i < len(words):
            programs.append(words[i])
            in_exec, i = True, i + 1
    for body in inner:
        programs += command_programs(body)
    return programs


@lru_cache(maxsize=4096)
def _bash_syntax_error(command: str) -> str | None:
    """bash -n's complaint about `command`, "" if it parses, None if bash cannot be run."""
    try:
        done = subprocess.run(
            ["bash", "-n", "-c", command], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "" if done.returncode == 0 else (done.stderr.strip() or "bash -n failed")


class BashVerifier:
    """A shell answer must parse (`bash -n -c`, 5 s) and run only programs that exist here
    (`shutil.which`), bash builtins or keywords, or paths/variables (./job.sh, $EDITOR, which
    cannot be judged). `extra_programs` are accepted too: the runner may pass the programs of
    its trusted seed answers, so a seed using a program this machine lacks is not dropped."""

    name = "bash"

    def __init__(self, extra_programs: Iterable[str] = ()) -> None:
        self.extra_programs = frozenset(extra_programs)

    def _known(self, program: str) -> bool:
        return (
            program in _BASH_BUILTINS
            or program in self.extra_programs
            or "/" in program
            or program.startswith("$")
            or program == _SUBSTITUTED
            or shutil.which(program) is not None
        )

    def __call__(self, question: str, answer: str) -> tuple[bool | None, str]:
        command = answer.strip()
        if not command:
            return False, "empty command"
        error = _bash_syntax_error(command)
        if error:
            return False, f"syntax: {error}"
        try:
            programs = command_programs(command)
        except ValueError as why:
            return False, f"syntax: {why}"
        for program in programs:
            if not self._known(program):
                return False, f"program not found: {program}"
        if error is None:
            return None, "bash not found: syntax not checked"
        return True, "parses; programs exist"


bash_verifier = BashVerifier()


def fact_verifier(graph) -> Callable[[str, str], tuple[bool | None, str]]:
    """A verifier asking the fact graph for the answer (`graph.lookup_question(question)`, or
    `FactGraph.answer_for`; None when it cannot parse the question) and comparing normalised
    answers."""
    lookup = getattr(graph, "lookup_question", None) or graph.answer_for

    def verify(question: str, answer: str) -> tuple[bool | None, str]:
        known = lookup(question)
        if known is None:
            return None, "not a question the graph parses"
        if normalize(answer) != normalize(known):
            return False, f"contradicts graph: graph says {known!r}, answer {answer!r}"
        return True, "agrees with graph"

    verify.name = "fact"
    return verify


def default_verifiers(spec: str, graph=None) -> list:
    """Verifiers for a data spec: bash100 -> bash, math1k -> math, facts200 -> the graph's;
    a user file gets math and (with a graph) the graph's, which judge only what they parse.

    bash100's verifier accepts the programs bash100's own training answers use even where this
    machine lacks them (ping, rsync, dig on some): the seeds are trusted, and a reworded seed
    question must not be dropped for the machine's sake.
    """
    name = spec.partition(":")[0]
    if name == "bash100" and not Path(spec).suffix:
        from ghost.data.builtin import load_builtin

        seeds = load_builtin("bash100:train")
        return [BashVerifier(p for r in seeds for p in command_programs(r["answer"]))]
    if name == "math1k":
        return [math_verifier]
    facts = [fact_verifier(graph)] if graph is not None else []
    return facts if name == "facts200" else [math_verifier, *facts]
