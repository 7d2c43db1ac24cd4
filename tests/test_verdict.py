"""The per-image verdict: never protected when the encoding did not move, capped by the lab's findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sfumato.verdict import LAB_URL, LEVELS, batch_lines, verdict, verdicts


def report(
    moved: float | None, mode: str = "cloak", encoders: tuple[str, ...] = ("flux2",), **extra: Any
) -> dict:
    latents = {
        e: {"attacked": True, **({} if moved is None else {"fraction_moved": moved})} for e in encoders
    }
    latents["sana"] = latents.get("sana") or {"attacked": False, "fraction_moved": 0.9}
    return {"settings": {"mode": mode, "encoders": list(encoders)}, "effect": {"latents": latents}, **extra}


def test_negative_movement_is_none_never_protected() -> None:
    v = verdict(report(-0.19))
    assert v.level == "none" and not v.protected
    assert "-19%" in v.why and "not protected" in v.why


def test_nil_movement_is_none() -> None:
    assert verdict(report(0.01)).level == "none"
    assert verdict(report(None)).level == "none"


def test_cloak_in_flux2_is_weak_and_says_the_lab_found_it_does_not_stop_mimicry() -> None:
    v = verdict(report(0.38))
    assert v.level == "weak" and not v.protected
    assert "FLUX.2" in v.why and "-7 to 22 %" in v.why
    assert v.lab == LAB_URL and LAB_URL.endswith("#the-lab-measured")


def test_shade_in_flux2_is_weak_no_more_than_a_wrong_caption() -> None:
    v = verdict(report(0.36, mode="shade"))
    assert v.level == "weak" and "wrong caption" in v.why


def test_shade_in_the_sd_family_rests_on_the_lab_analogue() -> None:
    v = verdict(report(0.3, mode="shade", encoders=("sd",)))
    assert v.level == "weak" and "Stable Diffusion" in v.why and "wrong caption" in v.why


def test_untested_space_is_weak_and_says_untested() -> None:
    v = verdict(report(0.5, encoders=("sana",)))
    assert v.level == "weak" and "not tested" in v.why


def test_attacked_movement_decides_not_transfer() -> None:
    # the unattacked encoder moved 90 %, the attacked one not at all: nothing protects
    assert verdict(report(0.0)).level == "none"


def test_views_share_nil_is_none() -> None:
    v = verdict(report(0.4, views={"fraction_moved": {"flux2": 0.005}}))
    assert v.level == "none" and "training" in v.why


def test_counts_every_level() -> None:
    counts = verdicts([report(-0.5), report(0.3), report(0.3, mode="shade")])
    assert counts == {"none": 1, "weak": 2, "strong": 0} and tuple(counts) == LEVELS


def test_batch_lines_count_and_warn_for_the_unprotected() -> None:
    lines, warnings = batch_lines([("flat.png", report(-0.3)), ("art.png", report(0.4))])
    assert lines[0].startswith("verdict: 1 weak, 1 none") and LAB_URL in lines[0]
    assert "FLUX.2" in lines[1]
    assert warnings == [f"warning: flat.png is not protected: {verdict(report(-0.3)).why}"]
    assert batch_lines([]) == ([], [])


def test_cli_summary_prints_the_verdict_and_warns_for_a_flat_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], weights_dir: Path
) -> None:
    """A flat grey image leaves the change nowhere to hide: its encoding does not move, and the end of
    the batch must say it is not protected (never a silent success)."""
    from sfumato.cli import main

    flat = tmp_path / "in" / "flat.png"
    flat.parent.mkdir()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(flat)
    args = ["cloak", str(flat), "-o", str(tmp_path / "out"), "--style", "sketch"]
    code = main([*args, "--steps", "1", "--speed", "fast", "--device", "cpu", "--weights", str(weights_dir)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "verdict:" in out and LAB_URL in out
    sidecar = json.loads((tmp_path / "out" / "flat.png.json").read_text())
    assert verdict(sidecar).level == "none"  # one step on flat grey moves it away (-8 % here)
    assert "flat.png is not protected" in err and "none" in out


def test_summary_table_rows_carry_the_verdict() -> None:
    from sfumato.report import summary_row

    assert summary_row("flat.png", report(-0.2))["verdict"] == "none"
    assert summary_row("art.png", report(0.3))["verdict"] == "weak"


def test_lab_text_is_the_readme_section_or_the_findings(tmp_path: Path) -> None:
    from sfumato.verdict import lab_text

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = lab_text(readme)
    assert text.startswith("## The lab, measured") and "\n## " not in text and "-7 / 4 / 22 / 0 / 3 %" in text
    fallback = lab_text(tmp_path / "missing.md")
    assert "-7 to 22 %" in fallback and "wrong caption" in fallback


def test_the_decoded_flux2_cloak_has_its_own_lab_finding() -> None:
    v = verdict(report(0.03, encoders=("flux2-decoded",)))
    assert v.level == "weak" and "2-4 %" in v.why and "not tested" not in v.why
