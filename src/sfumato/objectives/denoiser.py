"""Per-work objectives on the denoiser: AdvDM, score distillation (``sds-``) and Mist-v2's targeted loss.

Each is a loss :func:`sfumato.optimise.attack` minimises, called with the generator encoder's latents of
the perturbed work (and of its transformed views, stacked draw-major) and, for ``targeted``, the target's
latents. The generator is the attacker's copy (white-box); what transfers is the lab's question (issue 21).

- ``advdm`` (Liang et al. 2023, AdvDM; the per-image core of Anti-DreamBooth): *maximise* the generator's
  training loss on the work, captioned with its prompt, over random times and noise. Fine-tuning on the
  work then learns from latents the denoiser finds hard, so it learns them badly.
- ``sds-`` (Xue et al. 2024, "Toward effective protection against diffusion-based mimicry through score
  distillation"): *minimise* that loss, with the score-distillation gradient: the noise-prediction
  residual back-propagated through the encoder only, skipping the denoiser's backward pass (about half
  the cost). Their measurements rank this "minimise" variant the most effective.
- ``targeted`` (Mist-v2, Zheng et al. 2023): pull the denoiser's prediction toward the target image's
  latents, so fine-tuning imprints the target's texture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sfumato.generators.base import Condition, Generator, denoising_loss, repeat_condition


class AdvDM:
    """Minus the denoising loss of ``generator`` on the work under ``cond``, over ``draws`` draws of time
    and noise."""

    name = "advdm"

    def __init__(self, generator: Generator, cond: Condition, draws: int = 1) -> None:
        self.generator, self.cond, self.draws = generator, cond, draws

    def __call__(
        self, latents: list[torch.Tensor], gen: torch.Generator, targets: list[torch.Tensor]
    ) -> torch.Tensor:
        return -denoising_loss(self.generator, latents[0], self.cond, gen, self.draws)


class ScoreDistillation:
    """The denoising loss, minimised with the score-distillation gradient.

    SDS (DreamFusion) takes the loss gradient with the denoiser's Jacobian replaced by the identity:
    ``r * d(z_t - target)/dz`` with the residual ``r = predict(z_t) - target``. For an epsilon-predicting
    model that is the paper's ``r * sqrt(a_t)``; for velocity targets (the lab's flow, v-prediction),
    which depend on ``z`` themselves, it keeps that dependence too. The detached-residual trick computes
    it: ``r`` without a graph, then the surrogate ``mean(r * (z_t - target))``, whose gradient is exactly
    that (up to the constant 2/n), with no backward pass through the denoiser. The value returned is the
    loss itself (for the optimiser's log); only its gradient is the surrogate's.
    """

    name = "sds-"

    def __init__(self, generator: Generator, cond: Condition, draws: int = 1) -> None:
        self.generator, self.cond, self.draws = generator, cond, draws

    def __call__(
        self, latents: list[torch.Tensor], gen: torch.Generator, targets: list[torch.Tensor]
    ) -> torch.Tensor:
        g, z = self.generator, latents[0]
        cond = repeat_condition(self.cond, z.shape[0])
        total = z.new_zeros(())
        for _ in range(self.draws):
            t, noise = g.draw(z, gen)
            zt, goal = g.noisy(z, t, noise), g.target(z, t, noise)
            with torch.no_grad():
                residual = g.predict(zt.detach(), t, cond) - goal.detach()
                value = residual.float().square().mean()
            surrogate = (residual * (zt - goal)).mean()
            total = total + surrogate - surrogate.detach() + value
        return total / self.draws


class Targeted:
    """Mean squared distance of the denoiser's prediction on the noised work to the target's latents."""

    name = "targeted"

    def __init__(self, generator: Generator, cond: Condition, draws: int = 1) -> None:
        self.generator, self.cond, self.draws = generator, cond, draws

    def __call__(
        self, latents: list[torch.Tensor], gen: torch.Generator, targets: list[torch.Tensor]
    ) -> torch.Tensor:
        if not targets:
            raise ValueError("the targeted objective needs the target's latents")
        g, z, goal = self.generator, latents[0], targets[0]
        cond = repeat_condition(self.cond, z.shape[0])
        total = z.new_zeros(())
        for _ in range(self.draws):
            t, noise = g.draw(z, gen)
            pred = g.predict(g.noisy(z, t, noise), t, cond)
            total = total + F.mse_loss(pred.float(), goal.to(pred.device).float())
        return total / self.draws


def prediction_distance(
    generator: Generator, z: torch.Tensor, goal: torch.Tensor, cond: Condition, seed: int = 0, draws: int = 8
) -> float:
    """The targeted loss at fixed draws (seeded), without gradient: the measure the tests and reports use."""
    with torch.no_grad():
        return float(Targeted(generator, cond, draws)([z], torch.Generator().manual_seed(seed), [goal]))


def mean_denoising_loss(
    generator: Generator, z: torch.Tensor, cond: Condition, seed: int = 0, draws: int = 8
) -> float:
    """The denoising loss at fixed draws (seeded), without gradient."""
    with torch.no_grad():
        return float(denoising_loss(generator, z, cond, torch.Generator().manual_seed(seed), draws))
