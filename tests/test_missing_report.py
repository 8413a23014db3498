"""The one message for everything a request lacks (`io/missing_report.py`), built from its parts without a download:
the offline note whichever repo is missing offline, and a Python call that is Python. CPU, no network."""

from __future__ import annotations

import re

import pytest

from motif_lite.choices import GGUF_REPO
from motif_lite.io.hub import OFFLINE_SET, TRANSFORMERS_OFFLINE_SET
from motif_lite.io.missing_report import MissingFiles, MissingFilesError


def gguf_missing(reason: str) -> MissingFiles:
    return MissingFiles(GGUF_REPO, ("*Q4_K_M*.gguf",), ("*Q4_K_M*.gguf",), "/models/gguf", reason)


def test_the_offline_note_is_given_when_a_later_repo_is_missing_offline():
    # A local checkpoint folder short of its VAE, and the GGUF repo not in the cache with HF_HUB_OFFLINE set.
    folder = MissingFiles("org/model", ("vae/*",), ("vae/*",), "/models/motif", "not downloaded", in_folder=True)
    message = str(MissingFilesError([folder, gguf_missing(OFFLINE_SET)]))
    assert "With a network here, unset HF_HUB_OFFLINE and run again" in message
    assert "unset HF_HUB_OFFLINE" not in str(MissingFilesError([folder, gguf_missing("no network")]))


def test_the_python_call_for_a_missing_gguf_alone_is_valid_python():
    # The model is the user's own (not missing): the call names it "..." and may put nothing after the keyword.
    message = str(MissingFilesError([gguf_missing("no network")]))
    call = re.search(r"\(in Python (load_pipeline\(.*\))\)$", message)[1]
    assert call == "load_pipeline(..., gguf='/models/gguf')"
    compile(call, "<message>", "eval")


def test_transformers_offline_alone_is_named_as_the_variable_to_unset(no_network, monkeypatch):
    # A studio's TRANSFORMERS_OFFLINE=1 (huggingface_hub reads it where HF_HUB_OFFLINE is unset) was said as
    # "HF_HUB_OFFLINE=1 is set" with "unset HF_HUB_OFFLINE" as the way to download, which left the downloads off.
    from motif_lite.io.checkpoint_source import find_checkpoint

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", ["vae/config.json"], ["vae/*"])
    message = str(error.value)
    assert f"Org/Name: vae/* ({TRANSFORMERS_OFFLINE_SET})" in message, message
    assert "With a network here, unset TRANSFORMERS_OFFLINE and run again" in message
    assert "HF_HUB_OFFLINE=1 is set" not in message and "unset HF_HUB_OFFLINE" not in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # both set: HF_HUB_OFFLINE is the one huggingface_hub reads
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", ["vae/config.json"], ["vae/*"])
    assert f"({OFFLINE_SET})" in str(error.value) and "unset HF_HUB_OFFLINE and" in str(error.value)


def test_with_both_offline_variables_set_both_are_named_to_unset(no_network, monkeypatch):
    # "unset HF_HUB_OFFLINE" alone left TRANSFORMERS_OFFLINE=1, which huggingface_hub then reads: still offline.
    from motif_lite.io.checkpoint_source import find_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", ["vae/config.json"], ["vae/*"])
    message = str(error.value)
    assert "With a network here, unset HF_HUB_OFFLINE and unset TRANSFORMERS_OFFLINE and run again" in message
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")  # not turning anything off: not named
    with pytest.raises(MissingFilesError) as error:
        find_checkpoint("Org/Name", ["vae/config.json"], ["vae/*"])
    assert "unset HF_HUB_OFFLINE and run again" in str(error.value), str(error.value)
