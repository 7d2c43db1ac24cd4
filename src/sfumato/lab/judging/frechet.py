"""Fréchet distances between image sets in the feature judge's space (the lab's FID: no Inception here).

A poison or cloak that only breaks images shows up as a sample set far from both concepts; one that
teaches the target shows up nearer the target's real images than the source's."""

from __future__ import annotations

import numpy as np
import torch

from sfumato.lab.judging.classifiers import Judge


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features (N_a, D) and (N_b, D).

    ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` with unbiased covariances, in
    float64; ``tr((S_a S_b)^(1/2))`` is the sum of the square roots of the eigenvalues of the symmetric
    PSD matrix ``S_a^(1/2) S_b S_a^(1/2)`` (same spectrum), round-off below zero clipped. Each set needs
    at least 2 rows; fewer rows than features is allowed (singular covariances).
    """
    a = np.asarray(torch.as_tensor(feats_a).detach().cpu().double().numpy())
    b = np.asarray(torch.as_tensor(feats_b).detach().cpu().double().numpy())
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with one D, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("each set needs at least 2 feature vectors")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(value, 0.0)


def frechet_between(judge: Judge, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """:func:`frechet_distance` of two image sets in ``judge``'s penultimate feature space."""
    return frechet_distance(judge.features(images_a), judge.features(images_b))
