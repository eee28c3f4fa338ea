import json
import subprocess
import sys

import pytest

from ghost import runtime
from ghost.cli import build_parser, main

SUBCOMMANDS = ["info", "train", "eval", "generate", "ask", "bench", "continual", "data"]


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ghost", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_lists_every_subcommand_and_each_has_help(capsys):
    help_text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in help_text
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0


@pytest.mark.parametrize("name", SUBCOMMANDS[:-1])
def test_every_option_has_a_help_line(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[name]
    for action in sub._actions:
        assert action.help, f"ghost {name} {action.option_strings or action.dest} has no help"
        if action.default not in (None, False) and action.dest != "help":
            assert "default" in action.help, f"ghost {name} {action.dest}: say its default"


def test_info_prints_the_parameter_count(capsys):
    assert main(["info", "--preset", "v5-fast"]) == 0
    out = capsys.readouterr().out
    assert "6,658,838" in out and "layer 3: mamba + sparse attention" in out
    assert "context copy" not in out
    precision = "bf16" if runtime.native_bf16() else "fp32"  # what `ghost train` will use
    assert f"precision auto: {precision} (" in out and "allocator: " in out
    assert main(["info", "--context-copy"]) == 0
    out = capsys.readouterr().out
    assert "6,692,127" in out and "context copy head" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--data", "nowhere.jsonl"], "nowhere.jsonl: file not found"),
        (["train", "--data", "x.jsonl", "--batch-size", "0"], "--batch-size"),
        (["train", "--data", "x.jsonl", "--steps", "many"], "--steps"),
        (["eval", "no_such_run", "--data", "x.jsonl"], "no_such_run: run directory not found"),
        (["frobnicate"], "invalid choice"),
        (["train", "--data", "x.jsonl", "--bogus"], "ghost train: unrecognized arguments: --bogus"),
        (["data", "list", "--bogus"], "ghost data list: unrecognized arguments"),
        (["train", "--data", "x.jsonl", "--init-from", "r", "--context-copy"], "--context-copy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_context_copy_flag_gives_the_model_the_head(tmp_path, qa_file, capsys):
    args = ["train", "--data", str(qa_file), "--preset", "tiny", "--steps", "2", "--quiet"]
    assert main([*args, "--context-copy", "--out", str(tmp_path / "on")]) == 0
    assert main([*args, "--out", str(tmp_path / "off")]) == 0
    on = json.loads((tmp_path / "on" / "config.json").read_text())
    off = json.loads((tmp_path / "off" / "config.json").read_text())
    assert on["model"]["context_copy"] is True and off["model"]["context_copy"] is False


def test_train_eval_ask_generate_end_to_end(tmp_path, qa_file):
    run_dir = tmp_path / "run"
    done = run(
        "train",
        "--data",
        str(qa_file),
        "--preset",
        "tiny",
        "--out",
        str(run_dir),
        "--lr",
        "0.01",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "training exact match reached 100%" in done.stdout
    out_json, preds = tmp_path / "eval.json", tmp_path / "preds.jsonl"
    done = run(
        "eval",
        str(run_dir),
        "--data",
        str(qa_file),
        "--json",
        str(out_json),
        "--predictions",
        str(preds),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(out_json.read_text())
    assert (
        summary["exact_match"] == 1.0 and summary["n"] == 8 and summary["by_kind"]["fact"]["n"] == 8
    )
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert set(lines[0]) == {"question", "reference", "prediction", "correct"}
    done = run("ask", str(run_dir), "What is the capital of Peru?")
    assert done.stdout.strip() == "Lima", done.stderr
    # No question: one answer per line of standard input; --confidence adds a probability.
    done = subprocess.run(
        [sys.executable, "-m", "ghost", "ask", str(run_dir), "--confidence"],
        input="What is the capital of Peru?\n\nWhat is the capital of Japan?\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    answers = [line.split("\t") for line in done.stdout.splitlines()]
    assert [a for a, _ in answers] == ["Lima", "Tokyo"]
    assert all(0.5 < float(c) <= 1.0 for _, c in answers)  # recalled, not guessed
    done = run(
        "generate",
        str(run_dir),
        "Q: What",
        "--max-bytes",
        "5",
        "--temperature",
        "0.8",
        "--seed",
        "1",
    )
    assert done.returncode == 0 and len(done.stdout) > 0
    # Greedy generation after a trained question gives the answer and stops at its end marker.
    done = run(
        "generate", str(run_dir), "Q: What is the capital of Peru?\nA: ", "--max-bytes", "20"
    )
    assert done.returncode == 0 and done.stdout == "Lima\n", (done.stdout, done.stderr)


def test_a_closed_pipe_ends_quietly():
    """`ghost info | head -1` when the reader has gone: no traceback, no error line."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ghost writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ghost", "info", "--preset", "v5"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GHOST_ALLOCATOR": "system"},
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141
