"""Jobs of a Slurm array on several nodes sharing one motif-lite cache (`XDG_CACHE_HOME` on a shared disk): each
write of the attention choices is made under a name no other writer has, so a process with the same ID on another
node, writing at the same moment, keeps its own file whole. CPU, no GPU needed."""

from __future__ import annotations

import json
import os

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
