"""A user who writes in Korean or Japanese: prompts in Hangul, kana and kanji, typed with an input method that gives
full-width dashes and spaces, or copied from macOS in decomposed form (NFD)."""

from __future__ import annotations

import contextlib
import re
import unicodedata

import pytest
import torch
from tiny_text import make_tiny_text_encoder

from motif_lite import cli
from motif_lite.config import MAX_PROMPT_TOKENS
from motif_lite.encoders.text import load_text_encoder, load_tokenizer, prompt_truncation
from motif_lite.request import GenerationRequest


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_text")
    make_tiny_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def tokenizer(ckpt):
    return load_tokenizer(ckpt)


# Prompts as such a user types them: Hangul, kana and kanji, mixed with English, full-width punctuation and the
# ideographic space U+3000, emoji, a combining mark, the same Korean decomposed (NFD) as macOS gives it.
PROMPTS = [
    "눈 덮인 숲을 달리는 붉은 여우, 황금빛 석양",
    "雪の森を走る赤いきつね。夕焼け",
    "a red fox 붉은 여우 🦊 きつね\u3000（狐）！",
    "e\u0301te\u0301 a\u0300 Séoul",
    unicodedata.normalize("NFD", "눈 덮인 숲을 달리는 붉은 여우"),
]


def test_such_prompts_are_encoded_as_diffusers_encodes_them(ckpt):
    # No normalization, stripping or cleaning of our own: the tokens and embeddings of diffusers' Motif-Video
    # pipeline (its `_get_prompt_embeds`, which uses no state of the pipeline when given a device and dtype).
    from diffusers import MotifVideoPipeline
    from transformers import AutoTokenizer, T5Gemma2Encoder

    reference_encoder = T5Gemma2Encoder.from_pretrained(ckpt / "text_encoder", dtype=torch.float32).eval()
    reference_tokenizer = AutoTokenizer.from_pretrained(ckpt / "tokenizer")
    with torch.no_grad():
        ref, ref_mask = MotifVideoPipeline._get_prompt_embeds(
            None, reference_encoder, reference_tokenizer, PROMPTS, device=torch.device("cpu"), dtype=torch.float32
        )
    embeds, mask = load_text_encoder(ckpt, dtype=torch.float32, device="cpu").encode(PROMPTS)
    lengths = mask.sum(1).tolist()
    assert lengths == ref_mask.sum(1).tolist()
    for row, n in enumerate(lengths):
        torch.testing.assert_close(embeds[row, :n], ref[row, :n], rtol=1e-5, atol=1e-5)


def reference_tokens(tokenizer, prompt: str) -> list[int]:
    """The tokens diffusers' Motif-Video pipeline gives the text encoder for `prompt` (its tokenizer call), pads
    left out."""
    encoded = tokenizer(
        prompt, padding="max_length", max_length=MAX_PROMPT_TOKENS, truncation=True, add_special_tokens=True
    )
    return [token for token, kept in zip(encoded["input_ids"], encoded["attention_mask"], strict=True) if kept]


# Long prompts the tiny vocabulary spells byte by byte (3 tokens a character, as the official one spells a syllable
# or kanji it lacks): Japanese and Chinese have no spaces between words.
_JAPANESE = "".join(chr(0x4E00 + 37 * i) + "のきつね"[i % 4] for i in range(120))  # kanji and kana, all distinct pairs
_KOREAN = " ".join(chr(0xAC00 + 90 * i) + chr(0xAC00 + 90 * i + 5) for i in range(120))


@pytest.mark.parametrize("prompt", [_JAPANESE, _KOREAN], ids=["japanese", "korean"])
def test_a_cut_prompt_is_quoted_up_to_where_the_reference_cuts_it(tokenizer, prompt):
    # The advice quoted the decoded kept tokens' last 8 "words": for Japanese all 500 tokens of it, and the cut
    # character's byte tokens turned the whole run around it into U+FFFD.
    cut = prompt_truncation(tokenizer, prompt)
    assert cut is not None and cut.tokens > MAX_PROMPT_TOKENS
    ending = cut.kept_ending
    assert "\ufffd" not in ending and 0 < len(ending) <= 30, ending
    assert prompt.count(ending) == 1
    kept_text = prompt[: prompt.index(ending) + len(ending)]
    ours, reference = tokenizer(kept_text)["input_ids"], reference_tokens(tokenizer, prompt)
    # The quoted text ends where the reference's tokens do, but for the bytes of the one character cut between them.
    assert reference[: len(ours)] == ours and len(reference) - len(ours) < 3


@pytest.mark.parametrize(
    "prompt, language",
    [
        ("붉은 여우 きつね 狐", "Korean"),  # Hangul most, a Japanese word: was "Japanese" for any kana
        ("한국 韓國 大韓民國", "Korean"),  # hanja beside Hangul: was "Chinese" by the most letters
        ("ｷﾂﾈ ﾄ ｲﾇ", "Japanese"),  # half-width katakana: was "Halfwidth script"
        ("赤い狐が雪原を走る", "Japanese"),
        ("一只红狐狸在雪地里奔跑", "Chinese"),
    ],
)
def test_the_language_note_names_the_language_of_most_letters(tmp_path, prompt, language):
    request = GenerationRequest(prompt=prompt, output=tmp_path / "fox.mp4")
    notes = [note for note in request.resolve()[1] if "English captions" in note]
    assert len(notes) == 1 and notes[0].startswith(f"the prompt is mostly in {language}:"), notes


def test_a_decomposed_prompt_is_noted_as_read_otherwise_than_typed(tmp_path, tokenizer):
    # macOS file names and some input methods give Hangul as its letters (NFD). Neither the tokenizer nor diffusers
    # composes them: other tokens than for the same words typed composed, which the note says (never rewritten).
    def composition_notes(prompt: str) -> list[str]:
        request = GenerationRequest(prompt=prompt, output=tmp_path / "fox.mp4")
        resolved, notes = request.resolve()
        assert resolved.prompt == prompt
        return [note for note in notes if "NFD" in note]

    composed = "눈 속을 달리는 붉은 여우, café"
    decomposed = unicodedata.normalize("NFD", composed)
    assert reference_tokens(tokenizer, decomposed) != reference_tokens(tokenizer, composed)
    (note,) = composition_notes(decomposed)
    assert note.startswith("the prompt has decomposed characters (Unicode NFD") and "to NFC" in note
    assert composition_notes(composed) == []
    assert composition_notes("\uf900 a fox") == []  # a compatibility ideograph: NFC maps it one for one


@pytest.mark.parametrize(
    "prompt",
    [
        "cafe\u0301 \ufb2a",  # an accent as a mark, and a Hebrew letter NFC writes as two: NFC is as long
        "q\u0307\u0323 fox",  # marks out of their canonical order: NFC reorders them, as long again
        "붉은 " + unicodedata.normalize("NFD", "여우") + " \uf900 \ufb2a",  # composed and decomposed Hangul
    ],
)
def test_a_decomposed_prompt_whose_composed_form_is_as_long_is_noted_once(tmp_path, tokenizer, prompt):
    # The note was decided by comparing the lengths of the prompt and its NFC form: these were not told.
    composed = unicodedata.normalize("NFC", prompt)
    assert reference_tokens(tokenizer, prompt) != reference_tokens(tokenizer, composed)  # what the note says
    notes = GenerationRequest(prompt=prompt, output=tmp_path / "fox.mp4").resolve()[1]
    assert len([note for note in notes if "convert the prompt to NFC" in note]) == 1, notes
    assert not [note for note in GenerationRequest(prompt=composed, output=tmp_path / "fox.mp4").resolve()[1]
                if "convert the prompt to NFC" in note]  # fmt: skip


def test_characters_nfc_maps_one_for_one_are_not_noted_as_decomposed(tmp_path):
    # A compatibility ideograph and a Hebrew presentation form are one character as typed: NFC writes them otherwise
    # (so the text is not NFC), but nothing in them is decomposed.
    for prompt in ("\uf900 a fox", "\ufb2a a fox"):
        assert not unicodedata.is_normalized("NFC", prompt)
        notes = GenerationRequest(prompt=prompt, output=tmp_path / "fox.mp4").resolve()[1]
        assert not [note for note in notes if "convert the prompt to NFC" in note], notes


@pytest.mark.parametrize(
    "prompt, composes",
    [
        ("\u0915\u094d\u093c fox", False),  # Devanagari ka, virama, nukta: NFC puts the nukta first, composes none
        ("q\u0307\u0323 fox", False),  # two marks out of their canonical order
        ("\u1100\u1161\u11eb fox", True),  # Old Hangul: NFC composes ga, the old final letter stays apart
        ("cafe\u0301 q\u0307\u0323", True),  # both: a decomposed letter is in it
    ],
)
def test_the_composition_note_says_decomposed_only_where_nfc_composes(tmp_path, tokenizer, prompt, composes):
    # The note said "decomposed characters (Unicode NFD, as macOS file names give" where NFC only reorders marks:
    # nothing there is decomposed, and no file name made it so.
    composed = unicodedata.normalize("NFC", prompt)
    assert reference_tokens(tokenizer, prompt) != reference_tokens(tokenizer, composed)  # what either note says
    assert (len(composed) < len(prompt)) is composes  # as the case is meant
    notes = GenerationRequest(prompt=prompt, output=tmp_path / "fox.mp4").resolve()[1]
    (note,) = [note for note in notes if "convert the prompt to NFC" in note]
    assert ("decomposed characters" in note) is composes, note
    assert ("marks out of Unicode's canonical order" in note) is not composes, note


@pytest.mark.parametrize(
    "typed, hint",
    [
        (["－－steps", "4"], "(－－steps: it holds U+FF0D (fullwidth hyphen-minus) where --steps wants a plain '-'"),
        (["−−seed", "3"], "(−−seed: it holds U+2212 (minus sign) where --seed wants a plain '-'"),
        (["–steps", "4"], "(–steps: it holds U+2013 (en dash) where --steps wants a plain '-'"),  # autocorrect
        (["—steps=4"], "type --steps=4)"),
        (["－W", "64"], "(－W: it holds U+FF0D (fullwidth hyphen-minus) where -W wants a plain '-'"),
        (["－－Stepz", "4"], "type --steps)"),  # a typo as well
        (["--steps\u30004"], "it holds U+3000 (ideographic space) where --steps wants a space ("),
    ],
)
def test_a_flag_typed_with_an_input_method_on_is_named(capsys, typed, hint):
    # Was taken for the rest of an unquoted prompt: 'a prompt goes after -p, in quotes: -p "fox －－steps 4"'.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", *typed])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and hint in err and "a prompt goes after -p" not in err, err
    assert "Traceback" not in err


def test_a_prompt_word_with_a_dash_is_still_taken_for_the_prompt(capsys):
    # Words that name no flag once typed in ASCII keep the unquoted-prompt hint.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "붉은", "－－", "여우"])
    err = capsys.readouterr().err
    assert 'a prompt goes after -p, in quotes: -p "붉은 －－ 여우"' in err and "U+FF0D" not in err, err


def test_a_hangul_output_name_too_long_for_its_latents_file_names_that_file(checkpoint, tmp_path, capsys):
    # 80 syllables are 240 bytes of UTF-8: the video's name fits the file system's 255, the latents file kept beside
    # it (for --resume) does not. The message cut the name to its last 12 characters, '....safetensors', which
    # named no file the user gave.
    name = "여" * 80
    args = ["run", "-m", str(checkpoint), "-p", "a fox", "-W", "64", "-H", "64", "--video-frames", "5"]
    code = cli.main([*args, "--steps", "1", "-o", str(tmp_path / f"{name}.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert ".latents.safetensors (that name is 260 bytes;" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "typed",
    [
        ["run", "-p", "a", "fox", "—come", "closer"],
        ["run", "-p", "a", "fox", "—complete"],
        ["run", "-p", "a", "fox", "—age"],
        ["verify", "-p", "a", "fox", "—for", "a", "moment"],
    ],
)
def test_a_prose_word_after_a_dash_keeps_the_prompt_hint(capsys, typed):
    # An em dash stuck to a word of an unquoted prompt was matched to a flag by typo (`—come`: "type --compile"),
    # and that look-alike hint turned the prompt advice off.
    with pytest.raises(SystemExit):
        cli.main(typed)
    err = capsys.readouterr().err
    assert "a prompt goes after -p, in quotes" in err and "U+2014" not in err, err


def test_no_word_of_the_docs_after_a_typographic_dash_is_taken_for_a_flag_it_is_not():
    # Only a word that is exactly a flag's name (`—steps`) is named as a look-alike flag; a typo is looked for only
    # behind two full-width dashes (`－－Stepz`).
    from pathlib import Path

    from motif_lite.cli import build_parser
    from motif_lite.cli.command_hints import subcommands
    from motif_lite.flag_spelling import lookalike_hint, option_strings, spelled

    docs = Path(__file__).resolve().parent.parent / "docs"
    words = {word for page in docs.glob("*.md") for word in re.findall(r"[A-Za-z][A-Za-z_-]*", page.read_text())}
    parsers = subcommands(build_parser())
    for command in ("run", "verify", "serve"):
        known = option_strings(parsers[command])
        for word in sorted(words):
            exact = {spelled("--" + word), spelled("-" + word)} & set(known)
            for dash in ("\u2014", "\u2013", "\u2212", "\u2010"):
                hint = lookalike_hint(dash + word, known)
                assert hint is None or exact, (command, dash + word, hint)


@pytest.mark.parametrize(
    "typed, flag",
    [(["-p", "fox", "-o\u3000x.mp4"], "-o"), (["-p\u3000fox"], "-p"), (["-p", "fox", "-i\u3000a.png"], "-i")],
)
def test_a_short_flag_glued_to_its_value_by_a_wide_space_is_named(capsys, tmp_path, monkeypatch, typed, flag):
    # argparse took the rest of the word for the value: `-o　x.mp4` wrote '　x.mp4', `-p　fox` the prompt '\u3000fox'.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", *typed, "--dry-run"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"U+3000 (ideographic space) where {flag} wants a space" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "word, dest, value",
    [
        ("-p\u3000赤い\u3000狐が\u3000走る", "prompt", "赤い\u3000狐が\u3000走る"),
        ("-o\u3000my video.mp4", "output", "my video.mp4"),
        ("-p\u3000a fox's den", "prompt", "a fox's den"),
    ],
)
def test_the_line_advised_for_a_wide_space_after_a_short_flag_gives_the_value_as_typed(capsys, word, dest, value):
    # The advice was `type -p 赤い 狐が 走る`: three words to the shell (an unquoted prompt), the prompt's own wide
    # spaces turned into spaces; `-o　my video.mp4` two words, `a fox's den` an unbalanced quote.
    import shlex

    with pytest.raises(SystemExit):
        cli.main(["run", word])
    advised = re.search(r": type (.*)$", capsys.readouterr().err.strip()).group(1)
    args, extras = cli.build_parser().parse_known_args(["run", *shlex.split(advised)])
    assert getattr(args, dest) == value and extras == [], advised


@pytest.mark.parametrize(
    "typed, dest, value",
    [
        (["-p\u3000", "a fox's den"], "prompt", "a fox's den"),
        (["-p", "fox", "--output\u3000", "my video.mp4"], "output", "my video.mp4"),
        (["-p", "fox", "--seed\u3000", "-3"], "seed", -3),
        (["-p", "fox", "--dry-run\u3000"], "dry_run", True),
    ],
)
def test_a_flag_that_ends_at_a_wide_space_is_advised_with_the_next_word_for_its_value(capsys, typed, dest, value):
    # `-p　 "fox"` (the input method's U+3000, then a space): the shell gives `-p　` and `fox`, and the advice was
    # `type -p ''`, an empty prompt; a switch was advised `--dry-run ''`.
    import shlex

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", *typed])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "U+3000 (ideographic space)" in err, err
    advised = re.search(r": type (.*)$", err).group(1)
    words = [word for word in typed if "\u3000" not in word and word not in shlex.split(advised)]
    args, extras = cli.build_parser().parse_known_args(["run", *words, *shlex.split(advised)])
    assert getattr(args, dest) == value and extras == [], advised


def test_a_flags_value_that_ends_at_a_wide_space_is_no_flag(capsys):
    # `-p "—steps　"`: the prompt, not a look-alike --steps; the unknown flag after it gets its own advice.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "\u2014steps\u3000", "--stepz", "4"])
    err = capsys.readouterr().err
    assert "U+3000" not in err and "did you mean --steps?" in err, err


@pytest.mark.parametrize(
    "typed, dest",
    [
        (["--prompt=\u8d64\u3044\u72d0\u3000"], "prompt"),
        (["-p=\u8d64\u3044\u72d0\u3000"], "prompt"),
        (["-p", "fox", "--negative-prompt=\u4f4e\u54c1\u8cea\u3000"], "negative_prompt"),
        (["-p", "fox", "-o=\u72d0.mp4\u3000"], "output"),
    ],
)
def test_a_value_given_after_equals_may_end_at_a_wide_space(capsys, typed, dest):
    # `--prompt=赤い狐　`: an input method types U+3000 for the space bar, and after '=' it is the value's, which
    # argparse passes on. The wide-space check took the word for a look-alike --prompt and refused the line.
    with pytest.raises(SystemExit):
        cli.main(["run", *typed, "--stepz", "4"])  # the unknown flag's error shows how far the line got
    err = capsys.readouterr().err
    assert "U+3000" not in err and "did you mean --steps?" in err, err
    args, _ = cli.build_parser().parse_known_args(["run", *typed])
    assert getattr(args, dest) == typed[-1].partition("=")[2]


@pytest.mark.parametrize("command", [["run"], []])
def test_a_lookalike_flag_with_its_value_after_equals_is_advised_without_another_value(capsys, command):
    # `－－steps=4　 -p fox` was advised `--steps=4 STEPS -p fox` (`-p` is no value), and without the command the
    # same: the value is the one after '='.
    import shlex

    with pytest.raises(SystemExit) if command else contextlib.nullcontext():
        assert cli.main([*command, "\uff0d\uff0dsteps=4\u3000", "-p", "fox"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    advised = re.search(r"(?:: type|did you mean motif-lite) (.*)$", err).group(1)
    words = shlex.split(advised) if not command else ["run", *shlex.split(advised), "-p", "fox"]
    args, extras = cli.build_parser().parse_known_args(words)
    assert (args.steps, args.prompt, extras) == (4, "fox", []), advised


def test_a_lookalike_flag_before_a_value_that_ends_at_a_wide_space_is_named(capsys):
    # `－－prompt "—steps　"`: the second word is the prompt of the look-alike --prompt. The wide-space check took it
    # for a look-alike --steps and named it alone, advising `--steps STEPS`: the first mistake was not named.
    with pytest.raises(SystemExit):
        cli.main(["run", "\uff0d\uff0dprompt", "\u2014steps\u3000", "--dry-run"])
    err = capsys.readouterr().err
    assert "\uff0d\uff0dprompt: it holds U+FF0D (fullwidth hyphen-minus) where --prompt wants" in err, err
    assert "type --steps STEPS" not in err, err


def test_a_flag_that_ends_at_a_wide_space_with_no_value_after_it_is_advised_with_the_value_s_name(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "-p\u3000"])
    assert capsys.readouterr().err.strip().endswith(": type -p PROMPT")


def test_a_wide_space_ended_flag_before_the_command_is_advised_with_its_value(capsys):
    # `motif-lite -p　 "a fox" --steps 4`: was "did you mean motif-lite run -p '' 'a fox' --steps 4".
    import shlex

    assert cli.main(["-p\u3000", "a fox", "--steps", "4"]) == cli.EXIT_USER_ERROR
    advised = re.search(r"did you mean motif-lite (.*)$", capsys.readouterr().err.strip()).group(1)
    args, extras = cli.build_parser().parse_known_args(shlex.split(advised))
    assert (args.prompt, args.steps, extras) == ("a fox", 4, []), advised


def test_a_value_that_starts_with_a_wide_space_as_a_word_of_its_own_is_kept():
    args, _ = cli.build_parser().parse_known_args(["run", "-p", "\u3000fox"])
    assert args.prompt == "\u3000fox"


@pytest.fixture(scope="module")
def left_cut_ckpt(ckpt, tmp_path_factory):
    # The tiny checkpoint with a tokenizer configured to cut a long prompt's start (truncation_side "left").
    import json
    import shutil

    root = tmp_path_factory.mktemp("left_cut")
    for folder in ("text_encoder", "tokenizer", "feature_extractor"):
        shutil.copytree(ckpt / folder, root / folder)
    config_path = root / "tokenizer" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "truncation_side": "left"}))
    return root


_LONG = " ".join(f"w{i}" for i in range(200)) + " THE END"  # 1 token a character: 600 over 512


def test_a_left_cutting_tokenizer_is_encoded_and_quoted_as_diffusers_cuts(left_cut_ckpt, caplog):
    # diffusers' pipeline uses the tokenizer as configured: it keeps the prompt's end. The advice quoted the start
    # and said "drops the last".
    from diffusers import MotifVideoPipeline
    from transformers import AutoTokenizer, T5Gemma2Encoder

    reference_encoder = T5Gemma2Encoder.from_pretrained(left_cut_ckpt / "text_encoder", dtype=torch.float32).eval()
    reference_tokenizer = AutoTokenizer.from_pretrained(left_cut_ckpt / "tokenizer")
    assert reference_tokenizer.truncation_side == "left"
    with torch.no_grad():
        ref, ref_mask = MotifVideoPipeline._get_prompt_embeds(
            None, reference_encoder, reference_tokenizer, [_LONG], device=torch.device("cpu"), dtype=torch.float32
        )
    encoder = load_text_encoder(left_cut_ckpt, dtype=torch.float32, device="cpu")
    embeds, mask = encoder.encode([_LONG])
    n = int(mask.sum())
    assert n == int(ref_mask.sum()) == MAX_PROMPT_TOKENS
    torch.testing.assert_close(embeds[0, :n], ref[0, :n], rtol=1e-5, atol=1e-5)

    assert f"prompt is {len(_LONG) + 1} tokens; dropped the first" in caplog.text
    cut = encoder.truncation(_LONG)
    advice = cut.advice("prompt")
    dropped = cut.tokens - cut.kept
    start = cut.kept_ending
    assert f"drops the first {dropped}" in advice and f"it reads from '{start} ...'" in advice, advice
    # The quoted start is where the tokens the reference keeps begin: those of the text from there on.
    kept_text = _LONG[_LONG.index(" " + start) + 1 :]
    reference_ids = reference_tokenizer(_LONG, truncation=True, max_length=MAX_PROMPT_TOKENS)["input_ids"]
    ours = reference_tokenizer(kept_text)["input_ids"]
    assert reference_ids[-(len(ours) - 1) :] == ours[1:] and len(reference_ids) - len(ours) < 3


def test_a_kept_part_of_only_spaces_is_said_so(tokenizer):
    # Was quoted as "it reads up to '... '".
    cut = prompt_truncation(tokenizer, " " * 600 + "fox")
    advice = cut.advice("prompt")
    assert "it reads none of its words (the part kept holds only spaces)" in advice and "'... '" not in advice


@pytest.mark.parametrize(
    "typed, hint",
    [
        (["decode", "－－output", "x.mp4"], "－－output: it holds U+FF0D (fullwidth hyphen-minus) where --output"),
        (["decode", "－－output"], "－－output: it holds U+FF0D (fullwidth hyphen-minus) where --output"),
        (["－－help"], "－－help: it holds U+FF0D (fullwidth hyphen-minus) where --help"),
    ],
)
def test_a_lookalike_flag_taken_for_a_positional_or_the_command_is_named(capsys, typed, hint):
    # Was "x.mp4: the output goes after -o" (the look-alike became the latents file), "no such latents file:
    # －－output", and argparse's "invalid choice".
    try:
        code = cli.main(typed)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and hint in err and "no such latents file" not in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "typed, hint",
    [
        (["SRC", "-o", "x.gguf", "--type\u3000Q4_K_M"], "U+3000 (ideographic space) where --type wants a space"),
        (["SRC", "-o", "x.gguf", "－－type", "Q4_K_M"], "it holds U+FF0D (fullwidth hyphen-minus) where --type wants"),
        (["－－type", "Q4_K_M", "SRC", "-o", "x.gguf"], "it holds U+FF0D (fullwidth hyphen-minus) where --type wants"),
    ],
)
def test_the_quantizer_names_a_lookalike_flag_as_motif_lite_does(capsys, typed, hint):
    # `--type　Q4_K_M` got only "unrecognized arguments", `－－type Q4_K_M` "the type goes after --type", and with
    # SRC after it "unrecognized arguments: Q4_K_M SRC" (SRC took the look-alike flag).
    from motif_lite.quantize.cli import main as quantize

    with pytest.raises(SystemExit) as exit_info:
        quantize(typed)
    quantizer_said = capsys.readouterr().err
    assert exit_info.value.code == 2 and hint in quantizer_said and "type --type" in quantizer_said, quantizer_said
    assert "goes after --type" not in quantizer_said and "Q4_K_M SRC" not in quantizer_said, quantizer_said


def test_a_flag_after_a_lookalike_flag_is_not_taken_for_its_value_by_the_quantizer(capsys):
    # `－－force --outtype f16`: --outtype (llama.cpp's) lost its "here --type" hint, skipped as －－force's value.
    from motif_lite.quantize.cli import main as quantize

    with pytest.raises(SystemExit):
        quantize(["SRC", "-o", "x.gguf", "－－force", "--outtype", "f16"])
    quantizer_said = capsys.readouterr().err
    assert "type --force" in quantizer_said and "--outtype:" in quantizer_said, quantizer_said


@pytest.mark.parametrize("typed", [["－－steps", "4", "-p", "fox"], ["\u2014steps=4", "-p", "fox"]])
def test_a_lookalike_run_flag_where_the_command_goes_gets_the_run_line(capsys, typed):
    # `--steps 4 -p fox` was told the command comes first; `－－steps 4 -p fox` got argparse's "invalid choice".
    import shlex

    assert cli.main(typed) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "the command comes first" in err and "U+" in err and "invalid choice" not in err, err
    line = err.strip().split("did you mean motif-lite ", 1)[1]
    args = cli.build_parser().parse_args(shlex.split(line))
    assert args.command == "run" and args.steps == 4 and args.prompt == "fox", line


def test_a_latents_file_named_like_a_lookalike_flag_is_read_not_refused(capsys, tmp_path, monkeypatch):
    # `decode –output` was refused as a look-alike of --output even where a file of that name exists: a real file
    # wins, and is read (this one is empty: refused as no latents file, by its name).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "\u2013output").write_bytes(b"")
    assert cli.main(["decode", "\u2013output"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "\u2013output is not a latents file" in err and "U+2013" not in err, err


@pytest.mark.parametrize(
    "typed, said",
    [
        (["--seed", "\u22121"], "got '\u22121'; it holds U+2212 (minus sign) where a number has '-'"),
        (["--cfg-scale", "７．５"], "got '７．５'; it holds U+FF0E (fullwidth full stop) where a number has '.'"),
        (["--steps", "－３"], "got '－３'; it holds U+FF0D (fullwidth hyphen-minus) where a number has '-'"),
    ],
)
def test_a_number_typed_with_lookalike_signs_names_them(capsys, typed, said):
    # Was "must be ... or -1 for a random seed, got '−1'": a value that looks like the valid one.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", *typed])
    err = capsys.readouterr().err
    typed_in_ascii = {"\u22121": "type -1", "７．５": "type 7.5", "－３": "type -3"}[typed[1]]
    assert exit_info.value.code == 2 and said in err and typed_in_ascii in err, err


def test_a_long_name_cut_short_keeps_the_batch_counter_before_its_extensions():
    # A batch's second video's latents file: shown as '여…(40)....latents.safetensors', its `_1` cut.
    import errno

    from motif_lite.paths import name_too_long

    name = "여" * 82 + "_1.latents.safetensors"
    said = name_too_long(OSError(errno.ENAMETOOLONG, "File name too long", f"/tmp/{name}"))
    assert f"/tmp/{'여' * 40}..." in said and "_1.latents.safetensors (that name is" in said, said


def test_a_truncation_side_transformers_cannot_read_is_named_by_its_file_and_key(tmp_path):
    # Was transformers' "Truncation side should be selected between 'right' and 'left'", naming neither.
    import json

    from motif_lite.encoders.tokenizer_config import check_tokenizer_config
    from motif_lite.errors import CheckpointError

    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"truncation_side": "middle"}))
    with pytest.raises(CheckpointError, match=r"tokenizer_config.json: truncation_side must be 'right' or 'left'"):
        check_tokenizer_config(path)


@pytest.mark.parametrize("word, flag", [("-o=\u3000x.mp4", "-o"), ("--output=\u3000x.mp4", "--output")])
def test_a_wide_space_after_a_flags_equals_sign_is_named_with_the_line(capsys, tmp_path, monkeypatch, word, flag):
    # argparse takes what follows '=' for the value: `-o=　x.mp4` wrote '　x.mp4' as `-o　x.mp4` did.
    import shlex

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", word, "--dry-run"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "U+3000 (ideographic space)" in err and flag in err, err
    advised = re.search(r": type (.*)$", err.strip()).group(1)
    args, extras = cli.build_parser().parse_known_args(["run", "-p", "fox", *shlex.split(advised)])
    assert args.output == "x.mp4" and extras == [], advised
    assert list(tmp_path.iterdir()) == []


def _exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def test_a_word_without_a_dash_is_no_lookalike_flag_though_a_flags_name_leads_it(capsys):
    # A prompt left unquoted may hold a word such as `seed　of` (a flag's name, then U+3000): it is told as the
    # rest of a prompt, not as --seed typed with a wide space.
    assert _exit_code(["run", "-p", "a", "fox", "seed\u3000of", "life", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "U+3000" not in err and "type --seed" not in err, err


def test_a_lookalike_long_flag_is_matched_to_long_flags_only_as_its_ascii_spelling_is(capsys):
    # `－－o` is two dashes and a letter: in ASCII, `--o` is no flag and is not told it means -o; nor is the look-alike.
    told = {}
    for dashes in ("--", "\uff0d\uff0d"):
        assert _exit_code(["run", "-p", "fox", f"{dashes}o", "x.mp4", "--dry-run"]) == 2
        told[dashes] = capsys.readouterr().err
    assert all("where -o wants" not in err and "type -o" not in err for err in told.values()), told


def test_a_dangling_link_named_like_a_lookalike_flag_is_read_not_refused(capsys, tmp_path, monkeypatch):
    # A link whose file is gone is still a name the user made there: it is told as the link it is.
    import os

    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "gone.latents.safetensors", "\u2013output")
    assert cli.main(["decode", "\u2013output"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "U+2013" not in err and "\u2013output" in err, err


def test_a_wide_space_inside_a_value_glued_to_its_flag_is_part_of_it():
    # Only a wide space where the value starts is the typo: one in a file's name (`-o=my　video.mp4`) is kept.
    for word in ("-o=my\u3000video.mp4", "--output=my\u3000video.mp4", "-omy\u3000video.mp4"):
        args, _ = cli.build_parser().parse_known_args(["run", "-p", "fox", word])
        assert args.output == "my\u3000video.mp4", word
