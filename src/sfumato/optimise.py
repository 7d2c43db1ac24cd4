"""The optimiser: find a perturbation inside the budget that moves an image's latents to a target.

One machinery serves both protections (``shade`` and ``cloak`` differ only in the target image)
and the published baseline recipes. The image is attacked at its own size and aspect ratio; large
images are cut into overlapping tiles that are attacked one at a time (bounded memory) and blended
with feathered weights, which keeps every pixel inside its allowance; the blend is finished one row of
tiles at a time, so :func:`protect_image` hands out the 8-bit result without a whole-image float buffer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sfumato.countermeasures.views import TrainingViews
from sfumato.encoders.base import ImageEncoder
from sfumato.encoders.ensemble import Ensemble, pad_to_multiple
from sfumato.imageio import as_unit

# steps: encoder forward+backward passes per tile. lr: the first step, as a fraction of each
# pixel's allowance; it decays linearly to a hundredth of that.
SPEED: dict[str, dict[str, float]] = {
    "fast": {"steps": 6, "lr": 0.6},
    "default": {"steps": 12, "lr": 0.6},
    "thorough": {"steps": 48, "lr": 0.5},
}
METHODS = ("momentum", "sign")
TILE = 512
OVERLAP = 64

ProgressFn = Callable[[int, int], None]
#: A loss on the encoders' latents of the perturbed images: (latents, generator, target latents) -> scalar.
Objective = Callable[[list[torch.Tensor], torch.Generator, list[torch.Tensor]], torch.Tensor]


def latent_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """L2 distance between latents, per latent element (comparable across image sizes)."""
    return float((a - b).square().mean().sqrt())


@dataclass
class AttackResult:
    delta: torch.Tensor
    losses: list[float]


def _tile_batch(t: torch.Tensor, draws: int) -> torch.Tensor:
    """Targets for ``draws`` stacked copies of a batch (a single target broadcasts as it is)."""
    return t if draws == 1 or t.shape[0] == 1 else t.repeat(draws, *([1] * (t.dim() - 1)))


def attack(
    x: torch.Tensor,
    target_latents: Sequence[torch.Tensor],
    ensemble: Ensemble,
    allowance: torch.Tensor,
    *,
    steps: int,
    lr: float,
    method: str = "momentum",
    shared_channels: bool = False,
    seed: int = 0,
    progress: ProgressFn | None = None,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    mom: float = 0.5,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    objective: Objective | None = None,
    start: torch.Tensor | None = None,
) -> AttackResult:
    """Minimise the ensemble's normalised latent distance to ``target_latents`` within ``allowance``.

    The variable is ``u`` in the unit box, ``delta = allowance * u`` clipped to a valid image, so
    one code path serves a flat L-inf bound and a per-pixel visibility bound. Steps follow the sign
    of the gradient with a linear decay from ``lr`` to ``lr / 100`` (units: the allowance).
    ``method="sign"`` is plain sign-gradient PGD, as in the Nightshade and PhotoGuard recipes.
    ``method="momentum"`` (ours) follows the sign of a momentum of L1-normalised gradients
    (``mom``), which damps the oscillation of plain sign steps: in 48 steps it reaches the latent
    shift that the Nightshade recipe reaches in 500 (benchmarks/recipes.py).
    ``on_step(step, delta)`` sees the perturbation after each update (benchmarks trace with it).
    A *paired* transform (``transform.paired``, e.g. :class:`sfumato.countermeasures.views.BoundViews`)
    returns the transformed images together with their own target latents, and carries the
    normalisation ``base``; ``target_latents`` is then unused.
    ``objective(latents, generator, targets)``, when given, replaces the latent distance as the loss to
    minimise (see :mod:`sfumato.objectives`): it gets the encoders' latents of this step's (transformed)
    images and the matching target latents (``target_latents`` tiled over the transform's draws, or a
    paired transform's own). ``start`` (a perturbation inside ``allowance``) resumes an earlier attack:
    the surrogate-training schemes continue each work's perturbation round after round.
    """
    gen = torch.Generator().manual_seed(seed)
    channels = 1 if shared_channels else x.shape[1]
    paired = bool(getattr(transform, "paired", False))
    if objective is not None:
        base = []
    elif paired:
        base = list(transform.base)  # type: ignore[union-attr]
    else:
        with torch.no_grad():
            base = [
                max(float((z - t).square().mean()), 1e-12)
                for z, t in zip(ensemble.encode(x), target_latents, strict=True)
            ]
    u = torch.zeros((x.shape[0], channels, *x.shape[2:]), device=x.device)
    if start is not None:
        u = (start[:, :channels] / allowance).clamp(-1, 1).to(u.dtype)
    u.requires_grad_(True)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    momentum = torch.zeros_like(u)
    losses: list[float] = []
    lo, hi = -x, 1 - x  # keep x + delta a valid image
    for step in range(steps):
        delta = torch.maximum(torch.minimum(allowance * u, hi), lo)
        xa = x + delta
        targets = target_latents
        if paired:
            xa, targets = transform(xa, gen)  # type: ignore[misc]
        elif transform is not None:
            xa = transform(xa, gen)
        lats = ensemble.encode(xa, grad=True)
        # A transform may return several draws of the batch, stacked: draw k of image i at k * B + i.
        draws = xa.shape[0] // x.shape[0]
        if objective is not None:
            loss = objective(lats, gen, list(targets) if paired else [_tile_batch(t, draws) for t in targets])
        else:
            loss = sum(
                w * (z - (t if paired else _tile_batch(t, draws))).square().mean() / b
                for w, z, t, b in zip(ensemble.weights, lats, targets, base, strict=True)
            )
        u.grad = None
        loss.backward()
        losses.append(float(loss.detach()))
        frac = step / steps
        with torch.no_grad():
            g = u.grad
            if method == "momentum":
                momentum.mul_(mom).add_(g / g.abs().mean().clamp_min(1e-20))
                g = momentum
            u -= (lr * (1 - frac) + lr / 100 * frac) * g.sign()
            u.clamp_(-1, 1)
        if on_step is not None:
            with torch.no_grad():
                on_step(step + 1, torch.maximum(torch.minimum(allowance * u, hi), lo))
        if progress is not None:
            progress(step + 1, steps)
    with torch.no_grad():
        delta = torch.maximum(torch.minimum(allowance * u, hi), lo)
    return AttackResult(
        delta=delta.expand_as(x).clone() if shared_channels else delta.detach(), losses=losses
    )


def tile_grid(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Tile starts and the tile size covering ``length`` with neighbours sharing ``overlap`` px.

    ``tile`` is the nominal size; tiles grow by up to ``overlap`` so that as few as possible cover
    the side exactly (1024 px takes two 544 px tiles, not three of 512).
    """
    if length <= tile + overlap:
        return [0], length
    n = math.ceil((length - overlap) / tile)
    size = math.ceil((length + (n - 1) * overlap) / n)
    return [round(i * (length - size) / (n - 1)) for i in range(n)], size


def _feather(h: int, w: int, top: bool, bottom: bool, left: bool, right: bool, overlap: int) -> torch.Tensor:
    """Blend weights for one tile: ramps over the overlap on edges shared with a neighbour."""

    def ramp(n: int, start: bool, end: bool) -> torch.Tensor:
        r = torch.ones(n)
        k = min(overlap, n // 2)
        edge = (torch.arange(k) + 0.5) / k
        if start:
            r[:k] = edge
        if end:
            r[n - k :] = edge.flip(0)
        return r

    return ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :]


#: Rows ``top:bottom`` of the per-pixel allowance, (B, 1, bottom - top, W): the tiled optimiser asks for one
#: row of tiles at a time, so a large image never holds its whole allowance (``Budget.allowance_rows``).
AllowanceRows = Callable[[int, int], torch.Tensor]


def _rows_of(allowance: torch.Tensor | AllowanceRows) -> AllowanceRows:
    if isinstance(allowance, torch.Tensor):
        return lambda top, bottom: allowance[..., top:bottom, :]
    return allowance


def _one_piece(x: torch.Tensor, tile: int, overlap: int, views: TrainingViews | None) -> bool:
    """Whether ``x`` is attacked whole: training views see the whole image, and a small one is one tile."""
    h, w = x.shape[-2:]
    one_tile = len(tile_grid(h, tile, overlap)[0]) == 1 and len(tile_grid(w, tile, overlap)[0]) == 1
    return views is not None or one_tile


def _attack_whole(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    allowance: torch.Tensor,
    views: TrainingViews | None,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
    **kw: Any,
) -> torch.Tensor:
    x, target = as_unit(x), as_unit(target)
    if views is not None:
        z_target: list[torch.Tensor] = []
        transform = views.bind(x, target, ensemble, kw["seed"], then=transform)
    else:
        with torch.no_grad():
            z_target = ensemble.encode(target)
    return attack(x, z_target, ensemble, allowance, transform=transform, **kw).delta


def _tiled_bands(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    allowance: AllowanceRows,
    *,
    steps: int,
    seed: int,
    tile: int,
    overlap: int,
    progress: ProgressFn | None,
    **kw: Any,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """The perturbation of ``x``, attacked tile by tile, handed out in final row bands, top to bottom.

    Tiles are attacked one row of tiles at a time and blended with feathered weights; the rows above the
    next row of tiles are final once a row is done, so only one row of tiles' worth of blending buffers
    (and of allowance) exists at any time, whatever the image's height. Each yielded band (top, bottom,
    delta) is a view that the next step reuses: use or copy it at once. Every pixel's sums are formed in
    the same order as a whole-image accumulation would form them, so the result is the same bit for bit.
    """
    h, w = x.shape[-2:]
    (tops, tile_h), (lefts, tile_w) = tile_grid(h, tile, overlap), tile_grid(w, tile, overlap)
    total = len(tops) * len(lefts) * steps
    done, band_top = 0, 0
    b, c, dev = x.shape[0], x.shape[1], x.device
    acc, norm = torch.zeros((b, c, 0, w), device=dev), torch.zeros((b, 1, 0, w), device=dev)
    for i, top in enumerate(tops):
        bottom = top + tile_h
        grown = torch.zeros((b, c, bottom - band_top, w), device=dev)
        grown_norm = torch.zeros((b, 1, bottom - band_top, w), device=dev)
        grown[..., : acc.shape[-2], :] = acc
        grown_norm[..., : norm.shape[-2], :] = norm
        acc, norm = grown, grown_norm
        allowed = allowance(top, bottom)
        for j, left in enumerate(lefts):
            box = (..., slice(top, bottom), slice(left, left + tile_w))
            local = (..., slice(top - band_top, bottom - band_top), slice(left, left + tile_w))
            with torch.no_grad():
                z_target = ensemble.encode(as_unit(target[box]))

            def tile_progress(step: int, n: int, offset: int = done) -> None:
                if progress is not None:
                    progress(offset + step, total)

            delta = attack(
                as_unit(x[box]),
                z_target,
                ensemble,
                allowed[..., left : left + tile_w],
                steps=steps,
                seed=seed + 1000 * i + j,
                progress=tile_progress,
                **kw,
            ).delta
            th, tw = delta.shape[-2:]
            weight = _feather(th, tw, i > 0, i < len(tops) - 1, j > 0, j < len(lefts) - 1, overlap)
            acc[local] += delta * weight
            norm[local] += weight
            done += steps
        final = tops[i + 1] if i + 1 < len(tops) else h
        k = final - band_top
        yield band_top, final, acc[..., :k, :].div_(norm[..., :k, :].clamp_min_(1e-12))
        acc, norm, band_top = acc[..., k:, :], norm[..., k:, :], final


def perturbation_bands(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    allowance: torch.Tensor | AllowanceRows,
    *,
    steps: int,
    lr: float,
    method: str = "momentum",
    shared_channels: bool = False,
    seed: int = 0,
    tile: int = TILE,
    overlap: int = OVERLAP,
    progress: ProgressFn | None = None,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    views: TrainingViews | None = None,
    objective: Objective | None = None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Attack ``x`` (1, 3, H, W) toward ``target``'s latents; the perturbation as final row bands
    ``(top, bottom, delta)``, top to bottom (one band when the image is attacked whole).

    ``allowance``: the per-pixel bound, whole or as a function of rows (see :data:`AllowanceRows`).
    With ``views``, the latents pulled are those of random training views of the whole image (no
    tiles; ``transform``, if any, is applied to each view), see :mod:`sfumato.countermeasures.views`.
    ``objective`` replaces the latent distance as the loss (see :func:`attack`), tile by tile too.
    A band is a view that the next step reuses: use or copy it at once.
    """
    rows = _rows_of(allowance)
    kw: dict[str, Any] = dict(
        steps=steps, lr=lr, method=method, shared_channels=shared_channels, seed=seed, objective=objective
    )
    if _one_piece(x, tile, overlap, views):
        whole = rows(0, x.shape[-2])
        yield (
            0,
            x.shape[-2],
            _attack_whole(x, target, ensemble, whole, views, transform, progress=progress, **kw),
        )
        return
    yield from _tiled_bands(
        x, target, ensemble, rows, tile=tile, overlap=overlap, progress=progress, transform=transform, **kw
    )


def protect_tensor(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    allowance: torch.Tensor | AllowanceRows,
    **options: Any,
) -> torch.Tensor:
    """The perturbation of ``x``, whole (float, the shape of ``x``); ``options``: those of
    :func:`perturbation_bands` (``steps`` and ``lr`` required)."""
    out: torch.Tensor | None = None
    for top, bottom, delta in perturbation_bands(x, target, ensemble, allowance, **options):
        if (top, bottom) == (0, x.shape[-2]):
            return delta  # one band: it is the whole perturbation, no copy needed
        if out is None:
            out = torch.empty(x.shape, device=x.device)
        out[..., top:bottom, :] = delta
    assert out is not None
    return out


def to_8bit(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``x + delta`` as a saved file holds it: rounded to 8 bits (uint8). ``delta`` is used up."""
    return delta.add_(as_unit(x)).mul_(255).round_().clamp_(0, 255).to(torch.uint8)


def protect_image(
    x: torch.Tensor,
    target: torch.Tensor,
    ensemble: Ensemble,
    allowance: torch.Tensor | AllowanceRows,
    **options: Any,
) -> torch.Tensor:
    """The protected image (uint8, the shape of ``x``): the perturbation added and rounded to 8 bits
    band by band as the tiles finish, so neither the perturbation nor a float copy of the result ever
    exists whole (a quarter of the memory per pixel); bit for bit the rounding of :func:`protect_tensor`'s
    output. ``options``: those of :func:`perturbation_bands`."""
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    for top, bottom, delta in perturbation_bands(x, target, ensemble, allowance, **options):
        out[..., top:bottom, :] = to_8bit(x[..., top:bottom, :], delta)
    return out


@torch.no_grad()
def encode_tiled(
    encoder: ImageEncoder, x: torch.Tensor, tile: int = 1024, halo: int = 128, direct_max: int = 2_000_000
) -> torch.Tensor:
    """The latent of a whole image in bounded memory: encode overlapping tiles, keep their cores.

    Images up to ``direct_max`` pixels (2 MP: about 2 GB of activations) are encoded whole, larger
    ones in tiles (a 2048 px image whole would need 5 GB, benchmarks/speed.py). The encoders are
    convolutional, so away from tile borders a tile's latent matches the whole image's, except
    through FLUX.2's GroupNorm statistics (about 6 % relative latent error measured at 1536 px).
    """
    f = encoder.multiple
    h0, w0 = x.shape[-2:]
    h, w = h0 + (-h0) % f, w0 + (-w0) % f
    if h * w <= direct_max:
        return encoder(pad_to_multiple(as_unit(x), f)).float()
    # Tiles are cut from the unpadded image and padded themselves where they cross its padded edge, as
    # pad_to_multiple pads the whole (same mode, same pixels): no padded or float copy of the whole.
    mode = "reflect" if h - h0 < h0 and w - w0 < w0 else "replicate"
    core = tile - 2 * halo
    out: torch.Tensor | None = None
    for top in range(0, h, core):
        for left in range(0, w, core):
            bottom, right = min(top + core, h), min(left + core, w)
            t0, l0 = max(0, top - halo), max(0, left - halo)
            t1, l1 = min(h, bottom + halo), min(w, right + halo)
            window = as_unit(x[..., t0 : min(t1, h0), l0 : min(l1, w0)])
            if t1 > h0 or l1 > w0:
                window = F.pad(window, (0, max(0, l1 - w0), 0, max(0, t1 - h0)), mode=mode)
            z = encoder(window).float()
            if out is None:
                out = torch.empty(x.shape[0], z.shape[1], h // f, w // f)
            out[..., top // f : bottom // f, left // f : right // f] = z[
                ..., (top - t0) // f : (bottom - t0) // f, (left - l0) // f : (right - l0) // f
            ]
    assert out is not None
    return out
