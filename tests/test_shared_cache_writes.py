"""Jobs of a Slurm array on several nodes sharing one motif-lite cache (`XDG_CACHE_HOME` on a shared disk): each
write of the attention choices is made under a name no other writer has, so a process with the same ID on another
node, writing at the same moment, keeps its own file whole. CPU, no GPU needed."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from motif_lite.runtime.attention_choices import RememberedChoices


def test_a_writer_with_the_same_process_id_on_another_node_keeps_its_file(tmp_path):
    path = tmp_path / "attention-choices.json"
    # Another node's process, with this process's ID, half way through writing its new file under the name that ID
    # gave: our write must neither cut into it nor move it away before that process renames it into place.
    theirs = tmp_path / f".{path.name}.{os.getpid()}"
    theirs.write_text('{"GPU Y": {"shape": "cudnn"}}')
    RememberedChoices("GPU X", path).put("shape", "flash")
    assert theirs.read_text() == '{"GPU Y": {"shape": "cudnn"}}'
    assert json.loads(path.read_text()) == {"GPU X": {"shape": "flash"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, theirs.name])  # no file of ours left


def test_writers_one_after_another_keep_each_others_choices(tmp_path):
    path = tmp_path / "attention-choices.json"
    RememberedChoices("GPU X", path).put("a", "flash")
    RememberedChoices("GPU Y", path).put("b", "sdpa")
    assert json.loads(path.read_text()) == {"GPU X": {"a": "flash"}, "GPU Y": {"b": "sdpa"}}


def test_the_written_file_has_the_mode_a_plain_write_gives(tmp_path):
    # Several users sharing the cache (a team's, a container run as another UID) must each be able to read it:
    # mkstemp's 0600 would shut out all but the writer.
    path = tmp_path / "attention-choices.json"
    earlier = os.umask(0o002)
    try:
        RememberedChoices("GPU X", path).put("shape", "flash")
    finally:
        os.umask(earlier)
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_a_failed_write_leaves_no_partial_file(tmp_path, caplog):
    path = tmp_path / "attention-choices.json"
    path.mkdir()  # a folder where the file should be: the rename fails
    choices = RememberedChoices("GPU X", path)
    with caplog.at_level(logging.WARNING, logger="motif_lite.runtime.attention_choices"):
        for shape in ("a", "b", "c"):
            choices.put(shape, "flash")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert caplog.text.count("could not be kept") == 1


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_the_written_file_follows_the_umask_as_a_plain_write_does(tmp_path, umask, mode):
    # /proc gives the umask in octal ("0022"): read as a decimal, 0o022 would be 22 (0o026), the mode 0o640.
    path = tmp_path / "attention-choices.json"
    earlier = os.umask(umask)
    try:
        RememberedChoices("GPU X", path).put("shape", "flash")
    finally:
        os.umask(earlier)
    assert stat.S_IMODE(path.stat().st_mode) == mode
