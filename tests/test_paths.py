"""Paths as users type them (`motif_lite.paths.user_path`), through every command that takes one."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.errors import MotifLiteError
from motif_lite.paths import user_path

NO_SUCH_USER = "~motif-lite-no-such-user"


def test_a_home_is_expanded_and_other_paths_are_kept(monkeypatch, tmp_path):
    # `~` is $HOME (%USERPROFILE% on Windows) and `~user` the password database's home: they differ in many
    # containers and under sudo, where this test compared the two and failed.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert user_path("~/fox.mp4") == tmp_path / "fox.mp4"
    user = getpass.getuser()
    assert user_path(f"~{user}/fox.mp4") == Path(os.path.expanduser(f"~{user}")) / "fox.mp4" != Path(f"~{user}/fox.mp4")
    assert user_path(Path("renders/fox.mp4")) == Path("renders/fox.mp4")


def test_a_home_this_machine_lacks_is_an_error_that_says_so():
    # Before: pathlib's bare RuntimeError ("Could not determine home directory"), a traceback from every command.
    with pytest.raises(MotifLiteError) as raised:
        user_path(f"{NO_SUCH_USER}/model")
    assert str(raised.value) == (
        f"{NO_SUCH_USER}/model: {NO_SUCH_USER} names the home folder of a user 'motif-lite-no-such-user', and this "
        "machine has none; give the path in full (or ~/motif-lite-no-such-user/model for one in your home)"
    )


@pytest.mark.parametrize(
    "flags",
    [
        ["-m", f"{NO_SUCH_USER}/ckpt"],
        ["-o", f"{NO_SUCH_USER}/fox.mp4"],
        ["-i", f"{NO_SUCH_USER}/first.png"],
        ["--gguf", f"{NO_SUCH_USER}/model.gguf"],
        ["--lora", f"{NO_SUCH_USER}/style.safetensors"],
    ],
)
def test_each_path_flag_of_run_refuses_it_in_one_line(flags, tmp_path, capsys):
    args = ["run", "-p", "a fox", "--dry-run", "-o", str(tmp_path / "fox.mp4"), *flags]
    assert cli.main(args) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"{NO_SUCH_USER} names the home folder of a user" in err and "Traceback" not in err, err


# A Windows user's paths on Linux (WSL, a notebook, a script copied from Windows): one name in the current folder.
# Before, an input was "not found" without why and an output was written under that name in the current folder
# (after the whole run, once ffmpeg took file: paths; before that ffmpeg failed with "Protocol not found").
WINDOWS_PATHS = {
    "C:\\Users\\me\\Videos\\fox.mp4": "under WSL2, where drive C: is /mnt/c, that is /mnt/c/Users/me/Videos/fox.mp4",
    "d:/renders/my fox.mp4": "under WSL2, where drive D: is /mnt/d, that is '/mnt/d/renders/my fox.mp4'",
    "\\\\wsl$\\Ubuntu\\home\\me\\fox.mp4": "a file in WSL, which Linux reads as a name in the current folder: here it "
    "is /home/me/fox.mp4",
    "\\\\wsl.localhost\\Debian\\tmp\\fox.mp4": "here it is /tmp/fox.mp4",
    "\\\\wsl$\\Ubuntu": "here it is /",  # the distribution's root folder, as Explorer shows it
    "\\\\nas\\share\\fox.mp4": "a Windows network path, which Linux reads as a name in the current folder: give the "
    "path where Linux mounts that share",
    # Relative ones: a run wrote its video as the one file `.\out\fox.mp4` in the current folder.
    ".\\out\\fox.mp4": "which Linux reads as a name in the current folder: Linux separates folders with /, so give "
    "./out/fox.mp4",
    "models\\Motif-Video-2B\\": "so give models/Motif-Video-2B/",
    # Rooted on the current drive: taken as one name, `\out\fox.mp4`, in the current folder.
    "\\out\\fox.mp4": "a Windows path from the root of the current drive, which Linux reads as a name in the "
    "current folder: give the path Linux has for it (under WSL2, where drive C: is /mnt/c, that is /mnt/c/out/fox.mp4 "
    "when C: is the current drive",
    "\\fox.mp4": "that is /mnt/c/fox.mp4 when C: is the current drive",
    # Windows' long-path and device forms of a drive's path were told as network shares to mount.
    "\\\\?\\C:\\out\\fox.mp4": "a Windows path, which Linux reads as a name in the current folder: give the path "
    "Linux has for it (under WSL2, where drive C: is /mnt/c, that is /mnt/c/out/fox.mp4)",
    "\\\\.\\D:\\renders": "that is /mnt/d/renders)",
    # PowerShell's home: user_path read `~\Videos\fox.mp4` as the home of a user named `\Videos\fox.mp4`.
    "~\\Videos\\fox.mp4": "Linux separates folders with /, so give ~/Videos/fox.mp4",
    "~\\my videos\\": "so give ~/'my videos/'",
    # A cmd variable first: "so give %USERPROFILE%/Videos/fox.mp4" named a folder `%USERPROFILE%` here.
    "%USERPROFILE%\\Videos\\fox.mp4": "which Linux reads as a name in the current folder: %USERPROFILE% is a variable "
    "of Windows' cmd, which Linux does not expand: give the path of the folder it names, with / between folders",
}


@pytest.mark.parametrize("given", WINDOWS_PATHS)
def test_a_windows_path_is_told_with_the_path_to_give(given):
    from motif_lite.paths import windows_path_problem

    problem = windows_path_problem(given, platform="linux")
    assert problem is not None and problem.startswith(f"{given} is ") and WINDOWS_PATHS[given] in problem, problem
    assert "macOS reads" in windows_path_problem(given, platform="darwin")
    assert windows_path_problem(given, platform="win32") is None  # where it is a path


# `my\\ fox.mp4`: a shell's escaped space kept inside quotes, a name of its own rather than a Windows path.
@pytest.mark.parametrize(
    "given", ["fox.mp4", "renders/fox.mp4", "/mnt/c/fox.mp4", "take:2.mp4", "C:fox.mp4", "~/x", "my\\ fox.mp4"]
)
def test_other_paths_are_no_windows_paths(given):
    from motif_lite.paths import windows_path_problem

    assert windows_path_problem(given, platform="linux") is None


def test_a_path_rooted_on_the_current_drive_is_no_network_path():
    # One backslash first is the root of the current drive; two begin a share (tested above).
    from motif_lite.paths import windows_path_problem

    problem = windows_path_problem("\\Users\\me\\fox.mp4", platform="linux")
    assert problem is not None and "network" not in problem and "/mnt/c/Users/me/fox.mp4" in problem, problem
    assert "network" in windows_path_problem("\\\\?\\UNC\\nas\\share\\fox.mp4", platform="linux")


@pytest.mark.skipif(os.name == "nt", reason="a backslash separates folders there")
def test_a_rooted_name_the_message_gives_with_its_folder_is_taken(tmp_path, monkeypatch):
    # The name kept as it is, `\out\fox.mp4` in the current folder, is given in full, and that is no Windows path.
    from motif_lite.paths import windows_path_problem

    monkeypatch.chdir(tmp_path)
    problem = windows_path_problem("\\out\\fox.mp4", platform="linux")
    given = problem.rpartition("given with its folder: ")[2].rstrip(")").strip("'")
    assert given == f"{tmp_path}/\\out\\fox.mp4" and windows_path_problem(given, platform="linux") is None


def test_a_file_of_such_a_name_that_is_there_is_taken(tmp_path, monkeypatch):
    from motif_lite.paths import windows_path_problem

    monkeypatch.chdir(tmp_path)
    (tmp_path / "C:\\odd.png").write_bytes(b"")
    assert windows_path_problem("C:\\odd.png", platform="linux") is None


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ({"output": "C:\\Users\\me\\fox.mp4"}, "output C:\\Users\\me\\fox.mp4 is a Windows path"),
        ({"output": Path("C:\\Users\\me\\fox.mp4")}, "output C:\\Users\\me\\fox.mp4 is a Windows path"),
        ({"image": Path("C:/Users/me/first.png")}, "input image C:/Users/me/first.png is a Windows path"),
        ({"image": "C:\\Users\\me\\first.png"}, "input image C:\\Users\\me\\first.png is a Windows path"),
        ({"extend": "C:\\Users\\me\\clip.mp4"}, "the clip to extend: C:\\Users\\me\\clip.mp4 is a Windows path"),
    ],
)
def test_a_request_from_python_refuses_a_windows_path(setting, said, tmp_path, monkeypatch):
    # A notebook's request is not read by argparse: the output, image and clip checks say it.
    from motif_lite.request import GenerationRequest, RequestError

    monkeypatch.chdir(tmp_path)
    request = GenerationRequest("a fox", width=64, height=64, frames=9, **{"output": "fox.mp4", **setting})
    with pytest.raises(RequestError, match="is a Windows path") as raised:
        request.resolve()
    assert said in str(raised.value) and "/mnt/c/Users/me/" in str(raised.value)
    assert not list(tmp_path.iterdir())  # nothing written under the Windows name


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
def test_load_pipeline_refuses_a_windows_checkpoint_path():
    from motif_lite import load_pipeline
    from motif_lite.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"^checkpoint folder C:\\models\\Motif-Video-2B is a Windows path"):
        load_pipeline("C:\\models\\Motif-Video-2B")


@pytest.mark.parametrize(
    ("platform", "path", "pasted"),
    [
        ("win32", "C:\\Users\\John Smith\\fox.mp4", '"C:\\Users\\John Smith\\fox.mp4"'),
        ("win32", "C:\\renders\\fox-new.mp4", "C:\\renders\\fox-new.mp4"),
        ("win32", "caf\xe9 \u72d0.mp4", '"caf\xe9 \u72d0.mp4"'),
        ("linux", "/home/john smith/fox.mp4", "'/home/john smith/fox.mp4'"),
    ],
)
def test_a_path_a_message_suggests_is_quoted_as_the_shell_there_takes_it(monkeypatch, platform, path, pasted):
    # Windows' cmd keeps single quotes as part of the name: a suggested -o 'C:\Users\John Smith\fox.mp4', pasted
    # there, named no file. Double quotes work in cmd and PowerShell alike.
    from motif_lite.shell_syntax import quoted

    monkeypatch.setattr(sys, "platform", platform)
    assert quoted(path) == pasted


@pytest.mark.parametrize(("platform", "command"), [("win32", 'mkdir "{}"'), ("linux", "mkdir -p '{}'")])
def test_a_missing_output_folder_is_made_with_the_mkdir_of_the_shell_there(tmp_path, monkeypatch, platform, command):
    # Windows' cmd read the suggested `mkdir -p FOLDER` as two folders to make, one of them named "-p".
    from motif_lite.io.staging import output_folder_problem

    folder = tmp_path / "my renders" / "fox"
    monkeypatch.setattr(sys, "platform", platform)
    said = output_folder_problem(folder, "output directory")
    assert said == f"output directory {folder} does not exist; create it first ({command.format(folder)})"


@pytest.mark.parametrize(
    ("given", "downloaded"),
    [
        (
            "https://huggingface.co/user/styles/blob/main/style.safetensors",
            "https://huggingface.co/user/styles/resolve/main/style.safetensors",
        ),
        (
            "https://hf.co/datasets/user/clips/blob/v1.0/sub/fox.mp4?download=true",
            "https://hf.co/datasets/user/clips/resolve/v1.0/sub/fox.mp4?download=true",
        ),
        (  # a repository without an owner, as the Hub's oldest are: its page was downloaded as the file
            "https://huggingface.co/gpt2/blob/main/model.safetensors",
            "https://huggingface.co/gpt2/resolve/main/model.safetensors",
        ),
        (  # the host as typed, in capitals: its page too
            "https://HuggingFace.co/user/styles/blob/main/style.safetensors",
            "https://HuggingFace.co/user/styles/resolve/main/style.safetensors",
        ),
        (  # the raw address: an LFS file's (a LoRA's) pointer, some 130 bytes of text saved under the LoRA's name
            "https://huggingface.co/user/styles/raw/main/style.safetensors",
            "https://huggingface.co/user/styles/resolve/main/style.safetensors",
        ),
        ("https://huggingface.co/user/styles/resolve/main/style.safetensors", None),  # the file's own address
        ("https://example.com/user/styles/blob/main/style.safetensors", None),  # another site's: as given
    ],
    ids=["model-page", "dataset-page", "no-owner-page", "capitals-page", "raw-address", "file", "other-site"],
)
def test_a_hub_file_pages_address_is_downloaded_from_the_file_itself(given, downloaded):
    # A Hub file's page in the browser is at .../blob/...: the hint's curl saved that web page under the file's
    # name, and the --lora (-i, --extend) it then gave was refused as a web page.
    from motif_lite.cli.common import lora_args
    from motif_lite.paths import url_fix
    from motif_lite.shell_syntax import quoted
    from motif_lite.weights.lora_errors import LoRAError

    downloaded = downloaded or given
    name = downloaded.split("?")[0].rsplit("/", 1)[1]
    assert url_fix(given, "-i", "first.png") == (
        f"download it first, e.g. curl -L -o {name} {quoted(downloaded)}, then give -i {name}"
    )
    with pytest.raises(LoRAError) as refused:
        lora_args([f"{given}:0.8"])
    assert f"curl -L -o {name} {quoted(downloaded)}, then give --lora {name}:0.8" in str(refused.value)


def test_a_urls_fragment_is_no_part_of_the_name_it_is_saved_under():
    # `https://example.com/cat.png#top` was to be saved as 'cat.png#top', and -i then given that name.
    from motif_lite.paths import url_fix

    url = "https://example.com/cat.png#top"
    assert (
        url_fix(url, "-i", "first.png") == f"download it first, e.g. curl -L -o cat.png '{url}', then give -i cat.png"
    )


@pytest.mark.parametrize(
    ("page", "command"),
    [
        (
            "https://civitai.com/models/12345/paper-cut?modelVersionId=678",
            "curl -L -o paper-cut.safetensors https://civitai.com/api/download/models/678",
        ),
        (
            "https://civitai.com/models/12345/paper-cut",
            "the page's Download button, or curl -L -o paper-cut.safetensors "
            "https://civitai.com/api/download/models/VERSION (VERSION: the modelVersionId the page's address shows",
        ),
    ],
    ids=["version-picked", "no-version"],
)
def test_a_civitai_models_page_given_to_lora_is_told_where_its_file_is(page, command, tmp_path, monkeypatch):
    # The hint's curl saved the model's web page (as `paper-cut`, no extension), and the --lora it gave then named
    # that page: a refusal, not a LoRA.
    from motif_lite.cli.common import lora_args
    from motif_lite.weights.lora_errors import LoRAError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LoRAError) as refused:
        lora_args([f"{page}:0.8"])
    said = str(refused.value)
    assert said.startswith(f"--lora {page}:0.8 is a Civitai model's page, not its file; --lora takes a LoRA file")
    assert command in said and said.endswith("then give --lora paper-cut.safetensors:0.8"), said
    Path("paper-cut.safetensors").write_bytes(b"a LoRA")  # as the download leaves it: the --lora given is taken
    assert lora_args([said.rpartition("--lora ")[2]]) == [(Path("paper-cut.safetensors"), 0.8)]


@pytest.mark.parametrize(
    "given",
    [
        "https://www.huggingface.co/user/styles/blob/main/style.safetensors",  # the host with www. as typed
        "https://huggingface.co/spaces/user/app/blob/main/style.safetensors",  # a Space's file
    ],
    ids=["www-page", "space-page"],
)
def test_a_hub_file_page_on_www_or_of_a_space_is_downloaded_from_the_file_itself(given):
    from motif_lite.paths import url_fix

    downloaded = given.replace("/blob/", "/resolve/")
    assert url_fix(given, "-i", "first.png") == (
        f"download it first, e.g. curl -L -o style.safetensors {downloaded}, then give -i style.safetensors"
    )


def test_a_civitai_page_without_a_name_or_with_a_version_that_is_no_number(tmp_path, monkeypatch):
    # Without a name in its address the file is saved as lora.safetensors; a modelVersionId that is no number
    # (typed by hand) is no version to download: the command keeps VERSION to fill in.
    from motif_lite.cli.common import lora_args
    from motif_lite.weights.lora_errors import LoRAError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LoRAError) as refused:
        lora_args(["https://civitai.com/models/12345?modelVersionId=678:0.8"])
    said = str(refused.value)
    assert "curl -L -o lora.safetensors https://civitai.com/api/download/models/678, " in said, said
    assert said.endswith("then give --lora lora.safetensors:0.8"), said
    with pytest.raises(LoRAError) as refused:
        lora_args(["https://civitai.com/models/12345/paper-cut?modelVersionId=latest"])
    assert "https://civitai.com/api/download/models/VERSION (VERSION: the modelVersionId" in str(refused.value)


@pytest.mark.parametrize("repository", ["raw", "blob"])
def test_a_hub_files_own_address_in_a_repository_named_raw_or_blob_is_downloaded_as_given(repository):
    # Read as an owner-less repository's page (`user`, then /raw/), user/raw/resolve/main/x.safetensors was to be
    # downloaded from user/resolve/resolve/main/x.safetensors, no file at all.
    from motif_lite.paths import url_fix
    from motif_lite.shell_syntax import quoted

    url = f"https://huggingface.co/user/{repository}/resolve/main/style.safetensors"
    assert f"curl -L -o style.safetensors {quoted(url)}," in url_fix(url, "--lora", "lora.safetensors")


@pytest.mark.skipif(os.name == "nt", reason="a backslash separates folders there")
def test_a_name_with_backslashes_given_with_its_folder_is_taken(tmp_path, monkeypatch):
    # Every word with a backslash was refused as a relative Windows path: a Linux file named `a\b.mp4` (made by a
    # Windows tool on a shared drive), or an output in a folder named `models\x`, could not be given at all.
    from motif_lite.paths import windows_path_problem

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models\\x").mkdir()
    assert windows_path_problem("models\\x/out.mp4", platform="linux") is None
    assert windows_path_problem(f"{tmp_path}/a\\b.mp4", platform="linux") is None
    # ./ is dropped by pathlib, as the video's writer reads the path: refused, and the path the message gives is not
    problem = windows_path_problem(".\\a\\b.mp4", platform="linux")
    assert problem is not None and windows_path_problem("./a\\b.mp4", platform="linux") is not None
    given = problem.rpartition("given with its folder: ")[2].rstrip(")").strip("'")
    assert given == str(tmp_path / ".\\a\\b.mp4") and windows_path_problem(given, platform="linux") is None


@pytest.mark.parametrize(
    "given",
    ["clip\\(1\\).png", "fox\\[v2\\].mp4", "rock\\&roll.mp4", "my\\ fox\\ 2.mp4", "\\ fox.mp4", "\\(1\\).png", "~\\ x"],
)
def test_a_name_with_a_shells_escapes_left_in_it_is_no_windows_path(given):
    # Tab completion writes `clip(1).png` as `clip\(1\).png`; quoted, the backslashes stay, and the name was told
    # "so give 'clip/(1/).png'", a path that was never meant. Now it is a name not found, as before.
    from motif_lite.paths import windows_path_problem

    assert windows_path_problem(given, platform="linux") is None


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
@pytest.mark.parametrize("value", ["C:\\out\\fox.gguf", "C:/out/fox.gguf", "\\out\\fox.gguf", ".\\out\\fox.gguf"])
def test_the_quantizers_source_and_output_refuse_a_windows_path(value, capsys):
    # Its two paths are read as run's flags are: `-o \out\fox.gguf` was written as one file of that name here.
    from motif_lite.quantize.cli import build_parser

    for argv in ([value, "-o", "out.gguf"], ["models/Motif-Video-2B", "-o", value]):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(argv)
        message = capsys.readouterr().err.splitlines()[-1]
        assert exited.value.code == 2 and f"{value} is a Windows path" in message, message
        assert "/out/fox.gguf" in message, message


@pytest.mark.skipif(os.name == "nt", reason="`~\\` is the home folder there")
def test_powershells_home_given_from_python_is_told_with_slashes(tmp_path, monkeypatch):
    # A request's image and extend and load_pipeline's folder expand `~` first (`user_path`), which took
    # `~\Videos\fox.png` for the home of a user `\Videos\fox.png` and advised `~/\Videos\fox.png`, no such file.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.checkpoint_source import find_checkpoint
    from motif_lite.io.clip import read_clip
    from motif_lite.io.image import read_image

    monkeypatch.chdir(tmp_path)
    for read, given, meant in [
        (read_image, "~\\Pictures\\fox.png", "~/Pictures/fox.png"),
        (read_clip, "~\\Videos\\fox.mp4", "~/Videos/fox.mp4"),
        (find_checkpoint, "~\\models\\Motif-Video-2B", "~/models/Motif-Video-2B"),
    ]:
        with pytest.raises(MotifLiteError) as refused:
            read(given)
        assert f"separates folders with /, so give {meant}" in str(refused.value), refused.value
        assert "home folder of a user" not in str(refused.value), refused.value


@pytest.mark.skipif(os.name == "nt", reason="a backslash separates folders there")
def test_a_name_here_that_starts_with_a_tilde_and_a_backslash_is_told_how_to_keep_it(tmp_path, monkeypatch):
    # `-o './~\x.mp4'` (a file of that name here; pathlib drops the `./`) was told only "so give ~/x.mp4", a file
    # in the home folder; the name kept, given with its folder, is taken.
    from motif_lite.paths import windows_path_problem

    monkeypatch.chdir(tmp_path)
    problem = windows_path_problem("./~\\x.mp4", platform="linux")
    given = problem.rpartition("given with its folder: ")[2].rstrip(")").strip("'")
    assert given == f"{tmp_path}/~\\x.mp4" and windows_path_problem(given, platform="linux") is None, problem


@pytest.mark.parametrize("given", ["clip\\:1.png", "me\\@home.png", "a\\=b.png", "\\:x.mp4"])
def test_a_name_with_the_other_escapes_of_bash_completion_is_no_windows_path(given):
    # Bash's tab completion escapes `@`, `=` and `:` as well (`clip:1.png` as `clip\:1.png`); quoted, the name was
    # told "so give clip/:1.png", a path never meant.
    from motif_lite.paths import windows_path_problem

    assert windows_path_problem(given, platform="linux") is None


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("\\\\?\\Volume{1b3b1146-4076-11e1-84aa-806e6f6e6963}\\out\\fox.mp4", "is a Windows volume path"),
        ("\\\\?\\volume{1B3B1146-4076-11E1-84AA-806E6F6E6963}\\", "is a Windows volume path"),
        ("\\\\.\\pipe\\motif", "is the path of a Windows device"),
    ],
)
def test_a_windows_volume_or_device_path_is_no_network_path(given, said):
    # `\\?\Volume{GUID}\...` (mountvol's form of a volume) was told to be a network share to mount.
    from motif_lite.paths import windows_path_problem

    problem = windows_path_problem(given, platform="linux")
    assert problem.startswith(f"{given} {said}") and "network" not in problem and "no Linux equivalent" in problem


@pytest.mark.parametrize(("given", "drive"), [("C:out\\fox.mp4", "C"), ("d:renders\\fox.mp4", "D")])
def test_a_drive_relative_windows_path_is_told_to_be_given_in_full(given, drive, tmp_path, monkeypatch):
    # `C:out\fox.mp4` was told "give C:out/fox.mp4", a folder named `C:out` here: that drive's current folder is
    # known only to the Windows shell it was typed in.
    from motif_lite.paths import windows_path_problem

    monkeypatch.chdir(tmp_path)
    problem = windows_path_problem(given, platform="linux")
    assert problem.startswith(f"{given} is a Windows path relative to the current folder of drive {drive}:"), problem
    assert f"give the file's full path (under WSL2, drive {drive}: is /mnt/{drive.lower()}" in problem, problem
    assert given.replace("\\", "/") not in problem, problem
    kept = problem.rpartition("given with its folder: ")[2].rstrip(")").strip("'")  # the name as typed, here
    assert kept == f"{tmp_path}/{given}" and windows_path_problem(kept, platform="linux") is None


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
@pytest.mark.parametrize("value", ["C:\\out\\fox.gguf", "\\out\\fox.gguf", ".\\out\\fox.gguf"])
def test_the_quantizers_python_functions_refuse_a_windows_path(value, tmp_path, monkeypatch):
    # Its command line refused them (`path_arg`), and quantize_checkpoint(source, r"\out\fox.gguf", ...) wrote one
    # file of that name in the current folder; open_source(r"C:\models\x") said only that it does not exist.
    from types import SimpleNamespace

    from motif_lite.errors import CheckpointError, ConfigError
    from motif_lite.quantize import get_recipe, open_source, quantize_checkpoint

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        quantize_checkpoint(SimpleNamespace(is_gguf=False), value, get_recipe("q8_0"))
    assert str(refused.value).startswith(f"{value} is a Windows path") and not os.listdir(tmp_path), refused.value
    with pytest.raises(CheckpointError) as refused:
        open_source(value)
    assert str(refused.value).startswith(f"source {value} is a Windows path"), refused.value


@pytest.mark.skipif(os.name == "nt", reason="`~` is USERPROFILE's folder there")
@pytest.mark.parametrize(("home", "why"), [("~weird", "HOME is '~weird', no folder's path"), ("", "HOME is empty")])
def test_a_path_in_the_home_folder_where_home_names_none_says_so(home, why, monkeypatch):
    # `~/x` with HOME="~weird" was "~ names the home folder of a user ''", with `~//x` to give instead; with HOME
    # empty it was /x, a file in the root folder.
    monkeypatch.setenv("HOME", home)
    with pytest.raises(MotifLiteError) as raised:
        user_path("~/fox.mp4")
    assert str(raised.value) == (
        f"~/fox.mp4: ~ is your home folder, and {why}: give the path in full, or set HOME to the full path of your "
        "home folder"
    )


@pytest.mark.skipif(os.name == "nt", reason="`~` is USERPROFILE's folder there")
def test_a_path_in_the_home_folder_with_home_unset_and_no_home_in_the_password_database_says_so(monkeypatch):
    import pwd

    def no_entry(uid: int):
        raise KeyError(f"getpwuid(): uid not found: {uid}")  # a container's user with no line in /etc/passwd

    monkeypatch.delenv("HOME", raising=False)  # already unset where the suite runs without HOME
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(MotifLiteError) as raised:
        user_path("~/fox.mp4")
    assert "~/fox.mp4: ~ is your home folder, and HOME is not set: give the path in full" in str(raised.value)


def test_a_cmd_variable_whose_name_starts_with_an_underscore_is_told_as_one():
    # cmd takes `set _renders=D:\renders` (batch files often name their own variables so): `%_renders%\fox.mp4` is
    # as unexpanded here as %USERPROFILE%, and "so give %_renders%/fox.mp4" would name a folder of that name.
    from motif_lite.paths import windows_path_problem

    problem = windows_path_problem("%_renders%\\fox.mp4", platform="linux")
    assert problem is not None and "%_renders% is a variable of Windows' cmd" in problem, problem


def test_a_cmd_variable_after_the_first_folder_is_told_as_one():
    # cmd expands a variable anywhere in a path: "so give renders/%DATE%/fox.mp4" named a folder `%DATE%` here.
    from motif_lite.paths import windows_path_problem

    problem = windows_path_problem("renders\\%DATE%\\fox.mp4", platform="linux")
    assert problem is not None and "%DATE% is a variable of Windows' cmd, which Linux does not expand" in problem
    assert "renders/%DATE%" not in problem, problem
