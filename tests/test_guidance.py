"""Parity of motif_lite.sampling guidance (CFG, APG) with diffusers 0.42.1 guiders, over several steps."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance
from tiny_pipeline import official_apg

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.sampling import (
    RECOMMENDED_APG,
    APGConfig,
    APGState,
    CFGConfig,
    GuiderConfig,
    cfg,
    guidance_active,
    guidance_from_guider_config,
    guide,
    guided_steps,
    needs_uncond,
)

SHAPES = [(2, 4, 3, 5, 6), (2, 16, 1, 4, 4), (2, 3, 8)]


def diffusers_guides_some_step(guider, steps: int) -> bool:
    """Whether the diffusers guider asks for the unconditional prediction on any step of a `steps`-step run."""
    guided = []
    for i in range(steps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=torch.tensor(1000.0 - i))
        guided.append(guider.num_conditions == 2)
    return any(guided)


def run_both(guider, ours, shape, steps: int = 5, seed: int = 0) -> None:
    """Feed the same random cond/uncond pairs to the diffusers guider and to `guide`, step by step."""
    gen = torch.Generator().manual_seed(seed)
    state = APGState()
    for i in range(steps):
        cond = torch.randn(shape, generator=gen) * 3
        uncond = cond + torch.randn(shape, generator=gen)
        guider.set_state(step=i, num_inference_steps=steps, timestep=torch.tensor(1000.0 - i))
        batches = guider.prepare_inputs({"x": (cond, uncond)})  # resets APG momentum on step 0
        assert guidance_active(ours, i, steps) == (len(batches) == 2), f"step {i}"
        expected = guider.forward(cond, uncond if len(batches) == 2 else None).pred
        got = guide(ours, cond, uncond if guidance_active(ours, i, steps) else None, state, i, steps)
        assert torch.equal(got, expected), f"step {i}"


# (shape, norm dims); per-frame dims (-1, -2, -4) only make sense on [B, C, F, H, W].
NORM_CASES = [(shape, dims) for shape in SHAPES for dims in (None, -1)] + [
    (shape, (-1, -2, -4)) for shape in SHAPES[:2]
]


@pytest.mark.parametrize(("shape", "norm_dims"), NORM_CASES)
@pytest.mark.parametrize("eta", [0.0, 1.0, 0.5])
def test_apg_equals_diffusers_over_steps(shape, norm_dims, eta: float) -> None:
    guider = AdaptiveProjectedGuidance(
        guidance_scale=6.0,
        adaptive_projected_guidance_momentum=-0.5,
        adaptive_projected_guidance_rescale=2.0,  # small enough that the norm clipping is active
        adaptive_projected_guidance_norm_dim=norm_dims,
        eta=eta,
    )
    ours = APGConfig(scale=6.0, momentum=-0.5, norm_threshold=2.0, norm_dims=norm_dims, eta=eta)
    run_both(guider, ours, shape)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_original_formulation": True},
        {"adaptive_projected_guidance_momentum": None, "adaptive_projected_guidance_rescale": 0.0},
        {"adaptive_projected_guidance_momentum": 0.1, "guidance_rescale": 0.7},
        {"start": 0.2, "stop": 0.7, "adaptive_projected_guidance_momentum": 0.3},
        {"guidance_scale": 1.0},  # diffusers formulation: scale 1 is a no-op, no uncond pass
        {"guidance_scale": 0.0, "use_original_formulation": True},
    ],
)
def test_apg_variants_equal_diffusers(kwargs: dict) -> None:
    guider = AdaptiveProjectedGuidance(
        **{"guidance_scale": 7.0, "adaptive_projected_guidance_norm_dim": [-1, -2, -4]} | kwargs
    )
    ours = APGConfig(
        scale=guider.guidance_scale,
        norm_threshold=guider.adaptive_projected_guidance_rescale,
        momentum=guider.adaptive_projected_guidance_momentum,
        norm_dims=(-1, -2, -4),
        original_formulation=guider.use_original_formulation,
        guidance_rescale=guider.guidance_rescale,
        start=guider._start,
        stop=guider._stop,
    )
    assert needs_uncond(ours, 10) == diffusers_guides_some_step(guider, 10)
    run_both(guider, ours, SHAPES[0], steps=10)


def test_recommended_apg_equals_official_guider() -> None:
    official = official_apg()
    run_both(official, RECOMMENDED_APG, SHAPES[0], steps=6)
    assert RECOMMENDED_APG.eta == official.eta  # the reference does not pass eta: class default


@pytest.mark.parametrize(
    "kwargs",
    [
        {"guidance_scale": 4.0},
        {"guidance_scale": 4.0, "use_original_formulation": True},
        {"guidance_scale": 3.0, "guidance_rescale": 0.5, "start": 0.3, "stop": 0.8},
        {"guidance_scale": 1.0},
    ],
)
def test_cfg_equals_diffusers(kwargs: dict) -> None:
    guider = ClassifierFreeGuidance(**kwargs)
    ours = CFGConfig(
        scale=guider.guidance_scale,
        guidance_rescale=guider.guidance_rescale,
        original_formulation=guider.use_original_formulation,
        start=guider._start,
        stop=guider._stop,
    )
    assert needs_uncond(ours, 10) == diffusers_guides_some_step(guider, 10)
    run_both(guider, ours, SHAPES[0], steps=10)


@pytest.mark.parametrize(
    "guider",
    [
        ClassifierFreeGuidance(guidance_scale=3.0, start=0.5, stop=0.65),
        AdaptiveProjectedGuidance(guidance_scale=7.0, adaptive_projected_guidance_momentum=0.3, start=0.5, stop=0.65),
    ],
)
def test_guidance_window_with_fractional_step_bounds_equals_diffusers(tmp_path, guider) -> None:
    """With 7 steps the window bounds start·N = 3.5 and stop·N = 4.55 are not whole: diffusers truncates both."""
    guider.save_config(tmp_path)
    run_both(guider, guidance_from_guider_config(tmp_path), SHAPES[0], steps=7)


def test_cfg_formula() -> None:
    cond, uncond = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(cfg(cond, uncond, 5.0), uncond + 5.0 * (cond - uncond))
    torch.testing.assert_close(cfg(cond, uncond, 1.0), cond)


def test_needs_uncond() -> None:
    assert not needs_uncond(None, 50)
    assert not needs_uncond(CFGConfig(scale=1.0), 50)
    assert needs_uncond(CFGConfig(scale=1.0, original_formulation=True), 50)  # cond + 1·(cond − uncond)
    assert not needs_uncond(APGConfig(scale=0.0, original_formulation=True), 50)
    assert needs_uncond(RECOMMENDED_APG, 50)


@pytest.mark.parametrize("method", ["cfg", "apg"])
@pytest.mark.parametrize(("start", "stop"), [(0.5, 0.55), (0.3, 0.35), (0.0, 0.05), (0.91, 1.0), (0.5, 0.6)])
@pytest.mark.parametrize("steps", [1, 3, 7, 10, 20])
def test_a_window_that_holds_no_step_needs_no_uncond_as_in_diffusers(method, start, stop, steps) -> None:
    """A narrow window over few steps (0.5-0.55 of 10 steps: int(5.0) <= i < int(5.5)) guides no step: diffusers
    never asks for the unconditional prediction, and no caller should prepare for it."""
    if method == "cfg":
        guider, ours = (
            ClassifierFreeGuidance(guidance_scale=3.0, start=start, stop=stop),
            CFGConfig(3.0, start=start, stop=stop),
        )
    else:
        guider = AdaptiveProjectedGuidance(guidance_scale=7.0, start=start, stop=stop)
        ours = APGConfig(scale=7.0, start=start, stop=stop)
    assert needs_uncond(ours, steps) == diffusers_guides_some_step(guider, steps)
    assert list(guided_steps(ours, steps)) == [i for i in range(steps) if guidance_active(ours, i, steps)]


@pytest.mark.parametrize(
    "guider",
    [
        AdaptiveProjectedGuidance(
            guidance_scale=8.0,
            adaptive_projected_guidance_rescale=12.0,
            adaptive_projected_guidance_momentum=0.1,
            use_original_formulation=True,
            adaptive_projected_guidance_norm_dim=[-1, -2, -4],
        ),
        AdaptiveProjectedGuidance(eta=0.0, stop=0.5),
        ClassifierFreeGuidance(guidance_scale=5.5, guidance_rescale=0.3),
    ],
)
def test_guidance_from_guider_config_round_trips_diffusers_files(tmp_path, guider) -> None:
    guider.save_config(tmp_path)  # writes guider_config.json like a checkpoint's guider/ folder
    ours = guidance_from_guider_config(tmp_path)
    assert ours is not None
    run_both(guider, ours, SHAPES[0], steps=6)


@pytest.mark.parametrize(
    "config",
    [
        {"_class_name": "AdaptiveProjectedGuidance"},
        {"_class_name": "AdaptiveProjectedGuidance", "guidance_scale": 8.0, "use_original_formulation": True},
        {"_class_name": "ClassifierFreeGuidance"},
    ],
)
def test_guider_config_without_some_keys_takes_diffusers_class_defaults(tmp_path, config) -> None:
    """A hand-written guider_config.json may leave keys out (`enabled` too): diffusers then uses its class
    defaults (APG: scale 7.5, norm threshold 15, no momentum, eta 1; CFG: scale 7.5), and so must we."""
    (tmp_path / "guider_config.json").write_text(json.dumps(config))
    guider = {"AdaptiveProjectedGuidance": AdaptiveProjectedGuidance, "ClassifierFreeGuidance": ClassifierFreeGuidance}[
        config["_class_name"]
    ].from_pretrained(tmp_path)
    assert guider.config["enabled"]
    ours = guidance_from_guider_config(tmp_path)
    assert ours is not None
    run_both(guider, ours, SHAPES[0], steps=6)


def test_guidance_from_guider_config_absent_disabled_and_invalid(tmp_path) -> None:
    assert guidance_from_guider_config(tmp_path / "guider") is None
    path = tmp_path / "guider_config.json"
    path.write_text(json.dumps({"_class_name": "ClassifierFreeGuidance", "enabled": False}))
    assert guidance_from_guider_config(tmp_path) is None
    bad = [
        "{",
        json.dumps({"_class_name": "PerturbedAttentionGuidance"}),
        json.dumps({"_class_name": "ClassifierFreeGuidance", "guidance_scael": 3.0}),
        json.dumps({"_class_name": "ClassifierFreeGuidance", "guidance_scale": "high"}),
        json.dumps({"_class_name": "AdaptiveProjectedGuidance", "start": 0.9, "stop": 0.1}),
    ]
    for text in bad:
        path.write_text(text)
        with pytest.raises(ConfigError):
            guidance_from_guider_config(path)


def test_a_guider_config_gives_its_guidance_only_when_enabled() -> None:
    # the checkup's guider row and `guidance_from_guider_config` both read it: a disabled guider runs unguided
    guidance = CFGConfig(scale=4.0)
    assert GuiderConfig(guidance).guidance_if_enabled is guidance
    assert GuiderConfig(guidance, enabled=False).guidance_if_enabled is None


@pytest.mark.parametrize(
    ("config", "said"),
    [
        # diffusers would take the string "false" as enabled (a non-empty string is true): refused, not guessed
        ({"_class_name": "ClassifierFreeGuidance", "enabled": "false"}, "enabled must be true or false, got 'false'"),
        ({"_class_name": "ClassifierFreeGuidance", "enabled": 0}, "enabled must be true or false, got 0"),
        # an empty list names no dimension to take the norm over
        (
            {"_class_name": "AdaptiveProjectedGuidance", "adaptive_projected_guidance_norm_dim": []},
            r"APG norm_dims must be None or a list of ints, got \[\]",
        ),
    ],
)
def test_a_guider_config_value_of_another_kind_is_refused_by_its_name(tmp_path, config, said) -> None:
    (tmp_path / "guider_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=said):
        guidance_from_guider_config(tmp_path)


def test_bad_guidance_values_raise_user_errors() -> None:
    with pytest.raises(MotifLiteError, match="start"):
        CFGConfig(start=1.0)
    with pytest.raises(MotifLiteError, match="eta"):
        APGConfig(eta=float("nan"))
    with pytest.raises(MotifLiteError, match="norm_dims"):
        APGConfig(norm_dims=["-1"])
    with pytest.raises(MotifLiteError, match="norm_dims"):
        APGConfig(norm_dims=())  # no dimension to take the norm over
    assert APGConfig(norm_dims=[-1, -2]).norm_dims == (-1, -2) and APGConfig(norm_dims=-1).norm_dims == (-1,)
