"""LoRA files as other tools save them (PEFT's save_pretrained folder, LyCORIS, DoRA, LoRAs of models with the same
layer names at another width): read with PEFT's own scaling, or refused saying what the file is and what to do."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file
from tiny_config import TINY
from tiny_transformer import make_reference

from motif_lite.config import TransformerConfig
from motif_lite.weights import lora
from motif_lite.weights.loader import build_model
from motif_lite.weights.lora import linear_shapes, read_loras
from motif_lite.weights.lora_apply import apply_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec

RANK, ALPHA = 4, 16.0
Q = "transformer_blocks.0.attn.to_q"
FF, NORM = "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.norm1.linear"  # [256, 64], [384, 64]


@pytest.fixture(scope="module")
def targets():
    return linear_shapes(build_model(TransformerConfig(**TINY)))


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, path)
    return path


def _pair(prefix: str, module: str, parts: tuple[str, str] = ("lora_A", "lora_B"), width: int = 64) -> dict:
    return {
        f"{prefix}{module}.{parts[0]}.weight": torch.randn(2, width),
        f"{prefix}{module}.{parts[1]}.weight": torch.randn(width, 2),
    }


@pytest.mark.parametrize("settings", [{}, {"use_rslora": True, "alpha_pattern": {"to_k": 3.0}}], ids=["plain", "rs"])
def test_a_peft_save_pretrained_folder_takes_alpha_from_its_adapter_config(tmp_path, targets, settings):
    # PEFT's save_pretrained writes no alpha into adapter_model.safetensors, only into adapter_config.json beside
    # it: the file was applied at strength x1 instead of x alpha/r (4 times too weak here). Compared with PEFT's
    # own scaling.
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["to_q", "to_k"], init_lora_weights=False, **settings)
    model = get_peft_model(make_reference(), config)
    model.save_pretrained(tmp_path / "adapter")
    expected = {
        name.removeprefix("base_model.model."): module.scaling["default"]
        for name, module in model.named_modules()
        if isinstance(module, LoraLayer)
    }
    (lora,) = read_loras([LoRASpec.parse(f"{tmp_path / 'adapter'}:0.5")], targets)
    assert lora.spec.path.name == "adapter_model.safetensors"
    assert {u.module: u.scale for u in lora.updates} == pytest.approx({k: 0.5 * v for k, v in expected.items()})
    assert 1.0 not in expected.values()  # without the settings every scale would be 1


def test_a_broken_adapter_config_names_the_file(tmp_path, targets):
    folder = tmp_path / "adapter"
    folder.mkdir()
    path = _write(folder / "adapter_model.safetensors", _pair("base_model.model.", Q))
    (folder / "adapter_config.json").write_text("{not json")
    with pytest.raises(LoRAError, match=r"adapter_config\.json is not valid JSON"):
        read_loras([LoRASpec(path)], targets)
    (folder / "adapter_config.json").write_text('{"r": 2, "lora_alpha": 4, "use_dora": true}')
    with pytest.raises(LoRAError, match=r"DoRA adapters \(use_dora in .*adapter_config\.json\).*--diffusion-model"):
        read_loras([LoRASpec(path)], targets)


def _kohya(module: str) -> str:
    return "lora_unet_" + module.replace(".", "_")


KOHYA_Q = _pair(_kohya(Q), "", ("lora_down", "lora_up"))


OTHER_ADAPTERS = {  # LyCORIS, DoRA and PEFT files as their tools save them: (tensors, what the error calls the file)
    # (LoHa and LoKr without a Tucker core are read: tests/test_lora_lycoris.py.)
    "lokr-tucker": ({f"{_kohya(Q)}.lokr_w1": torch.randn(8, 8), f"{_kohya(Q)}.lokr_t2": torch.randn(2, 2, 1, 1)},
                    "LyCORIS LoHa or LoKr with a Tucker core"),
    "kohya-dora": ({**KOHYA_Q, f"{_kohya(Q)}.dora_scale": torch.ones(1, 64)},
                   "DoRA"),
    "peft-dora": ({**_pair("transformer.", Q), f"transformer.{Q}.lora_magnitude_vector": torch.ones(64)}, "DoRA"),
    "locon-tucker": ({**KOHYA_Q, f"{_kohya(Q)}.lora_mid.weight": torch.ones(2, 2)},
                     "LyCORIS LoCon with a Tucker middle"),
    "lora-bias": ({**_pair("transformer.", Q), f"transformer.{Q}.lora_B.bias": torch.randn(64)}, "LoRA with biases"),
    "peft-state-dict": (_pair("transformer.", Q, ("lora_A.default", "lora_B.default")), "PEFT model's state dict"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(OTHER_ADAPTERS))
def test_another_kind_of_adapter_is_named_with_what_to_do(tmp_path, targets, kind):
    # Each was "unknown LoRA format" or "... tensors are not LoRA down/up/alpha weights (LoHa, LoKr, DoRA, ...)",
    # without saying which the file is or what to do about it.
    tensors, named = OTHER_ADAPTERS[kind]
    path = _write(tmp_path / f"{kind}.safetensors", tensors)
    with pytest.raises(LoRAError, match=rf"is an? {named}.*, not a plain LoRA \(\d tensors? like .*\): \w+") as error:
        read_loras([LoRASpec(path)], targets)
    assert ("save_pretrained" if kind == "peft-state-dict" else "--diffusion-model") in str(error.value)


def test_an_empty_file_is_said_to_be_empty(tmp_path, targets):
    with pytest.raises(LoRAError, match="holds no tensors"):
        read_loras([LoRASpec(_write(tmp_path / "empty.safetensors", {}))], targets)


@pytest.mark.parametrize("kept", [0, 5, 0.5], ids=["zero-bytes", "cut-in-its-length", "cut-in-its-data"])
def test_a_lora_file_that_did_not_finish_downloading_is_said_to_be_empty_or_cut_short(tmp_path, targets, kept):
    whole = _write(tmp_path / "whole.safetensors", _pair("transformer.", Q)).read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole[: int(kept * len(whole)) if isinstance(kept, float) else kept])
    said = "is empty [(]0 bytes" if kept == 0 else r"is cut short \([0-9,]+ bytes"
    with pytest.raises(LoRAError, match=rf"{said}.*did not finish.*download or export it again"):
        read_loras([LoRASpec(cut)], targets)
    with pytest.raises(LoRAError, match=said):  # the check before any download, with no model at hand
        lora.check_lora_file(LoRASpec(cut))


def test_a_lora_saved_before_training_is_said_to_have_no_effect(tmp_path, targets):
    # PEFT starts lora_B at zero: a LoRA saved at step 0 makes the video made without it, and the summary says why.
    key_proj = Q.replace("to_q", "to_k")
    untrained = _pair("transformer.", Q) | _pair("transformer.", key_proj)
    untrained = {key: torch.zeros_like(value) if "lora_B" in key else value for key, value in untrained.items()}
    (file,) = read_loras([LoRASpec(_write(tmp_path / "step0.safetensors", untrained), 0.8)], targets)
    assert file.describe() == "step0.safetensors x0.8 (peft, 2 layers, all zero: no effect; saved before training?)"
    pairs = _pair("transformer.", Q) | _pair("transformer.", key_proj)
    down_zero = {key: torch.zeros_like(value) if "lora_A" in key else value for key, value in pairs.items()}
    (file,) = read_loras([LoRASpec(_write(tmp_path / "down0.safetensors", down_zero))], targets)
    assert file.is_zero()  # lora_A zero instead: as much no effect
    trained = _pair("transformer.", Q) | {k: v for k, v in untrained.items() if key_proj in k}  # one layer still zero
    (file,) = read_loras([LoRASpec(_write(tmp_path / "trained.safetensors", trained))], targets)
    assert file.describe() == "trained.safetensors x1 (peft, 2 layers)"


def test_a_lora_for_another_model_with_the_same_layer_names_is_said_to_be_one(tmp_path, targets):
    # diffusers' Flux and HunyuanVideo transformers name layers transformer_blocks.N.attn.to_q too (3072 wide): such
    # a LoRA was refused as one layer's shape mismatch, not as a LoRA for another model.
    flux = _pair("transformer.", Q, width=3072) | _pair("transformer.", Q.replace("to_q", "to_k"), width=3072)
    with pytest.raises(LoRAError, match=r"named like the Motif-Video transformer's, but their shapes fit none.*Flux"):
        read_loras([LoRASpec(_write(tmp_path / "flux.safetensors", flux))], targets)
    # One layer of another width among fitting ones is a damaged or mixed file: that layer is named.
    mixed = _pair("transformer.", Q, width=3072) | _pair("transformer.", Q.replace("to_q", "to_k"))
    with pytest.raises(LoRAError, match=r"LoRA shapes for transformer_blocks\.0\.attn\.to_q do not fit"):
        read_loras([LoRASpec(_write(tmp_path / "mixed.safetensors", mixed))], targets)
    # So is a file with a layer that lacks its up weight: that layer is named, not the file called another model's.
    first = min(targets)  # the layer read first, so that its message comes before any other's
    cut = flux | {f"transformer.{first}.lora_A.weight": torch.randn(2, 3072)}
    with pytest.raises(LoRAError, match=rf"the LoRA of {re.escape(first)} has no up \(lora_B\) weight"):
        read_loras([LoRASpec(_write(tmp_path / "cut.safetensors", cut))], targets)


def test_a_lora_for_another_model_names_an_example_layer_with_both_shapes(tmp_path, targets):
    # The example is the file's first layer, its down and up shapes each as they are, and the layer's own
    # [out, in]: on a square layer a swapped pair would read the same, so these layers are not square.
    flux = {f"transformer.{module}.lora_A.weight": torch.randn(2, 3072) for module in (FF, NORM)}
    flux |= {f"transformer.{module}.lora_B.weight": torch.randn(3072, 2) for module in (FF, NORM)}
    out, width = targets[FF]
    assert out != width
    said = f"(2 layers; e.g. {FF}: down [2, 3072], up [3072, 2], the layer being [{out}, {width}])"
    with pytest.raises(LoRAError, match=re.escape(said)):
        read_loras([LoRASpec(_write(tmp_path / "flux.safetensors", flux))], targets)


def test_the_strength_is_the_number_after_the_last_colon_unless_the_whole_text_is_the_file(tmp_path, monkeypatch):
    windows = r"C:\loras\style.safetensors"  # its drive's colon is followed by no number: all of it is the path
    assert LoRASpec.parse(windows) == LoRASpec(Path(windows), 1.0)
    assert LoRASpec.parse(f"{windows}:0.8") == LoRASpec(Path(windows), 0.8)
    # A file whose own name ends in a colon and a number was read as another file with a strength.
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "style:2", _pair("transformer.", Q))
    assert LoRASpec.parse("style:2") == LoRASpec(Path("style:2"), 1.0)
    assert LoRASpec.parse("style:2:0.5") == LoRASpec(Path("style:2"), 0.5)
    _write(tmp_path / "style", _pair("transformer.", Q))  # both exist: the number is a strength, as documented
    assert LoRASpec.parse("style:2") == LoRASpec(Path("style"), 2.0)
    # A folder so named stands for its one file, as any LoRA folder does.
    (tmp_path / "set:3").mkdir()
    _write(tmp_path / "set:3" / "lora.safetensors", _pair("transformer.", Q))
    assert LoRASpec.parse("set:3") == LoRASpec(Path("set:3") / "lora.safetensors", 1.0)


@pytest.mark.parametrize("tail", ["0.8:extra", "0.8:0.5", "strong"])
def test_a_file_followed_by_more_than_one_strength_is_said_so(tmp_path, monkeypatch, tail):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "style.safetensors", _pair("transformer.", Q))
    with pytest.raises(LoRAError, match=rf"the strength '{tail}' is not a number; .* e.g. style.safetensors:0.8"):
        LoRASpec.parse(f"style.safetensors:{tail}")


@pytest.mark.parametrize("tail, meant", [("1,5", "1.5"), ("0,8", "0.8"), ("-0,25", "-0.25"), (",5", ".5")])
def test_a_strength_with_a_decimal_comma_is_given_with_a_point(tmp_path, monkeypatch, tail, meant):
    # As many locales write it: it was "the strength '1,5' is not a number" with an example of 0.8, not the 1.5 meant.
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "style.safetensors", _pair("transformer.", Q))
    with pytest.raises(
        LoRAError, match=rf"a decimal point, not a comma: --lora style\.safetensors:{re.escape(meant)}$"
    ):
        LoRASpec.parse(f"style.safetensors:{tail}")


@pytest.mark.parametrize(
    "given, first, second",
    [("a.safetensors,b.safetensors", "a.safetensors", "b.safetensors"),
     ("a.safetensors:0.5,b.safetensors:0.7", "a.safetensors:0.5", "b.safetensors:0.7"),
     # and with a decimal comma besides: it was "the strength '0,5,b.safetensors:0,7' is not a number"
     ("a.safetensors:0,5,b.safetensors:0,7", "a.safetensors:0.5", "b.safetensors:0.7"),
     ("a.safetensors:1,25,b.safetensors", "a.safetensors:1.25", "b.safetensors")],
)  # fmt: skip
def test_files_joined_by_a_comma_are_given_one_per_lora_flag(tmp_path, monkeypatch, given, first, second):
    # As some tools take a list: it was "LoRA file not found: a.safetensors,b.safetensors".
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        _write(tmp_path / f"{name}.safetensors", _pair("transformer.", Q))
    with pytest.raises(LoRAError, match=rf"one LoRA per --lora: --lora {re.escape(first)} --lora {re.escape(second)}$"):
        LoRASpec.parse(given)
    _write(tmp_path / given, _pair("transformer.", Q))  # a file so named is that file
    assert LoRASpec.parse(given).path.name == given


@pytest.mark.skipif(sys.platform == "win32", reason="the hints are checked as a POSIX shell splits them")
@pytest.mark.parametrize(
    "given, meant",
    [("my loras/a b.safetensors:1,5", [("my loras/a b.safetensors", 1.5)]),  # a decimal comma
     ("my loras/a b.safetensors,c.safetensors:0.5", [("my loras/a b.safetensors", 1.0), ("c.safetensors", 0.5)]),
     ("my loras/a b.safetensors:strong", [("my loras/a b.safetensors", 0.8)]),  # a typo: the example
     ("my loras/a b.safetensors:0.8:extra", [("my loras/a b.safetensors", 0.8)])],
)  # fmt: skip
def test_a_lora_hint_for_a_path_with_a_space_is_one_word_in_a_shell(tmp_path, monkeypatch, given, meant):
    # The hints said `--lora my loras/a b.safetensors:1.5`: pasted, the shell made three words of it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my loras").mkdir()
    for file, _ in meant:
        _write(tmp_path / file, _pair("transformer.", Q))
    with pytest.raises(LoRAError) as refused:
        LoRASpec.parse(given)
    hint = re.split(r"(?:a comma|per --lora): |e\.g\. ", str(refused.value))[-1]
    values = [word for word in shlex.split(hint) if word != "--lora"]
    assert [LoRASpec.parse(value) for value in values] == [LoRASpec(Path(f), s) for f, s in meant], hint


def test_a_folder_holding_one_pickle_gets_the_conversion(tmp_path, targets):
    # Older PEFT versions save adapter_model.bin: the folder was said to hold "no .safetensors file", without the
    # conversion command a pickle file gets.
    (tmp_path / "adapter").mkdir()
    torch.save(_pair("base_model.model.", Q), tmp_path / "adapter" / "adapter_model.bin")
    with pytest.raises(LoRAError, match=r"adapter_model\.bin is a PyTorch pickle \(\.bin\).*weights_only=True"):
        read_loras([LoRASpec.parse(str(tmp_path / "adapter"))], targets)
    (tmp_path / "adapter" / "adapter_model.bin").rename(tmp_path / "adapter" / "adapter_model.BIN")  # capitals
    with pytest.raises(LoRAError, match=r"adapter_model\.BIN is a PyTorch pickle \(\.BIN\).*weights_only=True"):
        read_loras([LoRASpec.parse(str(tmp_path / "adapter"))], targets)
    # Only a folder of one pickle and no .safetensors file: with two pickles, or beside .safetensors files, which
    # file is meant is not known.
    torch.save(_pair("base_model.model.", Q), tmp_path / "adapter" / "adapter_model.pt")
    with pytest.raises(LoRAError, match=r"is a folder holding no \.safetensors file; pass the LoRA file itself"):
        LoRASpec.parse(str(tmp_path / "adapter"))
    (tmp_path / "adapter" / "adapter_model.pt").unlink()
    for name in ("a.safetensors", "b.safetensors"):
        _write(tmp_path / "adapter" / name, _pair("transformer.", Q))
    with pytest.raises(LoRAError, match=r"is a folder holding 2 \.safetensors files \(a\.safetensors, b\.safe"):
        LoRASpec.parse(str(tmp_path / "adapter"))


def test_a_folder_holding_one_file_in_capitals_stands_for_it(tmp_path):
    # A Windows tool's STYLE.SAFETENSORS: the loader takes the name in any case, and the folder lookup did not.
    (tmp_path / "style").mkdir()
    path = _write(tmp_path / "style" / "STYLE.SAFETENSORS", _pair("transformer.", Q))
    assert LoRASpec.parse(f"{tmp_path / 'style'}:0.5") == LoRASpec(path, 0.5)


def _pair_with_metadata(path: Path, alpha: float) -> Path:
    """A PEFT-named pair (rank 2) whose file carries diffusers' lora_adapter_metadata with `alpha`."""
    metadata = {"lora_adapter_metadata": json.dumps({"lora_alpha": alpha})}
    save_file(_pair("base_model.model.", Q), path, metadata=metadata)
    return path


def test_adapter_config_json_is_read_only_beside_peft_s_own_file_without_metadata(tmp_path, targets):
    # The settings a file carries come first; adapter_config.json belongs to PEFT's adapter_model.safetensors only
    # (another LoRA saved into the same folder is not PEFT's adapter), and must be a JSON object.
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 16}))
    (lora,) = read_loras([LoRASpec(_pair_with_metadata(folder / "adapter_model.safetensors", 8.0))], targets)
    assert [u.scale for u in lora.updates] == [8.0 / 2]  # the file's own alpha over its rank
    (lora,) = read_loras([LoRASpec(_write(folder / "style.safetensors", _pair("base_model.model.", Q)))], targets)
    assert [u.scale for u in lora.updates] == [1.0]  # no alpha of its own: strength x1, as any PEFT file
    (folder / "adapter_config.json").write_text("[2, 16]")
    path = _write(folder / "adapter_model.safetensors", _pair("base_model.model.", Q))
    with pytest.raises(LoRAError, match=r"adapter_config\.json is a list, not a JSON object$"):
        read_loras([LoRASpec(path)], targets)


def test_the_adapter_message_counts_and_names_that_kind_s_own_tensors(tmp_path, targets):
    # The count and the example are the tensors that make the file that kind, not the file's other unknown ones:
    # a LoHa's Tucker cores (hada_t1, hada_t2), not its factors. (Full differences, .diff / .diff_b, are applied:
    # tests/test_lora_diffs.py.)
    loha = {f"{_kohya(Q)}.hada_t1": torch.randn(2, 2, 1, 1), f"{_kohya(Q)}.hada_t2": torch.randn(2, 2, 1, 1),
            f"{_kohya(Q)}.hada_w1_a": torch.randn(64, 2)}  # fmt: skip
    for kind, tensors, said in [
        ("loha", loha, f"(2 tensors like {_kohya(Q)}.hada_t1)"),
        ("dora", OTHER_ADAPTERS["kohya-dora"][0], f"(1 tensor like {_kohya(Q)}.dora_scale)"),
    ]:
        with pytest.raises(LoRAError, match=re.escape(said)):
            read_loras([LoRASpec(_write(tmp_path / f"{kind}.safetensors", tensors))], targets)


def test_checking_a_lora_file_reads_no_tensor(tmp_path, monkeypatch):
    """check_lora_file (the check with no model at hand) needs the names and metadata only: loading every tensor of
    a LoRA of hundreds of MB to look at its names was wasted time and memory."""
    path = _write(tmp_path / "q.safetensors", _pair("transformer.", Q))
    opened = lora.safe_open

    class NamesOnly:
        def __init__(self, *args, **kwargs):
            self._file = opened(*args, **kwargs)

        def __enter__(self):
            self._handle = self._file.__enter__()
            return self

        def __exit__(self, *exc):
            return self._file.__exit__(*exc)

        def keys(self):
            return self._handle.keys()

        def metadata(self):
            return self._handle.metadata()

        def get_tensor(self, name):
            raise AssertionError(f"read tensor {name}")

    monkeypatch.setattr(lora, "safe_open", NamesOnly)
    assert lora.check_lora_file(LoRASpec(path)) == "peft"


def test_a_lora_for_another_model_with_more_blocks_is_said_to_be_one(tmp_path, targets):
    # A real Flux or HunyuanVideo LoRA has more blocks than this model (19 or 20 dual ones): its deeper blocks match no
    # layer, the first ones are named like ours at another width. It was refused listing the deeper blocks' names as
    # layers the transformer lacks, not said to be a LoRA for another model.
    blocks = sum(name.startswith("transformer_blocks.") and name.endswith(".attn.to_q") for name in targets)
    flux = {}
    for block in range(blocks + 2):
        for layer in ("to_q", "to_k"):
            flux |= _pair("transformer.", f"transformer_blocks.{block}.attn.{layer}", width=3072)
    with pytest.raises(LoRAError, match=r"named like the Motif-Video transformer's, but their shapes fit none.*"
                                        r"its 4 other layers are named like none.*Flux"):  # fmt: skip
        read_loras([LoRASpec(_write(tmp_path / "flux.safetensors", flux))], targets)
    # A file of this model's width with deeper blocks still lists those blocks (another version of the model).
    deeper = {key.replace("3072", ""): torch.randn(2, 64) if ".lora_A." in key else torch.randn(64, 2) for key in flux}
    with pytest.raises(LoRAError, match=rf"4 of its {2 * blocks + 4} layers match no linear layer"):
        read_loras([LoRASpec(_write(tmp_path / "deeper.safetensors", deeper))], targets)


@pytest.mark.parametrize(
    "first, second",
    [
        ("diffusion_model." + Q, "transformer." + Q),  # two prefixes (named in sorted order)
        ("lora_unet_" + Q, "lora_unet_" + Q.replace(".", "_")),  # dotted and underscored
        ("single_transformer_blocks.0.cross_attn.to_q", "single_transformer_blocks.0.cross_attn_query_proj"),
    ],
    ids=["prefixes", "underscores", "layouts"],
)
def test_a_layer_held_twice_under_two_names_is_refused_naming_both(tmp_path, targets, first, second):
    # Each spelling maps to the same layer: the one read last replaced the other, unsaid, and the file applied in part
    # (half of a merged pair of LoRAs, say) as if whole.
    tensors = _pair("", first) | _pair("", second)
    path = _write(tmp_path / "twice.safetensors", tensors)
    said = rf"twice, under two names and with other values \(e.g. .*: {re.escape(first)}\.lora_A\.weight "
    with pytest.raises(LoRAError, match=said + rf"and {re.escape(second)}\.lora_A\.weight\).*file of its own"):
        read_loras([LoRASpec(path)], targets)
    # The same values under both names (a file written for two loaders) are one update, applied once.
    same = _pair("", first)
    same |= {key.replace(first, second): value.clone() for key, value in same.items()}
    alone = read_loras([LoRASpec(_write(tmp_path / "alone.safetensors", _pair("", first)))], targets)[0]
    (update,) = read_loras([LoRASpec(_write(tmp_path / "same.safetensors", same))], targets)[0].updates
    assert update.module == alone.updates[0].module and torch.equal(update.down, same[f"{first}.lora_A.weight"])


@pytest.mark.parametrize("settings", [{}, {"use_rslora": True, "alpha_pattern": {"to_k": 3.0}}], ids=["plain", "rs"])
def test_a_diffusers_pipeline_file_takes_alpha_from_its_transformer_settings(tmp_path, settings):
    # diffusers' training scripts save with a pipeline's `save_lora_weights` (Motif has none: a script written for
    # Wan calls Wan's), which writes the settings under the component's name, `transformer.lora_alpha`. They were
    # not found: the LoRA applied at alpha = rank, 1/4 of its strength here, where diffusers (which strips the name)
    # and PEFT apply alpha / rank.
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict
    from tiny_config import forward
    from tiny_transformer import inputs, reference_forward

    reference = make_reference()
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["to_q", "to_k", "proj_mlp"], init_lora_weights=False,
                        **settings)  # fmt: skip
    reference.add_adapter(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    saved = reference.peft_config["default"].to_dict()
    layers = get_peft_model_state_dict(reference)
    WanPipeline.save_lora_weights(tmp_path, transformer_lora_layers=layers, transformer_lora_adapter_metadata=saved)
    x = inputs(image=3)
    expected = reference_forward(reference, x)
    reference.disable_adapters()
    assert (expected - reference_forward(reference, x)).abs().max() > expected.std()  # the LoRA matters
    ours = build_model(TransformerConfig(**TINY))
    plain = {k.replace(".base_layer", ""): v for k, v in reference.state_dict().items() if ".lora_" not in k}
    ours.load_state_dict(plain, strict=True, assign=True)
    apply_loras(ours, read_loras([LoRASpec.parse(str(tmp_path))], linear_shapes(ours)), torch.float32)
    got = forward(ours, x)
    assert (got - expected).abs().max() <= 1e-5 * expected.std()


def test_a_layer_held_twice_is_counted_once_whatever_parts_of_it_differ(tmp_path, targets):
    # Its down and its up both differ: still one layer held twice, not two.
    other = Q.replace("blocks.0.", "blocks.1.")
    one = _pair("diffusion_model.", Q) | _pair("transformer.", Q)
    with pytest.raises(LoRAError, match=r"holds 1 layer of the transformer twice"):
        read_loras([LoRASpec(_write(tmp_path / "one.safetensors", one))], targets)
    two = one | _pair("diffusion_model.", other) | _pair("transformer.", other)
    with pytest.raises(LoRAError, match=r"holds 2 layers of the transformer twice"):
        read_loras([LoRASpec(_write(tmp_path / "two.safetensors", two))], targets)


def test_a_lora_file_and_the_applied_loras_are_shown_by_what_they_are_not_by_their_values(tmp_path, targets):
    # `pipe.loras` in a REPL (the hint of a diffusers method name points to it) printed every value of every
    # tensor of every file: tens of thousands of lines for this one tiny file.
    loha = _kohya(Q.replace("blocks.0.", "blocks.1."))  # a LoHa beside the LoRA pair: a ProductUpdate
    shapes = {"hada_w1_a": (64, 2), "hada_w1_b": (2, 64), "hada_w2_a": (64, 2), "hada_w2_b": (2, 64)}
    tensors = _pair("transformer.", Q) | {f"{loha}.{name}": torch.randn(shape) for name, shape in shapes.items()}
    [file] = read_loras([LoRASpec(_write(tmp_path / "style.safetensors", tensors), 0.8)], targets)
    model = build_model(TransformerConfig(**TINY))
    applied = apply_loras(model, [file], torch.float32)
    update, product = file.updates[0], file.products[0]
    assert repr(file) == f"<LoRAFile {file.spec.path}: {file.describe()}>"
    assert repr(applied) == f"<AppliedLoRAs {applied.describe()}>"
    shape = lambda t: f"<tensor {list(t.shape)} float32>"  # noqa: E731
    assert repr(update) == (
        f"LoRAUpdate(module={update.module!r}, down={shape(update.down)}, up={shape(update.up)}, "
        f"scale={update.scale!r})"
    )
    factors = ", ".join(f"{name!r}: {shape(t)}" for name, t in product.factors.items())
    assert repr(product) == (
        f"ProductUpdate(module={product.module!r}, kind='LoHa', factors={{{factors}}}, scale={product.scale!r})"
    )
