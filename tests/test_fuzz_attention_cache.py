"""A damaged or hand-edited attention-choices cache (`~/.cache/motif-lite/attention-choices.json`): whatever the
file holds, a run reads it as the choices it can use (or none) and goes on, and a file it cannot read is replaced
with a warning that says so, never silently. CPU."""

from __future__ import annotations

import json
import logging

import pytest

from motif_lite.runtime.attention_choices import RememberedChoices

GOOD = json.dumps({"env": {"shape": "sdpa"}}).encode()
DAMAGED = [b"", b"\xff\xfe{}", b"[" * 100_000, b"[1]", b"null", b"1" * 5000, GOOD[: len(GOOD) // 2],
           GOOD.replace(b"{", b"\xff", 1)]  # fmt: skip
EDITED = [{"env": [1]}, {"env": {"shape": 5}}, {"env": {"shape": None}}, {"env": {"shape": "x" * 100_000}},
          {"env": {"shape": ["sdpa"]}}, {"env": {"shape": float("nan")}}, {"env": None}]  # fmt: skip


@pytest.mark.parametrize("content", DAMAGED, ids=range(len(DAMAGED)))
def test_a_file_it_cannot_read_is_as_if_empty_and_replaced_with_a_warning(tmp_path, caplog, content):
    path = tmp_path / "choices.json"
    path.write_bytes(content)
    memory = RememberedChoices("env", path)
    assert memory.get("shape") is None
    with caplog.at_level(logging.WARNING, logger="motif_lite.runtime.attention_choices"):
        memory.put("shape", "sdpa")
    assert "is no file of attention choices motif-lite can read" in caplog.text and str(path) in caplog.text
    assert RememberedChoices("env", path).get("shape") == "sdpa"


@pytest.mark.parametrize("content", EDITED, ids=range(len(EDITED)))
def test_an_edited_entry_is_a_choice_or_none_and_other_entries_are_kept(tmp_path, caplog, content):
    path = tmp_path / "choices.json"
    path.write_text(json.dumps({**content, "other GPU": {"shape": "cudnn"}}))
    memory = RememberedChoices("env", path)
    assert memory.get("shape") in (None, content["env"]["shape"] if isinstance(content["env"], dict) else None)
    with caplog.at_level(logging.WARNING):
        memory.put("shape", "sdpa")
    assert caplog.text == ""  # a file it reads is no file to warn of
    assert RememberedChoices("other GPU", path).get("shape") == "cudnn"
    assert RememberedChoices("env", path).get("shape") == "sdpa"


def test_a_missing_file_is_written_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        RememberedChoices("env", tmp_path / "choices.json").put("shape", "sdpa")
    assert caplog.text == ""


def test_each_shape_of_a_machine_keeps_its_own_choice(tmp_path):
    # A run meets several attention shapes (the joint attention, the text cross-attention, another video size):
    # remembering one must not forget the others, or later runs time them again and may pick other kernels.
    path = tmp_path / "choices.json"
    RememberedChoices("env", path).put("joint", "cudnn")
    RememberedChoices("env", path).put("cross", "sdpa")
    later = RememberedChoices("env", path)
    assert (later.get("joint"), later.get("cross")) == ("cudnn", "sdpa")
