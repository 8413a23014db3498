"""Notes on a prompt the text encoder may not read as the user means it: one mostly in another script than Latin
(the training captions were English only), one with decomposed (NFD) characters or marks out of order, a line of a
text file with its byte-order mark or Windows line end, and other tools' syntax that is read as plain text here
(ComfyUI's and A1111's weights, A1111's LoRA tags). Notes only: the prompt is never rewritten."""

from __future__ import annotations

import json
import re
import unicodedata

from motif_lite.errors import Audience
from motif_lite.shell_syntax import quoted

# Languages by the script of their letters (the first word of the letters' Unicode names, after HALFWIDTH or
# FULLWIDTH): kanji and hanja ("CJK", Chinese characters) count as Japanese where there is kana, as Korean where
# there is Hangul (a Korean prompt with a word in hanja and kana, "붉은 여우 きつね", is still Korean by most letters);
# other scripts are named as scripts (Cyrillic, Arabic, ...).
_LANGUAGES = {"HIRAGANA": "Japanese", "KATAKANA": "Japanese", "HANGUL": "Korean", "CJK": "Chinese"}


def _script(letter: str) -> str:
    """The first word of `letter`'s Unicode name that names a script: "ｱ" (HALFWIDTH KATAKANA LETTER A) is KATAKANA."""
    words = unicodedata.name(letter, "?").split()
    return words[1] if words[0] in ("HALFWIDTH", "FULLWIDTH") and len(words) > 1 else words[0]


def language_notes(text: str, label: str) -> list[str]:
    """A note when most letters of `text` are of a script other than Latin (Chinese, Korean, Cyrillic, ...): the
    training captions were English only, so such a prompt may be followed loosely, and a user coming from models
    trained on Chinese too (Wan) would otherwise blame the runtime. Latin-script languages are not told apart from
    English: they get no note."""
    scripts = [_script(c) for c in text if c.isalpha() and _script(c) != "LATIN"]
    letters = sum(c.isalpha() for c in text)
    if not scripts or len(scripts) * 2 <= letters:
        return []
    languages = [_LANGUAGES.get(script, f"{script.title()} script") for script in scripts]
    if "Chinese" in languages:  # Chinese characters belong to the Japanese or Korean around them
        around = max(("Japanese", "Korean"), key=languages.count)
        if around in languages:
            languages = [around if language == "Chinese" else language for language in languages]
    language = max(dict.fromkeys(languages), key=languages.count)
    return [
        f"the {label} is mostly in {language}: the model was trained on English captions only, so it may follow "
        f"this {label} loosely; an English translation is what it knows best"
    ]


def line_end_notes(text: str, label: str) -> list[str]:
    """Notes on what a text file adds to a line read from it: a byte-order mark first (U+FEFF, a file saved as "UTF-8
    with BOM") and a carriage return last (a Windows line end, CRLF). `while read -r prompt` keeps both, and the text
    encoder reads each as a character of its own: the video differs from the prompt's as typed, without a word. A
    carriage return inside a prompt (a web form's multi-line text) is left alone."""
    notes = []
    if text.startswith("\ufeff"):
        notes.append(
            f"the {label} starts with U+FEFF, a byte-order mark (a file saved as UTF-8 with BOM), which the text "
            f"encoder reads as a character: the video differs from the {label} without it; remove it (save the "
            "file as UTF-8 without BOM)"
        )
    if text.endswith("\r"):
        notes.append(
            f"the {label} ends with a carriage return (\\r: a Windows line end, CRLF, of a file read line by line), "
            f"which the text encoder reads as a character: the video differs from the {label} without it; remove it "
            "(tr -d '\\r' < prompts.txt, or prompt=${prompt%$'\\r'} in a shell loop)"
        )
    return notes


def composition_notes(text: str, label: str) -> list[str]:
    """A note when `text` holds decomposed characters that Unicode's composed form (NFC) writes as one: Hangul typed
    as its letters (여 as ᄋ + ᅧ) or an accent as a mark of its own, as macOS file names, text copied from them and
    some input methods give. The tokenizer does not compose them (nor does diffusers' pipeline), so the text encoder
    reads other tokens than for the same words typed composed, and the video differs. The prompt is not rewritten:
    the note says how. Compatibility characters that NFC maps one for one (a hanja's compatibility ideograph) are
    not told: they are typed as one character, and are nothing decomposed. One note for the whole text, however
    many such characters it holds. Where NFC only puts marks in their canonical order (a Devanagari virama typed
    before a nukta), nothing is decomposed: the note says the marks are out of order instead."""
    if not _has_decomposed_characters(text):
        return []
    composed = unicodedata.normalize("NFC", text)
    if sorted(composed) == sorted(text):  # the same characters: NFC composed none, it only reordered marks
        found = (f"the {label} has combining marks out of Unicode's canonical order, which the text encoder reads as "
                 f"other tokens than the same {label} with them in order (NFC)")  # fmt: skip
    else:
        found = (f"the {label} has decomposed characters (Unicode NFD: Hangul as separate letters, an accent as a "
                 "mark of its own, as macOS file names and some input methods give), which the text encoder reads as "
                 f"other tokens than the same {label} typed composed (NFC)")  # fmt: skip
    return [
        f"{found}: the video differs from that {label}'s; to match it, convert the {label} to NFC (uconv -x any-nfc, "
        "or Python's unicodedata.normalize('NFC', text))"
    ]


def _has_decomposed_characters(text: str) -> bool:
    """Whether NFC composes or reorders characters of `text` across character boundaries: a letter and the marks
    after it (`e` + U+0301), Hangul's letters, marks out of their canonical order. Comparing lengths missed a text
    whose NFC form is as long (one of its characters NFC writes as two, U+0344), and `is_normalized` alone also
    holds a compatibility ideograph, which NFC maps by itself: each character normalized alone keeps those maps,
    and differs from the whole text normalized only where characters combine."""
    if unicodedata.is_normalized("NFC", text):
        return False
    return unicodedata.normalize("NFC", text) != "".join(unicodedata.normalize("NFC", char) for char in text)


# Other tools' prompt syntax, which the text encoder reads as plain text here (as in diffusers' pipeline):
# ComfyUI's and A1111's emphasis "(red fox:1.3)" and "((red fox))" (words before the colon: "(16:9)" is no weight),
# and A1111's LoRA tags "<lora:name:0.8>".
_WEIGHTED = re.compile(r"\([^()]*[^\W\d_][^()]*:\s*-?\d+(?:\.\d+)?\s*\)|\(\([^()]+\)\)")
_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::\s*(-?\d+(?:\.\d+)?))?\s*>", re.IGNORECASE)


def syntax_notes(text: str, label: str, audience: Audience = Audience.RUN_OR_PYTHON) -> list[str]:
    """Notes for other tools' prompt syntax in `text`, which is read as plain text here: a user coming from
    ComfyUI or A1111 expects `(red fox:1.3)` to weigh words and `<lora:name:0.8>` to load a LoRA (the note gives
    the LoRAs as `audience` applies them)."""
    notes = []
    if weighted := _WEIGHTED.search(text):
        notes.append(
            f"the {label} has {weighted[0]!r}, ComfyUI's and A1111's weighting syntax: motif-lite, like diffusers, "
            "gives the text encoder the prompt as written, so the brackets (and any number) are read as text; "
            "describe what matters in words instead"
        )
    if tags := list(_LORA_TAG.finditer(text)):
        notes.append(_lora_tags_note(tags, label, audience))
    return notes


def _lora_tags_note(tags: list[re.Match], label: str, audience: Audience) -> str:
    """The note on A1111's LoRA tags: every one of them, as the --lora flags that apply them, or for a server's
    client as its `loras` field."""
    tag_list = ", ".join(repr(tag[0]) for tag in tags)
    many = len(tags) > 1
    files = [(f"{tag[1].strip()}.safetensors", tag[2]) for tag in tags]  # (file, strength as written or None)
    if audience is Audience.API:
        entries = [{"name": file} if strength is None else {"name": file, "strength": float(strength)}
                   for file, strength in files]  # fmt: skip
        fix = f'loras {json.dumps(entries)} (docs/server.md, "Per-job LoRAs")'
    else:
        flags = " ".join(f"--lora {quoted(file + (f':{strength}' if strength else ''))}" for file, strength in files)
        fix = f'{flags} (docs/usage.md, "LoRA adapters")'
    return (
        f"the {label} has {tag_list}, A1111's LoRA {'tags, which are' if many else 'tag, which is'} read as text here: "
        f"to apply {'them' if many else 'it'}, give {fix}"
    )
