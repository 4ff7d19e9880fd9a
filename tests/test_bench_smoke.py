"""bench/run_all.py runs end to end and writes its report (tiny sizes: a smoke test, not a measurement)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_ALL = ROOT / "bench" / "run_all.py"


def test_run_all_writes_a_report_with_every_chosen_section(tmp_path):
    report = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            str(RUN_ALL),
            "--quick",
            "--only",
            "growth,cli",
            "--growth-sizes",
            "1000,2000",
            "--cli-runs",
            "1",
            "--output",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    for heading in ("# Benchmarks", "## Machine", "## Summary", "## CLI", "## Growth"):
        assert f"\n{heading}\n" in f"\n{text}", f"{heading} missing from the report"
    assert "## Failures" not in text
    assert re.search(r"\| Load average \(1, 5, 15 min\) \| before [\d.]+ [\d.]+ [\d.]+; after ", text)
    assert re.search(
        r"\| `nexusctl --help` wall ms \(SQLite\) \| \d+ \| hello-world Typer \d+ \| \*\*[\d.]+\*\* \|", text
    )
    # The claim and the delivery list are answered from indexes, and the report shows which.
    assert re.search(r"claim: .*USING INDEX webhook_deliveries_next_attempt_at", text)
    assert re.search(r"list first: .*USING INDEX webhook_deliveries_webhook_id_created_at_id", text)


def test_an_unknown_benchmark_is_refused_by_name(tmp_path):
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--only", "growth,warp", "--output", str(tmp_path / "b.md")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "warp" in done.stderr
    assert not (tmp_path / "b.md").exists()


def test_real_paths_runs_each_path_against_its_baseline(tmp_path):
    """bench/real_paths.py end to end on SQLite, tiny: every delivery arrives, the reads answer, CPU is read."""
    figures = tmp_path / "paths.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "real_paths.py"),
            "--only",
            "emit,read,deliveries",
            "--events",
            "40",
            "--seconds",
            "0.5",
            "--rounds",
            "1",
            "--latency-seconds",
            "1",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(figures.read_text())
    for name in ("one_nexusctl", "one_relay", "twenty_nexusctl", "twenty_relay"):
        run = result["emit"][name]
        assert run["post_errors"] == 0 and run["deliveries_per_s"] > 0 and run["cpu_us"]["server"] > 0, run
    assert result["emit"]["twenty_nexusctl"]["deliveries"] == 20 * result["emit"]["twenty_nexusctl"]["events"]
    for read in ("read", "deliveries"):
        assert result[read]["nexusctl"]["errors"] == 0 and result[read]["bare"]["errors"] == 0, result[read]
    assert "| events POSTed to `/integrations/:id/events`, one webhook" in done.stdout


def test_real_paths_without_a_latency_phase_says_so_and_a_negative_one_is_refused():
    """``--latency-seconds 0`` skips the latency phase (it divided by its zero events) and the report says it was
    not measured; a negative one is a usage error before anything starts."""
    sys.path.insert(0, str(ROOT / "bench"))
    import real_paths

    run = {"events_per_s": 10.0, "deliveries_per_s": 10.0, "cpu_us": {"server": 1.0}}
    emit = {f"{n}_{s}": run for n in ("one", "twenty") for s in ("nexusctl", "relay")}
    report = real_paths.markdown({"database": "SQLite", "concurrency": 1, "emit": emit})
    assert "| emit-to-received latency | not measured (`--latency-seconds 0`" in report
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "real_paths.py"), "--latency-seconds", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--latency-seconds must be 0 (no latency phase) or more" in done.stderr
