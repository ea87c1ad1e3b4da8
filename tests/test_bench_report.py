"""The benchmark report machinery (``benchmarks/report.py``) works end to end on a tiny run.

Only the machinery is checked: that every setup is run, every figure lands in its cell, ratios are
ours / the best peer, and the markdown and JSON are written. No timing is asserted (figures from a
one-round run on a shared machine mean nothing; the benchmarks themselves are in ``benchmarks/``).
The end-to-end test runs ours only: the peers need their own virtual environments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import report


def _run(added: dict[str, float], wall: float = 1.0) -> dict[str, Any]:
    """A worker result with the given added CPU µs per case (wall always ``wall``)."""
    return {
        "version": "1",
        "cases": {
            case: {
                "added_us": value,
                "added_wall_us": wall,
                "spans_per_call": 1.0,
                "token_values_per_call": 2.0,
            }
            for case, value in added.items()
        },
    }


CASES = report.case_keys(100)


def _figures(base: float, per_event: float) -> dict[str, float]:
    out = {}
    for case in CASES:
        events = int(case.rsplit("/", 1)[1]) if "/" in case else 0
        out[case] = base + per_event * events
    return out


def test_ratio_is_ours_over_the_lowest_peer_in_the_cell() -> None:
    raw = {
        report.Setting("ours", "batch", "n/a"): [_run(_figures(50, 0.5))],
        report.Setting("botocore", "batch", "off"): [_run(_figures(200, 5))],
        report.Setting("openllmetry", "batch", "off"): [_run(_figures(100, 3))],
    }
    cells = report.cells(raw, 100)
    invoke = next(c for c in cells if c["path"] == "InvokeModel" and c["clock"] == "cpu")
    assert (invoke["ratio"], invoke["best_peer"]) == (0.5, "openllmetry")


def test_per_event_cell_divides_the_difference_by_the_extra_events() -> None:
    raw = {
        report.Setting("ours", "simple", "n/a"): [_run(_figures(50, 0.5))],
        report.Setting("botocore", "simple", "default"): [_run(_figures(200, 5))],
    }
    cells = report.cells(raw, 100)
    cell = next(c for c in cells if c["path"] == "ConverseStream/per-event" and c["clock"] == "cpu")
    assert cell["figures"] == {"ours": pytest.approx(0.5), "botocore": pytest.approx(5.0)}


def test_ours_appears_under_every_peer_content_setting() -> None:
    raw = {
        report.Setting("ours", "batch", "n/a"): [_run(_figures(50, 0))],
        report.Setting("openllmetry", "batch", "default"): [_run(_figures(100, 0))],
        report.Setting("openllmetry", "batch", "off"): [_run(_figures(80, 0))],
    }
    cells = [c for c in report.cells(raw, 100) if c["path"] == "Converse" and c["clock"] == "cpu"]
    assert {c["content"]: c["ratio"] for c in cells} == {"default": 0.5, "off": 0.625}


def test_repeats_are_combined_by_their_median() -> None:
    runs = [_run({"InvokeModel": value}) for value in (10.0, 30.0, 20.0)]
    assert report.combine(runs, "added_us")["InvokeModel"]["median"] == 20.0


def test_a_failed_peer_is_reported_as_an_error_not_a_figure() -> None:
    raw = {
        report.Setting("ours", "batch", "n/a"): [_run(_figures(50, 0))],
        report.Setting("openinference", "batch", "off"): [{"error": "pip install failed"}],
    }
    cell = next(c for c in report.cells(raw, 100) if c["path"] == "InvokeModel")
    assert (cell["errors"], cell["ratio"]) == ({"openinference": "pip install failed"}, None)


def test_a_tiny_run_of_ours_writes_every_setup_to_markdown_and_json(tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    argv = ["--instrumentations", "ours", "--rounds", "1", "--calls", "1", "--stream-calls", "1"]
    assert report.main([*argv, "--long-events", "8", "--output", str(output)]) == 0
    data = json.loads(output.with_suffix(".json").read_text())
    figures = {(c["processor"], c["clock"], c["path"]): c["figures"].get("ours") for c in data["cells"]}
    expected = {
        (processor, clock, path)
        for processor in report.PROCESSORS
        for clock in report.CLOCKS
        for path in [*report.case_keys(8), *[f"{s}/per-event" for s in report.STREAMS]]
    }
    assert set(figures) == expected and None not in figures.values()
    assert "SimpleSpanProcessor, wall time" in output.read_text()


def test_instruction_counts_table_divides_by_the_best_peer() -> None:
    import argparse

    import instructions

    def counts(added: float) -> dict[str, Any]:
        return {key: {"plain": 1e6, "instrumented": 1e6 + added, "added": added} for key in CASES}

    results = {"ours": counts(50_000), "botocore": counts(100_000), "openinference": {"error": "no valgrind"}}
    args = argparse.Namespace(processor="simple", content="off", calls=10, long_events=100)
    text = instructions.markdown(results, args, 1.0)
    assert "| InvokeModel | 1000 | 50.0 | 100.0 | error | 0.50x |" in text
