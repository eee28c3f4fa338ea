"""Property-based tests (hypothesis): the loaders and the command line never fail in any
way but the documented one, a one-line GhostInputError (exit 2), whatever they are fed."""

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghost.cli import main
from ghost.data.records import load_data, read_records
from ghost.errors import GhostInputError

# No example database: the suite leaves nothing behind in the working tree.
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CLI = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# Records that look like ours: the known field names, with values of any type.
field_names = st.sampled_from(["question", "answer", "text", "kind", "chain", "facts", "split"])
near_records = st.dictionaries(field_names, json_values, max_size=5)
nonblank = st.text(min_size=1).filter(lambda s: s.strip())
qa_records = st.fixed_dictionaries(
    {"question": nonblank, "answer": st.text()},
    optional={
        "kind": st.text(),
        "split": st.text(),
        "chain": st.lists(st.text(), max_size=3),
        "facts": st.lists(st.text(), max_size=3),
    },
)


def load_or_refuse(path):
    """read_records' only permitted failure is GhostInputError naming the file."""
    try:
        return read_records(path)
    except GhostInputError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return None


@FAST
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".txt"]))
def test_any_bytes_load_or_are_refused_cleanly(tmp_path, data, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(data)
    records = load_or_refuse(path)
    assert records is None or (records and all(isinstance(r, dict) for r in records))


@FAST
@given(lines=st.lists(json_values | near_records, min_size=1, max_size=4))
def test_any_json_values_load_as_valid_records_or_are_refused(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(v) + "\n" for v in lines), encoding="utf-8")
    records = load_or_refuse(path)
    if records is not None:  # accepted: exactly the lines, each a proper record
        assert records == [v for v in lines]
        for r in records:
            strings = [r[k] for k in ("question", "answer", "text") if k in r]
            assert strings and all(isinstance(s, str) for s in strings)


@FAST
@given(records=st.lists(qa_records, min_size=1, max_size=5), ascii_only=st.booleans())
def test_valid_records_round_trip(tmp_path, records, ascii_only):
    path = tmp_path / "qa.jsonl"
    text = "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")
    assert read_records(path) == records
    assert load_data(str(path)).records == records


# The command line: random argument lists for `ghost train` / `ghost eval`. Every --data
# and run directory is missing, so no example ever trains; each must end in exit 2 with
# one line, never a traceback or an internal error (exit 1).
FLAG_VALUES = {
    "--preset": ["tiny", "v5", "huge", ""],
    "--steps": ["auto", "3", "0", "-1", "x", "1e3"],
    "--batch-size": ["8", "0", "-2", "x", "1.5"],
    "--seq-len": ["64", "0", "abc"],
    "--lr": ["0.01", "nan", "inf", "-1", "0", "1e-3", "lots"],
    "--recipe": ["", "nope", ",,"],
    "--precision": ["fp32", "bf16", "fp8"],
    "--max-minutes": ["1", "0", "-5", "nan"],
    "--eval-every": ["0", "5", "-1"],
    "--save-every": ["0", "5", "-1", "x"],
    "--keep-checkpoints": ["1", "0", "x"],
    "--seed": ["0", "-1", "99999999999999999999"],
    "--threads": ["1", "-1", "x", "100000"],
    "--out": ["/nonexistent/run", "", "."],
    "--config": ["/nonexistent.toml"],
    "--data": ["/nonexistent/x.jsonl", "", "nosuchset", "facts200:nosplit", "/nonexistent/y.txt"],
}
odd_text = st.text(alphabet=string.printable + "\x00é\u2028", max_size=12)
flag_pairs = st.sampled_from(sorted(FLAG_VALUES)).flatmap(
    lambda flag: st.tuples(st.just(flag), st.sampled_from(FLAG_VALUES[flag]) | odd_text)
)
train_argv = st.lists(
    flag_pairs | st.tuples(st.sampled_from(["--resume", "--quiet"])) | st.tuples(odd_text),
    max_size=6,
)


def assert_clean_refusal(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, code, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)


@CLI
@given(parts=train_argv)
def test_train_arguments_never_crash(capsys, parts):
    argv = ["train"] + [token for part in parts for token in part]
    if "--data" not in argv:
        argv += ["--data", "/nonexistent/x.jsonl"]
    elif argv[argv.index("--data") + 1 :][:1] in ([], ["--data"]):
        argv += ["/nonexistent/x.jsonl"]
    for token in ("-h", "--help", "--version"):
        if token in argv:
            return
    assert_clean_refusal(argv, capsys)


@CLI
@given(
    run_dir=odd_text,
    data=st.sampled_from(FLAG_VALUES["--data"]) | odd_text,
    extra=st.lists(
        st.sampled_from(["--json", "--predictions", "--threads", "x", "-1", "100000", "--data"]),
        max_size=3,
    ),
)
def test_eval_arguments_never_crash(capsys, run_dir, data, extra):
    argv = ["eval", "/nonexistent/" + run_dir, "--data", data, *extra]
    if any(t in ("-h", "--help") for t in argv):
        return
    assert_clean_refusal(argv, capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "a\x00b.jsonl"],
        ["train", "--data", "x" * 5000 + ".jsonl"],
        ["train", "--data", "x" * 5000],
        ["eval", "r\x00un", "--data", "x.jsonl"],
        ["eval", "r" * 5000, "--data", "x.jsonl"],
    ],
)
def test_paths_the_os_rejects_are_bad_input(capsys, argv):
    assert_clean_refusal(argv, capsys)
