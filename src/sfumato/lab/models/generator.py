"""The lab's generator: a small text-conditioned UNet over latents, trained by flow matching.

The model works on *normalised* latents (per-channel mean 0, std 1 on its training set). The
normalisation statistics live in the model as buffers (``latent_mean``, ``latent_std``), are set by
:func:`sfumato.lab.train.train` from the training latents and travel in every checkpoint;
:func:`sample` de-normalises its output, so it returns latents in the encoder's own space (the FLUX.2
tiny autoencoder's 32 x 8 x 8 by default), ready for the decoder.

Objective (rectified flow): ``x_t = (1 - t) x0 + t eps`` with ``eps ~ N(0, I)`` and ``t`` in [0, 1]
(logit-normal by default); the network predicts the velocity ``v = eps - x0``. Sampling integrates the
ODE ``dx/dt = v`` from pure noise at ``t = 1`` down to ``t = 0``.

Classifier-free guidance convention: ``guidance`` is the scale ``w`` in
``v = v_uncond + w (v_cond - v_uncond)``. ``w = 1`` is the plain conditional model (no unconditional
pass is run), ``w = 0`` is the unconditional model, ``w > 1`` strengthens the caption. The
unconditional branch uses a learned null-text embedding, which training substitutes for the caption
with probability ``cond_drop``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TIME_SAMPLINGS = ("logit_normal", "uniform")
SAMPLERS = ("euler", "heun")


@dataclass
class GeneratorConfig:
    """The shape of a :class:`LatentUNet` (and the objective's time distribution)."""

    latent_channels: int = 32
    latent_size: int = 8
    text_dim: int = 384
    width: int = 128  # channels at the first level
    channel_mults: tuple[int, ...] = (1, 2)  # one level per entry; each level after the first halves the size
    blocks_per_level: int = 2
    attn_resolutions: tuple[int, ...] = (8, 4)  # spatial sizes that get self- and cross-attention
    heads: int = 4
    ff_mult: int = 2  # width of the attention blocks' feed-forward layer, as a multiple of the channels
    dropout: float = 0.0
    cond_drop: float = 0.1  # probability of replacing the caption by the null embedding in training
    pooled_text: bool = True  # also add the masked mean of the text tokens to the time embedding
    time_sampling: str = "logit_normal"  # training distribution of t: logit_normal or uniform

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        if self.latent_size % (2 ** (len(self.channel_mults) - 1)):
            raise ValueError(f"latent_size {self.latent_size} is not divisible by 2^(levels - 1)")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, not {self.time_sampling!r}")
        for m in self.channel_mults:
            if (self.width * m) % self.heads:
                raise ValueError(f"channels {self.width * m} are not divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        d["attn_resolutions"] = list(self.attn_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GeneratorConfig fields: {sorted(unknown)}")
        return cls(**d)


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of ``t`` in [0, 1] (scaled by 1000, as for integer diffusion steps): (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv; time-embedding injection (scale and shift); GroupNorm, SiLU, dropout, conv."""

    def __init__(self, cin: int, cout: int, tdim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.temb(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention of ``x`` (B, N, C) to ``ctx`` (B, M, Cc), with an optional key mask (B, M)."""

    def __init__(self, dim: int, ctx_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(ctx_dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, c // h).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(out.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    """Spatial transformer: self-attention over the latent cells, cross-attention to text, feed-forward."""

    def __init__(self, channels: int, text_dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.proj_in = nn.Linear(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.self_attn = Attention(channels, channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.cross_attn = Attention(channels, text_dim, heads)
        self.norm3 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, ff_mult * channels),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * channels, channels),
        )
        self.proj_out = _zero(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        y = self.norm1(h)
        h = h + self.self_attn(y, y)
        h = h + self.cross_attn(self.norm2(h), ctx, mask)
        h = h + self.ff(self.norm3(h))
        h = self.proj_out(h).transpose(1, 2).reshape(b, c, hh, ww)
        return x + h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Stage(nn.Module):
    """A ResBlock, optionally followed by a transformer block."""

    def __init__(self, res: ResBlock, attn: TransformerBlock | None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        x = self.res(x, temb)
        return x if self.attn is None else self.attn(x, ctx, mask)


class LatentUNet(nn.Module):
    """A small UNet over (B, C, S, S) latents, conditioned on a time in [0, 1] and text token embeddings.

    ``forward(x, t, emb, mask, drop=None)``: ``x`` (B, C, S, S) normalised noisy latents, ``t`` (B,) or a
    float, ``emb`` (B, T, text_dim) token embeddings, ``mask`` (B, T) bool, True for real tokens (padded
    tokens are never attended to), ``drop`` (B,) bool, True where the caption is replaced by the learned
    null embedding. Returns the predicted velocity, same shape as ``x``.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or GeneratorConfig()
        w = cfg.width
        tdim = 4 * w
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))
        self.time_mlp = nn.Sequential(nn.Linear(w, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.ctx_norm = nn.LayerNorm(cfg.text_dim)
        self.null_emb = nn.Parameter(0.02 * torch.randn(1, cfg.text_dim))
        self.pool_proj = nn.Linear(cfg.text_dim, tdim) if cfg.pooled_text else None

        def stage(cin: int, cout: int, size: int) -> _Stage:
            attn = None
            if size in cfg.attn_resolutions:
                attn = TransformerBlock(cout, cfg.text_dim, cfg.heads, cfg.ff_mult, cfg.dropout)
            return _Stage(ResBlock(cin, cout, tdim, cfg.dropout), attn)

        self.conv_in = nn.Conv2d(cfg.latent_channels, w, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [w]
        ch, size = w, cfg.latent_size
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.blocks_per_level):
                self.down.append(stage(ch, w * mult, size))
                ch = w * mult
                skips.append(ch)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
                size //= 2
        self.mid = nn.ModuleList([stage(ch, ch, size), _Stage(ResBlock(ch, ch, tdim, cfg.dropout), None)])
        if size not in cfg.attn_resolutions:  # the middle always attends, at the coarsest size
            self.mid[0].attn = TransformerBlock(ch, cfg.text_dim, cfg.heads, cfg.ff_mult, cfg.dropout)
        self.up = nn.ModuleList()
        for level in reversed(range(len(cfg.channel_mults))):
            mult = cfg.channel_mults[level]
            for _ in range(cfg.blocks_per_level + 1):
                self.up.append(stage(ch + skips.pop(), w * mult, size))
                ch = w * mult
            if level > 0:
                self.up.append(Upsample(ch))
                size *= 2
        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = _zero(nn.Conv2d(ch, cfg.latent_channels, 3, padding=1))

    # -- conditioning ----------------------------------------------------------------------------------

    def null_context(self, batch: int, tokens: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional context: the learned null token, padded to ``tokens`` (emb, mask)."""
        emb = self.null_emb.new_zeros(batch, tokens, self.config.text_dim)
        emb[:, 0] = self.null_emb[0]
        mask = torch.zeros(batch, tokens, dtype=torch.bool, device=emb.device)
        mask[:, 0] = True
        return emb, mask

    def _context(
        self, emb: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask.to(torch.bool)
        if drop is not None and bool(drop.any()):
            null, null_mask = self.null_context(emb.shape[0], emb.shape[1])
            d = drop.to(torch.bool).to(emb.device)
            emb = torch.where(d[:, None, None], null.to(emb.dtype), emb)
            mask = torch.where(d[:, None], null_mask, mask)
        empty = ~mask.any(dim=1)
        if bool(empty.any()):  # a caption with no valid token attends to its first slot, never to nothing
            mask = mask.clone()
            mask[empty, 0] = True
        # Zero the padded slots so nothing of them can leak (attention masks them too).
        ctx = self.ctx_norm(emb) * mask[..., None]
        return ctx, mask

    # -- forward ---------------------------------------------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        emb: torch.Tensor,
        mask: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b = x.shape[0]
        if not torch.is_tensor(t) or t.dim() == 0:
            t = torch.full((b,), float(t), device=x.device)
        temb = self.time_mlp(timestep_embedding(t.to(x.device), self.config.width))
        ctx, mask = self._context(emb.to(x.device, x.dtype), mask.to(x.device), drop)
        if self.pool_proj is not None:
            m = mask[..., None].to(ctx.dtype)
            pooled = (ctx * m).sum(1) / m.sum(1).clamp_min(1.0)
            temb = temb + self.pool_proj(pooled)
        h = self.conv_in(x)
        hs = [h]
        for mod in self.down:
            h = mod(h, temb, ctx, mask) if isinstance(mod, _Stage) else mod(h)
            hs.append(h)
        for mod in self.mid:
            h = mod(h, temb, ctx, mask)
        for mod in self.up:
            if isinstance(mod, _Stage):
                h = mod(torch.cat([h, hs.pop()], dim=1), temb, ctx, mask)
            else:
                h = mod(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    # -- latent normalisation --------------------------------------------------------------------------

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.latent_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
        self.latent_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(-1))

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Encoder-space latents -> the model's normalised space."""
        m, s = self.latent_mean[:, None, None], self.latent_std[:, None, None]
        return (latents.to(m.device) - m) / s

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's normalised space -> encoder-space latents."""
        m, s = self.latent_mean[:, None, None], self.latent_std[:, None, None]
        return x * s + m


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def latent_stats(latents: torch.Tensor, eps: float = 1e-6) -> dict[str, torch.Tensor]:
    """Per-channel mean and std of (N, C, H, W) latents (float64 accumulation)."""
    x = latents.detach().to(torch.float64).transpose(0, 1).reshape(latents.shape[1], -1)
    return {"mean": x.mean(1).float(), "std": x.std(1).clamp_min(eps).float()}


# -- objective ---------------------------------------------------------------------------------------


def sample_time(
    n: int, generator: torch.Generator | None = None, kind: str = "logit_normal", device: Any = "cpu"
) -> torch.Tensor:
    """Training times in (0, 1): logit-normal (mean 0, std 1) or uniform."""
    if kind == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator, device=device))
    if kind == "uniform":
        return torch.rand(n, generator=generator, device=device)
    raise ValueError(f"unknown time sampling {kind!r}")


def flow_matching_loss(
    model: LatentUNet,
    x0: torch.Tensor,
    emb: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    cond_drop: float | None = None,
) -> torch.Tensor:
    """The rectified-flow loss on *normalised* latents ``x0`` (B, C, S, S): mean squared velocity error.

    ``t`` (the model's ``time_sampling``), the noise and the caption dropout (probability ``cond_drop``,
    default ``model.config.cond_drop``) are all drawn from ``generator`` when one is given.
    """
    b = x0.shape[0]
    gdev = generator.device if generator is not None else x0.device
    p = model.config.cond_drop if cond_drop is None else cond_drop
    t = sample_time(b, generator, model.config.time_sampling, gdev).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=gdev).to(x0.device, x0.dtype)
    drop = (torch.rand(b, generator=generator, device=gdev) < p).to(x0.device)
    tt = t[:, None, None, None].to(x0.dtype)
    xt = (1 - tt) * x0 + tt * eps
    pred = model(xt, t, emb, mask, drop=drop)
    return F.mse_loss(pred.float(), (eps - x0).float())


# -- sampling ----------------------------------------------------------------------------------------


def _null_for(
    model: LatentUNet, null_emb: Any, b: int, tokens: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """None (use the learned null via ``drop``) or an explicit unconditional (emb, mask) for ``b`` rows."""
    if null_emb is None:
        return None
    if isinstance(null_emb, tuple | list):
        e, m = null_emb
    else:
        e, m = null_emb, None
    e = torch.as_tensor(e, dtype=torch.float32)
    if e.dim() == 2:
        e = e[None]
    m = torch.ones(e.shape[:2], dtype=torch.bool) if m is None else torch.as_tensor(m).to(torch.bool)
    if m.dim() == 1:
        m = m[None]
    if e.shape[1] != tokens:  # pad or cut to the caption length so both halves batch together
        if e.shape[1] < tokens:
            e = F.pad(e, (0, 0, 0, tokens - e.shape[1]))
            m = F.pad(m, (0, tokens - m.shape[1]), value=False)
        else:
            e, m = e[:, :tokens], m[:, :tokens]
    return e.expand(b, -1, -1).to(device), m.expand(b, -1).to(device)


@torch.no_grad()
def _velocity(
    model: LatentUNet,
    x: torch.Tensor,
    t: float,
    emb: torch.Tensor,
    mask: torch.Tensor,
    guidance: float,
    null: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    b = x.shape[0]
    if guidance == 1.0:
        return model(x, t, emb, mask)
    if null is None:
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
        v = model(torch.cat([x, x]), t, torch.cat([emb, emb]), torch.cat([mask, mask]), drop=drop)
    else:
        v = model(torch.cat([x, x]), t, torch.cat([emb, null[0]]), torch.cat([mask, null[1]]))
    v_cond, v_uncond = v[:b], v[b:]
    if guidance == 0.0:
        return v_uncond
    return v_uncond + guidance * (v_cond - v_uncond)


@torch.no_grad()
def sample(
    model: LatentUNet,
    emb: torch.Tensor,
    mask: torch.Tensor,
    *,
    steps: int = 30,
    guidance: float = 3.0,
    seed: int = 0,
    null_emb: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    sampler: str = "euler",
    batch_size: int | None = None,
    denormalize: bool = True,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw one latent per caption: a deterministic ODE solve from t = 1 (noise) to t = 0.

    ``emb`` (B, T, text_dim) and ``mask`` (B, T) are the captions' token embeddings. ``guidance`` is the
    classifier-free guidance scale ``w``: 1 = plain conditional model, 0 = unconditional, > 1 = guided.
    ``null_emb`` replaces the learned null embedding for the unconditional branch: a (T', D) or
    (1, T', D) tensor (all tokens valid) or an (emb, mask) pair, e.g. the encoding of the empty caption.
    The starting noise is drawn for the whole batch from ``torch.Generator().manual_seed(seed)`` on the
    CPU (or given as ``noise``, in the model's normalised space), so the result does not depend on the
    device or on ``batch_size`` (which only chunks the work). ``sampler``: "euler" (``steps`` model
    evaluations) or "heun" (2nd order, about twice as many). Returns (B, C, S, S) latents on the CPU, in
    the encoder's space unless ``denormalize=False``. The model is run in eval mode and left as it was.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    cfg = model.config
    device = next(model.parameters()).device
    b = emb.shape[0]
    shape = (b, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    if noise is None:
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}, not {tuple(noise.shape)}")
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
    was_training = model.training
    model.eval()
    out = []
    try:
        chunk = batch_size or b
        for i in range(0, b, chunk):
            e = emb[i : i + chunk].to(device, torch.float32)
            m = mask[i : i + chunk].to(device)
            x = noise[i : i + chunk].to(device, torch.float32)
            null = _null_for(model, null_emb, e.shape[0], e.shape[1], device)
            for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
                v = _velocity(model, x, t_cur, e, m, guidance, null)
                x_next = x + (t_next - t_cur) * v
                if sampler == "heun" and t_next > 0:
                    v2 = _velocity(model, x_next, t_next, e, m, guidance, null)
                    x_next = x + (t_next - t_cur) * 0.5 * (v + v2)
                x = x_next
            out.append((model.denormalize(x) if denormalize else x).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def caption_batch(
    emb: torch.Tensor, mask: torch.Tensor, repeats: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each caption's (emb, mask) row ``repeats`` times (an int, or one count per caption)."""
    counts = torch.as_tensor([repeats] * emb.shape[0] if isinstance(repeats, int) else list(repeats))
    return emb.repeat_interleave(counts, dim=0), mask.repeat_interleave(counts, dim=0)
