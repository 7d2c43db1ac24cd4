"""Generator-aware poisons: shaded images whose *training gradient* is that of the target concept.

``shade`` moves a poison's latents toward a cat's; a fine-tuned generator then learns those latents, and
at the 36 % of the distance an invisible budget allows they still decode as dogs ("broken dogs", see
README). An attacker who holds the base generator's weights can aim at what fine-tuning actually does
instead: the poisons are optimised so that the gradient of the generator's own flow-matching loss on
them, captioned as the source, points where the gradient on the anchors (cats captioned "dog") points.
This is gradient matching (Geiping et al. 2021, "Witches' Brew", there for classifiers), adapted here to
the lab's text-to-image loss: the poisons' summed parameter gradient is matched in cosine to the anchors'
mean gradient, each step with fresh noise and times so the match holds for any draw.

The images stay inside the engine's visibility budget and are optimised by the engine's optimiser
(:func:`sfumato.optimise.attack` with a custom objective); only the loss differs from ``shade``. It is a
white-box upper bound: the victim fine-tunes the very generator the poisons were crafted against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from sfumato.budget import make_budget
from sfumato.encoders.ensemble import Ensemble
from sfumato.lab.models.generator import LatentUNet, flow_matching_loss
from sfumato.lab.poison.craft import PoisonBatch, as_unit, closed_fraction, encode_with
from sfumato.optimise import SPEED, attack

DRAWS = 2  # noise/time draws per poison per step
TARGET_DRAWS = 4  # draws per anchor for the target gradient
TARGET_BATCH = 64

TextFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


def trained_parameters(model: LatentUNet, emb: torch.Tensor, mask: torch.Tensor) -> list[torch.Parameter]:
    """The parameters a captioned training step reaches (the learned null caption is not one of them)."""
    everything = list(model.parameters())
    cfg = model.config
    probe = torch.zeros((1, cfg.latent_channels, cfg.latent_size, cfg.latent_size))
    gen = torch.Generator().manual_seed(0)
    loss = flow_matching_loss(model, probe, emb[:1], mask[:1], gen, cond_drop=0.0)
    grads = torch.autograd.grad(loss, everything, allow_unused=True)
    return [p for p, g in zip(everything, grads, strict=True) if g is not None]


def _flat(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


def _loss(
    model: LatentUNet,
    latents: torch.Tensor,
    emb: torch.Tensor,
    mask: torch.Tensor,
    gen: torch.Generator,
    draws: int,
) -> torch.Tensor:
    z = model.normalize(latents)
    return sum(flow_matching_loss(model, z, emb, mask, gen, cond_drop=0.0) for _ in range(draws)) / draws


def target_gradient(
    model: LatentUNet,
    params: Sequence[torch.Parameter],
    anchor_latents: torch.Tensor,
    emb: torch.Tensor,
    mask: torch.Tensor,
    seed: int = 0,
) -> torch.Tensor:
    """The mean flattened parameter gradient of the loss on the anchors under the source's captions."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(sum(p.numel() for p in params))
    n = anchor_latents.shape[0]
    for s in range(0, n, TARGET_BATCH):
        sl = slice(s, min(s + TARGET_BATCH, n))
        loss = _loss(model, anchor_latents[sl], emb[sl], mask[sl], gen, TARGET_DRAWS)
        total += _flat(torch.autograd.grad(loss, params)) * (sl.stop - sl.start) / n
    return total


class GradientMatch:
    """The attack objective: 1 - cosine(poisons' parameter gradient, target gradient)."""

    def __init__(
        self,
        model: LatentUNet,
        params: Sequence[torch.Parameter],
        target: torch.Tensor,
        emb: torch.Tensor,
        mask: torch.Tensor,
    ) -> None:
        self.model, self.params, self.target, self.emb, self.mask = model, list(params), target, emb, mask

    def gradient(self, latents: torch.Tensor, gen: torch.Generator, graph: bool = False) -> torch.Tensor:
        """The flattened parameter gradient of the mean loss on ``latents`` captioned as ``emb``."""
        loss = _loss(self.model, latents, self.emb, self.mask, gen, DRAWS)
        return _flat(torch.autograd.grad(loss, self.params, create_graph=graph))

    def alignment(self, latents: torch.Tensor, gen: torch.Generator, graph: bool = False) -> torch.Tensor:
        """Cosine between that gradient and the target."""
        return torch.nn.functional.cosine_similarity(self.gradient(latents, gen, graph), self.target, 0)

    def __call__(
        self, latents: list[torch.Tensor], gen: torch.Generator, targets: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        return 1 - self.alignment(latents[0], gen, graph=True)


class GradientPoisoner:
    """Poisons against one generator, toward one target gradient computed once for every batch.

    ``candidates`` (K, 3, S, S; uint8 or [0, 1]) are the target-concept images (all of them) whose mean
    gradient under ``target_captions`` (one per candidate; noise drawn with ``target_seed``) the poisons
    imitate; ``encoder`` is the generator's latent encoder. Target and parameters depend on nothing else, so
    the chunks of a pool share them.
    """

    def __init__(
        self,
        model: LatentUNet,
        encoder: torch.nn.Module,
        candidates: torch.Tensor,
        text: TextFn,
        target_captions: Sequence[str],
        target_seed: int = 0,
    ) -> None:
        if len(target_captions) != candidates.shape[0]:
            raise ValueError(f"{candidates.shape[0]} candidates but {len(target_captions)} target captions")
        self.model, self.encoder, self.text = model, encoder, text
        model.eval()
        model.requires_grad_(True)
        encoder.requires_grad_(False)
        self.anchor_latents = encode_with([encoder], as_unit(candidates))[0]
        t_emb, t_mask = text(list(target_captions))
        with sdpa_kernel(SDPBackend.MATH):
            self.params = trained_parameters(model, t_emb, t_mask)
            self.target = target_gradient(model, self.params, self.anchor_latents, t_emb, t_mask, target_seed)

    def match(self, captions: Sequence[str]) -> GradientMatch:
        """The objective for images captioned ``captions``."""
        return self._match(*self.text(list(captions)))

    def _match(self, emb: torch.Tensor, mask: torch.Tensor) -> GradientMatch:
        return GradientMatch(self.model, self.params, self.target, emb, mask)

    def poison(
        self,
        sources: torch.Tensor,
        captions: Sequence[str],
        *,
        anchors: torch.Tensor | None = None,
        intensity: str = "high",
        budget: str = "jnd",
        eps: float | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch: int = 50,
        progress: Callable[[int, int], None] | None = None,
    ) -> PoisonBatch:
        """Poison ``sources`` (N, 3, S, S; uint8 or [0, 1]) for a generator fine-tuned with ``captions``.

        The figures returned match :func:`sfumato.lab.craft.make_poisons`: latent distance closed toward
        each poison's anchor (``anchors``, (N,) indices into the candidates; default ``i % K``) and PSNR.
        These poisons are not aimed at their anchors' latents, so they close little of that distance.
        """
        unit = as_unit(sources)
        if len(captions) != unit.shape[0]:
            raise ValueError(f"{unit.shape[0]} sources but {len(captions)} captions")
        rule = make_budget(intensity, budget, eps=eps)
        n_steps = steps or int(SPEED["thorough"]["steps"])
        ensemble = Ensemble([self.encoder])
        emb, mask = self.text(list(captions))
        out = torch.empty_like(unit)
        # The double backward this needs has no fused-attention kernel on the CPU.
        with sdpa_kernel(SDPBackend.MATH):
            for start in range(0, unit.shape[0], batch):
                sl = slice(start, min(start + batch, unit.shape[0]))
                x = unit[sl]
                result = attack(
                    x,
                    [],
                    ensemble,
                    rule.allowance(x),
                    steps=n_steps,
                    lr=SPEED["thorough"]["lr"],
                    seed=seed + start,
                    objective=self._match(emb[sl], mask[sl]),
                )
                out[sl] = ((x + result.delta) * 255).round().clamp(0, 255) / 255
                if progress is not None:
                    progress(sl.stop, unit.shape[0])
        k = self.anchor_latents.shape[0]
        pair = anchors if anchors is not None else torch.arange(unit.shape[0]) % k
        src_lat, after = encode_with([self.encoder], unit)[0], encode_with([self.encoder], out)[0]
        closed = closed_fraction(after, src_lat, self.anchor_latents[pair])
        mse = (out - unit).flatten(1).square().mean(1).clamp_min(1e-12)
        return PoisonBatch((out * 255).round().to(torch.uint8), pair, closed, 10 * torch.log10(1 / mse))


def make_gradient_poisons(
    sources: torch.Tensor,
    candidates: torch.Tensor,
    model: LatentUNet,
    encoder: torch.nn.Module,
    captions: Sequence[str],
    text: TextFn,
    *,
    target_captions: Sequence[str] | None = None,
    target_seed: int = 0,
    **options: Any,
) -> PoisonBatch:
    """One-off :class:`GradientPoisoner` ``poison`` call; ``target_captions`` default to ``captions``
    cycled over the candidates. ``options``: those of :meth:`GradientPoisoner.poison`."""
    t_caps = list(target_captions or [captions[i % len(captions)] for i in range(candidates.shape[0])])
    poisoner = GradientPoisoner(model, encoder, candidates, text, t_caps, target_seed)
    return poisoner.poison(sources, captions, **options)
