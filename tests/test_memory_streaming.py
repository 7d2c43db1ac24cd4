"""Issue 23, finding 8: the optimiser, the allowance, the effect report and the output work in bands and
tiles, so a large image never exists whole as a float perturbation or result; with exactly the figures of
the whole-image computation."""

from __future__ import annotations

import pytest
import torch
from tests.conftest import photo

from sfumato.budget import make_budget
from sfumato.encoders import load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.imageio import to_tensor
from sfumato.optimise import _feather, attack, encode_tiled, protect_image, protect_tensor, tile_grid, to_8bit
from sfumato.quality import measure_quality
from sfumato.targets import fit_to


def _pair(w: int = 230, h: int = 170) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor(photo("golden_retriever", (w, h)))[None]
    return x, fit_to(to_tensor(photo("tabby"))[None], h, w)


def _whole_image_blend(x, t, ens, allowance, *, steps, lr, seed, tile, overlap):
    """The blend as it was before it streamed: every tile's perturbation accumulated into whole-image
    buffers, divided at the end."""
    h, w = x.shape[-2:]
    (tops, th), (lefts, tw) = tile_grid(h, tile, overlap), tile_grid(w, tile, overlap)
    acc, norm = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            box = (..., slice(top, top + th), slice(left, left + tw))
            with torch.no_grad():
                zt = ens.encode(t[box])
            d = attack(x[box], zt, ens, allowance[box], steps=steps, lr=lr, seed=seed + 1000 * i + j).delta
            weight = _feather(th, tw, i > 0, i < len(tops) - 1, j > 0, j < len(lefts) - 1, overlap)
            acc[box] += d * weight
            norm[box] += weight
    return acc.div_(norm.clamp_min_(1e-12))


def test_allowance_rows_are_the_whole_allowance_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    import sfumato.budget as budget_module

    x, _ = _pair()
    monkeypatch.setattr(budget_module, "_BAND", 13 * 230)  # 13 rows a band: ranges cut bands anywhere
    for kind in ("jnd", "linf"):
        rule = make_budget("default", kind)
        whole = rule.allowance(x)
        for top, bottom in ((0, 170), (5, 60), (13, 26), (40, 41), (150, 170)):
            assert torch.equal(rule.allowance_rows(x, top, bottom), whole[..., top:bottom, :])


def test_the_streamed_blend_is_the_whole_image_blend_bit_for_bit(weights_dir) -> None:
    x, t = _pair()
    ens = Ensemble([load_encoder("flux2", weights_dir)])
    rule = make_budget("default", "jnd")
    kw = dict(steps=2, lr=0.6, seed=3, tile=64, overlap=24)  # 4 x 4 tiles
    assert len(tile_grid(170, 64, 24)[0]) > 2 and len(tile_grid(230, 64, 24)[0]) > 2
    reference = _whole_image_blend(x, t, ens, rule.allowance(x), **kw)
    streamed = protect_tensor(x, t, ens, lambda a, b: rule.allowance_rows(x, a, b), **kw)
    assert torch.equal(streamed, reference)
    image = protect_image(x, t, ens, rule.allowance(x), **kw)
    assert image.dtype == torch.uint8 and image.shape == x.shape
    assert torch.equal(image, to_8bit(x, reference.clone()))
    # ... and one tile (or training views) is attacked whole, the same way in both.
    small = protect_image(x[..., :60, :60], t[..., :60, :60], ens, rule.allowance(x[..., :60, :60]), **kw)
    whole = protect_tensor(x[..., :60, :60], t[..., :60, :60], ens, rule.allowance(x[..., :60, :60]), **kw)
    assert torch.equal(small, to_8bit(x[..., :60, :60], whole))


def test_an_8_bit_file_is_kept_in_8_bits_and_read_as_the_floats_it_decodes_to(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from sfumato.imageio import load_image

    picture = photo("golden_retriever", (90, 70))
    picture.save(tmp_path / "a.png")
    rgba = picture.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "b.png")
    picture.convert("L").save(tmp_path / "c.png")
    for name, img in (("a.png", picture), ("b.png", picture), ("c.png", picture.convert("L").convert("RGB"))):
        loaded = load_image(tmp_path / name)
        assert loaded.pixels.dtype == torch.uint8  # a quarter of the memory of floats
        decoded = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)
        assert torch.equal(loaded.rgb, decoded)  # exactly the floats it was once decoded to
    assert load_image(tmp_path / "b.png").alpha.dtype == torch.float32
    Image.fromarray(np.full((70, 70), 40000, dtype=np.uint16)).save(tmp_path / "d.png")
    assert load_image(tmp_path / "d.png").pixels.is_floating_point()  # 16-bit stays float


def test_an_8_bit_result_is_measured_as_its_float_copy(weights_dir) -> None:
    x, t = _pair(150, 101)  # not a multiple of the encoder's 16 px: the tiles at the edge are padded
    noisy = (x + (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.05).clamp(0, 1)
    as_8bit = noisy.mul(255).round().to(torch.uint8)
    as_float = as_8bit.float() / 255
    enc = load_encoder("flux2", weights_dir)
    for direct_max in (2_000_000, 1):  # whole, and in tiles (with halos and padded edges)
        z8 = encode_tiled(enc, as_8bit, tile=64, halo=16, direct_max=direct_max)
        zf = encode_tiled(enc, as_float, tile=64, halo=16, direct_max=direct_max)
        assert torch.equal(z8, zf)
    assert measure_quality(x, as_8bit) == measure_quality(x, as_float)


_TINY = """
import resource, sys, torch

def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024

def start_peak():
    # Reset the peak (Linux: VmHWM) so that it is measured from the memory in use now, not from an
    # earlier, higher peak; elsewhere the lifetime peak.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

def peak_growth(start):
    try:
        return _status("VmHWM") - start
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - start
from pathlib import Path
from torch import nn
torch.set_num_threads(1)
from sfumato.encoders.base import ImageEncoder

class Tiny(ImageEncoder):
    name, multiple = "tiny", 8
    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(3, 4, 8, stride=8)
    def encode(self, x):
        return self.net(x * 2 - 1)
"""

_PEAK = (
    _TINY
    + """
from sfumato.budget import make_budget
from sfumato.encoders.ensemble import Ensemble
from sfumato.optimise import protect_image

ens = Ensemble([Tiny().freeze()], bf16=False)
rule = make_budget()
g = torch.Generator().manual_seed(0)
n = int(sys.argv[1])
x, t = torch.rand(1, 3, n, n, generator=g), torch.rand(1, 3, n, n, generator=g)
small = (..., slice(0, 700), slice(0, 700))
xs, ts = x[small], t[small]  # warm up
protect_image(xs, ts, ens, lambda a, b: rule.allowance_rows(xs, a, b), steps=1, lr=0.5)
start = start_peak()
out = protect_image(x, t, ens, lambda a, b: rule.allowance_rows(x, a, b), steps=1, lr=0.5)
assert out.dtype == torch.uint8
print(peak_growth(start))
"""
)

_WHOLE_CALL = (
    _TINY
    + """
import sfumato
from sfumato.encoders import register_loader

register_loader(lambda name: Tiny().freeze() if name == "tiny" else None)
side, folder, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
kw = dict(encoders=("tiny",), steps=1, device="cpu", weights_dir=folder / "no-weights")
def call(name):
    if mode == "cloak":
        return sfumato.cloak(str(folder / name), "sketch", **kw)
    return sfumato.shade(str(folder / name), str(folder / "anchor.png"), **kw)
call("small.png")  # warm up
start = start_peak()
out = call(f"{side}.png")
assert out.pixels.dtype == torch.uint8 and out.image.size == (side, side)
print(peak_growth(start))
"""
)


def _mb_per_megapixel(script: str, *args: str, **env: str) -> tuple[float, dict[int, int]]:
    """Run ``script SIDE *args`` in a fresh process at 1600 and 3200 px; the growth of its peak (MB, the
    last line it prints) per megapixel between the two, and the two peaks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    full = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", **env}
    peaks = {}
    for side in (1600, 3200):
        run = subprocess.run(
            [sys.executable, "-c", script, str(side), *args],
            env=full,
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[side] = int(run.stdout.strip().splitlines()[-1])
    return (peaks[3200] - peaks[1600]) / ((3200**2 - 1600**2) / 1e6), peaks


def test_protecting_a_large_image_needs_little_memory_per_pixel() -> None:
    """The memory a protection needs beyond its image and target, at 2.6 and 10.2 MP: with whole-image
    buffers (allowance, sums, weights, the float result and its rounding) it grew by 22 MB per MP;
    streamed, by 4.4 (the 8-bit result, 3 MB per MP, and one row of tiles, which grows with the width)."""
    per_mp, peaks = _mb_per_megapixel(_PEAK)
    assert per_mp < 12, f"{per_mp:.1f} MB more per megapixel ({peaks})"


@pytest.mark.parametrize("mode", ["shade", "cloak"])
def test_a_whole_call_needs_little_memory_per_pixel(tmp_path, mode: str) -> None:
    """File in, PIL image and report out, at 2.6 and 10.2 MP: before the result, the target and the
    anchor's fitting were kept in 8 bits, a shade call grew by 70 MB per MP, now by 16 (what it must hold:
    the 8-bit source, target, result and returned image, 12 MB per MP, plus the fitting's one float copy
    and the optimiser's row of tiles); a cloak call grew by 47 while its style was rendered on the whole
    picture at once, and is held to the same bound now that styles are rendered in bands."""
    import numpy as np
    from PIL import Image

    g = np.random.default_rng(0)
    for name, (h, w) in (
        ("small", (300, 300)),
        ("anchor", (700, 900)),
        ("1600", (1600, 1600)),
        ("3200", (3200, 3200)),
    ):
        Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    # No real encoder's weights to be found: the report measures with the tiny one alone.
    per_mp, peaks = _mb_per_megapixel(
        _WHOLE_CALL,
        str(tmp_path),
        mode,
        HF_HUB_OFFLINE="1",
        SFUMATO_WEIGHTS=str(tmp_path / "no-weights"),
        XDG_CACHE_HOME=str(tmp_path / "no-cache"),
    )
    assert per_mp < 30, f"{per_mp:.1f} MB more per megapixel ({peaks})"
