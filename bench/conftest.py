"""Benchmarks: `pytest bench/` runs them (plain `pytest` runs only tests/).

How to add a benchmark
  * Put it in a file `bench/bench_<area>.py` as `test_*` functions (pyproject's `python_files` collects
    `bench_*.py`; tests/ has none, so the test suite never runs a benchmark).
  * Time with pytest-benchmark's `benchmark` fixture (`benchmark.pedantic(fn, rounds=3, warmup_rounds=1)`, then
    `benchmark.stats.stats.median`), or with your own clock where the work must be synchronized or runs in a
    subprocess (CUDA: `torch.cuda.synchronize()` before reading the clock).
  * Measure the reference (diffusers, gguf-py, SDPA, the bf16 GEMM, ...) in the same run and record the ratio.
  * Record every result row with the session's `bench_report` fixture:

        def test_forward(benchmark, bench_report):
            benchmark.pedantic(run, rounds=3, warmup_rounds=1)
            bench_report.add("Transformer forward (CPU)", impl="ours", dtype="bf16", seconds=..., vs_reference=...)

    Rows with the same table title form one table. All tables go to one JSON and one markdown file, rewritten
    after every test (a run cut short keeps its rows) and completed at the end of the session: `--bench-report
    STEM` (default `bench-report` in the current folder) writes STEM.json and STEM.md with the machine (CPU, GPU,
    versions) and the date.
  * Mark what needs a GPU `@pytest.mark.cuda`: skipped without CUDA. `@pytest.mark.cuda(smoke=True)` benchmarks
    run under `TRITON_INTERPRET=1` on the CPU at tiny shapes instead (proves the code runs; the times mean
    nothing). Mark full-size or long CPU benchmarks `@pytest.mark.slow`: `pytest bench/ -m "not slow"` must stay
    a few minutes on 2 cores. Keep each process under ~3 GB of memory unless marked slow.
  * Copy figures worth keeping into docs/benchmarks.md with the command, machine and date.
  * The report's last table, "Outcomes", lists every test of the session (benchmarks, and the GPU test suite when
    `bench/gpu_check.sh` runs it in the same session) with its outcome and what it recorded with pytest's
    `record_property` (the GPU tests record their measured errors and peaks that way).

Commands: `pytest bench/ -m "not slow"` (quick CPU set), `pytest bench/` (everything), `pytest bench/ -m cuda`
(GPU benchmarks), `bash bench/gpu_check.sh` (the GPU test suite and GPU benchmarks, one report).
"""

import os
import sys
from pathlib import Path

import pytest
import torch

# The benches reuse the tests' random-checkpoint builders.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from report import BenchReport  # noqa: E402

REPORT = pytest.StashKey[BenchReport]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-report", default="bench-report", help="write the benchmark rows to STEM.json and STEM.md")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = BenchReport()


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("cuda")
    if marker is None or torch.cuda.is_available():
        return
    if marker.kwargs.get("smoke") and os.environ.get("TRITON_INTERPRET") == "1":
        return  # tiny shapes in Triton's CPU interpreter
    pytest.skip("needs CUDA" + (" (or TRITON_INTERPRET=1 for a CPU smoke run)" if marker.kwargs.get("smoke") else ""))


def outcomes(session: pytest.Session) -> list[dict]:
    """Every test of the session (tests/ included) with its outcome and what it recorded via `record_property`."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    rows = []
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in reporter.stats.get(outcome, []) if reporter else []:
            if not isinstance(report, pytest.TestReport):
                continue
            note = None
            if report.skipped and isinstance(report.longrepr, tuple):
                note = report.longrepr[2]
            elif report.failed and report.longreprtext:
                note = report.longreprtext.strip().splitlines()[-1][:300]
            row = dict(test=report.nodeid, outcome=outcome, seconds=round(report.duration, 2), note=note)
            rows.append({**row, **dict(report.user_properties)})
    return sorted(rows, key=lambda row: row["test"])


@pytest.fixture(scope="session")
def bench_report(pytestconfig: pytest.Config) -> BenchReport:
    """The session's shared report: `bench_report.add(table_title, **row)`."""
    return pytestconfig.stash[REPORT]


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Write the rows so far after every test: a GPU run cut by its time limit keeps what it measured."""
    report = item.config.stash.get(REPORT, None)
    if report is not None and report.tables:
        report.write(Path(item.config.getoption("--bench-report")).resolve())


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(REPORT, None)
    if report is None:
        return
    for row in outcomes(session):
        report.add("Outcomes", **row)
    if not report.tables:
        return
    paths = report.write(Path(session.config.getoption("--bench-report")).resolve())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"benchmark report: {paths[0]} and {paths[1]}")
