"""Paths as users type them."""

from __future__ import annotations

import argparse
import contextlib
import errno
import ntpath
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from motif_lite.errors import MotifLiteError
from motif_lite.shell_syntax import on_windows, quoted


def user_path(value: str | os.PathLike) -> Path:
    """`value` as a path with a leading `~` or `~user` expanded, as a shell would have (a quoted path, a config file
    or a notebook reach us unexpanded). A `~name` for which this machine has no home (`~Downloads/model`, a slash
    left out) is a `MotifLiteError` saying so, where pathlib raises a bare RuntimeError; PowerShell's
    `~\\Videos\\fox.mp4` one with the path to give (`windows_path_problem`)."""
    text = os.fspath(value)
    if not text.startswith("~"):  # `./~` names a file called ~ here: pathlib drops the `./` and would expand it
        return Path(text)
    in_own_home = os.name != "nt" and Path(text).parts[0] == "~"  # HOME's folder (Windows: USERPROFILE's)
    if in_own_home and os.environ.get("HOME") == "":  # Python reads `~/x` as /x then
        raise MotifLiteError(_no_home_folder(text))
    try:
        return Path(text).expanduser()
    except RuntimeError:
        # PowerShell's home (`~\Videos\fox.mp4`) is no user `\Videos\fox.mp4`: the path with slashes is said
        if (windows := windows_path_problem(text)) is not None:
            raise MotifLiteError(windows) from None
        if in_own_home:  # HOME="~weird", or unset where the password database has no home for this user either
            raise MotifLiteError(_no_home_folder(text)) from None
        user = Path(value).parts[0]
        raise MotifLiteError(
            f"{value}: {user} names the home folder of a user {user[1:]!r}, and this machine has none; give the path "
            f"in full (or ~/{str(value)[1:]} for one in your home)"
        ) from None


def _no_home_folder(text: str) -> str:
    """Why `text`, a path in the user's own home (`~/x`), names no file: HOME gives no folder (it was said to be
    the home of a user '', and `~//x` to be given instead)."""
    home = os.environ.get("HOME")
    why = "HOME is not set" if home is None else "HOME is empty" if not home else f"HOME is {home!r}, no folder's path"
    return (
        f"{text}: ~ is your home folder, and {why}: give the path in full, or set HOME to the full path of your home "
        "folder"
    )


def name_too_long(exc: OSError) -> str:
    """The file system's refusal of a path (a name over its limit, 255 bytes on most; a script's `-o "$prompt.mp4"`
    gets there with a long prompt), naming the longest part of that path and its length."""
    path = os.fsdecode(exc.filename) if exc.filename is not None else ""
    longest = max(path.split(os.sep), key=lambda part: len(os.fsencode(part)), default="")
    if not longest:
        return f"a file name is too long for this file system ({exc.strerror}): give shorter names"
    # Cut short, it keeps its extensions whole: a run's `-o` of 80 Hangul syllables (240 bytes) is refused for the
    # latents file kept beside it, and `.latents.safetensors` says which file that is.
    tail = longest[-24:]
    extensions = tail[tail.index(".") :] if "." in tail else ""
    # With a few characters before the extensions: a batch's `_1` tells its files apart.
    end = longest[-max(12, len(extensions) + 8) :]
    shown = longest if len(longest) <= max(60, 40 + len(end)) else f"{longest[:40]}...{end}"
    return (
        f"a file name is too long for this file system: {path.replace(longest, shown)} (that name is "
        f"{len(os.fsencode(longest))} bytes; most file systems allow 255 per file or folder name): give a shorter one"
    )


@contextlib.contextmanager
def names_too_long_refused() -> Iterator[None]:
    """The file system's refusal of an over-long name in the block as a `MotifLiteError` saying which name
    (`name_too_long`), for the Python API: the command line says the same for any command (`cli.main`)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise MotifLiteError(name_too_long(exc)) from None


def make_folder_command(folder: str | os.PathLike) -> str:
    """The command that makes `folder` and the folders above it, for a message to suggest: `mkdir -p` in a POSIX
    shell; on Windows plain `mkdir`, which makes them in cmd and PowerShell alike (cmd's would make a folder `-p`)."""
    return f"mkdir {quoted(folder)}" if sys.platform == "win32" else f"mkdir -p {quoted(folder)}"


def user_path_kept_here(value: str | os.PathLike) -> Path:
    """`user_path`, with a path that pathlib would leave starting with `~` though `value` did not (`./~`, a file or
    folder named ~ here: pathlib drops the `./`) made absolute, so that a later reader of it (`user_path` again)
    does not take it for the home folder."""
    path = user_path(value)
    if not os.fspath(value).startswith("~") and str(path).startswith("~"):
        return path.absolute()
    return path


def path_arg(text: str) -> str:
    """argparse's type of every flag (and argument) that takes a path: an empty or blank value is refused as the
    flags are read. Path('') is the current folder, so `--lora-dir "$DIR"` with DIR unset served every file of the
    folder the server was started in, and `--gguf ''` took the one .gguf file found there."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"is empty ({text!r}; an unset variable in a script?): give the path of the file or folder"
        )
    if (problem := windows_path_problem(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


# A Windows path: a drive letter (C:\Users\me\fox.png, D:/models), or a network share (\\server\share\...), of
# which \\wsl$\Ubuntu\... and \\wsl.localhost\Ubuntu\... are how Windows shows WSL's own files.
_DRIVE_PATH = re.compile(r"([A-Za-z]):[\\/](.*)", re.DOTALL)
_WSL_SHARE = re.compile(r"\\\\wsl(?:\$|\.localhost)\\[^\\]+(\\.*)?", re.IGNORECASE | re.DOTALL)
# A relative one (.\out\fox.mp4, models\Motif-Video-2B): names separated by backslashes, none starting with a space
# or another character a shell escapes, so that a name with a shell's escapes left in it (`my\ fox.mp4`,
# `clip\(1\).png` as tab completion writes them, then quoted) is not taken for one. It holds no slash
# as pathlib reads it (which drops a leading ./, as the video's writer then does): a path with a folder in it
# (`/home/me/a\b.mp4`, `models\x/out.mp4` in a folder named `models\x`) is a name with backslashes the user means.
# Bash's completion escapes `@`, `=` and `:` too (its default_filename_quote_characters): `clip\:1.png`.
_SHELL_ESCAPED = r"\s()\[\]{}<>|&;$!?*'\"`#~@=:"
_WINDOWS_NAME = rf"[^\\/{_SHELL_ESCAPED}][^\\/]*"  # one file or folder name of such a path
_RELATIVE_WINDOWS_PATH = re.compile(rf"{_WINDOWS_NAME}(?:\\{_WINDOWS_NAME})+\\?")
# One backslash first (\out\fox.mp4) is the root of the current drive on Windows; `~\` is PowerShell's home.
_ROOTED_WINDOWS_PATH = re.compile(rf"\\{_WINDOWS_NAME}(?:\\{_WINDOWS_NAME})*\\?")
_HOME_WINDOWS_PATH = re.compile(rf"~\\({_WINDOWS_NAME}(?:\\{_WINDOWS_NAME})*\\?)")
# A cmd variable anywhere in one (%USERPROFILE%\Videos, renders\%DATE%\fox.mp4): Linux and macOS leave it as typed.
_CMD_VARIABLE = re.compile(r"%[A-Za-z_][^%\\/\s]*%")
# Windows' own prefix of a long path (\\?\C:\...) or of a device's (\\.\C:\...), before a drive letter.
_LONG_PATH_PREFIX = re.compile(r"\\\\[?.]\\(?=[A-Za-z]:)")
# A volume named by its GUID in that prefix (\\?\Volume{...}\, as mountvol and Get-Volume show it): a disk's volume,
# whatever its drive letter, and no network share; other names there (\\.\pipe\..., \\.\PhysicalDrive0) are
# devices. \\?\UNC\server\share is the one network path in that form.
_VOLUME_PATH = re.compile(r"\\\\[?.]\\Volume\{[0-9A-Fa-f-]+\}(?:\\.*)?", re.IGNORECASE | re.DOTALL)
_DEVICE_PATH = re.compile(r"\\\\[?.]\\(?!UNC\\)", re.IGNORECASE)
# A drive's letter before a relative path (C:out\fox.mp4): relative to that drive's current folder, which only the
# Windows shell it was typed in knows.
_DRIVE_RELATIVE_PATH = re.compile(r"([A-Za-z]):[^\\/]")


def windows_path_problem(text: str, platform: str | None = None) -> str | None:
    """Why `text`, a Windows path given on a machine that is not Windows (copied from Explorer into WSL, a notebook
    or a script), names no file here, with the path to give; None for other paths, on Windows, and for a file or
    folder of that odd name that is there. Linux and macOS read `C:\\Users\\me\\fox.mp4` as one name in the
    current folder: an input was "not found", and an output was written under that name where no one would look."""
    platform = platform or sys.platform  # read when called: a test that sets sys.platform to win32 is on Windows
    if platform == "win32" or os.path.lexists(text):
        return None
    here = "macOS" if platform == "darwin" else "Linux"
    read_as = f"which {here} reads as a name in the current folder"
    if (drive := _DRIVE_PATH.fullmatch(_LONG_PATH_PREFIX.sub("", text, count=1))) is not None:
        mounted = f"/mnt/{drive[1].lower()}/" + drive[2].replace("\\", "/")
        return (
            f"{text} is a Windows path, {read_as}: give the path {here} has for it (under WSL2, where drive "
            f"{drive[1].upper()}: is /mnt/{drive[1].lower()}, that is {quoted(mounted)})"
        )
    if (share := _WSL_SHARE.fullmatch(text)) is not None:  # a file of WSL's own, as Windows shows it
        inside = (share[1] or "\\").replace("\\", "/")
        return f"{text} is the Windows path of a file in WSL, {read_as}: here it is {quoted(inside)}"
    if _VOLUME_PATH.fullmatch(text) is not None:
        return (
            f"{text} is a Windows volume path (a disk's volume, named by its GUID), {read_as}, and has no {here} "
            f"equivalent: give the path where {here} mounts that volume (under WSL2, the volume of drive D: is /mnt/d)"
        )
    if _DEVICE_PATH.match(text) is not None:
        return f"{text} is the path of a Windows device, {read_as}, and has no {here} equivalent: give a file's path"
    if text.startswith("\\\\"):
        return f"{text} is a Windows network path, {read_as}: give the path where {here} mounts that share"
    named = str(Path(text))
    if _ROOTED_WINDOWS_PATH.fullmatch(named) is not None:  # \out\fox.mp4: C:\out\fox.mp4 when C: is current
        mounted = "/mnt/c" + text.replace("\\", "/")
        return (
            f"{text} is a Windows path from the root of the current drive, {read_as}: give the path {here} has "
            f"for it (under WSL2, where drive C: is /mnt/c, that is {quoted(mounted)} when C: is the current drive; "
            f"a name with backslashes in it is given with its folder: {quoted(os.path.abspath(text))})"
        )
    if (home := _HOME_WINDOWS_PATH.fullmatch(named)) is not None:  # ~\Videos\fox.mp4, PowerShell's home
        in_home = "~/" + home[1].replace("\\", "/")
        return (  # `./~\x.mp4` too (pathlib drops the `./`): the way to keep that name is said
            f"{text} is a Windows path, {read_as}: {here} separates folders with /, so give {quoted(in_home)} (a name "
            f"with backslashes in it is given with its folder: {quoted(os.path.abspath(text))})"
        )
    if _RELATIVE_WINDOWS_PATH.fullmatch(named) is not None and (drive := _DRIVE_RELATIVE_PATH.match(named)):
        return (  # C:out\fox.mp4: "give C:out/fox.mp4" named a folder `C:out` here
            f"{text} is a Windows path relative to the current folder of drive {drive[1].upper()}:, {read_as}: "
            f"give the file's full path (under WSL2, drive {drive[1].upper()}: is /mnt/{drive[1].lower()}; a name "
            f"with backslashes in it is given with its folder: {quoted(os.path.abspath(text))})"
        )
    if _RELATIVE_WINDOWS_PATH.fullmatch(named) is not None:  # .\out\fox.mp4: written as one odd name
        slashed = text.replace("\\", "/")
        advice = f"{here} separates folders with /, so give {quoted(slashed)}"
        if (variable := _CMD_VARIABLE.search(named)) is not None:  # "give renders/%DATE%/fox.mp4" named no folder
            advice = (
                f"{variable[0]} is a variable of Windows' cmd, which {here} does not expand: give the path of the "
                "folder it names, with / between folders (under WSL2, drive C: is /mnt/c)"
            )
        return (
            f"{text} is a Windows path, {read_as}: {advice} (a name with backslashes in it is given with its folder: "
            f"{quoted(os.path.abspath(text))})"
        )
    return None


# The DOS device names Windows keeps from files: `nul.mp4` is the NUL device up to Windows 10 (Windows 11 still
# keeps the bare name), so a video written there is lost. Microsoft's "Naming Files, Paths, and Namespaces", which
# names the ports with a superscript 1, 2 or 3 (COM¹) too.
_PORT_NUMBERS = [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"{port}{n}" for port in ("COM", "LPT") for n in _PORT_NUMBERS)}
)
_WINDOWS_FORBIDDEN = '<>:"|?*'  # and a colon names an NTFS stream: `fox_12:30.mp4` from cmd's %TIME%


def windows_name_problem(given: str, flag: str = "-o") -> str | None:
    """Why Windows cannot make a file of the name `given` ends in (an output as typed), with a name it can, given to
    `flag`; None for a name it can. Checked on Windows only (the caller asks `sys.platform`): Linux and macOS take
    these names. The file would fail to be written only after the whole run, with an error that names the syntax
    or a device."""
    name = re.split(r"[\\/]", ntpath.splitdrive(given)[1])[-1]  # `D:fox.mp4` is fox.mp4 in drive D:'s folder
    folder = given[: len(given) - len(name)]
    if forbidden := [c for c in _WINDOWS_FORBIDDEN if c in name]:
        fixed = "".join("-" if c in _WINDOWS_FORBIDDEN else c for c in name)
        return (f"{name} has {' '.join(forbidden)}, which Windows does not allow in a file name: give another, "
                f"e.g. {flag} {quoted(folder + fixed)}")  # fmt: skip
    device = name.split(".")[0].rstrip(" ").upper()
    if device in _WINDOWS_DEVICES:
        return (f"{name} is the name of Windows' {device} device, not of a file: give another, e.g. {flag} "
                f"{quoted(folder + 'video-' + name)}")  # fmt: skip
    return None


WINDOWS_MAX_PATH = 259  # characters of a whole path, without the terminating NUL of Windows' MAX_PATH (260)


def windows_long_paths() -> bool:
    """Whether Windows lets programs use paths longer than MAX_PATH: its LongPathsEnabled value, which the
    python.org installer's "Disable path length limit" sets. False where it cannot be read (or not Windows)."""
    try:
        import winreg  # Windows only: imported here so that the package imports elsewhere

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return winreg.QueryValueEx(key, "LongPathsEnabled")[0] == 1
    except (ImportError, OSError):
        return False


def windows_long_path_problem(path: str | os.PathLike, extra: int = 0) -> str | None:
    """Why Windows cannot write `path` (with `extra` more characters in the name: a staged file's prefix): longer
    than MAX_PATH while long paths are off. Checked on Windows only (the caller asks `sys.platform`); None else."""
    full = os.path.abspath(os.path.expanduser(path))
    if len(full) + extra <= WINDOWS_MAX_PATH or windows_long_paths():
        return None
    first = f" ({extra} more for the name it is written under first)" if extra else ""
    return (
        f"{full} is {len(full)} characters long{first}, over Windows' limit of {WINDOWS_MAX_PATH + 1} for a path: "
        "give a shorter folder or name, or turn on long paths (the python.org installer's \"Disable path length "
        'limit", or the LongPathsEnabled registry value)'
    )


def blank_path_problem(value: object, what: str, instead: str) -> str | None:
    """Why `value`, a path given from Python as an empty or blank string (a notebook form's field left empty, an
    unset environment variable), names nothing, with what to give `instead`; None for any other value. Path('') is
    the current folder: an empty image was told as "a directory; give the image file in it, e.g. <a file there>".
    (The command line's flags refuse one as they are read: `path_arg`.)"""
    if isinstance(value, str) and not value.strip():
        return f"{what} is empty ({value!r}): {instead}"
    return None


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")  # https://, http://, ftp://, s3://: a scheme, then //


def is_url(given: str) -> bool:
    """Whether `given` is a URL (a scheme, then //) rather than a path."""
    return _URL.match(given) is not None


def file_url_path(given: str) -> str | None:
    """The local path a file:// URL (pasted from a browser's address bar) names, unquoted; None for anything else."""
    if not given.startswith("file://"):
        return None
    return urllib.parse.unquote(urllib.parse.urlparse(given).path)


# A Hub file's page, as a browser shows it (.../blob/main/style.safetensors, of a model, a dataset or a Space), or its
# raw address (.../raw/main/...: for a file in Git LFS, as a LoRA's weights are, the ~130-byte LFS pointer): what
# comes before its `/blob/` or `/raw/`, where the file itself is at `/resolve/`. The repository's owner may be left
# out (the Hub's oldest repositories have none: huggingface.co/gpt2), and the scheme and host are in any case (as
# typed).
_HUB = r"(?i:https?://(?:www\.)?(?:huggingface\.co|hf\.co))/(?:(?:datasets|spaces)/)?"  # scheme and host in any case
_HUB_FILE_PAGE = re.compile(rf"^({_HUB}(?:[^/?#]+/)?[^/?#]+)/(?:blob|raw)/")


# A Hub file's own address (owner/name/resolve/...): as given, though a repository named `raw` or `blob` reads as
# an owner-less repository's page to `_HUB_FILE_PAGE` (user/raw/resolve/... was made user/resolve/resolve/...).
_HUB_FILE_ITSELF = re.compile(rf"^{_HUB}[^/?#]+/[^/?#]+/resolve/")


def _downloaded_url(given: str) -> str:
    """The URL that downloads the file `given` names: a Hub file's page (.../blob/main/x.safetensors), which curl
    would save as a web page, or its raw address (.../raw/main/x.safetensors: an LFS file's pointer), is the file's
    own address there (.../resolve/main/x.safetensors); others as given."""
    if _HUB_FILE_ITSELF.match(given):
        return given
    return _HUB_FILE_PAGE.sub(r"\1/resolve/", given, count=1)


def url_fix(given: str, flag: str, default_name: str, after_name: str = "") -> str | None:
    """What to do with a URL given as a local file to `flag` (-i, --extend, --lora): the command that downloads it,
    or for a file:// URL its path, each given to `flag` with `after_name` (--lora's `:0.8`); None when `given` is no
    URL."""
    if not is_url(given):
        return None
    if (local := file_url_path(given)) is not None:
        return f"give its path, {flag} {quoted(local + after_name)}"
    # The name is made from the URL, not a path the user gave: a URL's last part `~` is a file name, never a home.
    # Its query and fragment are no part of it: curl sends the one and drops the other (`x.png#top` saves x.png).
    name = Path(re.split(r"[?#]", given, maxsplit=1)[0].rstrip("/")).name or default_name
    # Quoted, a `~` is still expanded by motif-lite itself (`user_path`): `./` in front keeps it a file here.
    name = f"./{name}" if name.startswith("~") else name
    then = f"then give {flag} {quoted(name + after_name)}"
    return f"download it first, e.g. {curl_download(name, _downloaded_url(given))}, {then}"


def curl_download(name: str, url: str) -> str:
    """The curl command that saves `url` as the file `name`, following redirects. On Windows it is `curl.exe`, which
    Windows 10 (1803) and later ship: in Windows PowerShell 5.1 `curl` is an alias of Invoke-WebRequest, which
    refuses `-L`; `curl.exe` is the same program in cmd and PowerShell."""
    curl = "curl.exe" if on_windows() else "curl"
    return f"{curl} -L -o {quoted(name)} {quoted(url)}"


def file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where `folder`, or a folder above it, would be (`-o fox.mp4/frames/out_%03d.png` with
    fox.mp4 a video), or None: a missing folder can then be made with `mkdir -p`, which fails on such a file."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
