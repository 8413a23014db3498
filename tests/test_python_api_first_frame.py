"""A first frame made in memory (a PIL image, an array, a tensor), as diffusers' pipelines take one: written once as
a PNG beside the video, then used as that file would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.ExifTags
import PIL.Image
import PIL.ImageOps
import pytest
import torch

pytest.importorskip("diffusers")

from stopped_runs import stopped_run  # noqa: E402

from motif_lite.request import GenerationRequest, RequestError  # noqa: E402

TINY = dict(width=48, height=32, frames=5, steps=2, seed=3)
_PIXELS = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)

# As diffusers' image processors read them: a PIL image; numpy channels last, uint8 or floats 0..1; torch channels
# first, batched ([1, 3, H, W], its "pt" output) or not.
MADE_IN_MEMORY = {
    "PIL image": PIL.Image.fromarray(_PIXELS),
    "uint8 array": _PIXELS,
    "float CHW tensor": torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1).float(),
    "batched tensor": torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1)[None].float(),
}
ALSO_READ = {
    "float array": _PIXELS / 255.0,
    "batched array": (_PIXELS / 255.0)[None],
    "uint8 HWC tensor": torch.from_numpy(_PIXELS),
    "float64 CHW tensor": torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1),
}


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    from motif_lite import load_pipeline

    return load_pipeline(shared_checkpoint[0], dtype="fp32", device="cpu", kernels="torch")


@pytest.fixture(scope="module")
def frames_from_a_file(pipe, tmp_path_factory) -> np.ndarray:
    folder = tmp_path_factory.mktemp("from_file")
    PIL.Image.fromarray(_PIXELS).save(folder / "first.png")
    request = GenerationRequest("a fox", **TINY, image=folder / "first.png", output=folder / "fox_%03d.png")
    return pipe.generate(request).read_frames()


@pytest.mark.parametrize("kind", list(MADE_IN_MEMORY))
def test_a_first_frame_in_memory_makes_the_video_its_file_makes(pipe, frames_from_a_file, kind, tmp_path):
    from motif_lite.io.settings_file import read_settings

    result = pipe.generate(
        GenerationRequest("a fox", **TINY, image=MADE_IN_MEMORY[kind], output=tmp_path / "fox_%03d.png")
    )
    saved = tmp_path / "fox.first-frame.png"
    assert result.request.image == saved  # the run names the file, as if it had been given
    assert np.array_equal(np.asarray(PIL.Image.open(saved)), _PIXELS)
    assert np.array_equal(result.read_frames(), frames_from_a_file)
    assert (
        read_settings(result.output).values["image"] == saved.name
    )  # the video's settings name it for --settings-from


@pytest.mark.parametrize("kind", [*MADE_IN_MEMORY, *ALSO_READ, "bf16 tensor"])
def test_the_file_written_holds_the_image_given(kind, tmp_path):
    image = {**MADE_IN_MEMORY, **ALSO_READ}.get(kind)
    if kind == "bf16 tensor":  # a bf16 pipeline's tensor (numpy has no bf16)
        image = torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1).bfloat16()
    resolved = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox.mp4").resolve_with_inputs()
    assert resolved.request.image == tmp_path / "fox.first-frame.png"
    saved = np.asarray(PIL.Image.open(resolved.request.image)).astype(int)
    off_by = 1 if kind == "bf16 tensor" else 0  # bf16 keeps 8 bits of 0..1: a pixel may round to its neighbour
    assert np.abs(saved - _PIXELS).max() <= off_by
    assert resolved.first_frame_sha256 is not None  # of that file: a resume and the kept encodings key on it


def test_a_grayscale_image_in_memory_becomes_rgb(tmp_path):
    gray = _PIXELS[..., 0]
    for image in (gray, gray[..., None], torch.from_numpy(gray)[None]):  # [H, W], [H, W, 1], [1, H, W]
        resolved = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox.mp4").resolve_with_inputs()
        assert np.array_equal(np.asarray(PIL.Image.open(resolved.request.image)), np.stack([gray] * 3, axis=-1))


def test_a_png_sequence_output_gets_a_first_frame_file_that_is_no_pattern():
    from motif_lite.io.image import first_frame_file

    assert first_frame_file(Path("renders/fox_%03d.png")) == Path("renders/fox.first-frame.png")
    assert first_frame_file(Path("%04d.png")) == Path("output.first-frame.png")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros(48, np.uint8), r"numpy array of shape \(48,\), which is no image"),
        (torch.zeros(1, 1, 3, 32, 48), r"torch tensor of shape \[1, 1, 3, 32, 48\], which is no image"),
        (torch.zeros(2, 3, 32, 48), r"a batch of 2 images, and a video has one first frame; give one, e.g. image\[0\]"),
        (torch.full((3, 32, 48), 2.0), r"values from 2 to 2: floats are read as 0..1"),
        (torch.full((3, 32, 48), -0.5), r"values from -0.5 to -0.5: floats are read as 0..1 \(from -1..1"),
        (np.full((32, 48, 3), 200.0), r"floats are read as 0..1 \(levels 0..255\? give image / 255\)"),
        (np.zeros((32, 48, 4), np.uint8), r"neither its first nor its last axis .* \(RGBA\? drop its alpha channel"),
        (torch.zeros(2, 32, 48), r"neither its first nor its last axis holds 3 colour channels"),
        (np.zeros((32, 48, 3), np.int64), r"dtype int64: give uint8 \(0..255\) or floats \(0..1\)"),
        (np.full((32, 48, 3), np.nan), r"NaN or infinite values"),
        (np.zeros((0, 48, 3), np.uint8), r"which has no pixels"),
        (np.array(0.5), r"shape \(\), which is no image"),
    ],
    ids=[
        "rank 1",
        "rank 5",
        "batch of 2",
        "above 1",
        "below 0",
        "levels as floats",
        "RGBA",
        "2 channels",
        "int64",
        "NaN",
        "empty",
        "one number",
    ],  # fmt: skip
)
def test_what_cannot_be_an_image_is_refused_before_any_work(pipe, image, message, tmp_path):
    stages = []
    request = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=message):
        pipe.generate(request, on_progress=lambda *stage: stages.append(stage))
    assert stages == [] and list(tmp_path.iterdir()) == []


def test_a_stopped_run_from_an_image_in_memory_resumes_from_its_file(pipe, frames_from_a_file, tmp_path):
    image = torch.from_numpy(_PIXELS / 255.0).permute(2, 0, 1).float()
    request = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox_%03d.png")
    saved = stopped_run(pipe, request)
    assert saved.video_metadata["image"] == "fox.first-frame.png"  # the state names the file written
    assert saved.request["image"] == str((tmp_path / "fox.first-frame.png").absolute())  # motif-lite run --resume
    result = pipe.generate(request, resume=saved)  # the same request again: the file is written again, the same
    assert np.array_equal(result.read_frames(), frames_from_a_file)


def test_a_file_there_with_other_pixels_is_replaced_with_a_note(tmp_path):
    saved = tmp_path / "fox.first-frame.png"
    PIL.Image.fromarray(255 - _PIXELS).save(saved)
    request = GenerationRequest("a fox", **TINY, image=_PIXELS, output=tmp_path / "fox.mp4")
    resolved = request.resolve_with_inputs()
    assert np.array_equal(np.asarray(PIL.Image.open(saved)), _PIXELS)  # replaced, as output= replaces a video
    assert [note for note in resolved.notes if str(saved) in note] == [
        f"{saved} held another image: it now holds the first frame given in memory, which the video's settings name "
        "(give output= another name to keep such a file)"
    ]


def test_a_file_there_with_the_same_pixels_is_kept_as_it_is_without_a_word(tmp_path):
    # Other bytes of the same pixels (another encoder's): its checksum, which a stopped run keeps, must stay.
    saved = tmp_path / "fox.first-frame.png"
    PIL.Image.fromarray(_PIXELS).save(saved, compress_level=0)
    before = saved.read_bytes()
    request = GenerationRequest("a fox", **TINY, image=torch.from_numpy(_PIXELS), output=tmp_path / "fox.mp4")
    resolved = request.resolve_with_inputs()
    assert saved.read_bytes() == before
    assert not any("first-frame" in note for note in resolved.notes)
    assert resolved.first_frame_written is None


def test_a_file_of_the_same_raw_pixels_that_reads_turned_is_replaced(tmp_path):
    # Its EXIF orientation turns it when read: kept, the video's settings would name a first frame that is not it.
    from motif_lite.io.image import read_image

    saved = tmp_path / "fox.first-frame.png"
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # turned 90 degrees when read
    PIL.Image.fromarray(_PIXELS).save(saved, exif=exif)
    request = GenerationRequest("a fox", **TINY, image=torch.from_numpy(_PIXELS), output=tmp_path / "fox.mp4")
    resolved = request.resolve_with_inputs()
    assert any("held another image" in note for note in resolved.notes), resolved.notes
    assert np.array_equal(np.asarray(read_image(saved)[0]), _PIXELS)


def test_a_run_refused_after_its_first_frame_was_written_leaves_the_folder_as_it_was(pipe, tmp_path):
    from motif_lite.errors import MotifLiteError

    request = GenerationRequest("a fox", **TINY, image=_PIXELS, output=tmp_path / "fox.gif")
    with pytest.raises(MotifLiteError, match="crf has no meaning for a .gif output"):  # checked after the resolve
        pipe.generate(request, crf=20)
    assert list(tmp_path.iterdir()) == []
    earlier = tmp_path / "fox.first-frame.png"
    PIL.Image.fromarray(255 - _PIXELS).save(earlier)
    before = earlier.read_bytes()
    with pytest.raises(MotifLiteError, match="crf has no meaning"):
        pipe.generate(request, crf=20)
    assert earlier.read_bytes() == before  # the file it replaced is back


def test_a_resume_refused_for_another_image_puts_the_stopped_runs_first_frame_back(pipe, tmp_path):
    request = GenerationRequest("a fox", **TINY, image=_PIXELS, output=tmp_path / "fox.mp4")
    saved = stopped_run(pipe, request)
    first_frame = tmp_path / "fox.first-frame.png"
    before = first_frame.read_bytes()
    other = GenerationRequest("a fox", **TINY, image=255 - _PIXELS, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError):
        pipe.generate(other, resume=saved)
    assert first_frame.read_bytes() == before  # the stopped run can still be resumed from its file
    pipe.generate(request, resume=saved)


def test_an_output_in_the_home_folder_gets_its_first_frame_file_there(tmp_path, monkeypatch):
    # "~/fox.mp4" was refused: the PNG went to a folder "~" in the current one, which is not there.
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    resolved = GenerationRequest("a fox", **TINY, image=_PIXELS, output="~/fox.mp4").resolve_with_inputs()
    assert resolved.request.image == home / "fox.first-frame.png"
    assert np.array_equal(np.asarray(PIL.Image.open(home / "fox.first-frame.png")), _PIXELS)
    assert list(elsewhere.iterdir()) == []


def test_a_first_frame_that_cannot_be_written_whole_leaves_the_file_it_would_replace(tmp_path, monkeypatch):
    # A full disk mid-write: the PNG there (a stopped run's first frame, say) must not be left half overwritten.
    from motif_lite.errors import MotifLiteError

    earlier = tmp_path / "fox.first-frame.png"
    PIL.Image.fromarray(255 - _PIXELS).save(earlier)
    before = earlier.read_bytes()

    def save_part_then_fail(image: PIL.Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"\x89PNG\r\n")  # what a disk that filled up mid-write leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", save_part_then_fail)
    request = GenerationRequest("a fox", **TINY, image=_PIXELS, output=tmp_path / "fox.mp4")
    with pytest.raises(MotifLiteError, match="cannot write the first frame given in memory"):
        request.resolve_with_inputs()
    assert earlier.read_bytes() == before


def test_a_list_of_one_image_is_that_image_as_diffusers_takes_it(tmp_path):
    # diffusers' MotifVideoImage2VideoPipeline takes `image=[frame]` (a list of one); it was refused as "got list".
    for given in ([PIL.Image.fromarray(_PIXELS)], (_PIXELS,)):
        request = GenerationRequest("a fox", **TINY, image=given, output=tmp_path / "fox.mp4")
        resolved = request.resolve_with_inputs()
        assert resolved.request.image == tmp_path / "fox.first-frame.png"
        assert np.array_equal(np.asarray(PIL.Image.open(resolved.request.image)), _PIXELS)
    two = [PIL.Image.fromarray(_PIXELS)] * 2  # a batch, as diffusers refuses it: one first frame
    with pytest.raises(RequestError, match=r"a list of 2 images, and a video has one first frame; give one"):
        GenerationRequest("a fox", **TINY, image=two, output=tmp_path / "fox.mp4").resolve_with_inputs()


def test_a_photo_opened_with_its_turn_in_exif_is_used_as_stored_with_a_note(tmp_path):
    # `PIL.Image.open(phone.jpg)` keeps the EXIF orientation that -i turns it by: used as stored, as diffusers'
    # pipeline uses it, but that went without a word. The note names the call that turns it.
    exif = PIL.Image.Exif()
    exif[PIL.ExifTags.Base.Orientation] = 6
    PIL.Image.fromarray(_PIXELS).save(tmp_path / "phone.jpg", exif=exif)
    photo = PIL.Image.open(tmp_path / "phone.jpg")
    resolved = GenerationRequest("a fox", **TINY, image=photo, output=tmp_path / "fox.mp4").resolve_with_inputs()
    assert np.asarray(PIL.Image.open(resolved.request.image)).shape == (32, 48, 3)  # as stored, not turned
    said = [note for note in resolved.notes if "EXIF orientation (6)" in note]
    assert said and "used as its pixels are stored, 48x32" in said[0] and "exif_transpose(image)" in said[0]
    upright = PIL.ImageOps.exif_transpose(photo)
    resolved = GenerationRequest("a fox", **TINY, image=upright, output=tmp_path / "up.mp4").resolve_with_inputs()
    assert not [note for note in resolved.notes if "EXIF orientation" in note], resolved.notes


def test_an_empty_list_as_the_image_is_told_to_give_one_image(tmp_path):
    # "a list of 0 images, ...; give one, e.g. image[0]": image[0] of an empty list is an IndexError.
    for empty in ([], ()):
        request = GenerationRequest("a fox", **TINY, image=empty, output=tmp_path / "fox.mp4")
        with pytest.raises(RequestError, match=r"the input image is an empty (list|tuple); give one image, e\.g\. "):
            request.resolve_with_inputs()
