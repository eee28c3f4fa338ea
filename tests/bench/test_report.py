import math

import pytest

from ghost.bench import report
from ghost.bench.report import write_report
from ghost.bench.stats import summarize_test


def fake_run(arm, seed, speed, reaches=True):
    """Ten checks of a loss falling from 3.0 towards 1.0 (or stalling at 2.0), at `speed`
    times the baseline's rate, with exact match rising alongside."""
    floor = 1.0 if reaches else 2.0
    curve = []
    for i in range(1, 11):
        seconds = i * 5.0 * (1 + 0.03 * seed) / speed
        value = floor + 2.0 * math.exp(-i / 3)
        match = min(1.0, i / 8)
        curve.append(
            {"step": i * 10, "train_seconds": seconds, "val_loss": value, "val_exact_match": match}
        )
    final = {
        "val_loss": curve[-1]["val_loss"],
        "peak_rss_mib": 400.0 + 10 * seed + (50 if arm == "skip" else 0),
        "train_seconds": curve[-1]["train_seconds"],
        "steps": 100,
        "heldout": {"facts:test": {"exact_match": 0.5 + 0.1 * seed, "n": 20}},
    }
    return {"arm": arm, "seed": seed, "curve": curve, "final": final}


def fake_results(censored_seed=None):
    runs = [fake_run("baseline", s, 1.0) for s in range(3)]
    runs += [fake_run("skip", s, 1.3, reaches=s != censored_seed) for s in range(3)]
    test = {
        "name": "Test 1: compression",
        "question": "Does skipping confident bytes reach the loss sooner?",
        "data": "facts200",
        "target": {"metric": "val_loss", "value": 1.5, "higher_is_better": False},
        "arms": ["baseline", "skip"],
        "runs": runs,
    }
    return {
        "title": "Ghost bench | smoke",
        "command": "ghost bench --quick",
        "machine": {
            "cpu": "Test CPU",
            "cpu_flags": ["avx2", "fma"],
            "threads": 2,
            "allocator": "glibc",
            "torch": "2.13.0",
            "commit": "abc123",
        },  # fmt: skip
        "method": ["Each arm runs over the same three seeds, paired by seed."],
        "tests": [test],
        "tables": [{"title": "Extra", "columns": ["a", "b"], "rows": [["1", "2"]], "note": "n"}],
    }


def markdown_table_after(text: str, heading: str) -> list[list[str]]:
    """The rows (header first, separator dropped) of the first table after a heading."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split(" | ")])
    assert set(table[1]) == {"---"} and len(table[1]) == len(table[0])
    return [table[0], *table[2:]]


def test_write_report_makes_markdown_html_and_plots(tmp_path):
    written = write_report(fake_results(), tmp_path)
    assert written["markdown"] == tmp_path / "report.md" and written["html"].exists()
    plots = {name for name in written if name not in ("markdown", "html")}
    kinds = {"loss", "accuracy", "memory", "speedup"}
    assert plots == {f"test-1-compression-{kind}" for kind in kinds}
    for name in plots:
        assert written[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page = written["html"].read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "<table>" in page and "Ghost bench | smoke" in page

    text = written["markdown"].read_text()
    for name in plots:
        assert f"({written[name].name})" in text
    header, *rows = markdown_table_after(text, "### Speed-up to target")
    assert [row[0] for row in rows] == ["baseline", "skip"]
    assert all(len(row) == len(header) for row in rows)
    assert rows[1][header.index("speed-up")] == "1.30x"
    assert rows[1][header.index("verdict")] == "USE"
    assert "avx2 fma" in text and "Each arm runs over the same three seeds" in text


def test_summarize_test_marks_censored_runs():
    summary = summarize_test(fake_results(censored_seed=1)["tests"][0])
    skip = summary["skip"]
    assert [t["censored"] for t in skip["time_to_target"]] == [False, True, False]
    assert skip["censored"] == 1
    assert skip["speedup"]["bounds"] == ["exact", "at_most", "exact"]
    assert skip["speedup"]["censored_pairs"] == 1


def test_the_report_shows_censored_pairs(tmp_path):
    text = write_report(fake_results(censored_seed=1), tmp_path)["markdown"].read_text()
    header, *rows = markdown_table_after(text, "### Per seed")
    censored = [row for row in rows if row[0] == "skip" and row[1] == "1"]
    assert len(censored) == 1
    assert "(censored)" in censored[0][2] and censored[0][header.index("bound")] == "at_most"
    header, *rows = markdown_table_after(text, "### Speed-up to target")
    assert rows[1][header.index("censored pairs")] == "1"


def test_without_matplotlib_the_report_has_tables_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "Figure", None)
    written = write_report(fake_results(), tmp_path)
    assert set(written) == {"markdown", "html"}
    assert not list(tmp_path.glob("*.png"))
    for path in written.values():
        assert "matplotlib is not installed" in path.read_text()
    assert "data:image/png" not in written["html"].read_text()


@pytest.mark.parametrize("metric", ["val_loss", "check_loss"])
def test_plots_use_whichever_loss_the_curves_have(tmp_path, metric):
    results = fake_results()
    for run in results["tests"][0]["runs"]:
        for check in run["curve"]:
            check[metric] = check.pop("val_loss")
            del check["val_exact_match"]
        run["final"][metric] = run["final"].pop("val_loss")
    results["tests"][0]["target"]["metric"] = metric
    written = write_report(results, tmp_path)
    assert "test-1-compression-accuracy" not in written
    assert f"final {metric} change" in written["markdown"].read_text()
