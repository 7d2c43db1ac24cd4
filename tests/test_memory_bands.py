"""Issue 23, finding 8: the visibility figures and the JND allowance are computed in row bands (bounded
memory), with exactly the values of the whole-image computation."""

from __future__ import annotations

import math

import pytest
import torch

from sfumato import budget as budget_module
from sfumato import quality as quality_module
from sfumato.budget import MIN_ALLOWANCE, jnd_map, make_budget
from sfumato.quality import flat_mask, measure_quality


def _pair(h: int = 70, w: int = 53) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, h, w, generator=g)
    a[..., 20:45, 10:40] = 0.5  # a flat patch, so both flat and textured figures are non-trivial
    b = (a + (torch.rand(a.shape, generator=g) - 0.5) * 0.04).clamp(0, 1)
    return a, b


def test_allowance_in_bands_equals_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = _pair()
    rule = make_budget("default", "jnd")
    whole = (rule.scale * jnd_map(a) / 255).clamp(MIN_ALLOWANCE, rule.eps)
    monkeypatch.setattr(budget_module, "_BAND", 9 * 53)  # 16 rows a band
    banded = rule.allowance(a)
    assert torch.allclose(banded, whole, atol=1e-7)


def test_quality_in_bands_equals_the_whole_image(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pair()
    diff = (b - a).abs()
    per_pixel = diff.mean(1, keepdim=True) * 255
    flat = flat_mask(a)
    monkeypatch.setattr(quality_module, "_BAND", 16 * 53)
    q = measure_quality(a, b)
    assert q.psnr_db == pytest.approx(10 * math.log10(1 / float(diff.square().mean())), rel=1e-6)
    assert q.max_change == pytest.approx(float(diff.max()) * 255, rel=1e-6)
    assert q.mean_change == pytest.approx(float(per_pixel.mean()), rel=1e-5)
    assert q.flat_fraction == pytest.approx(float(flat.float().mean()), rel=1e-6)
    assert 0 < q.flat_fraction < 1
    assert q.flat_mean_change == pytest.approx(float(per_pixel[flat].mean()), rel=1e-5)
    assert q.textured_mean_change == pytest.approx(float(per_pixel[~flat].mean()), rel=1e-5)


_PEAK = """
import resource, torch
torch.set_num_threads(1)
from sfumato.budget import make_budget
from sfumato.quality import measure_quality
a = torch.rand(1, 3, 2400, 2400)
b = (a + 0.01).clamp(0, 1)
allowance = torch.empty(1, 1, 2400, 2400)  # what the result itself needs
make_budget().allowance(a[..., :64, :64]); measure_quality(a[..., :64, :64], b[..., :64, :64])  # warm up
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
allowance = make_budget().allowance(a)
measure_quality(a, b)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) // 1024)
"""


def test_visibility_figures_need_little_memory_beyond_the_image() -> None:
    """At 5.8 MP the whole-image versions took about 0.9 GB above the images; the banded ones ~0.1 GB."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _PEAK], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) < 150, f"peak grew by {out.stdout.strip()} MB"
