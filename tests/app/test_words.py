"""One visibility story (issue 23): the presets, the page's words and the heat map agree."""

from __future__ import annotations

import re

import pytest
import torch
from tests.conftest import photo

from sfumato.app.heatmap import heat_map
from sfumato.app.jobs import choices
from sfumato.app.server import STATIC
from sfumato.app.words import FIGURE_HELP, INTENSITY_HELP
from sfumato.budget import INTENSITY, jnd_map, make_budget
from sfumato.imageio import to_tensor

# the engine's names for model families (flux2, sana) are jargon; the products' names (FLUX.2, Sana) are not
JARGON = re.compile(r"(?i:latent|encoder|tile|flux2|pillow|\bdB\b)|\bsana\b")


@pytest.mark.parametrize("name", list(INTENSITY["jnd"]))
def test_intensity_words_are_the_presets_own_figures(name: str) -> None:
    preset = INTENSITY["jnd"][name]
    assert f"{preset['scale']:.0%} of what the eye can notice" in INTENSITY_HELP[name]
    assert f"{round(preset['eps'] * 255)} of 255" in INTENSITY_HELP[name]


def test_no_page_claims_a_psnr_threshold_of_visibility() -> None:
    page = (STATIC / "app.js").read_text() + (STATIC / "index.html").read_text()
    assert "above 35 dB" not in page and "35 dB" not in " ".join(FIGURE_HELP.values())


def test_the_menus_speak_without_jargon() -> None:
    menus = choices(("flux2", "sana", "sd"))
    for group in ("modes", "styles", "intensities", "speeds", "families"):
        for choice in menus[group]:
            assert not JARGON.search(choice["help"]), choice


def test_a_default_change_stays_under_the_threshold_the_heat_map_draws() -> None:
    """The largest change the default preset allows is half the heat map's threshold, so the heat map
    says 0 % visible, as the words say, whatever the PSNR."""
    image = to_tensor(photo("goldfish", (96, 72)))
    allowance = make_budget("default").allowance(image[None])[0]
    signs = torch.sign(torch.randn(1, *image.shape[1:]))
    changed = ((image + allowance * signs).clamp(0, 1) * 255).round() / 255
    _, figures = heat_map(image, changed)
    assert figures["visible_fraction"] < 0.01
    assert figures["peak_ratio"] <= INTENSITY["jnd"]["default"]["scale"] + 0.5 / float(
        jnd_map(image[None]).min()
    )


def test_the_lab_page_and_the_words_are_served(config, client_for) -> None:
    client = client_for(config, start_worker=False)
    lab = client.get("/lab")
    assert lab.status_code == 200 and lab.text.startswith("## The lab, measured")
    words = client.get("/api/info").json()["words"]
    assert (
        set(words["verdicts"]) == {"strong", "weak", "none"}
        and words["figures"]["psnr"] == FIGURE_HELP["psnr"]
    )
