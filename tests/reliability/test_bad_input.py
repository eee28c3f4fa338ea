"""Bad input: each case exits 2 with one stderr line naming the problem and where, no
traceback, and leaves an existing run directory byte-identical (a fresh --out uncreated)."""

import shutil
import tracemalloc

import pytest
from ghost_process import snapshot
from tiny_runs import tiny_config

from ghost.cli import main
from ghost.data.records import MAX_LINE_BYTES, read_records
from ghost.errors import GhostInputError
from ghost.train.checkpoint import latest_checkpoint
from ghost.train.loop import train


@pytest.fixture(scope="module")
def trained_run(qa_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    train(tiny_config(qa_path, out, steps=2))
    return out


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# Each case: (files in tmp, run, qa) -> (argv, text the error line must contain).
# "RUN" in argv stands for a copy of a trained run that the command must leave untouched.
CASES = {
    "malformed JSONL": lambda t, r, q: (
        [
            "train",
            "--data",
            write(t / "bad.jsonl", b'{"text": "ok"}\n{"text": \n'),
            "--out",
            r,
            "--resume",
        ],
        "bad.jsonl:2: malformed JSON",
    ),
    "empty file": lambda t, r, q: (
        ["train", "--data", write(t / "empty.jsonl", b""), "--out", r, "--resume"],
        "empty.jsonl: no records",
    ),
    "blank lines only": lambda t, r, q: (
        ["train", "--data", write(t / "blank.jsonl", b"\n  \n\n")],
        "blank.jsonl: no records",
    ),
    "non-UTF-8 JSONL": lambda t, r, q: (
        [
            "train",
            "--data",
            write(t / "latin1.jsonl", b'{"text": "caf\xe9"}\n'),
            "--out",
            r,
            "--resume",
        ],
        "latin1.jsonl:1: not valid UTF-8",
    ),
    "non-UTF-8 text file": lambda t, r, q: (
        ["train", "--data", write(t / "latin1.txt", b"caf\xe9\n")],
        "latin1.txt: not valid UTF-8",
    ),
    "wrong field type": lambda t, r, q: (
        [
            "train",
            "--data",
            write(t / "types.jsonl", b'{"question": 7, "answer": "x"}\n'),
            "--out",
            r,
            "--resume",
        ],
        "types.jsonl:1: field 'question' must be a string",
    ),
    "list where an object belongs": lambda t, r, q: (
        ["train", "--data", write(t / "list.jsonl", b'["question", "answer"]\n')],
        "list.jsonl:1: expected a JSON object",
    ),
    "end-of-answer marker in data": lambda t, r, q: (
        ["train", "--data", write(t / "etx.jsonl", b'{"question": "q", "answer": "a\\u0003"}\n')],
        "contains the end-of-answer marker",
    ),
    "data is a directory": lambda t, r, q: (["train", "--data", str(t)], "is a directory"),
    "truncated weights (eval)": lambda t, r, q: (
        [truncate(r / "model.safetensors") and "eval", r, "--data", q],
        "model.safetensors: corrupt",
    ),
    "garbage weights (eval)": lambda t, r, q: (
        [
            write(r / "model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage") and "eval",
            r,
            "--data",
            q,
        ],
        "model.safetensors: corrupt",
    ),
    "truncated checkpoint weights (resume)": lambda t, r, q: (
        [
            truncate(latest_checkpoint(r) / "model.safetensors") and "train",
            "--data",
            q,
            "--out",
            r,
            "--resume",
        ],
        "model.safetensors: corrupt",
    ),
    "truncated trainer state (resume)": lambda t, r, q: (
        [
            truncate(latest_checkpoint(r) / "trainer_state.pt") and "train",
            "--data",
            q,
            "--out",
            r,
            "--resume",
        ],
        "trainer_state.pt: corrupt",
    ),
    "config.json not JSON": lambda t, r, q: (
        [write(r / "config.json", b"{nope") and "eval", r, "--data", q],
        "config.json: not valid JSON",
    ),
    "missing run directory (eval)": lambda t, r, q: (
        ["eval", str(t / "nowhere"), "--data", q],
        "nowhere: run directory not found",
    ),
    "a file where a run directory belongs": lambda t, r, q: (
        ["eval", q, "--data", q],
        "capitals.jsonl: is a file, expected a run directory",
    ),
    "missing run directory (resume)": lambda t, r, q: (
        ["train", "--data", q, "--out", str(t / "nowhere"), "--resume"],
        "nowhere: run directory not found",
    ),
    "existing run without --resume": lambda t, r, q: (
        ["train", "--data", q, "--out", r],
        "already holds a run",
    ),
    "--out is a file": lambda t, r, q: (
        ["train", "--data", q, "--out", q],
        "is a file, expected a run directory",
    ),
    "--batch-size 0": lambda t, r, q: (["train", "--data", q, "--batch-size", "0"], "--batch-size"),
    "--steps -3": lambda t, r, q: (["train", "--data", q, "--steps", "-3"], "--steps"),
    "--steps many": lambda t, r, q: (["train", "--data", q, "--steps", "many"], "--steps"),
    "--lr nan": lambda t, r, q: (["train", "--data", q, "--lr", "nan"], "--lr"),
    "--lr -1": lambda t, r, q: (
        ["train", "--data", q, "--lr", "-1", "--out", r, "--resume"],
        "--lr (lr in a config file) must be positive",
    ),
    "--threads -1": lambda t, r, q: (["train", "--data", q, "--threads", "-1"], "--threads"),
    "--save-every x": lambda t, r, q: (["train", "--data", q, "--save-every", "x"], "--save-every"),
    "--keep-checkpoints 0": lambda t, r, q: (
        ["train", "--data", q, "--keep-checkpoints", "0"],
        "--keep-checkpoints",
    ),
    "--precision fp8": lambda t, r, q: (
        ["train", "--data", q, "--precision", "fp8"],
        "--precision",
    ),
    "--memory-stage-own-rows 1.5": lambda t, r, q: (
        ["train", "--data", q, "--memory-stage-own-rows", "1.5"],
        "--memory-stage-own-rows (memory_stage_own_rows in a config file) must be in [0, 1]",
    ),
    "--preset huge": lambda t, r, q: (["train", "--data", q, "--preset", "huge"], "--preset"),
    "unknown flag": lambda t, r, q: (["train", "--data", q, "--frobnicate"], "--frobnicate"),
    "config value of the wrong type": lambda t, r, q: (
        ["train", "--config", write(t / "c.toml", b'batch_size = "eight"\n'), "--data", q],
        "c.toml",
    ),
    "config not TOML": lambda t, r, q: (
        ["train", "--config", write(t / "c.toml", b"batch_size = = 8\n"), "--data", q],
        "c.toml: cannot parse config",
    ),
    "unknown config setting": lambda t, r, q: (
        ["train", "--config", write(t / "c.toml", b"warp_speed = 9\n"), "--data", q],
        "unknown training settings: warp_speed",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case, tmp_path, trained_run, qa_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    fresh = tmp_path / "fresh"
    argv, needle = CASES[case](tmp_path, run, str(qa_path))
    argv = [str(a) for a in argv]
    if "--out" not in argv and argv[0] == "train":
        argv += ["--out", str(fresh)]
    before = snapshot(run)

    assert (
        main(
            argv
            + (
                ["--threads", "1", "--quiet"]
                if argv[0] == "train" and "--threads" not in argv
                else []
            )
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("ghost: error: ") and needle in err, err
    assert snapshot(run) == before
    assert not fresh.exists()


def test_a_100_mb_line_is_refused_after_reading_at_most_16_mib(tmp_path, capsys):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as f:  # written in chunks: the test itself stays small
        f.write(b'{"text": "')
        for _ in range(100):
            f.write(b"a" * 1_000_000)
        f.write(b'"}\n')
    tracemalloc.start()
    with pytest.raises(GhostInputError, match=r"huge.jsonl:1: line longer than"):
        read_records(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * MAX_LINE_BYTES + 1_000_000

    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "huge.jsonl:1: line longer than" in err
    assert not (tmp_path / "run").exists()
