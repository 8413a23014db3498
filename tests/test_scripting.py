"""`motif-lite run` driven by a script: a loop over a prompts file, names made from seeds, exit codes checked.
What such a script gives by mistake is refused at once with a one-line error (exit code 2, no traceback, no file)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from motif_lite import cli
from motif_lite.request import GenerationRequest, RequestError


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> tuple[Path, object]:
    return shared_checkpoint  # read only


def run_args(root: Path, *extra: str) -> list[str]:
    return ["run", "-m", str(root), "-W", "48", "-H", "32", "--video-frames", "1", "--steps", "1", "-s", "3", *extra]


def test_an_output_name_with_another_tools_placeholder_is_refused(checkpoint, tmp_path, capsys):
    # -o "fox_{seed}.mp4" (a placeholder ComfyUI-like tools fill in) was written as it is, braces and all, after a
    # note: every run of a loop over prompts or seeds then replaced the last one's video.
    output = tmp_path / "fox_{seed}.png"
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(output))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: -o {output} has {{seed}}, which motif-lite does not fill in" in err, err
    assert '-s "$seed" -o "fox_$seed.mp4"' in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # refused before any work: no file of that name, nor a claim of it


def test_braces_without_a_name_in_them_are_no_placeholder(checkpoint, tmp_path, capsys):
    for plain in ("fox {1}.png", "fox {}.png", "fox_{0}.png", "fox_{:04d}.png", "fox.mp4", "fox_%03d.png"):
        assert cli.main([*run_args(checkpoint[0], "-p", "fox", "--dry-run", "-o", str(tmp_path / plain))]) == 0
        assert "does not fill in" not in capsys.readouterr().err, plain


@pytest.mark.parametrize(
    "name, advice",
    [
        ("fox_{prompt}.mp4", '(n=$((n + 1)); -o "clip$n.mp4"), and each file keeps its prompt in its metadata'),
        ("fox_{n}.mp4", "-b N numbers a batch's files -1, -2, ... itself"),
        ("fox_{seed:04d}.mp4", '-s "$seed" -o "fox_$seed.mp4"'),  # a format spec, as an f-string's
        ("fox_{Date!s}.mp4", '-o "fox_$(date +%Y%m%d-%H%M%S).mp4" puts the time in the name'),
        ("fox_{date}.mp4", '-o "fox_$(date +%Y%m%d-%H%M%S).mp4" puts the time in the name'),
        ("fox_{frame}.mp4", "a video file holds all its frames; for a PNG per frame give -o "),
        ("fox_{frame:04d}.mp4", "a video file holds all its frames; for a PNG per frame give -o "),
    ],
)
def test_each_placeholder_is_told_how_a_script_fills_it(checkpoint, tmp_path, capsys, name, advice):
    # Every placeholder was told to put the seed in the name (-o "fox_$seed.mp4"), a prompt's and a date's too.
    output = tmp_path / name
    assert cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(output))]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert advice in err, err
    assert "seed" in name or "fox_$seed.mp4" not in err, err
    if "{frame" in name:
        assert str(tmp_path / "fox_%03d.png") in err, err


def test_braces_of_another_kind_and_in_a_folder_name_are_part_of_the_name(checkpoint, tmp_path, capsys):
    # The whole path was searched, any word in braces refused: an existing folder `{v2}` got "the file would be
    # named with the braces", and a file `fox_{v2}.png` could never be written.
    (tmp_path / "{v2}").mkdir()
    for name in ("{v2}/fox.png", "fox_{v2}.png", "{seed}/fox.png"):
        if name.startswith("{seed}"):
            (tmp_path / "{seed}").mkdir()
        code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(tmp_path / name))])
        assert code == 0, capsys.readouterr().err
        assert (tmp_path / name).is_file()
        assert "does not fill in" not in capsys.readouterr().err, name


def test_a_frame_number_placeholder_in_a_png_name_is_told_the_frame_pattern(checkpoint, tmp_path, capsys):
    # `out_{frame}.png` for a 5-frame video got the seed advice (-o "fox_$seed.mp4"): it is a PNG sequence's name.
    output = str(tmp_path / "out_{frame}.png")
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "--video-frames", "5", "-o", output)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert f"motif-lite's PNG sequences write it as printf's %03d: -o {tmp_path / 'out_%03d.png'}" in err, err
    assert "$seed" not in err, err


@pytest.mark.parametrize("flag", ["-p", "-n"])
def test_a_value_that_starts_with_a_dash_gets_the_way_to_give_it(checkpoint, capsys, flag):
    # A line of a prompts file such as "-fox" after -p is taken by argparse for a flag: the error said only that -p
    # wants a value, which the script had given.
    extra = ["-p", "fox"] if flag == "-n" else []
    with pytest.raises(SystemExit) as stopped:
        cli.main([*run_args(checkpoint[0], *extra, flag, "-fox")])
    err = capsys.readouterr().err
    assert stopped.value.code == cli.EXIT_USER_ERROR, err
    long = {"-p": "--prompt", "-n": "--negative-prompt"}[flag]
    assert f"a value that starts with a dash is given after '=', as one word: {long}=-fox" in err, err
    # ... and that way runs it, with the dash kept
    capsys.readouterr()
    assert cli.main([*run_args(checkpoint[0], *extra, f"{long}=-fox", "--dry-run")]) == 0
    out = capsys.readouterr().out
    assert ("prompt: '-fox'" in out) == (flag == "-p")
    assert (re.search(r"^  negative +flag +'-fox'$", out, re.MULTILINE) is not None) == (flag == "-n"), out


def test_a_flag_left_without_its_value_gets_no_dash_hint(checkpoint, capsys):
    # -p followed by another of our flags: the prompt was left out, not one that starts with a dash
    with pytest.raises(SystemExit):
        cli.main([*run_args(checkpoint[0], "-p", "--dry-run")])
    err = capsys.readouterr().err
    assert "expected one argument" in err, err
    assert "starts with a dash" not in err, err


def test_the_dash_hint_reads_the_word_after_the_flag_argparse_stopped_at(checkpoint, capsys):
    # A wrapper's `-p default "$@"` with the user's -p -fox: the hint gave the first -p's value (--prompt=fox).
    with pytest.raises(SystemExit):
        cli.main([*run_args(checkpoint[0], "-p", "fox", "-p", "-fox")])
    err = capsys.readouterr().err
    assert "as one word: --prompt=-fox (in a script" in err, err


@pytest.mark.parametrize("word", ["--dry", "--dyr-run", "-W48", "--steps=4"])
def test_a_flag_of_ours_after_a_flag_gets_no_dash_hint(checkpoint, capsys, word):
    # A shortened or misspelled flag of ours (--dry for --dry-run), or one given with its value, after -p: the
    # prompt was left out, and --prompt=--dry would make a video of the flag's name.
    with pytest.raises(SystemExit):
        cli.main([*run_args(checkpoint[0], "-p", word)])
    err = capsys.readouterr().err
    assert "expected one argument" in err, err
    assert "starts with a dash" not in err, err


@pytest.mark.parametrize(
    "name, said",
    [
        ("clip\r.png", "holds a carriage return (\\r: a Windows line end"),  # `-o "$name.png"`, name from a CRLF file
        ("two\nlines.png", "holds a control character ('\\n')"),  # a multi-line prompt put in the name
        ("del\x7f.png", "holds a control character ('\\x7f')"),  # DEL, a terminal's backspace pasted in
    ],
)
def test_an_output_name_with_a_control_character_is_refused(checkpoint, tmp_path, capsys, name, said):
    # The file was written as named, the \r out of sight in a listing, and a line break split the `output:` line
    # that a script reads the file's path from.
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(tmp_path / name))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: -o {str(tmp_path / name)!r} {said}" in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["clip\r.png", "two\nlines.png", "tab\t.png"])
@pytest.mark.parametrize("as_path", [False, True])
def test_the_python_api_refuses_an_output_name_with_a_control_character(tmp_path, name, as_path):
    # Only run's flag checks refused it: GenerationRequest(output="a\nb.png") (and decode, which checks its -o
    # the same way) wrote the file so named. One check of the output's name covers them all, a Path too.
    output = tmp_path / name
    request = GenerationRequest("a fox", output=output if as_path else str(output), width=64, height=64, frames=1)
    with pytest.raises(RequestError, match="holds a (carriage return|control character)") as refused:
        request.resolve()
    assert refused.value.fields == ("output",)
    assert f"output {str(output)!r} holds" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_seed_over_32_bits_is_told_the_seed_that_draws_the_same_noise(checkpoint, capsys):
    # A seed of ComfyUI's (drawn up to 2**64 - 1) or a diffusers script's torch.Generator().manual_seed(N) was
    # refused with the range alone, though torch's CPU generator reads only its low 32 bits: its noise is drawable.
    big = 123456789012
    code = cli.main(run_args(checkpoint[0], "-p", "fox", "--dry-run", "-s", str(big)))  # the last -s counts
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    (hinted,) = re.findall(r"reads only a seed's low 32 bits: give (\d+) for the same noise", err)
    shape = (1, 16, 3, 4, 6)  # a latent's noise, as diffusers draws it with the generator it is given
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(big))
    assert torch.equal(noise, torch.randn(shape, generator=torch.Generator().manual_seed(int(hinted))))
    assert cli.main(run_args(checkpoint[0], "-p", "fox", "--dry-run", "-s", hinted)) == 0
    capsys.readouterr()
    # past 2**64 - 1 torch takes no seed (diffusers fails too): the range alone
    assert cli.main(run_args(checkpoint[0], "-p", "fox", "--dry-run", "-s", str(2**64))) == cli.EXIT_USER_ERROR
    assert "low 32 bits" not in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["-p", "-n"])
def test_a_dash_for_standard_input_is_refused(checkpoint, tmp_path, capsys, flag):
    # `echo "a fox" | motif-lite run -p -`: a dash, many tools' standard input, made a video of the text "-".
    extra = ["-p", "fox"] if flag == "-n" else []
    code = cli.main(run_args(checkpoint[0], *extra, flag, "-", "-o", str(tmp_path / "fox.png")))
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: {flag} - would make the" in err and f'{flag} "$(cat)" reads standard input' in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fox_{Seed}.png", "fox_{SEED}.png"])
def test_a_placeholder_in_capitals_is_refused_too(checkpoint, tmp_path, capsys, name):
    # Tools spell their placeholders in either case (a template's {Seed}, {SEED}); the file got the braces all the same.
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(tmp_path / name))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "which motif-lite does not fill in" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_dash_hint_gives_a_value_with_a_quote_as_one_word_the_shell_reads_back(checkpoint, capsys):
    # A prompt line such as -fox's den: pasted unquoted, the quote opened a string the shell waited to see closed.
    with pytest.raises(SystemExit):
        cli.main([*run_args(checkpoint[0], "-p", "-fox's")])
    err = capsys.readouterr().err
    given = err.split("as one word: ", 1)[1].split(" (in a script", 1)[0]
    done = subprocess.run(["bash", "-c", f'printf "%s\\0" {given}'], capture_output=True, check=True)
    assert done.stdout.decode().split("\0")[:-1] == ["--prompt=-fox's"], err


def test_a_dash_given_as_one_word_or_by_a_file_is_the_prompt(checkpoint, tmp_path, capsys):
    # The docs' loop gives each line as --prompt="$prompt", said to take any line, but a line "-" was refused; and
    # a file made with the prompt "-" could not be made again: --settings-from's prompt was refused as "-p -", a
    # flag never typed.
    made = tmp_path / "dash.png"
    assert cli.main(run_args(checkpoint[0], "--prompt=-", "--negative-prompt=-", "-o", str(made))) == 0, (
        capsys.readouterr().err
    )
    assert "prompt: '-'" in capsys.readouterr().out
    again = ["run", "-m", str(checkpoint[0]), "--settings-from", str(made), "-o", str(tmp_path / "again.png")]
    code = cli.main(again)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "prompt: '-'" in out, out
    assert re.search(r"^  negative +\S+ +'-'", out, re.MULTILINE), out
    assert (tmp_path / "again.png").is_file()


@pytest.mark.parametrize("name", ["out_{frame}.PNG", "out_{FRAME}.png"])
def test_a_frame_number_placeholder_in_capitals_is_told_as_in_lower_case(checkpoint, tmp_path, capsys, name):
    # A .PNG name is a PNG sequence's as a .png one is: it gets the frame pattern, not the video name's refusal.
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "--video-frames", "5", "-o", str(tmp_path / name))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    ours = name.replace(name[4:-4], "%03d")
    assert f"motif-lite's PNG sequences write it as printf's %03d: -o {tmp_path / ours}" in err, err
    assert "a video file holds all its frames" not in err, err


def test_a_frame_number_placeholder_in_capitals_in_a_video_name_is_refused(checkpoint, tmp_path, capsys):
    code = cli.main([*run_args(checkpoint[0], "-p", "fox", "-o", str(tmp_path / "fox_{Frame}.mp4"))])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "a video file holds all its frames" in err, err
    assert list(tmp_path.iterdir()) == []
