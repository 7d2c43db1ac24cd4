"""Model families: the user's choice of what to protect against, and the default ensemble's weights."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

import pytest
from tests.conftest import photo

import sfumato
from sfumato.cli import main
from sfumato.families import (
    DEFAULT_FAMILIES,
    FAMILIES,
    available_families,
    default_ensemble,
    family_ensemble,
    parse_families,
    resolve_encoders,
)

TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "latent_spaces.json"
FAST = dict(steps=1, speed="fast", device="cpu")


def test_the_default_families_are_those_sfumato_can_fetch_and_verify():
    assert DEFAULT_FAMILIES == ("flux2", "sana")
    assert parse_families("auto") == DEFAULT_FAMILIES
    assert parse_families("sd, flux2,sd") == ("sd", "flux2")
    with pytest.raises(ValueError, match="'midjourney'"):
        parse_families("flux2,midjourney")
    with pytest.raises(ValueError, match="'auto'"):
        parse_families("auto,flux2")


def test_the_ensemble_weighs_each_family_by_the_inverse_of_what_it_closes_alone():
    encoders, weights = default_ensemble()
    assert encoders == ("flux2", "sana") and sum(weights) == pytest.approx(1, abs=1e-3)
    # the family that gives way less easily gets more of the budget, in proportion
    assert weights[0] * FAMILIES["flux2"].closed == pytest.approx(
        weights[1] * FAMILIES["sana"].closed, rel=1e-3
    )
    encoders, weights = family_ensemble("flux2,sd")
    assert encoders == ("flux2", "sd") and weights[1] > weights[0]
    _, unmeasured = family_ensemble("flux2,sana,sdxl")  # unmeasured: weighted as the mean measured family
    measured = mean(f.closed for f in FAMILIES.values() if f.closed is not None)
    assert unmeasured[2] * measured == pytest.approx(unmeasured[0] * FAMILIES["flux2"].closed, rel=1e-3)
    assert family_ensemble("sana") == (("sana",), ())  # one family: the same settings as --encoders sana


@pytest.mark.skipif(not TABLE.exists(), reason="needs the checkout's benchmark results")
def test_the_weights_follow_the_committed_latent_space_table():
    """The figures in the family table are the benchmark's means at the 35 dB preset, not guesses."""
    runs = json.loads(TABLE.read_text())["runs"]
    spaces = {"flux2": "flux2", "sana": "sana", "sd": "private:sd-class-autoencoder"}
    for family, space in spaces.items():
        closed = mean(r["closed"] for r in runs if r["space"] == space and r["budget"] == "jnd35")
        assert FAMILIES[family].closed == pytest.approx(closed, abs=5e-4), family


def test_encoders_given_win_and_weights_need_encoders():
    assert resolve_encoders(None) == default_ensemble()
    assert resolve_encoders(["flux2"], [1.0]) == (("flux2",), (1.0,))
    with pytest.raises(ValueError, match="encoders"):
        resolve_encoders(None, [1.0, 2.0])


def test_available_families_add_a_user_supplied_encoder(tmp_path, weights_dir):
    assert available_families(tmp_path) == DEFAULT_FAMILIES  # nothing extra at hand
    (tmp_path / "taesd_encoder.pth").write_bytes((weights_dir / "taef2_encoder.pth").read_bytes())
    assert available_families(tmp_path) == (*DEFAULT_FAMILIES, "sd")


def test_the_api_default_attacks_the_default_ensemble(dog, cat, weights_dir):
    report = sfumato.shade(dog, cat, weights_dir=weights_dir, **FAST).report
    latents = report["effect"]["latents"]
    assert latents["flux2"]["attacked"] and latents["sana"]["attacked"]
    assert list(report["settings"]["encoders"]) == ["flux2", "sana"]
    assert list(report["settings"]["encoder_weights"]) == list(default_ensemble()[1])


def test_the_cli_protects_against_the_chosen_family(tmp_path, capsys, weights_dir):
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    photo("golden_retriever", (96, 96)).save(src)
    out = tmp_path / "out"
    args = ["cloak", str(src), "-o", str(out), "--style", "sketch", "--steps", "1", "--device", "cpu"]
    assert main([*args, "--family", "sana", "--quiet"]) == 0
    report = json.loads((out / "a.png.json").read_text())
    assert report["settings"]["encoders"] == ["sana"]
    assert (
        report["effect"]["latents"]["sana"]["attacked"]
        and not report["effect"]["latents"]["flux2"]["attacked"]
    )
    capsys.readouterr()

    assert main([*args, "--family", "midjourney"]) == 2
    assert "unknown model family 'midjourney'" in capsys.readouterr().err
    assert main([*args, "--family", "flux2", "--encoders", "sana"]) == 2
    assert "either --family or --encoders" in capsys.readouterr().err
    assert main([*args, "--encoder-weights", "1,1"]) == 2
    assert "--encoder-weights needs --encoders" in capsys.readouterr().err
