"""The first words a user from another tool types before any flag: a prompt where the command goes (as a diffusers
script or an LLM command line takes it), and other tools' names for a video mode. Each gets the `run` line meant
instead of argparse's list of commands. And a model file given where a command takes a run's latents."""

from __future__ import annotations

import pytest

from motif_lite import cli


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["a red fox"], "motif-lite run -p 'a red fox'"),
        (["a red fox", "-o", "fox.mp4"], "motif-lite run -p 'a red fox' -o fox.mp4"),
        (["it's snowing"], "motif-lite run -p 'it'\"'\"'s snowing'"),  # quoted so that the shell takes it back
    ],
)
def test_a_prompt_given_as_the_command_gets_the_run_line(capsys, argv, meant):
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"motif-lite: error: {argv[0]!r} is no command; a prompt goes to run, after -p: {meant}\n"


@pytest.mark.parametrize(("command", "hint"), [("txt2vid", "motif-lite run -p"), ("img2vid", "run -i IMAGE -p")])
def test_other_tools_video_modes_get_run(capsys, command, hint):
    assert cli.main([command]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"motif-lite: error: there is no '{command}' command; ") and hint in err, err


def test_a_one_word_command_is_still_a_command_typo(capsys):
    # No space: a misspelled command, not a prompt.
    assert cli.main(["rnu"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == "motif-lite: error: there is no 'rnu' command: did you mean motif-lite run\n"


@pytest.mark.parametrize(("command", "saved_by"), [("resume", "a stopped run"), ("decode", "a failed decode")])
def test_a_gguf_model_given_for_the_latents_is_named_a_model_file(tmp_path, command, saved_by):
    # `run --resume motif-Q4_K_M.gguf` (the file beside it in the folder) said "not a safetensors file, or damaged".
    from motif_lite.io.latents import LatentsFileError, read_latents

    model = tmp_path / "motif-Q4_K_M.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(64))
    with pytest.raises(LatentsFileError) as error:
        read_latents(model, command=command)
    assert str(error.value) == (
        f"{model} is a GGUF model file (weights), not a latents file: a model goes to --gguf (the transformer) or "
        f"--text-encoder-gguf; give the .latents.safetensors file {saved_by} saved"
    )
