"""A dry run counts the model's sizes once: its plan counts with them and its "sizes:" lines print them. Each count
of the transformer's builds it on the meta device (about 0.2 s for the official one)."""

from __future__ import annotations

import pytest

from motif_lite import cli


@pytest.mark.parametrize("extra", [[], ["--vram", "4"]])
def test_a_dry_run_builds_the_meta_transformer_once(shared_checkpoint, tmp_path, capsys, monkeypatch, extra):
    from motif_lite import sizes

    root = shared_checkpoint[0]
    builds = []
    build = sizes.build_model
    monkeypatch.setattr(sizes, "build_model", lambda config: builds.append(config) or build(config))
    args = ["run", "-m", str(root), "-p", "a cat", "--device", "cpu", "--dry-run", "-o", str(tmp_path / "a.gif")]
    assert cli.main([*args, *extra]) == 0
    out = capsys.readouterr().out
    assert "\nsizes:\n  transformer" in out and "transformer config, " in out  # counted from the meta model
    assert len(builds) == 1
