"""A perceptual distance from the lab's own feature network, for training autoencoders here.

No ImageNet-pretrained VGG or AlexNet can be obtained on these machines, so no calibrated LPIPS: the
lab's Fréchet feature network (the ``features`` judge, trained on CIFAR-10) stands in. The recipe is
LPIPS's without the learned channel weights: the activations after each pooling stage are unit-normalised
across channels, and their squared differences are averaged over positions and summed over stages. The
network sees the images at their own size (it is convolutional up to its final pooling), so detail above
its 32 px training view still counts.
"""

from __future__ import annotations

import torch
from torch import nn

from sfumato.lab.judging.classifiers import JudgeNet


class PerceptualDistance(nn.Module):
    """``forward(x, y)``: per-image perceptual distance between RGB images in [0, 1] (B, 3, H, W)."""

    def __init__(self, net: JudgeNet) -> None:
        super().__init__()
        if net.config.channels != 3:
            raise ValueError("the perceptual distance needs a colour feature network")
        self.net = net.eval().requires_grad_(False)
        # the stages end at each pooling layer; the global pooling and flattening are left out
        body = list(net.body)
        self.cuts = [i for i, m in enumerate(body) if isinstance(m, nn.MaxPool2d)]
        if not self.cuts:
            raise ValueError("the feature network has no pooling stage")

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x - self.net.mean) / self.net.std).contiguous(memory_format=torch.channels_last)
        out = []
        for i, layer in enumerate(self.net.body):
            if i > self.cuts[-1]:
                break
            h = layer(h)
            if i in self.cuts:
                out.append(h / h.norm(dim=1, keepdim=True).clamp_min(1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(
            (a - b).square().sum(1).mean((1, 2))
            for a, b in zip(self._stages(x), self._stages(y), strict=True)
        )
