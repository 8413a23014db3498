"""bench/bench_kernels.py's Triton rows fail when their output is wrong, on the path a GPU run takes: each run here
is the interpreter's smoke run (TRITON_INTERPRET=1, tiny shapes), whose rows differ from a GPU's in their shapes,
dtype and number of rounds only."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parent.parent


def smoke_run(tmp_path: Path, plugin: str, *selection: str) -> tuple[int, dict[str, str], str]:
    """(exit status, {row: outcome}, output) of the smoke run of bench_kernels.py with the plugin module `plugin`
    (its source) loaded first."""
    (tmp_path / "wrong_on_purpose.py").write_text(plugin)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "bench/bench_kernels.py", "-p", "wrong_on_purpose", "-p", "no:randomly",
         "-p", "no:cacheprovider", "-rA", "--bench-report", str(tmp_path / "report"), *selection],
        cwd=ROOT, env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = run.stdout + run.stderr
    rows = {row: outcome for outcome, row in re.findall(r"^(PASSED|FAILED) bench/bench_kernels\.py::(\S+)", out, re.M)}
    return run.returncode, rows, out


def test_a_wrong_norm_kernel_fails_its_row(tmp_path):
    # A kernel 1 % off everywhere: its row fails (and adds no timing to the report), the torch row and the other
    # kernel's rows pass.
    plugin = (
        "from motif_lite.kernels import norm\nfrom motif_lite.model import ops\n\n\n"
        "def wrong(x, shift, scale):\n    return ops.layer_norm_modulate(x, shift, scale) * 1.01\n\n\n"
        "norm.layer_norm_modulate = wrong\n"
    )
    code, rows, out = smoke_run(tmp_path, plugin, "-k", "norm")
    assert code == 1, out
    assert rows == {"test_layer_norm_modulate[triton]": "FAILED", "test_layer_norm_modulate[torch]": "PASSED",
                    "test_rms_norm_rope[triton]": "PASSED", "test_rms_norm_rope[torch]": "PASSED"}, out  # fmt: skip
    assert "the Triton output is 0.01 from torch's (relative L2), past 0.0001" in out
    table = (tmp_path / "report.md").read_text().split("## Outcomes")[0]
    assert "test_rms_norm_rope[triton]" in table and "test_layer_norm_modulate[triton]" not in table


def test_every_triton_row_checks_its_output_before_it_is_timed(tmp_path):
    # Every output judged wrong: exactly the Triton rows fail, each at its check.
    plugin = (
        "import pytest\n\n\n@pytest.hookimpl(trylast=True)\ndef pytest_collection_modifyitems(items):\n"
        "    for item in items:\n        item.module.rel_diff = lambda out, ref: 1.0\n"
    )
    code, rows, out = smoke_run(tmp_path, plugin)
    assert code == 1 and len(rows) == 16, out
    assert {row for row, outcome in rows.items() if outcome == "FAILED"} == {row for row in rows if "triton" in row}
    # Counted in the tracebacks: the summary lines repeat the message, cut or whole by the terminal's width.
    checked = re.findall(r"^E +AssertionError: the Triton output is 1 from torch's \(relative L2\)", out, re.M)
    assert len(checked) == 7, out


def test_a_triton_row_without_its_baseline_is_not_timed(tmp_path):
    # A new Triton row that forgot its torch baseline would report a speed-up nothing checked: `run` refuses it.
    plugin = (
        "import pytest\n\n\n@pytest.hookimpl(trylast=True)\ndef pytest_collection_modifyitems(items):\n"
        "    for item in items:\n        timed = item.module.run\n"
        "        item.module.run = lambda *args, baseline=None, timed=timed, **kwargs: timed(*args, **kwargs)\n"
    )
    code, rows, out = smoke_run(tmp_path, plugin, "-k", "rms_norm_rope")
    assert code == 1 and rows == {"test_rms_norm_rope[triton]": "FAILED", "test_rms_norm_rope[torch]": "PASSED"}, out
    assert "a Triton row is timed only against its torch baseline: give baseline=" in out
