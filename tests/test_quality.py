from __future__ import annotations

import math

import torch

from sfumato.quality import measure_quality, ssim


def test_psnr_and_changes_are_exact_for_a_known_shift():
    a = torch.full((3, 64, 64), 0.5)
    b = a + 4 / 255
    q = measure_quality(a, b)
    assert math.isclose(q.psnr_db, 20 * math.log10(255 / 4), rel_tol=1e-4)
    assert math.isclose(q.max_change, 4.0, rel_tol=1e-4)
    assert q.flat_fraction == 1.0 and math.isclose(q.flat_mean_change, 4.0, rel_tol=1e-4)


def test_ssim_is_one_for_identical_images_and_banding_matches_whole():
    a = torch.rand(1, 3, 1100, 40)
    assert abs(ssim(a, a) - 1) < 1e-6
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    import kornia

    whole = float(kornia.metrics.ssim(a, b, 11, padding="valid").mean())
    assert abs(ssim(a, b) - whole) < 1e-5


def test_flat_and_textured_changes_are_separated():
    a = torch.full((1, 3, 64, 128), 0.5)
    a[..., 64:] = torch.rand(1, 3, 64, 64)
    b = a.clone()
    b[..., 80:] += 0.02
    q = measure_quality(a, b.clamp(0, 1))
    assert q.flat_mean_change < 0.5 < q.textured_mean_change
