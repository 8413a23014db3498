"""read_gguf round trips, error paths, header fuzzing, and loading a model through QuantizedLinear swaps."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
from gguf_helpers import GGUF_PY_QUANTIZABLE, random_packed, write_split_gguf, write_test_gguf
from safetensors.torch import save_file
from torch import nn

from motif_lite.errors import CheckpointError
from motif_lite.weights.gguf_file import (
    TEXT_ENCODER_ARCH,
    DamagedGGUFError,
    ForeignGGUFError,
    OtherGGUFKindError,
    SplitGGUFError,
    UnfinishedGGUFError,
    read_gguf,
    tensor_bytes,
)
from motif_lite.weights.quant_linear import QuantizedLinear, quantized_state_dict, replace_linears

Q = GGMLQuantizationType
RAW_TYPES = (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_NL, Q.IQ4_XS)  # gguf-py cannot quantize these


def _shape(qtype: GGMLQuantizationType, rows: int = 3, blocks: int = 2) -> tuple[int, int]:
    return (rows, GGML_QUANT_SIZES[qtype][0] * blocks)


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One file with every supported type: float data quantized by gguf-py, K-quants as random packed blocks."""
    rng = np.random.default_rng(0)
    spec = {}
    for qtype in (*GGUF_PY_QUANTIZABLE, Q.F32):
        spec[f"blocks.{qtype.name}.weight"] = (
            rng.standard_normal(_shape(qtype)).astype(np.float32),
            qtype,
            _shape(qtype),
        )
    for qtype in RAW_TYPES:
        spec[f"blocks.{qtype.name}.weight"] = (random_packed(qtype, _shape(qtype), rng).tobytes(), qtype, _shape(qtype))
    spec["norm.bias"] = (rng.standard_normal(7).astype(np.float32), Q.F32, (7,))
    meta = {"motif_video.num_layers": 12, "general.file_type": 15, "general.quantization_version": 2}
    path = write_test_gguf(tmp_path_factory.mktemp("gguf") / "mixed.gguf", spec, extra_metadata=meta)
    return path, spec


def _expected(data, qtype: GGMLQuantizationType, shape: tuple[int, ...]) -> np.ndarray:
    """What gguf-py reads back for what the helper wrote."""
    if isinstance(data, bytes):
        return gguf.quants.dequantize(np.frombuffer(data, np.uint8).reshape(shape[0], -1), qtype)
    if qtype == Q.F32:
        return data
    packed = gguf.quants.quantize(data, qtype)
    return gguf.quants.dequantize(packed.view(np.uint8) if qtype != Q.F16 else packed, qtype)


def test_round_trip_every_type(mixed_file: tuple[Path, dict]) -> None:
    path, spec = mixed_file
    ckpt = read_gguf(path)
    assert set(ckpt.tensors) == set(spec)
    for name, (data, qtype, shape) in spec.items():
        t = ckpt.tensors[name]
        assert (t.qtype, t.shape, t.name) == (qtype, tuple(shape), name)
        expected = torch.from_numpy(np.asarray(_expected(data, qtype, tuple(shape)), dtype=np.float32))
        assert torch.equal(t.dequantize(), expected.reshape(shape)), name


def test_custom_alignment_is_read_and_a_truncated_tensor_named(tmp_path: Path) -> None:
    # general.alignment sets where the data section and every tensor start (96-byte tensors are not aligned to it).
    rng = np.random.default_rng(1)
    spec = {f"t{i}.weight": (rng.standard_normal((3, 8)).astype(np.float32), Q.F32, (3, 8)) for i in range(3)}
    path = write_test_gguf(tmp_path / "aligned.gguf", spec, alignment=4096)
    ckpt = read_gguf(path)
    for name, (data, _, _) in spec.items():
        assert torch.equal(ckpt.tensors[name].dequantize(), torch.from_numpy(data)), name
    # The header check finds the tensors' ends from the same alignment: the last one short by a byte is truncated.
    end = max(t.data_offset + t.n_bytes for t in gguf.GGUFReader(path).tensors)  # gguf-py's reading of the file
    path.write_bytes(path.read_bytes()[: end - 1])
    with pytest.raises(CheckpointError, match="truncated"):
        read_gguf(path)


def test_the_header_counts_the_bytes_the_reader_reads(mixed_file: tuple[Path, dict]) -> None:
    # Every type's packed size, from the header alone, as read_gguf's tensors hold them.
    path, _ = mixed_file
    assert tensor_bytes(path) == read_gguf(path).nbytes() > 0


def test_float_tensors_are_plain_torch_tensors(mixed_file: tuple[Path, dict]) -> None:
    ckpt = read_gguf(mixed_file[0])
    for qtype, dtype in ((Q.F32, torch.float32), (Q.F16, torch.float16), (Q.BF16, torch.bfloat16)):
        t = ckpt.tensors[f"blocks.{qtype.name}.weight"]
        assert not t.is_quantized and t.data.dtype == dtype and tuple(t.data.shape) == t.shape
        assert t.nbytes == t.data.numel() * dtype.itemsize
    q4k = ckpt.tensors["blocks.Q4_K.weight"]
    assert q4k.is_quantized and q4k.data.dtype == torch.uint8
    assert q4k.nbytes == 3 * 2 * 144 and tuple(q4k.data.shape) == (3, 2 * 144)


def test_metadata_is_plain_python(mixed_file: tuple[Path, dict]) -> None:
    ckpt = read_gguf(mixed_file[0])
    assert ckpt.metadata["general.architecture"] == "motif_video"
    assert ckpt.metadata["motif_video.num_layers"] == 12
    assert ckpt.metadata["general.file_type"] == 15
    assert ckpt.metadata["general.quantization_version"] == 2
    assert not any(k.startswith("GGUF.") for k in ckpt.metadata)
    assert ckpt.qtype_counts()["Q4_K"] == 1 and ckpt.qtype_counts()["F32"] == 2


def test_five_dim_and_recorded_original_shapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    conv = rng.standard_normal((8, 3, 1, 2, 2)).astype(np.float32)
    flat = rng.standard_normal((4, 64)).astype(np.float32)
    spec = {
        "x_embedder.proj.weight": (conv, Q.F32, conv.shape),  # written with 5 dims, as gguf-py allows
        "flat.weight": (flat.reshape(8, 32), Q.F16, (8, 32)),
        "flat_q.weight": (flat, Q.Q8_0, (4, 64)),
    }
    meta = {"comfy.gguf.orig_shape.flat.weight": [2, 4, 32], "comfy.gguf.orig_shape.flat_q.weight": [4, 2, 32]}
    ckpt = read_gguf(write_test_gguf(tmp_path / "shapes.gguf", spec, extra_metadata=meta))
    assert torch.equal(ckpt.tensors["x_embedder.proj.weight"].data, torch.from_numpy(conv))
    flat_t = ckpt.tensors["flat.weight"]
    assert flat_t.shape == (2, 4, 32) and torch.equal(
        flat_t.dequantize(), torch.from_numpy(flat).half().float().view(2, 4, 32)
    )
    flat_q = ckpt.tensors["flat_q.weight"]
    expected = gguf.quants.dequantize(gguf.quants.quantize(flat, Q.Q8_0), Q.Q8_0).reshape(4, 2, 32)
    assert flat_q.shape == (4, 2, 32) and torch.equal(flat_q.dequantize(), torch.from_numpy(expected))

    meta_bad = {"comfy.gguf.orig_shape.flat.weight": [3, 4, 32]}
    with pytest.raises(CheckpointError, match="orig_shape.flat.weight"):
        read_gguf(write_test_gguf(tmp_path / "bad_shape.gguf", spec, extra_metadata=meta_bad))


@pytest.mark.parametrize(
    ("stored", "qtype", "recorded"),
    [
        ((1, 96), Q.Q8_0, [8, 3, 1, 2, 2]),  # a conv weight flattened: rows of 2 would split Q8_0's 32-blocks
        ((3, 256), Q.Q4_K, [8, 96]),  # rows of 96 are whole Q8_0 blocks, but would split Q4_K's 256-blocks
    ],
)
def test_a_recorded_shape_whose_rows_split_blocks_is_restored_dequantized(
    tmp_path: Path, stored: tuple[int, int], qtype: GGMLQuantizationType, recorded: list[int]
) -> None:
    # The packed bytes cannot take the recorded shape, so the tensor is dequantized instead; the header's count
    # of bytes counts it as loaded, in F32.
    rng = np.random.default_rng(4)
    packed = random_packed(qtype, stored, rng)
    meta = {"comfy.gguf.orig_shape.conv.weight": recorded}
    path = write_test_gguf(tmp_path / "conv.gguf", {"conv.weight": (packed, qtype, stored)}, extra_metadata=meta)
    restored = read_gguf(path).tensors["conv.weight"]
    expected = gguf.quants.dequantize(packed, qtype).reshape(recorded)
    assert restored.shape == tuple(recorded) and restored.qtype == Q.F32
    assert torch.equal(restored.dequantize(), torch.from_numpy(expected))
    assert tensor_bytes(path) == read_gguf(path).nbytes() == 4 * math.prod(recorded)


def test_a_recorded_shape_equal_to_the_stored_one_keeps_the_tensor_packed(tmp_path: Path) -> None:
    # Some converters record every tensor's shape, unchanged: the linear must stay packed, not become F32.
    weight = np.random.default_rng(5).standard_normal((4, 64)).astype(np.float32)
    meta = {"comfy.gguf.orig_shape.lin.weight": [4, 64]}
    path = write_test_gguf(tmp_path / "same.gguf", {"lin.weight": (weight, Q.Q8_0, (4, 64))}, extra_metadata=meta)
    t = read_gguf(path).tensors["lin.weight"]
    assert (t.qtype, t.shape, tuple(t.data.shape)) == (Q.Q8_0, (4, 64), (4, 2 * 34))
    assert t.nbytes == tensor_bytes(path) == 4 * 2 * 34


def test_a_recorded_shape_of_whole_blocks_keeps_the_packed_bytes(tmp_path: Path) -> None:
    # ComfyUI-GGUF's shape fix stores rows of 256 values; a recorded [out, in] with `in` whole blocks (as the image
    # embedder's [1536, 1152] in Q8_0: here [8, 96]) reads the same bytes as that shape, still packed.
    weight = np.random.default_rng(6).standard_normal((8, 96)).astype(np.float32)
    meta = {"comfy.gguf.orig_shape.lin.weight": [8, 96]}
    spec = {"lin.weight": (weight.reshape(3, 256), Q.Q8_0, (3, 256))}
    path = write_test_gguf(tmp_path / "rows.gguf", spec, extra_metadata=meta)
    t = read_gguf(path).tensors["lin.weight"]
    assert (t.qtype, t.shape, tuple(t.data.shape)) == (Q.Q8_0, (8, 96), (8, 3 * 34))
    packed = gguf.quants.quantize(weight.reshape(3, 256), Q.Q8_0)
    expected = gguf.quants.dequantize(packed, Q.Q8_0).reshape(8, 96)
    assert torch.equal(t.dequantize(), torch.from_numpy(expected))
    assert t.nbytes == tensor_bytes(path) == 3 * 8 * 34
    # ... and runs packed, as the linear it is.
    with torch.device("meta"):
        model = nn.Sequential()
        model.add_module("lin", nn.Linear(96, 8, bias=False))
    replace_linears(model, {"lin.weight": t})
    model.load_state_dict(quantized_state_dict(model, {"lin.weight": t}), strict=True, assign=True)
    assert isinstance(model.lin, QuantizedLinear) and model.lin.packed.data_ptr() == t.data.data_ptr()
    x = torch.randn(2, 96)
    torch.testing.assert_close(model(x), torch.nn.functional.linear(x, torch.from_numpy(expected)))


# --- error paths ----------------------------------------------------------------------------------------------


def _small_file(tmp_path: Path, **kwargs) -> Path:
    spec = {"lin.weight": (np.ones((2, 64), np.float32), Q.Q8_0, (2, 64)), "lin.bias": (np.ones(2), Q.F32, (2,))}
    return write_test_gguf(tmp_path / "small.gguf", spec, **kwargs)


def _patched(path: Path, offset: int, new: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(new)] = new
    out = path.with_name("patched.gguf")
    out.write_bytes(bytes(data))
    return out


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found.*nope.gguf"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(CheckpointError, match="not a file"):
        read_gguf(tmp_path)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_gguf(tmp_path / "empty.gguf")


def test_not_a_gguf(tmp_path: Path) -> None:
    """A safetensors file (ComfyUI's and sd.cpp's model folders hold both kinds) is told the flags that take it."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(CheckpointError, match="not a GGUF file") as error:
        read_gguf(path)
    assert "it is a safetensors file: weights in that format go to --diffusion-model" in str(error.value)
    path.write_bytes(b"PK\x03\x04 a zip archive, not weights")
    with pytest.raises(CheckpointError, match="not a GGUF file") as error:
        read_gguf(path)
    assert "safetensors" not in str(error.value).replace(str(path), "")
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{damaged")  # what it holds cannot be told: the general advice
    with pytest.raises(CheckpointError, match="not a GGUF file") as error:
        read_gguf(path)
    assert "it is a safetensors file: weights in that format go to --diffusion-model" in str(error.value)


def test_a_lora_given_as_gguf_is_named_a_lora(tmp_path: Path) -> None:
    # Its names are also the transformer's layers: "the transformer's tensors ... quantize" would send it astray.
    path = tmp_path / "style.safetensors"
    save_file({"transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(2, 8)}, str(path))
    with pytest.raises(CheckpointError, match="not a GGUF file") as error:
        read_gguf(path)
    assert "it is a safetensors file that holds a LoRA's tensors (pass it as --lora)" in str(error.value)
    assert "quantize" not in str(error.value)


@pytest.mark.parametrize("version", [1, 4, 0x01000000])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    path = _patched(_small_file(tmp_path), 4, struct.pack("<I", version))
    with pytest.raises(CheckpointError, match=f"version {version}|big-endian"):
        read_gguf(path)


def test_big_endian_rejected(tmp_path: Path) -> None:
    path = _patched(_small_file(tmp_path), 4, struct.pack(">I", 3))
    with pytest.raises(CheckpointError, match="big-endian"):
        read_gguf(path)


def test_truncated_file(tmp_path: Path) -> None:
    full = _small_file(tmp_path).read_bytes()
    for cut in (10, 40, len(full) - 100, len(full) - 30):  # the last 32 bytes: 8 of bias, then padding
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(full[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            read_gguf(path)


@pytest.mark.parametrize(("offset", "said"), [(8, f"entries and {2**40} tensors"), (16, f"{2**40} metadata entries")])
def test_an_absurd_count_in_the_header_is_called_damaged(tmp_path: Path, offset: int, said: str) -> None:
    # A count the file cannot hold is a damaged file (fetch it again), named before any entry is read: walked
    # entry by entry, the bytes after the real entries would be read as more of them and named as something else.
    path = _patched(_small_file(tmp_path), offset, struct.pack("<Q", 2**40))
    with pytest.raises(DamagedGGUFError, match=f"corrupt GGUF header .*{said} .*cannot fit"):
        read_gguf(path)


def test_an_alignment_that_is_no_power_of_two_is_refused(tmp_path: Path) -> None:
    # llama.cpp and gguf-py's writer refuse it (padding rounds by masking); gguf-py's reader would read it.
    aligned = _small_file(tmp_path, alignment=64)
    value_at = aligned.read_bytes().index(b"general.alignment") + len(b"general.alignment") + 4  # after its type
    with pytest.raises(CheckpointError, match="general.alignment = 48 is not a power of two"):
        read_gguf(_patched(aligned, value_at, struct.pack("<I", 48)))


def test_arrays_nested_deeper_than_any_file_holds_are_refused_without_recursing(tmp_path: Path) -> None:
    # Walked level by level, 5,000 arrays of one array each would exhaust Python's recursion (a traceback).
    key = b"general.nested"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    value = struct.pack("<I", GGUFValueType.ARRAY) + struct.pack("<IQ", GGUFValueType.ARRAY, 1) * 5000
    path = tmp_path / "nested.gguf"
    path.write_bytes(header + value + struct.pack("<IQ", GGUFValueType.UINT32, 0))
    with pytest.raises(CheckpointError, match="'general.nested' has an unknown value type"):
        read_gguf(path)


def test_a_tensor_of_no_dimensions_is_refused_naming_it(tmp_path: Path) -> None:
    small = _small_file(tmp_path)
    n_dims_at = small.read_bytes().index(b"lin.weight") + len(b"lin.weight")
    with pytest.raises(CheckpointError, match=r"tensor lin\.weight has 0 dimensions \(GGUF allows 1 to 8\)"):
        read_gguf(_patched(small, n_dims_at, struct.pack("<I", 0)))


@pytest.mark.parametrize("value", [8, ["Q8_0"]], ids=["number", "array"])
def test_a_recipe_name_of_another_value_type_is_no_type_whether_read_whole_or_by_header(tmp_path, value) -> None:
    # Our quantizer writes its recipe's name as a string; any other value is another writer's field.
    from motif_lite.weights.gguf_file import QUANTIZE_TYPE_KEY, quantization_type, recorded_type

    spec = {"w": (np.ones((2, 32), np.float32), GGMLQuantizationType.F32, (2, 32))}
    path = write_test_gguf(tmp_path / "odd.gguf", spec, extra_metadata={QUANTIZE_TYPE_KEY: value})
    assert quantization_type(path) is None
    assert recorded_type(read_gguf(path).metadata) is None


def test_a_few_bytes_of_something_else_are_not_called_a_truncated_gguf(tmp_path: Path) -> None:
    for start, truncated in ((b"GG", True), (b"GGU", True), (b"hi\n", False), (b"{}", False)):
        path = tmp_path / "short.gguf"
        path.write_bytes(start)
        with pytest.raises(CheckpointError) as caught:
            read_gguf(path)
        assert ("truncated" in str(caught.value)) == truncated
        assert ("is not a GGUF file" in str(caught.value)) != truncated


def test_wrong_and_missing_architecture(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="'llama'.*expects 'motif_video'"):
        read_gguf(_small_file(tmp_path, arch="llama"))
    with pytest.raises(CheckpointError, match="no general.architecture"):
        read_gguf(_small_file(tmp_path, arch=None))


def _motif_names_file(tmp_path: Path, name: str, arch: str | None, prefix: str = "", **kwargs) -> Path:
    """A GGUF holding the Motif-Video transformer's embedder names (and one flattened tensor ComfyUI-style)."""
    flat = np.arange(64, dtype=np.float32).reshape(2, 32)
    spec = {
        f"{prefix}x_embedder.proj.weight": (np.ones((4, 8), np.float32), Q.F32, (4, 8)),
        f"{prefix}context_embedder.linear_1.weight": (np.ones((2, 64), np.float32), Q.Q8_0, (2, 64)),
        f"{prefix}proj_out.weight": (flat, Q.F32, (2, 32)),
    }
    meta = {f"comfy.gguf.orig_shape.{prefix}proj_out.weight": [4, 16]}  # keyed by the name as stored
    return write_test_gguf(tmp_path / name, spec, arch=arch, extra_metadata=meta, **kwargs)


@pytest.mark.parametrize("arch", ["motif", "flux", None])  # another tool's label; sd.cpp's convert writes none
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "diffusion_model."])
def test_a_motif_video_file_from_another_tool_is_read_by_its_tensor_names(tmp_path: Path, arch, prefix) -> None:
    ckpt = read_gguf(_motif_names_file(tmp_path, "other-tool.gguf", arch, prefix))
    assert set(ckpt.tensors) == {"x_embedder.proj.weight", "context_embedder.linear_1.weight", "proj_out.weight"}
    assert all(name == t.name for name, t in ckpt.tensors.items())
    assert ckpt.tensors["proj_out.weight"].shape == (4, 16)  # the recorded shape, found under the stored name
    assert ckpt.tensors["context_embedder.linear_1.weight"].qtype == Q.Q8_0


def test_another_models_gguf_is_refused_as_foreign(tmp_path: Path) -> None:
    z = np.zeros((2, 64), np.float32)
    flux = {"x_embedder.weight": (z, Q.F32, z.shape), "context_embedder.weight": (z, Q.Q8_0, z.shape)}
    for arch in ("flux", None):
        with pytest.raises(ForeignGGUFError, match="flux|no general.architecture"):
            read_gguf(write_test_gguf(tmp_path / "flux.gguf", flux, arch=arch))
    # Only the transformer is told by its tensor names: the text encoder's file must say what it is.
    with pytest.raises(ForeignGGUFError, match="expected 't5gemma2_encoder'"):
        read_gguf(_motif_names_file(tmp_path, "motif.gguf", None), expected_arch=TEXT_ENCODER_ARCH)


@pytest.mark.parametrize("arch", [None, "sd1"])  # stable-diffusion.cpp's conversions: no architecture
def test_another_models_gguf_is_named_by_its_tensor_names(tmp_path: Path, arch) -> None:
    # It was "has no general.architecture; expected 'motif_video'", which said nothing of what it is.
    z = np.zeros((2, 64), np.float32)
    names = ("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight")
    path = write_test_gguf(tmp_path / "v1-5-Q8_0.gguf", {name: (z, Q.F32, z.shape) for name in names}, arch=arch)
    with pytest.raises(ForeignGGUFError, match="; by its tensor names it is a Stable Diffusion 1.x or 2.x UNet$"):
        read_gguf(path)


def test_only_a_prefix_every_name_carries_is_stripped_and_both_motif_names_are_needed(tmp_path: Path) -> None:
    z = np.zeros((2, 64), np.float32)
    mixed = {"model.diffusion_model.x_embedder.proj.weight": (z, Q.F32, z.shape),
             "context_embedder.linear_1.weight": (z, Q.F32, z.shape)}  # fmt: skip
    # Neither layout (it was read as stored, its names then missing and unexpected): refused in one line.
    path = write_test_gguf(tmp_path / "mixed.gguf", mixed)
    with pytest.raises(CheckpointError, match=r"1 of its 2 weights' names start with 'model.diffusion_model.' .* "
                                              "neither ComfyUI's layout nor diffusers'"):  # fmt: skip
        read_gguf(path)
    for name in ("x_embedder.proj.weight", "context_embedder.linear_1.weight"):  # one of the two: another model's
        with pytest.raises(ForeignGGUFError, match="'flux'"):
            read_gguf(write_test_gguf(tmp_path / "one.gguf", {name: (z, Q.F32, z.shape)}, arch="flux"))
    # A file labelled as the text encoder is one, whatever names it holds: the label is ours, and says so.
    with pytest.raises(OtherGGUFKindError, match="--text-encoder-gguf"):
        read_gguf(_motif_names_file(tmp_path, "te-label.gguf", TEXT_ENCODER_ARCH))


def test_unsupported_quant_type_names_tensor(tmp_path: Path) -> None:
    raw = bytes(66 * 2)  # two IQ2_XXS blocks
    path = write_test_gguf(tmp_path / "iq2.gguf", {"blocks.0.attn.to_q.weight": (raw, Q.IQ2_XXS, (2, 256))})
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.to_q\.weight.*IQ2_XXS"):
        read_gguf(path)


def test_shape_not_matching_type_names_tensor(tmp_path: Path) -> None:
    path = _small_file(tmp_path)
    header = path.read_bytes()
    dims_at = header.index(b"lin.weight") + len(b"lin.weight") + 4  # after the name and n_dims
    bad = _patched(path, dims_at, struct.pack("<Q", 48))  # row of 48 is not whole Q8_0 blocks
    with pytest.raises(CheckpointError, match=r"lin\.weight.*multiple of the block size 32"):
        read_gguf(bad)


def _offset_at(path: Path, name: str, n_dims: int = 1) -> int:
    """Where the data offset of tensor `name` sits in `path`'s header."""
    return path.read_bytes().index(name.encode()) + len(name) + 4 + 8 * n_dims + 4  # name, n_dims, dims, type


@pytest.mark.parametrize(
    ("moved", "said"),
    [
        (1, r"tensor lin\.bias has data offset 161, which is not a multiple of the file's alignment 32"),
        (-32, r"tensor lin\.bias's data \(offset 128\) overlaps tensor lin\.weight's \(offset 0, 136 bytes\)"),
    ],
)
def test_a_misaligned_or_overlapping_data_offset_is_called_damaged(tmp_path: Path, moved: int, said: str) -> None:
    # One changed byte of an offset would otherwise load other bytes as the tensor's values, without a word.
    path = _small_file(tmp_path)
    at = _offset_at(path, "lin.bias")
    (offset,) = struct.unpack_from("<Q", path.read_bytes(), at)
    assert offset == 160  # lin.weight's 136 bytes, padded to 32
    with pytest.raises(DamagedGGUFError, match=said):
        read_gguf(_patched(path, at, struct.pack("<Q", offset + moved)))


def test_tensor_data_in_another_order_than_the_entries_loads(tmp_path: Path) -> None:
    # ggml wants the data in the entries' order; gguf-py reads any order, and so does motif-lite, as long as each
    # offset is aligned and no data overlaps: here the two tensors' data swapped places.
    spec = {name: (np.full(8, value, np.float32), Q.F32, (8,)) for name, value in (("a.bias", 1.0), ("b.bias", 2.0))}
    path = write_test_gguf(tmp_path / "order.gguf", spec)
    path = _patched(path, _offset_at(path, "a.bias"), struct.pack("<Q", 32))
    path = _patched(path, _offset_at(path, "b.bias"), struct.pack("<Q", 0))
    ckpt = read_gguf(path)
    assert torch.equal(ckpt.tensors["a.bias"].dequantize(), torch.full((8,), 2.0))
    assert torch.equal(ckpt.tensors["b.bias"].dequantize(), torch.full((8,), 1.0))


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("alignment", [None, 8, 64, 4096])
def test_gguf_writer_files_of_any_alignment_and_version_load(tmp_path: Path, alignment, version: int) -> None:
    # Tensors of sizes that are no multiple of any alignment, so that each starts after padding.
    rng = np.random.default_rng(8)
    spec = {
        "a.weight": (rng.standard_normal((3, 32)).astype(np.float32), Q.Q8_0, (3, 32)),  # 102 bytes
        "b.bias": (rng.standard_normal(5).astype(np.float32), Q.F32, (5,)),  # 20 bytes
        "c.weight": (rng.standard_normal((1, 7)).astype(np.float32), Q.F16, (1, 7)),  # 14 bytes
        "d.weight": (rng.standard_normal((2, 64)).astype(np.float32), Q.Q4_0, (2, 64)),  # 72 bytes
    }
    path = write_test_gguf(tmp_path / "writer.gguf", spec, alignment=alignment)
    path = _patched(path, 4, struct.pack("<I", version))  # versions 2 and 3 differ in nothing a writer writes
    ckpt = read_gguf(path)
    for name, (data, qtype, shape) in spec.items():
        expected = torch.from_numpy(np.asarray(_expected(data, qtype, shape), dtype=np.float32)).reshape(shape)
        assert torch.equal(ckpt.tensors[name].dequantize(), expected), name
    assert tensor_bytes(path) == ckpt.nbytes() == 102 + 20 + 14 + 72


def test_header_fuzz_only_raises_checkpoint_error(tmp_path: Path) -> None:
    # Each mutated file either raises the project's error or loads the values the whole file holds: a file that
    # loads other values (a changed data offset) would run as noise instead of being called damaged.
    path = _small_file(tmp_path, extra_metadata={"motif_video.note": "fuzz", "motif_video.layers": 3})
    valid = path.read_bytes()
    expected = [t.dequantize() for t in read_gguf(path).tensors.values()]
    header_len = gguf.GGUFReader(path).data_offset  # everything before the tensor data
    rng = np.random.default_rng(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(200):
        data = bytearray(valid)
        for _ in range(int(rng.integers(1, 5))):
            pos = int(rng.integers(0, header_len))
            data[pos] = int(rng.integers(0, 256)) if rng.random() < 0.7 else data[pos] ^ (1 << int(rng.integers(8)))
        if rng.random() < 0.1:
            data = data[: int(rng.integers(1, len(data)))]
        mutated = tmp_path / f"m{i}.gguf"
        mutated.write_bytes(bytes(data))
        try:
            # A changed name is left to the model's check of names, which every load makes.
            values = [t.dequantize() for t in read_gguf(mutated).tensors.values()]
            assert len(values) == len(expected), i
            assert all(torch.equal(v, e) for v, e in zip(values, expected, strict=True)), i
            outcomes["ok"] += 1
        except CheckpointError:
            outcomes["error"] += 1
        mutated.unlink()
    assert outcomes["error"] > 50 and outcomes["ok"] > 0  # the mutations really hit the header, and some loaded


# --- loading a model through replace_linears ------------------------------------------------------------------


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, kernel_size=32)  # quantized in the file: dequantized at load
        self.proj = nn.Linear(256, 64)  # Q4_K with bias
        self.blocks = nn.ModuleList([nn.Linear(64, 64, bias=False), nn.Linear(64, 32)])  # Q8_0, F32
        self.norm = nn.LayerNorm(32)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.proj(x) + self.conv(y).flatten(1)[:, :64]
        for block in self.blocks:
            h = torch.nn.functional.gelu(block(h))
        return self.norm(h)


def _tiny_checkpoint(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    spec = {
        "conv.weight": (f32(4, 2, 32), Q.Q8_0, (4, 2, 32)),
        "conv.bias": (f32(4), Q.F32, (4,)),
        "proj.weight": (random_packed(Q.Q4_K, (64, 256), rng), Q.Q4_K, (64, 256)),
        "proj.bias": (f32(64), Q.F32, (64,)),
        "blocks.0.weight": (f32(64, 64), Q.Q8_0, (64, 64)),
        "blocks.1.weight": (f32(32, 64), Q.F32, (32, 64)),
        "blocks.1.bias": (f32(32), Q.F16, (32,)),
        "norm.weight": (f32(32), Q.F32, (32,)),
        "norm.bias": (f32(32), Q.BF16, (32,)),
    }
    return write_test_gguf(tmp_path / "tiny.gguf", spec)


def test_meta_model_loads_strictly_and_matches_dequantized_reference(tmp_path: Path) -> None:
    ckpt = read_gguf(_tiny_checkpoint(tmp_path))
    with torch.device("meta"):
        model = TinyNet()
    replace_linears(model, ckpt.tensors)
    assert isinstance(model.proj, QuantizedLinear) and isinstance(model.blocks[0], QuantizedLinear)
    assert type(model.blocks[1]) is nn.Linear and type(model.conv) is nn.Conv1d
    model.load_state_dict(
        quantized_state_dict(model, ckpt.tensors, float_dtype=torch.float32), strict=True, assign=True
    )
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model.proj.packed.data_ptr() == ckpt.tensors["proj.weight"].data.data_ptr()  # zero-copy

    reference = TinyNet()
    reference.load_state_dict({k: t.dequantize() for k, t in ckpt.tensors.items()}, strict=True)
    x, y = torch.randn(3, 256), torch.randn(3, 2, 64)
    with torch.no_grad():
        assert torch.equal(model(x, y), reference(x, y))

    quantized = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert sum(m.packed.nbytes for m in quantized) == 64 * 144 + 64 * 2 * 34


def test_replace_linears_rejects_shape_mismatch(tmp_path: Path) -> None:
    ckpt = read_gguf(_tiny_checkpoint(tmp_path))
    with torch.device("meta"):
        model = TinyNet()
    model.proj = nn.Linear(512, 64, device="meta")
    with pytest.raises(CheckpointError, match=r"proj\.weight.*\(64, 256\)"):
        replace_linears(model, ckpt.tensors)


def test_float_dtype_also_applies_to_dequantized_tensors(tmp_path: Path) -> None:
    # A quantized tensor of a module that cannot run packed (the conv) is dequantized to `float_dtype` like every
    # float tensor is cast to it: a bf16 model must get no stray float32 weight.
    ckpt = read_gguf(_tiny_checkpoint(tmp_path))
    with torch.device("meta"):
        model = TinyNet()
    replace_linears(model, ckpt.tensors)
    state = quantized_state_dict(model, ckpt.tensors, float_dtype=torch.bfloat16)
    floats = {name: t.dtype for name, t in state.items() if not name.endswith(".packed")}
    assert "conv.weight" in floats and set(floats.values()) == {torch.bfloat16}, floats
    assert torch.equal(state["conv.weight"], ckpt.tensors["conv.weight"].dequantize().to(torch.bfloat16))


# A uint64 whose low half is 7 (Q8_0): read as a uint32, it would be named Q8_0.
@pytest.mark.parametrize("value", [[7], 7.0, True, np.uint64(2**32 + 7)], ids=["array", "float", "bool", "uint64"])
def test_a_file_type_of_another_value_type_is_no_type_whether_read_whole_or_by_header(tmp_path: Path, value) -> None:
    # llama.cpp writes general.file_type as a uint32; an array, a float or a bool is no file type, read either way.
    from motif_lite.weights.gguf_file import quantization_type, recorded_type

    path = write_test_gguf(
        tmp_path / "odd.gguf",
        {"w": (np.ones((2, 32), np.float32), GGMLQuantizationType.F32, (2, 32))},
        extra_metadata={"general.file_type": value},
    )
    assert quantization_type(path) is None
    assert recorded_type(read_gguf(path).metadata) is None


def test_a_file_type_of_another_integer_width_is_named_whether_read_whole_or_by_header(tmp_path: Path) -> None:
    # Another writer's int32 7 is the file type Q8_0 to gguf-py's reading of the whole file; the header walk, which
    # read only a uint32, called it no type, so `check` of a whole file and the error for a cut one disagreed.
    from motif_lite.weights.gguf_file import quantization_type, recorded_type

    path = write_test_gguf(
        tmp_path / "int32.gguf",
        {"w": (np.ones((2, 32), np.float32), GGMLQuantizationType.F32, (2, 32))},
        extra_metadata={"general.file_type": np.int32(7)},
    )
    assert quantization_type(path) == recorded_type(read_gguf(path).metadata) == "Q8_0"


def test_a_recorded_shape_of_negative_sizes_is_refused_naming_the_key(tmp_path: Path) -> None:
    # Its product matches the stored size (-2 x -4 x 32 = 8 x 32), yet it is no shape: refused in words.
    flat = np.ones((8, 32), np.float32)
    spec = {"flat.weight": (flat, Q.F16, (8, 32))}
    recorded = {"comfy.gguf.orig_shape.flat.weight": [-2, -4, 32]}
    path = write_test_gguf(tmp_path / "odd.gguf", spec, extra_metadata=recorded)
    with pytest.raises(CheckpointError, match="orig_shape.flat.weight .* does not fit the stored shape"):
        read_gguf(path)


def test_a_recorded_shape_of_more_dimensions_than_a_tensor_has_is_refused_naming_the_key(tmp_path: Path) -> None:
    # Nine sizes of the right product: no tensor has that many dimensions. The header walk that counts the loaded
    # bytes reads no array that long (a corrupt count would make a list of millions): it counts the tensor as
    # stored, and the load refuses the file.
    spec = {"flat.weight": (np.ones((8, 32), np.float32), Q.F16, (8, 32))}
    recorded = {"comfy.gguf.orig_shape.flat.weight": [1] * 7 + [8, 32]}
    path = write_test_gguf(tmp_path / "deep.gguf", spec, extra_metadata=recorded)
    with pytest.raises(CheckpointError, match="orig_shape.flat.weight .* does not fit the stored shape"):
        read_gguf(path)
    assert tensor_bytes(path) == 8 * 32 * 2


def test_a_recorded_shape_of_as_many_dimensions_as_a_tensor_may_have_is_restored_and_counted(tmp_path: Path) -> None:
    # Eight sizes, the most a GGUF tensor has: restored, and the header walk reads them too. Its last size (16)
    # splits Q8_0's blocks of 32, so the tensor loads as F32 (4 bytes a value), not as its 2 stored blocks.
    packed = random_packed(Q.Q8_0, (2, 32), np.random.default_rng(7))
    recorded = [1] * 6 + [4, 16]
    meta = {"comfy.gguf.orig_shape.deep.weight": recorded}
    path = write_test_gguf(tmp_path / "deep8.gguf", {"deep.weight": (packed, Q.Q8_0, (2, 32))}, extra_metadata=meta)
    restored = read_gguf(path).tensors["deep.weight"]
    assert restored.shape == tuple(recorded) and restored.qtype == Q.F32
    assert tensor_bytes(path) == read_gguf(path).nbytes() == 4 * 64


def test_a_quantized_bias_of_a_packed_linear_is_dequantized_not_taken_for_its_weight(tmp_path: Path) -> None:
    # Another tool may store a bias in blocks (64 values are two Q8_0 blocks): only `.weight` runs packed.
    rng = np.random.default_rng(3)
    spec = {
        "proj.weight": (random_packed(Q.Q4_K, (64, 256), rng), Q.Q4_K, (64, 256)),
        "proj.bias": (rng.standard_normal(64).astype(np.float32), Q.Q8_0, (64,)),
    }
    ckpt = read_gguf(write_test_gguf(tmp_path / "bias.gguf", spec))
    with torch.device("meta"):
        model = nn.Sequential()
        model.add_module("proj", nn.Linear(256, 64))
    replace_linears(model, ckpt.tensors)
    model.load_state_dict(quantized_state_dict(model, ckpt.tensors), strict=True, assign=True)
    assert model.proj.packed.data_ptr() == ckpt.tensors["proj.weight"].data.data_ptr()
    assert torch.equal(model.proj.bias, ckpt.tensors["proj.bias"].dequantize())


def test_each_part_of_a_split_gguf_is_refused_with_the_merge_that_makes_one_file(tmp_path: Path) -> None:
    # A file gguf-split cut in two (gguf-py writes llama.cpp's format and names). Read alone, the first part had
    # "3 tensor(s) do not match" and "make it again", the second was "another model's file": only the first part
    # carries general.architecture.
    tensors = ("x_embedder.proj.weight", "context_embedder.linear_1.weight", "proj_out.weight")
    parts = write_split_gguf(tmp_path / "mv-Q8_0.gguf", tensors, per_part=2)
    assert [p.name for p in parts] == ["mv-Q8_0-00001-of-00002.gguf", "mv-Q8_0-00002-of-00002.gguf"]
    merge = f"llama-gguf-split --merge {parts[0]} {tmp_path / 'mv-Q8_0.gguf'}, then pass {tmp_path / 'mv-Q8_0.gguf'}"
    for number, part in enumerate(parts, 1):
        with pytest.raises(SplitGGUFError) as caught:
            read_gguf(part)
        assert str(caught.value).startswith(f"{part} is part {number} of a GGUF file split into 2 files")
        assert caught.value.fix.endswith(merge)


@pytest.mark.parametrize("arch", ["hyvid", "motif_video"])
def test_a_comfyui_conversion_without_its_5d_weight_is_refused_with_the_step_that_adds_it(tmp_path, arch) -> None:
    # ComfyUI-GGUF's convert.py leaves the 5-D Conv3d weight out of its file (its README: add it back with
    # tools/fix_5d_tensors.py). Without the weight the names were not the transformer's: "another model's file".
    z = np.zeros((2, 32), np.float32)
    conv = np.ones((2, 3, 1, 2, 2), np.float32)
    spec = {
        "x_embedder.proj.bias": (np.zeros(2, np.float32), Q.F32, (2,)),
        "context_embedder.linear_1.weight": (z, Q.F16, z.shape),
    }
    path = write_test_gguf(tmp_path / "motif-BF16.gguf", spec, arch=arch)
    with pytest.raises(UnfinishedGGUFError) as caught:
        read_gguf(path)
    assert str(caught.value).startswith(f"{path} holds the Motif-Video transformer's tensors but not x_embedder.")
    fixed = tmp_path / "motif-BF16-fixed.gguf"
    assert caught.value.fix == (
        "add it back with ComfyUI-GGUF's tools/fix_5d_tensors.py, run in the folder where convert.py saved "
        f"fix_5d_tensors_{arch}.safetensors (it reads that file): python fix_5d_tensors.py --src {path} --dst {fixed}, "
        f"then pass {fixed}"
    )
    # What fix_5d_tensors.py writes (the weight added as F32, with its 5 dimensions) is read as the transformer.
    spec["x_embedder.proj.weight"] = (conv, Q.F32, conv.shape)
    ckpt = read_gguf(write_test_gguf(fixed, spec, arch=arch))
    assert ckpt.tensors["x_embedder.proj.weight"].shape == conv.shape


def test_the_5d_fix_names_the_files_whole_for_the_folder_it_runs_in(tmp_path, monkeypatch) -> None:
    # fix_5d_tensors.py reads ./fix_5d_tensors_ARCH.safetensors, so it runs where convert.py left that file; the
    # paths were said as given (unet/x.gguf), which name no file there.
    z = np.zeros((2, 32), np.float32)
    spec = {
        "x_embedder.proj.bias": (np.zeros(2, np.float32), Q.F32, (2,)),
        "context_embedder.linear_1.weight": (z, Q.F16, z.shape),
    }
    (tmp_path / "unet").mkdir()
    write_test_gguf(tmp_path / "unet" / "motif-BF16.gguf", spec, arch="hyvid")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnfinishedGGUFError) as caught:
        read_gguf("unet/motif-BF16.gguf")
    source, fixed = tmp_path / "unet" / "motif-BF16.gguf", tmp_path / "unet" / "motif-BF16-fixed.gguf"
    assert caught.value.fix.endswith(f"python fix_5d_tensors.py --src {source} --dst {fixed}, then pass {fixed}")


def test_a_part_of_a_split_gguf_already_merged_is_answered_with_the_merged_file(tmp_path: Path) -> None:
    # The fix was the merge again, which llama-gguf-split refuses: it does not write over its output.
    write_split_gguf(tmp_path / "mv-Q8_0.gguf", ["x_embedder.proj.weight", "proj_out.weight"])
    merged = tmp_path / "mv-Q8_0.gguf"
    assert not merged.exists()
    merged.write_bytes(b"GGUF")  # what the merge wrote: passing it reads it as any file
    with pytest.raises(SplitGGUFError) as caught:
        read_gguf(tmp_path / "mv-Q8_0-00002-of-00002.gguf")
    assert caught.value.fix == f"{merged} is there already, the file the parts merge into: pass it"


def test_a_renamed_part_of_a_split_gguf_is_told_to_get_its_name_back_for_the_merge(tmp_path: Path) -> None:
    # The fix was `llama-gguf-split --merge FIRST_PART MERGED.gguf`, which refuses a first part without its
    # NAME-00001-of-0000N.gguf name and finds the others by theirs.
    write_split_gguf(
        tmp_path / "mv-Q8_0.gguf", ["x_embedder.proj.weight", "proj_out.weight", "context_embedder.linear_1.weight"]
    )
    renamed = (tmp_path / "mv-Q8_0-00002-of-00003.gguf").rename(tmp_path / "second.gguf")
    with pytest.raises(SplitGGUFError) as caught:
        read_gguf(renamed)
    assert caught.value.fix == (
        "give the parts back the names llama.cpp's gguf-split gave them (NAME-00001-of-00003.gguf to "
        "NAME-00003-of-00003.gguf, this one part 2), which its merge finds them by, then merge them into one: "
        "llama-gguf-split --merge NAME-00001-of-00003.gguf NAME.gguf"
    )
