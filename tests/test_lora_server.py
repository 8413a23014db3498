"""The LoRA files a server's jobs may name (server/loras.py): what `GET /v1/loras`, the page's picker and the
refusal of a missing name list."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import save_file
from torch import zeros

from motif_lite.server.loras import available_loras, lora_files, one_file_reason
from motif_lite.server.schema import MAX_STRENGTH, ApiError, parse_loras


def _lora(path: Path) -> Path:
    save_file({"transformer_blocks.0.attn.to_q.lora_A.weight": zeros(2, 8)}, path)
    return path


def test_only_safetensors_files_are_listed_as_loras(tmp_path):
    # A LoRA folder shared with ComfyUI and a Civitai helper holds each LoRA's preview image, its .civitai.info and
    # notes: they were listed as LoRAs a job may name (and shown in the page's picker), which no job can apply.
    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    _lora(folder / "MOTION.SAFETENSORS")  # a Windows tool's capitals: still a .safetensors file
    hidden = ("._style.safetensors", ".DS_Store")  # a Mac's metadata beside a copied file
    for other in ("style.preview.png", "style.civitai.info", "trigger words.txt", "old.ckpt", *hidden):
        (folder / other).write_bytes(b"not a lora")
    (folder / "sub.safetensors").mkdir()  # a folder, not a file
    assert available_loras(folder) == ["MOTION.SAFETENSORS", "style.safetensors"]
    said = r"'styel' in this server's LoRA folder; did you mean 'style\.safetensors'\? "
    said += r"\(available: MOTION\.SAFETENSORS, "
    with pytest.raises(ApiError, match=said + r"style\.safetensors\)"):
        lora_files([("styel", 1.0)], folder)
    # A file of the folder that is not listed may still be named: the job is refused when the file is read, with
    # what it is (a pickle: the command that converts it), rather than as a file that is not there.
    assert lora_files([("old.ckpt", 0.5)], folder) == [((folder / "old.ckpt").resolve(), 0.5)]


def _style_and_a_link(tmp_path: Path) -> Path:
    """A LoRA folder holding style.safetensors and style-v2.safetensors, a link to it: two names of one file."""
    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    (folder / "style-v2.safetensors").symlink_to("style.safetensors")
    return folder


def test_two_names_of_one_file_in_the_folder_are_refused(tmp_path):
    # Two names of one file (a link beside it) passed the check of names sent twice, and the file applied twice, at
    # the sum of the strengths. The message said "one links to the other", untrue of `Style.safetensors` and
    # `style.safetensors` on a folder that ignores case (macOS, Windows), which are the same file too.
    folder = _style_and_a_link(tmp_path)
    said = (
        "'style.safetensors' and 'style-v2.safetensors' are the same file of this server's LoRA folder (one name is a "
        "link to the other), which would apply twice (at 0.5 + 0.3): name it once with the summed strength, "
        '{"name": "style.safetensors", "strength": 0.8}'
    )
    with pytest.raises(ApiError) as refused:
        lora_files([("style.safetensors", 0.5), ("style-v2.safetensors", 0.3)], folder)
    assert refused.value.message == said
    # A link whose name differs from its file's in capitals alone: a link still, not a folder that ignores case.
    (folder / "STYLE.safetensors").symlink_to("style.safetensors")
    with pytest.raises(ApiError, match=r"LoRA folder \(one name is a link to the other\), which would apply twice"):
        lora_files([("style.safetensors", 0.5), ("STYLE.safetensors", 0.3)], folder)


def test_two_names_of_one_file_are_told_by_what_differs_between_them():
    # The reason given was "a link, or one name in other capitals": macOS also opens one file by the two Unicode
    # forms of an accented name (NFC `café`, NFD `cafe` and a combining accent), and Windows by a name with a
    # trailing dot or space. Only the wording is tested here: no such folder on Linux.
    import unicodedata

    composed = "caf\u00e9.safetensors"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    form = "its Unicode form (é as one character or as e and an accent: one name to macOS)"
    capitals = "its capitals (the folder ignores case)"
    assert one_file_reason(composed, decomposed) == f"the same name but for {form}"
    assert one_file_reason("Style.safetensors", "style.safetensors") == f"the same name but for {capitals}"
    assert one_file_reason("style.safetensors. ", "style.safetensors") == (
        "the same name but for a trailing dot or space (Windows drops it)"
    )
    assert one_file_reason("Caf\u00e9.safetensors", decomposed) == f"the same name but for {capitals} and {form}"
    assert one_file_reason("style.safetensors", "style-v2.safetensors") == "one name is a link to the other"


def test_two_names_of_one_file_past_the_strength_limit_together_are_not_told_to_send_the_sum(tmp_path):
    # At 6 + 6 the refusal offered {"name": ..., "strength": 12}, which the server then refused for its strength.
    folder = _style_and_a_link(tmp_path)
    with pytest.raises(ApiError) as refused:
        lora_files([("style.safetensors", 6.0), ("style-v2.safetensors", -1.5)], folder)
    offered = json.loads(refused.value.message.rpartition("summed strength, ")[2])
    assert parse_loras([offered], False) == [("style.safetensors", 4.5)]  # an object the server takes
    with pytest.raises(ApiError) as refused:
        lora_files([("style.safetensors", 6.0), ("style-v2.safetensors", 6.0)], folder)
    assert refused.value.message.endswith(
        f"(at 6 + 6): name it once, at a strength from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} (the sum, 12, is past it)"
    )
    assert "summed strength" not in refused.value.message


def test_two_names_of_one_file_at_strengths_that_cancel_are_told_to_leave_both_out(tmp_path):
    # At 0.5 and -0.5 the refusal offered {"name": ..., "strength": 0}: a LoRA read to change nothing.
    folder = _style_and_a_link(tmp_path)
    with pytest.raises(ApiError) as refused:
        lora_files([("style.safetensors", 0.5), ("style-v2.safetensors", -0.5)], folder)
    assert refused.value.message.endswith(
        "(at 0.5 + -0.5): their strengths add up to 0, so together they change nothing: leave both out of loras"
    )


def test_one_name_sent_twice_is_told_what_to_send_as_two_names_of_one_file_are(tmp_path):
    # "loras names a file twice: a.safetensors" said nothing of the summed strength two names of one file are told.
    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "a.safetensors")

    def refusal(loras: list) -> str:
        with pytest.raises(ApiError) as refused:
            lora_files(parse_loras(loras, from_form=False), folder)
        return refused.value.message

    said = refusal(["a.safetensors", {"name": "a.safetensors", "strength": 0.5}])
    assert said.startswith("loras names a file twice: a.safetensors, which would apply twice (at 1 + 0.5): ")
    offered = json.loads(said.rpartition("summed strength, ")[2])
    assert parse_loras([offered], False) == [("a.safetensors", 1.5)]
    cancelling = [{"name": "a.safetensors", "strength": 0.3}, {"name": "a.safetensors", "strength": -0.3}]
    leave_out = "(at 0.3 + -0.3): their strengths add up to 0, so together they change nothing: leave both out of loras"
    assert refusal(cancelling).endswith(leave_out)
    past = [{"name": "a.safetensors", "strength": 6}, {"name": "a.safetensors", "strength": 6}]
    bounds = f"-{MAX_STRENGTH:g} to {MAX_STRENGTH:g}"
    assert refusal(past).endswith(f"(at 6 + 6): name it once, at a strength from {bounds} (the sum, 12, is past it)")


def test_two_names_of_one_file_summing_to_the_strength_limit_are_told_to_send_the_sum(tmp_path):
    # The limit itself is a strength the server takes: at 6 + 4 the object with the sum is offered, and taken.
    folder = _style_and_a_link(tmp_path)
    with pytest.raises(ApiError) as refused:
        lora_files([("style.safetensors", 6.0), ("style-v2.safetensors", MAX_STRENGTH - 6)], folder)
    offered = json.loads(refused.value.message.rpartition("summed strength, ")[2])
    assert parse_loras([offered], False) == [("style.safetensors", MAX_STRENGTH)]


def test_a_file_named_three_times_is_told_the_sum_of_all_three(tmp_path):
    # Told the first two entries' sum alone, a job at 0.5, 0.5 and -1 was offered the file at 1, which the third
    # entry still cancels: the next job was refused again. So for three names of one file.
    def refusal(loras: list, folder: Path | None = None) -> str:
        with pytest.raises(ApiError) as refused:
            lora_files(loras, folder) if folder else lora_files(parse_loras(loras, from_form=False), names_folder)
        return refused.value.message

    names_folder = tmp_path / "names"
    names_folder.mkdir()
    _lora(names_folder / "a.safetensors")
    _lora(names_folder / "b.safetensors")
    cancelling = [0.5, 0.5, -1.0]
    said = refusal([{"name": "a.safetensors", "strength": each} for each in cancelling])
    assert said.startswith("loras names a file 3 times: a.safetensors, which would apply 3 times (at 0.5 + 0.5 + -1)")
    assert said.endswith("their strengths add up to 0, so together they change nothing: leave them all out of loras")
    strengths = [0.5, 0.25, 1.0]
    said = refusal(["b.safetensors", *({"name": "a.safetensors", "strength": each} for each in strengths)])
    offered = json.loads(said.rpartition("summed strength, ")[2])
    assert parse_loras([offered], False) == [("a.safetensors", sum(strengths))]
    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    for link in ("style-v2.safetensors", "style-v3.safetensors"):
        (folder / link).symlink_to("style.safetensors")
    names = ["style.safetensors", "style-v2.safetensors", "style-v3.safetensors"]
    said = refusal(list(zip(names, cancelling, strict=True)), folder)
    assert "'style.safetensors', 'style-v2.safetensors' and 'style-v3.safetensors' are the same file" in said
    assert "would apply 3 times (at 0.5 + 0.5 + -1): their strengths add up to 0" in said
    said = refusal(list(zip(names, strengths, strict=True)), folder)
    offered = json.loads(said.rpartition("summed strength, ")[2])
    assert parse_loras([offered], False) == [("style.safetensors", sum(strengths))]


def test_a_file_named_twice_by_one_name_and_once_by_a_link_is_told_the_sum_of_all_three(tmp_path):
    # The body's own check of a name sent twice came first and summed that name's entries alone: [a 0.5, its link
    # 0.5, a -1] was offered a at -0.5, and the job sent next, [a -0.5, link 0.5], was refused again (they cancel).
    folder = _style_and_a_link(tmp_path)
    loras = [
        {"name": "style.safetensors", "strength": 0.5},
        {"name": "style-v2.safetensors", "strength": 0.5},
        {"name": "style.safetensors", "strength": -1},
    ]
    with pytest.raises(ApiError) as refused:
        lora_files(parse_loras(loras, from_form=False), folder)
    said = refused.value.message
    assert "'style.safetensors', 'style-v2.safetensors' and 'style.safetensors' are the same file" in said, said
    assert "(one name is a link to the other)" in said, said
    assert said.endswith("(at 0.5 + 0.5 + -1): their strengths add up to 0, so together they change nothing: "
                         "leave them all out of loras"), said  # fmt: skip


@pytest.mark.parametrize("strength", ["0.1234567", "0.8", "-1.5e-3"])
def test_a_name_with_runs_strength_after_a_colon_is_told_the_object_at_that_strength(strength):
    # The object offered wrote the strength with `:g`, 6 digits: `a.safetensors:0.1234567` was offered 0.123457.
    with pytest.raises(ApiError) as refused:
        parse_loras([f"style.safetensors:{strength}"], False)
    said = refused.value.message
    offered = json.loads(said[said.index("{") : said.index("}") + 1])
    assert parse_loras([offered], False) == [("style.safetensors", float(strength))], said


class _CountedList(list):
    """A list that records each item as it is read by iteration (json.dumps reads a list's items without it)."""

    def __init__(self, items: list, read: list) -> None:
        super().__init__(items)
        self.read = read

    def __iter__(self):
        for item in super().__iter__():
            self.read.append(item)
            yield item


def test_a_long_value_in_a_loras_refusal_is_written_only_as_far_as_the_message_shows_it():
    # The refusal wrote a LoRA object whole, in Python on the server's event loop, then showed its first 60
    # characters: a body whose object held two million numbers held every request up for seconds.
    from motif_lite.errors import Audience, shown_as_sent

    read: list = []
    numbers = _CountedList([1] * 100_000, read)
    with pytest.raises(ApiError) as refused:
        parse_loras([{"name": "style.safetensors", "weights": numbers}], False)
    whole = json.dumps({"name": "style.safetensors", "weights": [1] * 100_000})
    assert f"in the LoRA {whole[:57]}..." in refused.value.message, refused.value.message
    assert shown_as_sent(numbers, Audience.API) == json.dumps([1] * 100_000)[:57] + "..."
    assert len(read) < 100, len(read)  # a few dozen numbers shown of each, not all of them


def test_a_value_exactly_as_long_as_a_refusal_shows_is_shown_whole():
    # A value whose JSON is the 60 characters a message shows is written whole; one character more and it is cut,
    # its end given as "...".
    from motif_lite.errors import Audience, shown_as_sent

    sixty = {"name": "s" * 48}  # {"name": "sss…"}: 12 characters around the name
    written = json.dumps(sixty)
    assert len(written) == 60
    assert shown_as_sent(sixty, Audience.API) == written
    longer = {"name": "s" * 49}
    assert shown_as_sent(longer, Audience.API) == json.dumps(longer)[:57] + "..."


def test_a_python_callers_dict_with_keys_json_has_no_form_of_is_shown_as_python_writes_it():
    # JSON's objects have text keys: a dict keyed by numbers came from a Python caller, not a client's body, and is
    # shown as Python writes it ('a', None), not as JSON would write a body that cannot hold it ("a", null).
    from motif_lite.errors import Audience, shown_as_sent

    assert shown_as_sent({1: "a", 2: None}, Audience.API) == "{1: 'a', 2: None}"


def test_a_link_loop_in_the_lora_folder_is_no_file_of_it(tmp_path):
    # A link that leads to itself made Path.resolve raise RuntimeError ("Symlink loop", Python 3.10-3.12): a job
    # naming it, or any name not there (the refusal lists the folder), was a 500, and a queued job naming it stopped
    # the server's restart, where the stored queue is read for one file named twice.
    from motif_lite.server.jobs import JobStore
    from motif_lite.server.loras import one_file_named_again

    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    (folder / "loop.safetensors").symlink_to("loop.safetensors")
    assert available_loras(folder) == ["style.safetensors"]
    for name in ("loop.safetensors", "gone.safetensors"):
        with pytest.raises(ApiError, match=rf"no LoRA file '{name}' .*\(available: style\.safetensors\)"):
            lora_files([(name, 1.0)], folder)
    loras = [("loop.safetensors", 0.5), ("style.safetensors", 0.5)]
    assert one_file_named_again(loras, folder) is None
    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    store = JobStore(tmp_path / "data")
    try:
        store.add("video_" + "9" * 32, "m", settings, False, 10, loras=loras)
    finally:
        store.close()
    store = JobStore(tmp_path / "data")  # restarted
    try:
        assert store.recover(folder).refused == []
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_lora_folder_closed_while_the_server_runs_is_a_503_that_says_so(tmp_path):
    # --lora-dir, or a folder above it, that this process may no longer enter (chmod 000 while the server runs):
    # `Path.is_file` raised PermissionError, a 500 for each job naming a LoRA, and a queued job failed as a bug.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    from another_user import as_another_user

    from motif_lite.server.loras import one_file_named_again
    from motif_lite.server.remix import _check_source_loras

    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    closed = base / "closed"
    folder = closed / "loras"
    try:
        base.chmod(0o755)
        folder.mkdir(parents=True)
        _lora(folder / "style.safetensors")
        closed.chmod(0o000)

        def refusal(check) -> tuple:
            try:
                check()
            except ApiError as exc:
                return exc.status, exc.param, exc.message
            return ("no refusal",)

        loras = [("style.safetensors", 1.0), ("style.safetensors", 0.5)]
        source = SimpleNamespace(id="video_1", loras=loras[:1])
        said = as_another_user(
            lambda: (
                refusal(lambda: lora_files(loras[:1], folder)),
                refusal(lambda: _check_source_loras(source, folder)),  # a remix taking its source's LoRAs
                one_file_named_again(loras, folder),  # left to `lora_files`, which says why
            )
        )
        told = "this server's LoRA folder (--lora-dir) cannot be reached now: the server's user may not enter it"
        assert said.count(f"(503, 'loras', \"{told}") == 2 and said.endswith(", None)"), said
        assert str(base) not in said, said  # the folder's path on the server is the operator's, not the client's
    finally:
        closed.chmod(0o755)
        shutil.rmtree(base)


def test_one_file_named_again_gives_its_names_positions_in_the_job_past_a_missing_name(tmp_path):
    # A name that is no file of the folder is compared with none, but it keeps its place: the positions are the
    # job's, which the refusal and a remix's message count by, not those among the names that are files.
    from motif_lite.server.loras import one_file_named_again

    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    (folder / "link.safetensors").symlink_to("style.safetensors")
    loras = [("gone.safetensors", 1.0), ("style.safetensors", 0.5), ("link.safetensors", 0.5)]
    assert one_file_named_again(loras, folder) == (1, 2)


def test_a_queued_job_whose_lora_folder_closed_while_it_waited_fails_saying_so_not_that_it_no_longer_fits(
    tmp_path, monkeypatch
):
    # The 503 of a --lora-dir closed while the job waited was wrapped as "this job no longer fits the server, which
    # changed since it was queued": the job was blamed for the server's state, which its operator must put right.
    from motif_lite.request import GenerationRequest
    from motif_lite.server import loras
    from motif_lite.server.app import ServerConfig
    from motif_lite.server.job_record import FAILED, new_job_id
    from motif_lite.server.jobs import JobStore
    from motif_lite.server.schema import job_request_fields
    from motif_lite.server.worker import NO_LONGER_FITS, Worker

    folder = tmp_path / "loras"
    folder.mkdir()
    _lora(folder / "style.safetensors")
    store = JobStore(tmp_path / "data")
    try:
        worker = Worker(store, SimpleNamespace(), lambda line: None, lora_dir=folder,
                        limits=ServerConfig("tiny", lora_dir=folder))  # fmt: skip
        settings = job_request_fields(GenerationRequest("a fox", width=48, height=32, frames=5, seed=1))
        job = store.add(new_job_id(), "tiny", settings, False, 10, loras=[("style.safetensors", 1.0)])

        def closed(root: Path, name: str) -> Path:  # what `Path.is_file` raises under a folder it may not enter
            raise PermissionError(13, "Permission denied", str(root / name))

        monkeypatch.setattr(loras, "_folder_file", closed)
        monkeypatch.setattr(loras, "unreachable_path", lambda exc: "the folder above cannot be entered")
        with pytest.raises(ApiError) as refused:  # what a submission is told now
            lora_files(job.loras, folder)
        worker.run_job(store.claim_next())
        failed = store.get(job.id)
        assert refused.value.status == 503 and failed.status == FAILED, failed
        assert failed.error_message == refused.value.message and NO_LONGER_FITS not in failed.error_message
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_lora_file_the_server_may_not_read_is_a_503_for_its_operator(monkeypatch):
    # A LoRA file of mode 000 in an open --lora-dir passed the name check; reading it, safetensors said "No such
    # file or directory", and the job was told its file is no readable safetensors LoRA: the client was blamed for
    # the file's permissions, which only the operator can put right.
    from another_user import as_another_user

    from motif_lite import preflight
    from motif_lite.server.loras import check_loras_fit
    from motif_lite.weights.lora import check_lora_file

    # Only the file's reading is tested: no transformer is built to check its layers against.
    monkeypatch.setattr(preflight, "check_loras", lambda specs, sources: [check_lora_file(s) for s in specs])
    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    try:
        base.chmod(0o755)
        _lora(base / "style.safetensors").chmod(0o000)

        def refusal() -> tuple:
            try:
                check_loras_fit(
                    SimpleNamespace(sources="at hand"), lora_files([("style.safetensors", 1.0)], base), base
                )
            except ApiError as exc:
                return exc.status, exc.code, exc.message
            return ("no refusal",)

        said = as_another_user(refusal)
        assert said.startswith("(503, 'lora_folder_unreachable', \"'style.safetensors' of this server's LoRA"), said
        assert "the server's user may not read it" in said and str(base) not in said, said
    finally:
        shutil.rmtree(base)
