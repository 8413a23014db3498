"""GGUF files: a path, a folder holding one, or a variant of the official GGUF repo (`find_gguf`), and the fix
for a damaged, mismatched or foreign GGUF file.

A variant such as `Q4_K_M` is looked up in the cache of the official GGUF repo, then (online) in the repo's file
list, and the one file whose name carries the variant as a whole token is downloaded.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from huggingface_hub import hf_hub_download

from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import Audience, CheckpointError, Spelling
from motif_lite.io.file_kinds import starts_as_gguf
from motif_lite.io.hub import (
    HUB_ERRORS,
    DownloadPlan,
    HubAccess,
    HubAddress,
    cached_snapshot,
    hub_address,
    is_repo_id,
    local_dir_for,
    local_folder_for,
    quiet_hub,
    refuse_unknown_repo,
    revision_problem,
    start_download,
)
from motif_lite.io.missing_report import MissingFiles, MissingFilesError
from motif_lite.paths import user_path
from motif_lite.shell_syntax import pattern_quoted, quoted

_VARIANT = re.compile(r"^[A-Za-z0-9_]+$")  # Q4_K_M, Q8_0, BF16, ...


def is_gguf_variant(variant_or_path: str | Path) -> bool:
    """Whether `--gguf` names a variant of the official GGUF repo (e.g. Q4_K_M) rather than a file or folder."""
    text = str(variant_or_path)
    path = user_path(text)
    return not (path.suffix.lower() == ".gguf" or path.exists() or not _VARIANT.match(text))


def find_gguf(variant_or_path: str | Path, hub: HubAccess | None = None, model: str | None = None) -> Path:
    """A local `.gguf` file for a path, a folder holding exactly one, or a variant name of the official GGUF repo.

    A variant such as `Q4_K_M` is looked up in the cache of `Motif-Technologies/Motif-Video-2B-GGUF`, then (online)
    in the repo's file list, and the one file whose name carries the variant as a whole token is downloaded.
    `model`: -m as given, which the fix for a quantizer's partial file quantizes from (a placeholder when unknown).
    Raises `MissingFilesError` when it cannot be had, `CheckpointError` for a wrong path.
    """
    hub = hub or HubAccess()
    text = str(variant_or_path)
    if not is_gguf_variant(text):
        if (address := gguf_address_problem(text)) is not None:
            raise CheckpointError("{}: {}; {}".format(text, *address))
        if (partial := partial_gguf_problem(user_path(text), model)) is not None:
            raise CheckpointError("{}: {}; {}".format(text, *partial))
        return _local_gguf(user_path(text), text)
    text = _file_spelling(text)
    cached = cached_variant(text)
    if cached is not None:
        return cached
    refuse_unknown_variant(text)
    pattern = f"*{text.upper()}*.gguf"  # the repo's spelling: `hf download --include` matches letter case
    missing = MissingFiles(GGUF_REPO, (pattern,), (pattern,), local_dir_for(GGUF_REPO), "")
    if not hub.online:
        reason = hub.offline_reason or "downloads are off"
        raise MissingFilesError([_with_reason(missing, reason)])
    try:
        sizes = {name: size for name, size in hub.file_sizes(GGUF_REPO).items() if name.endswith(".gguf")}
    except HUB_ERRORS as exc:
        refuse_unknown_repo(exc, GGUF_REPO, "--gguf")
        failed = hub.failed("listing the GGUF repo", exc, GGUF_REPO)
        raise MissingFilesError([_with_reason(missing, failed)]) from exc
    name = _pick_variant(list(sizes), text)
    start_download(DownloadPlan.of(GGUF_REPO, sizes, [name], cached_snapshot(GGUF_REPO)), hub.before_download)
    try:
        with quiet_hub():
            return Path(hf_hub_download(GGUF_REPO, name))
    except HUB_ERRORS as exc:
        raise MissingFilesError([_with_reason(missing, hub.failed("download", exc, GGUF_REPO))]) from exc


def _file_spelling(variant: str) -> str:
    """A variant as GGUF file names spell it: the quantizer's aliases FP16 and FP32 are F16 and F32 in llama.cpp's
    names and ours (`hf download --include '*FP16*.gguf'` would fetch nothing). Its other aliases (Q4_K: Q4_K_M)
    name a recipe, not a file's type, and are left as given."""
    from motif_lite.quantize.recipes import ALIASES

    spelled = ALIASES.get(variant.upper())
    return spelled if spelled in ("F16", "F32") else variant


def refuse_unknown_variant(variant: str, *, audience: Audience = Audience.RUN_OR_PYTHON) -> None:
    """A `gguf` variant that is no quantization type's name (Q4KM, 4bit, Q4_K_N): a `CheckpointError` with the
    closest name and the names there are (`unknown_variant_problem`), said before the Hub is asked (or, offline,
    instead of a download command that would fetch nothing). Worded for a Python caller and run alike, or
    (`Audience.FLAGS`) as motif-lite run's and serve's flags alone."""
    if (found := unknown_variant_problem(variant, audience=audience)) is not None:
        raise CheckpointError("{}: {}: {}".format(_gguf_setting(variant, audience), *found))
    refuse_unrunnable_variant(variant, audience=audience)


def refuse_unrunnable_variant(variant: str, *, audience: Audience = Audience.RUN_OR_PYTHON) -> None:
    """A `gguf` variant that names a GGUF type motif-lite cannot run (TQ1_0, IQ1_S): its `CheckpointError`
    (`unrunnable_variant_problem`), said before the Hub is asked: a file of that type would be downloaded only to be
    refused when it loads. `audience` as for `refuse_unknown_variant`."""
    if (found := unrunnable_variant_problem(variant, audience=audience)) is not None:
        raise CheckpointError("{}: {}: {}".format(_gguf_setting(variant, audience), *found))


def refuse_variant_flag(gguf: str | Path | None) -> None:
    """--gguf's variant refused by its name (`refuse_unknown_variant`) in motif-lite run's and serve's words, before
    `locate_sources` would refuse it in a Python caller's. A variant the cache holds is left to the load, as there."""
    if gguf is None or not is_gguf_variant(str(gguf)):
        return
    variant = _file_spelling(str(gguf))
    if cached_variant(variant) is None:
        refuse_unknown_variant(variant, audience=Audience.FLAGS)


def _gguf_setting(variant: str | None, audience: Audience) -> str:
    """The `gguf` setting of `variant` (None: the setting itself, to be given one) in `audience`'s words
    (`Spelling.to`): '--gguf Q4_K_M' to run's and serve's flags alone, else both spellings, as the checks run and
    the Python API share say it: "--gguf Q4_K_M (in Python gguf='Q4_K_M')"."""
    flag, keyword = ("--gguf", "gguf=") if variant is None else (f"--gguf {variant}", f"gguf={variant!r}")
    # No field of the server's API picks the GGUF: a server's is its operator's `serve --gguf`.
    return Spelling(flag, keyword, field=flag).to(audience)


def unrunnable_variant_problem(variant: str, *, audience: Audience = Audience.RUN_OR_PYTHON) -> tuple[str, str] | None:
    """(problem, fix) for a variant that names a GGUF type motif-lite cannot run (TQ1_0, IQ1_S): the nearest variant
    it runs first (`nearest_recipe`), then all it runs; the setting named as `_gguf_setting` names it. None for any
    other name."""
    from gguf import GGMLQuantizationType

    from motif_lite.quantize.recipes import ALIASES, LOADABLE_TYPES, RECIPES, nearest_recipe

    upper = variant.upper()
    if upper not in GGMLQuantizationType.__members__ or GGMLQuantizationType[upper] in LOADABLE_TYPES:
        return None
    # Our quantizer's recipes (each of a type it runs), then the types it runs that no recipe or alias names.
    others = sorted(kind.name for kind in LOADABLE_TYPES if kind.name not in RECIPES and kind.name not in ALIASES)
    runnable = f"{', '.join([*RECIPES, *others])} (any letter case)"
    problem = f"motif-lite cannot run a file of GGUF type {upper}"
    if (nearest := nearest_recipe(upper)) is None:
        return problem, f"give {_gguf_setting(None, audience)} a variant it runs: {runnable}"
    return problem, f"{_gguf_setting(nearest, audience)} is the nearest variant it runs; it runs {runnable}"


def unknown_variant_problem(variant: str, *, audience: Audience = Audience.RUN_OR_PYTHON) -> tuple[str, str] | None:
    """(problem, fix) for a variant that is no quantization type's name: the closest name (`nearest_recipe`), then
    the names there are; the setting named as `_gguf_setting` names it. A type's name in any letter case passes
    (None): the Hub's listing says whether the repo has it."""
    from motif_lite.quantize.recipes import RECIPES, nearest_recipe  # gguf-py's names: once needed

    if variant.upper() in quantization_type_names():
        return None
    nearest = nearest_recipe(variant)
    problem = "no such file, and no quantization type has that name"
    named = (
        f"a variant of {GGUF_REPO} is named by its type, in any letter case: {', '.join(RECIPES)}, or another of "
        "llama.cpp's (IQ4_XS, ...)"
    )
    if nearest is None:
        return problem, named
    return f"{problem}; the closest is {nearest}", f"{_gguf_setting(nearest, audience)}; {named}"


def _variant_spelled(name: str) -> str | None:
    """The quantization type a file name that is not there spells with other separators or letter case
    (q4-k-m.gguf, Q4KM): the user meant the official variant; None for other names."""
    stem = name[: -len(".gguf")] if name.lower().endswith(".gguf") else name
    return _unseparated_type_names().get(re.sub(r"[\W_]", "", stem).upper())


@functools.cache
def _unseparated_type_names() -> dict[str, str]:
    """Each quantization type's name without its separators (Q4KM) -> the name (Q4_K_M)."""
    return {re.sub(r"[\W_]", "", known): known for known in quantization_type_names()}


@functools.cache
def quantization_type_names() -> frozenset[str]:
    """The names of GGUF's quantization types, upper case: gguf-py's tensor types (Q4_K, IQ4_XS, BF16) and
    llama.cpp's file types (Q4_K_M, Q3_K_L), and our quantizer's recipes with their aliases; read once."""
    from gguf import GGMLQuantizationType, LlamaFileType

    from motif_lite.quantize.recipes import ALIASES, RECIPES

    file_types = {name.split("_", 1)[1] for name in LlamaFileType.__members__ if name != "GUESSED"}
    return frozenset({*GGMLQuantizationType.__members__, *file_types, *RECIPES, *ALIASES})


def gguf_address_problem(text: str, flag: str = "--gguf") -> tuple[str, str] | None:
    """For a Hub web address (or `repo:file`) given to `flag` (--gguf, which reads local files and official
    variants, or --text-encoder-gguf, local files only): (the problem, the fix: the variant's name for a file of the
    official transformer repo, else the download of the file and the path to give); None for anything else."""
    other_kind = next((match for pattern in _OTHER_REPO_KINDS if (match := pattern.match(text))), None)
    if other_kind is not None and not user_path(text).exists():
        return _other_repo_kind_problem(other_kind, flag)
    address = hub_address(text)
    if address is None or user_path(text).exists():
        return None
    if address.repo.lower() == MOTIF_REPO.lower():  # the checkpoint's repo: safetensors only, no download fetches one
        return _checkpoint_repo_problem(address, flag)
    if flag != "--gguf" and address.repo.lower() == GGUF_REPO.lower():  # the transformer's variants only
        problem = f"{flag} takes a text encoder GGUF file, and {GGUF_REPO} holds the transformer's only"
        return problem, f"make one from the checkpoint's text encoder: {make_text_encoder_gguf(flag, MOTIF_REPO)}"
    official = flag == "--gguf" and address.repo.lower() == GGUF_REPO.lower() and address.revision == "main"
    folder_page = address.path is not None and not address.path.lower().endswith(".gguf")  # .../tree/main/vae
    if folder_page and not official:
        return _folder_address_problem(address, flag)
    # The official repo's folder page is read for the variant its name carries (.../tree/main/Q8_0: Q8_0).
    tag = None if (address.file or "").lower() in ("", "latest") else address.file  # "latest": Ollama's default
    variant = _official_variant(tag) if official and tag else None
    if variant is not None:
        return "--gguf takes the variant a file of the official repo carries", f"--gguf {variant}"
    if official and not (tag or "").lower().endswith(".gguf"):  # the repo alone, or a tag that names no type
        return "--gguf takes a variant of the official repo", "e.g. --gguf Q4_K_M"
    return (
        f"{flag} reads a file on this machine, not a web address",
        f"download it first: {_download(address, tag, flag)}",
    )


# huggingface_hub's address of a dataset's or a Space's file: hf://datasets/owner/name[@revision]/path
_OTHER_REPO_KIND = re.compile(
    r"^hf://(?P<kind>datasets|spaces)/(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<revision>[^/]+))?(?:/(?P<file>.+?))?/?$"
)
# The web address of one, as the Hub's page and its download button give it: huggingface.co/datasets/owner/name/
# blob/main/path (a model repo's is `hub.hub_address`'s).
_OTHER_REPO_KIND_WEB = re.compile(
    r"^(?:https?:/+)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<kind>datasets|spaces)/(?P<repo>[\w.-]+/[\w.-]+?)"
    r"(?:/(?:resolve|blob|tree)/(?P<revision>[^/]+)(?:/(?P<file>[^?]+?))?)?/?(?:\?.*)?$"
)
# A canonical dataset's, which has no owner (squad; every Space has one): hf://datasets/squad[@revision]/x.gguf,
# the name followed by a GGUF file or by nothing (hf://datasets/squad/q4/x.gguf reads as the repo squad/q4, owners
# being the rule now), and huggingface.co/datasets/squad/blob/main/x.gguf. Read as owner/name, squad/x.gguf was the
# repo.
_OWNERLESS_REPO_KIND = re.compile(
    r"^hf://(?P<kind>datasets)/(?P<repo>[A-Za-z0-9][\w.-]*?)(?:@(?P<revision>[^/]+))?"
    r"(?:/(?P<file>[^/]+\.(?i:gguf)))?/?$"
)
_OWNERLESS_REPO_KIND_WEB = re.compile(
    r"^(?:https?:/+)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<kind>datasets)/(?P<repo>[\w.-]+?)"
    r"(?:/(?:resolve|blob|tree)/(?P<revision>[^/]+)(?:/(?P<file>[^?]+?))?)?/?(?:\?.*)?$"
)
# Tried in this order: an owner-less name before a GGUF file, then owner/name, then an owner-less page.
_OTHER_REPO_KINDS = (_OWNERLESS_REPO_KIND, _OTHER_REPO_KIND, _OTHER_REPO_KIND_WEB, _OWNERLESS_REPO_KIND_WEB)


def _other_repo_kind_problem(match: re.Match[str], flag: str) -> tuple[str, str]:
    """(problem, fix) for hf://datasets/... or hf://spaces/... given to `flag`, or its web address
    (huggingface.co/datasets/...): the download of its file with hf's --repo-type, and the path to give then. It was
    "no such GGUF file: hf:/datasets/..." (a path made one slash of two), which named neither the address as typed
    nor where the file comes from."""
    kind, repo, file = match["kind"][:-1], match["repo"], match["file"] or "FILE.gguf"
    folder = local_folder_for(repo)
    revision = unquote(match["revision"] or "main")  # refs%2Fpr%2F1 in both addresses; hf download takes it plain
    revision = f" --revision {quoted(revision)}" if revision != "main" else ""
    what, given = quoted(file), f"{folder}/{file}"
    if not file.lower().endswith(".gguf"):  # a folder (.../tree/main/q4), or a file beside the GGUF: the folder's
        inside = PurePosixPath(file).parent if PurePosixPath(file).suffix else PurePosixPath(file)
        top = inside == PurePosixPath(".")  # README.md at the repo's top: its .gguf files there
        what = f"--include {quoted('*.gguf' if top else f'{inside}/*.gguf')}"
        given = str(folder) if top else f"{folder}/{inside}"  # a folder of one GGUF, which single_gguf reads
    command = f"hf download {repo} {what} --repo-type {kind}{revision} --local-dir {quoted(folder)}"
    return (
        f"{flag} reads a file on this machine, not a {kind} repo's address",
        f"download it first: {command}, then {flag} {quoted(given)}",
    )


def _download(address: HubAddress, tag: str | None, flag: str) -> str:
    """The `hf download` of the GGUF file of `address.repo` that `tag` names (a file name, or a type such as
    Q4_K_M), or of the one the user picks (FILE.gguf) where there is no tag, then `flag` with what it fetched."""
    folder = local_folder_for(address.repo)
    revision = f" --revision {quoted(address.revision)}" if address.revision != "main" else ""
    if tag and tag.lower().endswith(".gguf"):
        command = f"hf download {address.repo} {quoted(tag)}{revision} --local-dir {quoted(folder)}"
        then = f"{flag} {quoted(f'{folder}/{tag}')}"
    else:  # a tag (Q4_K_M), or the repo alone: the file of that tag, or one the user picks
        pattern = f"*{_in_file_names(tag)}*.gguf" if tag else "FILE.gguf"
        command = f"hf download {address.repo} --include {quoted(pattern)}{revision} --local-dir {quoted(folder)}"
        then = f"{flag} {quoted(folder)}"
    return f"{command}, then {then}"


def _checkpoint_repo_problem(address: HubAddress, flag: str) -> tuple[str, str]:
    """(problem, fix) for an address of the official checkpoint's repo (MOTIF_REPO: a folder's page such as
    .../tree/main/transformer, a file's, the repo's) given to `flag`: that repo holds safetensors and no GGUF, so the
    download `_folder_address_problem` gives would fetch nothing. The folder's files are named when the cache holds
    them; the fix is -m for its safetensors, or the GGUF repo's variant (the one a tag names, as Q4_K_M)."""
    path = PurePosixPath(address.path or "")
    folder = path.parent if path.suffix else path  # a file's name has an extension, a folder's (vae) none
    where = MOTIF_REPO if folder == PurePosixPath(".") else f"the folder {folder.as_posix()}/ of {MOTIF_REPO}"
    listed = _cached_entries(MOTIF_REPO, folder) if address.revision == "main" else []
    holds = f" (it holds {', '.join(listed)})" if listed else ""
    problem = f"{flag} takes a GGUF file, and {where} holds none{holds}"
    # Another revision (.../tree/dev) runs from a folder it is downloaded into, as -m's own check of it says.
    revision = revision_problem(f"{MOTIF_REPO}@{address.revision}") if address.revision != "main" else None
    run, checkpoint = (revision[1], local_folder_for(MOTIF_REPO)) if revision else (f"-m {MOTIF_REPO}", MOTIF_REPO)
    leave_out = f"{run} runs its safetensors as they are (leave out {flag})"
    if flag != "--gguf":
        make = make_text_encoder_gguf(flag, checkpoint)
        return problem, f"{leave_out}, or make a text encoder GGUF from them: {make}"
    variant = variant_named_by(address)
    give = f"--gguf {variant}" if variant else "e.g. --gguf Q4_K_M"
    return problem, f"{leave_out}; the GGUF files are the variants of {GGUF_REPO}: {give}"


def make_text_encoder_gguf(flag: str, checkpoint: str) -> str:
    """The quantizer's command that makes a text encoder GGUF from `checkpoint` (a repo id or folder), and `flag`
    given it: no text encoder GGUF is published."""
    quantize = (
        f"python -m motif_lite.quantize {quoted(checkpoint)} --component text_encoder --type Q8_0 -o te-Q8_0.gguf"
    )
    return f"{quantize}, then {flag} te-Q8_0.gguf"


def variant_named_by(address: HubAddress) -> str | None:
    """The quantization type an address's tag or file name carries (hf.co/REPO:Q4_K_M, .../x-Q8_0.gguf), as given;
    None when it names none."""
    named = PurePosixPath(address.file or "").name.removesuffix(".gguf")
    variant = _variant_named(named) if named else None
    return variant if variant and variant.upper() in quantization_type_names() else None


def _cached_entries(repo: str, folder: PurePosixPath, most: int = 6) -> list[str]:
    """The names in `folder` of the cached snapshot of `repo` (a folder's with a slash), at most `most` and "..."
    after them; none when the cache does not hold that folder. No network."""
    snapshot = cached_snapshot(repo)
    place = None if snapshot is None else snapshot / folder
    if place is None or not place.is_dir():
        return []
    names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in place.iterdir())
    return names[:most] + (["..."] if len(names) > most else [])


def _folder_address_problem(address: HubAddress, flag: str) -> tuple[str, str]:
    """(problem, fix) for a folder of a repo's web address (.../tree/main/vae) given to `flag`, or a file that is
    no GGUF (.../blob/main/vae/config.json: its folder): the download of that folder's .gguf files, and the folder to
    give, which `single_gguf` reads. Its name is no tag: `--include '*vae*.gguf'` fetched nothing of vae/x.gguf."""
    path = PurePosixPath(address.path or "")
    folder = path.parent if path.suffix else path  # a file's name has an extension, a folder's (vae) none
    local = local_folder_for(address.repo)
    revision = f" --revision {quoted(address.revision)}" if address.revision != "main" else ""
    pattern = "*.gguf" if folder == PurePosixPath(".") else f"{folder}/*.gguf"
    command = f"hf download {address.repo} --include {quoted(pattern)}{revision} --local-dir {quoted(local)}"
    then = f"{flag} {quoted(local if pattern == '*.gguf' else f'{local}/{folder}')}"
    return f"{flag} reads a file on this machine, not a web address", f"download it first: {command}, then {then}"


def partial_quantizer_output(path: Path) -> bool:
    """Whether `path` is named as the quantizer's OUT.tmp: the file a run writes and renames to OUT.gguf when done,
    left behind only by a run that was killed (kill -9) or a machine that crashed, and then cut short."""
    return path.name.lower().endswith(".gguf.tmp")


def partial_gguf_problem(path: Path, model: str | None = None, flags: str = "") -> tuple[str, str] | None:
    """For a quantizer's OUT.tmp (`partial_quantizer_output`) given as a GGUF file: (the problem, the fix: delete it
    and quantize again from the checkpoint -m names, `model` as given, with `flags` such as `--component
    text_encoder`); None for any other path. Its header looks whole, so without this a run would load it and fail
    on its missing tensor data, or take a file the quantizer never finished. A download's unfinished name
    (`unfinished_download_problem`) is said too."""
    if (unfinished := unfinished_download_problem(path)) is not None:
        return unfinished
    if not (partial_quantizer_output(path) and path.is_file()):  # a missing one is "no such file", as any other
        return None
    source = quoted(model) if model else "CHECKPOINT"
    out = quoted(str(path.with_name(path.name[: -len(".tmp")])))
    return (
        "is the partial file of a quantizer run that stopped before it finished (the quantizer writes OUT.tmp and "
        "renames it to OUT when done)",
        f"delete it and quantize again: python -m motif_lite.quantize {source}{flags} -o {out}",
    )


# The names a download has until it is done: a browser's (Firefox's .part, Chrome's .crdownload), huggingface_hub's.
_UNFINISHED_DOWNLOAD = (".part", ".crdownload", ".incomplete")


def unfinished_download_problem(path: Path) -> tuple[str, str] | None:
    """For a GGUF file named as a download still under way (x.gguf.part): (the problem, the fix), saying whether
    its size is whole by its header; None for any other path. Such a file loaded without a word, though its
    download may still be writing it, where the quantizer called the name unsupported."""
    from motif_lite.weights.gguf_file import tensor_bytes

    ending = next((e for e in _UNFINISHED_DOWNLOAD if path.name.lower().endswith(f".gguf{e}")), None)
    if ending is None or not path.is_file():
        return None
    done = quoted(str(path.with_name(path.name[: -len(ending)])))
    try:
        tensor_bytes(path)  # its header's checks: every tensor's data within the file's size
    except CheckpointError:
        problem = f"is an unfinished download (its name ends in {ending}), and its size says it is cut short"
        return problem, f"let the download finish, or download it again, then pass {done}"
    problem = f"is named as an unfinished download (its name ends in {ending}), though its size says it is whole"
    return problem, f"rename it to {done} once no download is writing it, and pass that"


def _official_variant(tag: str) -> str | None:
    """The official variant an address's tag or file name (`_variant_named`) means: as given where it is a
    quantization type's name, else the closest one (q4km, 4bit: Q4_K_M); None when it names none."""
    from motif_lite.quantize.recipes import nearest_recipe

    variant = _variant_named(tag)
    if variant is None or variant.upper() in quantization_type_names():
        return variant
    return nearest_recipe(variant)


def _in_file_names(tag: str) -> str:
    """A tag as GGUF file names spell it, for `hf download --include`, which matches letter case: a quantization
    type's name in upper case (q4_k_m: Q4_K_M), anything else as given. llama.cpp's and Ollama's tags ignore case."""
    return tag.upper() if tag.upper() in quantization_type_names() else tag


def _variant_named(file: str) -> str | None:
    """The variant a file name of the official GGUF repo carries (motif-video-2b-Q4_K_M.gguf), or a bare tag."""
    match = re.fullmatch(r"(?:motif-video-2b-)?([A-Za-z0-9_]+)(?:\.gguf)?", Path(file).name, re.IGNORECASE)
    return match.group(1) if match else None


def cached_variant(variant: str) -> Path | None:
    """The one file of the cached GGUF repo whose name carries `variant`; None when there is none (or several)."""
    cached = cached_snapshot(GGUF_REPO)
    if cached is None:
        return None
    found = match_variant([str(p.relative_to(cached)) for p in cached.rglob("*.gguf")], variant)
    return cached / found[0] if len(found) == 1 else None


def check_gguf_variant(variant: str, hub: HubAccess) -> None:
    """A `--gguf` variant that no file of the official GGUF repo carries: its `CheckpointError` before anything
    else downloads, not after the checkpoint's gigabytes; a name that is no quantization type's (Q4KM, 4bit) without
    asking the Hub (`refuse_unknown_variant`), another one (Q6_K where the repo has none) with the variants there
    are. Nothing when the cache has it or the Hub cannot be asked: `find_gguf` reports that. The file found is
    planned in `hub.later`: the checkpoint's download, which comes first, counts its room and says its size."""
    if not is_gguf_variant(variant):
        return
    variant = _file_spelling(variant)
    if cached_variant(variant) is not None:
        return
    refuse_unknown_variant(variant)  # said without the Hub, which may not be reachable
    if not hub.online:
        return
    try:
        sizes = {name: size for name, size in hub.file_sizes(GGUF_REPO).items() if name.endswith(".gguf")}
    except HUB_ERRORS:
        return
    name = _pick_variant(list(sizes), variant)
    # Its room is counted with the checkpoint's download, which comes first.
    hub.later[GGUF_REPO] = DownloadPlan.of(GGUF_REPO, sizes, [name], cached_snapshot(GGUF_REPO))


def gguf_file_fix(path: Path, model: str) -> str:
    """The fix for a damaged or mismatched GGUF transformer file: a file of the official GGUF repo is downloaded
    again with the command `run` would give; one of the user's own (a name that is no official file's) is made again
    from the checkpoint -m names (`model`, as given), with the type it was made with, or copied again."""
    if not_a_gguf(path):
        return "pass the transformer's .gguf file (or a variant such as Q4_K_M)"
    cached = cached_snapshot(GGUF_REPO)
    if cached is not None and path.resolve().is_relative_to(cached.resolve()):  # our own download, in the cache
        include = pattern_quoted(path.name)
        return f"download the file again: hf download {GGUF_REPO} --include {include} --force-download"
    made_as = made_with_type(path)
    remake = f"python -m motif_lite.quantize {quoted(model)} -o {quoted(str(path))} --type "
    remake += f"{made_as} --force" if made_as else "TYPE --force, TYPE being the type you made it with"
    if not _official_gguf_name(path):
        return (
            f"{path.name} is not a file of {GGUF_REPO}: make it again from the checkpoint ({remake}), or copy it "
            "again from where it came"
        )
    command = MissingFiles(GGUF_REPO, (path.name,), (path.name,), str(path.parent), "").command()
    return f"download the file again ({command}), or make one from the checkpoint: {remake}"


def text_encoder_gguf_fix(path: Path, model: str | None) -> str:
    """The fix for a text encoder GGUF that is missing or damaged: the quantizer's command that makes it (again),
    from the checkpoint -m names (`model`, as given; a placeholder when unknown), with the type it was made with
    (Q8_0, the one the docs advise, for a new file or an unknown type)."""
    source = quoted(model) if model else "CHECKPOINT"
    made_as = made_with_type(path) if path.is_file() else None
    if not_a_gguf(path):  # a video, an image, ...: the quantizer writes only .gguf names, and this is the user's
        command = f"python -m motif_lite.quantize {source} --component text_encoder -o te-Q8_0.gguf --type Q8_0"
        return f"pass the text encoder's .gguf file, or make one: {command}"
    command = f"python -m motif_lite.quantize {source} --component text_encoder -o {quoted(str(path))}"
    command += f" --type {made_as or 'Q8_0'}"
    return f"make it again: {command} --force" if path.is_file() else f"make one: {command}"


def foreign_gguf_fix(path: Path, model: str | None, component: str) -> str:
    """The fix for another model's GGUF (an LLM, another diffusion model) given as the transformer's or the text
    encoder's (`component`): where the right file comes from, under a new name, since the file given is the user's to
    keep (`model`: -m as given, which the quantizer's command names; a placeholder when unknown)."""
    quantize = f"python -m motif_lite.quantize {quoted(model) if model else 'CHECKPOINT'}"
    if component == "text_encoder":
        made = f"{quantize} --component text_encoder -o {quoted(str(path.parent / 'te-Q8_0.gguf'))}"
        return f"it is another model's file; pass a text encoder GGUF made by {made}"
    made = f"{quantize} -o {quoted(str(path.parent / 'motif-video-2b-Q4_K_M.gguf'))}"
    return f"it is another model's file; pass an official one (--gguf Q4_K_M downloads it), or make one: {made}"


def not_a_gguf(path: Path) -> bool:
    """Whether `path` is no GGUF file by its name (not .gguf) and, where it is there, by its first bytes (a video or
    an image given to --gguf): making it again would name an output the quantizer refuses, or the user's file. Not
    there (or unreadable): its name alone says it."""
    return path.suffix.lower() != ".gguf" and not starts_as_gguf(path)


def named_type_note(path: Path, recorded: str | None) -> str | None:
    """The note for a GGUF file whose name carries one quantization type and whose header records another
    (`recorded`; x-Q4_K_M.gguf holding Q8_0, a copy or a rename gone wrong): `check` said its real type, a run
    nothing. None where the name carries no type, or one that fits the recorded type, or where the header records
    none a type's name says (llama.cpp's GUESSED)."""
    from motif_lite.quantize.recipes import ALIASES

    def fits(named: str, held: str) -> bool:
        # FP16 is the type F16; a bare k-quant (Q4_K) names its family, whose files record Q4_K_S or Q4_K_M.
        return ALIASES.get(named, named) == ALIASES.get(held, held) or held.startswith(f"{named}_")

    named = [name for name in quantization_type_names() if match_variant([path.name], name)]
    types = quantization_type_names()
    if recorded is None or recorded.upper() not in types or len(named) != 1 or fits(named[0], recorded.upper()):
        return None
    return f"{path.name} is named {named[0]}, but its header says it holds {recorded}: it loads as {recorded}"


def made_with_type(path: Path) -> str | None:
    """The quantizer type a GGUF file was made with: from its header where that is readable, else from its name
    (motif-video-2b-Q8_0.gguf); None when neither tells one our quantizer makes."""
    from motif_lite.quantize.recipes import ALIASES, RECIPES  # only for a damaged file's fix
    from motif_lite.weights.gguf_file import quantization_type

    recorded = quantization_type(path)
    if recorded is not None:
        return recorded if recorded in RECIPES or recorded in ALIASES else None
    named = [name for name in [*RECIPES, *ALIASES] if match_variant([path.name], name)]
    return named[0] if len(named) == 1 else None


def _official_gguf_name(path: Path) -> bool:
    """Whether `path` is a file of the official GGUF repo by name: `hf download --local-dir` left its record beside
    it, or it has the repo's naming (motif-video-2b-VARIANT.gguf)."""
    record = path.parent / ".cache" / "huggingface" / "download" / f"{path.name}.metadata"
    return record.is_file() or re.fullmatch(r"motif-video-2b-[A-Za-z0-9_]+\.gguf", path.name, re.IGNORECASE) is not None


def _with_reason(missing: MissingFiles, reason: str) -> MissingFiles:
    return MissingFiles(missing.repo, missing.missing, missing.include, missing.local_dir, reason)


def gguf_files(folder: Path) -> list[Path]:
    """The `.gguf` files of a folder (`hf download ... --local-dir` fills one; its .cache/ holds no weights)."""
    return sorted(p for p in folder.rglob("*.gguf") if ".cache" not in p.relative_to(folder).parts)


def single_gguf(folder: Path, flag: str = "--gguf") -> Path:
    """The one `.gguf` file of a folder (`gguf_files`) given to `flag`; `CheckpointError` naming what it holds
    when that is none or several."""
    files = gguf_files(folder)
    if len(files) == 1 or _parts_of_one_file(files):  # the first part: reading it names the merge they need
        return files[0]
    listed = ", ".join(str(f.relative_to(folder)) for f in files) or "none"
    raise CheckpointError(f"{flag} folder {folder} must hold exactly one .gguf file (found: {listed}); pass the file")


def split_gguf_in(folder: Path) -> Path | None:
    """The first part of the one split GGUF file whose parts are a folder's `.gguf` files (`_parts_of_one_file`);
    None for any other folder. Reading that part names the merge the parts need."""
    files = gguf_files(folder)
    return files[0] if _parts_of_one_file(files) else None


_SPLIT_PART = re.compile(r"(.+)-(\d{5}-of-\d{5})\.gguf", re.IGNORECASE)  # gguf-split's NAME-00001-of-00002.gguf


def _parts_of_one_file(files: list[Path]) -> bool:
    """Whether `files` (sorted) are every part of one GGUF file that llama.cpp's gguf-split cut up: a folder of them
    is that file's, not a choice between files. The first part's header must say so too: whole files named like
    parts (two of the quantizer's, -o x-00001-of-00002.gguf and x-00002-of-00002.gguf) are a choice, and the first
    was taken without a word."""
    from motif_lite.weights.gguf_file import split_count

    parts = [_SPLIT_PART.fullmatch(file.name) for file in files]
    if len(files) < 2 or any(part is None for part in parts):
        return False
    wanted = [f"{n:05d}-of-{len(files):05d}" for n in range(1, len(files) + 1)]
    one_name = len({(file.parent, part[1]) for file, part in zip(files, parts, strict=True) if part}) == 1
    named = one_name and [part[2] for part in parts if part] == wanted
    return named and split_count(files[0]) == len(files)


def is_gguf_repo(model: str) -> bool:
    """Whether `model` (-m's or --gguf's text) names the official GGUF repo (Hub repo ids are case-insensitive)."""
    return model.lower() == GGUF_REPO.lower()


class MissingGGUFError(CheckpointError):
    """A --gguf that is no file or folder here (`_local_gguf`): the message a run prints, and its `problem` and
    `fix` said apart for `motif-lite check`, which said a bare "no such GGUF file" where a run named the variant."""

    def __init__(self, message: str, problem: str, fix: str) -> None:
        super().__init__(message)
        self.problem, self.fix = problem, fix


def _local_gguf(path: Path, text: str) -> Path:
    """The file `path` (--gguf's `text` as a path) names, or the one file of the folder it names; a
    `MissingGGUFError` saying what `text` means where it is neither. A repo id is told by `text`, as typed: on
    Windows `str(path)` spells Org/Name as Org\\Name."""
    if path.is_dir():
        return single_gguf(path)
    if path.is_file():
        return path
    if is_gguf_repo(text):  # the repo's id, as -m takes a repo's
        problem, fix = "is the official GGUF repo", "--gguf takes one of its variants, e.g. --gguf Q4_K_M"
        raise MissingGGUFError(f"{text} {problem}: {fix}", problem, fix)
    # Another repo's id (city96/NAME-gguf, as ComfyUI-GGUF's users name a repo of GGUF files), unless its first
    # part is a folder here: then it is a path with a typo.
    if is_repo_id(text) and not text.lower().endswith(".gguf") and not Path(path.parts[0]).exists():
        if text.lower() == MOTIF_REPO.lower():  # -m's repo: it holds no GGUF, and a download of one fetches nothing
            problem, fix = _checkpoint_repo_problem(HubAddress(text), "--gguf")
            raise MissingGGUFError(f"{text}: {problem}; {fix}", problem, fix)
        problem = f"is no file or folder here, and --gguf downloads the variants of {GGUF_REPO} only"
        fix = f"if it is a Hub repo, download its file first: {_download(HubAddress(text), None, '--gguf')}"
        raise MissingGGUFError(f"{text} {problem}; {fix}", problem, fix)
    meant = _variant_spelled(_variant_named(path.name) or path.name) if len(path.parts) == 1 else None
    example = f"for this name: --gguf {meant}" if meant else "e.g. --gguf Q4_K_M"
    fix = f"give the path of a .gguf file, or a variant of {GGUF_REPO} without .gguf ({example}), which is downloaded"
    raise MissingGGUFError(f"no such GGUF file: {path}; {fix}", "no such GGUF file", fix)


def match_variant(names: list[str], variant: str) -> list[str]:
    # Whole-token match so that Q4_K does not pick Q4_K_M and q8_0 matches Q8_0.
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(variant)}(?![A-Za-z0-9_])", re.IGNORECASE)
    return sorted(n for n in names if pattern.search(Path(n).name))


def _pick_variant(names: list[str], variant: str) -> str:
    found = match_variant(names, variant)
    if len(found) != 1:
        available = ", ".join(sorted(Path(n).name for n in names)) or "none"
        what = "no file" if not found else f"{len(found)} files ({', '.join(found)})"
        raise CheckpointError(f"{what} in {GGUF_REPO} match variant {variant!r}; available: {available}")
    return found[0]
