"""The style-mimicry experiment: does ``cloak`` stop a generator from learning an artist's style?

For each artist (:mod:`sfumato.lab.data.artists`) and condition, the artist's mimicry works (never seen by the
style judge) are protected with :func:`sfumato.protect.cloak` at their working size, cut into 64 px
training views, and the base generator is fine-tuned on them captioned "a painting by <artist>" (a few
templates). It then draws ``samples`` images per seed for "a painting by <artist>", and the style judge
(:mod:`sfumato.lab.judging.style_judge`) says whose style each one is. Mimicry success is the share judged as
the artist; protection success is one minus that; the share judged as the cloak's target style says
whether the cloak steered the mimic toward its target rather than merely spoiling it.

Conditions (names, growable like the artists and seeds):

- ``clean``: no protection;
- ``cloak-<intensity>``: every work cloaked toward the fixed target ``style`` (visibility-aware budget);
- ``robust-<intensity>``: the same in the engine's robust mode (``--robust``: optimised through random
  resizing, JPEG, noise and blur), since cutting works into smaller training views is itself a resize;
- ``views-<intensity>``: the same, optimised through random training views (the engine's ``views``:
  square crops of the view-scale range resized to the generator's 64 px, from a bank of boxes drawn
  independently of the experiment's own views), since the crop-and-resize removes most of a plain cloak;
- ``decoded-<intensity>``: as ``views-<intensity>``, but aimed at the autoencoder's round trip
  (``<encoder>-decoded``: decode(encode(view)) pulled toward the target view, in pixels) instead of the
  latents, since a latent shift the decoder hardly shows is one the mimic does not draw;
- ``linf-<intensity>``: the same with a plain L-inf budget whose bound is calibrated per work to the PSNR
  of that work's ``cloak-<intensity>`` copy (equal PSNR; ``linf_passes`` cloaks per work);
- ``auto-<intensity>``: visibility-aware, the target style chosen per work by ``--style auto``;
- ``blend<NN>``: no cloak but a visible stand-in for a stronger one, the upper bound of what moving the
  works toward the target can do: every work replaced by NN % of the same work rendered in the target
  style (pixel blend), so its training views carry about NN % of the way to the target (``views_moved``);
  the mimicry these leave says how far an invisible cloak would have to move the views;
- ``share<NN>-<intensity>``: only NN % of the works cloaked (as ``cloak-<intensity>``), the rest left
  clean, as an artist's older work is already online. Shares are nested (a fixed order of the works);
- generator-aware (issue 21, :mod:`sfumato.objectives`), aimed at what the mimic's denoiser learns rather
  than at the encoder, against the protector's copy of the generator (``surrogate``: the victim base
  itself unless the settings name another), captioned as the mimic captions ("a painting by <artist>"),
  through the experiment's training views: ``advdm-<intensity>`` (maximise the denoising loss),
  ``sds-<intensity>`` (minimise it, score-distillation gradient), ``targeted-<intensity>`` (Mist-v2: the
  prediction pulled toward the target style's latents), and, on all of an artist's works together,
  ``aspl-<intensity>`` (Anti-DreamBooth: rounds of surrogate fine-tuning and AdvDM) and
  ``metacloak-<intensity>`` (a pool of surrogate states);
- the field's plain budgets in place of an intensity, ``<kind>-linf8`` and ``<kind>-linf16`` (e.g.
  ``targeted-linf16``, ``cloak-linf8``): an L-inf bound of 8 or 16 levels, the optimiser as at ``default``.

A work and its cloaked copy give exactly the same views (crops depend on the seed and the work's size
only), and captions depend on the artist only, so conditions differ by the cloak alone.

Layout of the output folder: ``settings.json``; ``cloaks/<artist>/<variant>/work-NNN.pt`` (one cloaked
work each, with its PSNR, latent movement, target style and time: resumable); ``runs/<artist>/<condition>/
seed<s>/`` (``run.json``, ``samples-L<steps>-w<guidance>.pt``, ``score.json``; the fine-tuned weights are
deleted once sampled); ``results.json``, ``report.md`` and figures (:mod:`sfumato.lab.mimicry_report`)."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.data.artists import (
    ARTISTS,
    Works,
    cut_views,
    stable_seed,
    views_of,
)
from sfumato.lab.data.artists import works as artist_works
from sfumato.lab.finetune_runs import finetune_and_sample
from sfumato.lab.judging.classifiers import Judge
from sfumato.lab.judging.evaluation import shares
from sfumato.lab.judging.scoring import mean_std
from sfumato.lab.merging import (
    carried_runs,
    combine,
    load_results,
    merged_seeds,
    results_path,
    sources_note,
)
from sfumato.lab.mimicry.settings import (
    CAPTION_TEMPLATES,
    FOLDER_KINDS,
    GENERATOR_OBJECTIVES,
    GROWABLE,
    SCHEMA,
    Condition,
    MimicryConfig,
    mimicry_to_remove,
    optimiser_budget,
    parse_condition,
    prompt_for_artist,
)
from sfumato.lab.models.autoencoders import register_lab_encoders
from sfumato.lab.models.base import latents_for
from sfumato.lab.models.latent_cache import images_checksum
from sfumato.lab.models.text_encoder import TextEncoder
from sfumato.lab.storage import atomic_torch_save, merge_folder_settings
from sfumato.quality import ssim

SCORE = "score.json"
Progress = Callable[[str], None]

register_lab_encoders()  # the engine attacks the lab's own latent spaces by checkpoint path


def _judge_key(judge: Judge) -> str:
    """What scores cached against a judge are stamped with: a retrained judge invalidates them."""
    return f"{judge.name}:{judge.info.get('key', '')}:{judge.info.get('test_accuracy', '')}"


def _log(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def run_key(run: dict[str, Any]) -> tuple[str, str, int]:
    return run["artist"], run["condition"], int(run["seed"])


def runs_from_summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a single-seed results file written before runs kept their scores, each with the
    shares its summary holds (with one seed, a summary entry's mean is that run's share)."""
    summary = results["summary"]
    return [
        {
            **r,
            "scores": {
                setting: {c: stat["mean"] for c, stat in entry["shares"].items()}
                for setting, entry in summary[r["artist"]][r["condition"]].items()
            },
        }
        for r in results["runs"]
    ]


class MimicryExperiment:
    """One mimicry experiment in a folder; every step is cached there and resumes."""

    def __init__(
        self,
        config: MimicryConfig,
        out: str | Path,
        base_checkpoint: str | Path,
        shared: str | Path | None,
        *,
        text: TextEncoder | None = None,
        progress: Progress | None = print,
        bars: bool = False,
        device: str = "cpu",
        weights_dir: str | Path | None = None,
        surrogate_checkpoint: str | Path | None = None,
    ) -> None:
        """``surrogate_checkpoint``: the generator the generator-aware conditions attack, trained from
        ``config.surrogate``; without one they attack the victim, ``base_checkpoint`` (white-box)."""
        if config.surrogate is not None and surrogate_checkpoint is None:
            raise ValueError("the settings name a surrogate generator: pass its checkpoint")
        self.config = config
        self.out = Path(out)
        self.base_checkpoint = Path(base_checkpoint)
        self.surrogate_checkpoint = Path(surrogate_checkpoint or base_checkpoint)
        self.shared = shared
        self._text = text
        self.progress = progress
        self.bars = bars
        self.device = device
        self.weights_dir = weights_dir
        self._works: dict[str, Works] = {}
        self._encoder: Any = None
        self.out.mkdir(parents=True, exist_ok=True)
        new = merge_folder_settings(self.out, config.to_dict(), GROWABLE)
        #: Everything in the folder (this call's runs and earlier ones): what is scored and reported.
        self.settings = MimicryConfig.from_dict(new)

    @property
    def encoder(self) -> Any:
        """The base generator's image encoder (loaded once): measures how far works and views moved."""
        if self._encoder is None:
            from sfumato.encoders import load_encoder

            self._encoder = load_encoder(self.settings.base.encoder, self.weights_dir)
        return self._encoder

    @property
    def text(self) -> TextEncoder:
        if self._text is None:
            self._text = TextEncoder()
        return self._text

    # -- works and their cloaked copies -------------------------------------------------------------

    def works(self, artist: str) -> Works:
        """The artist's mimicry works at the working size (rendered; memoised)."""
        if artist not in self._works:
            c = self.config
            self._works[artist] = artist_works(
                artist, "mimicry", self.shared, work_size=c.work_size, limit=c.works
            )
        return self._works[artist]

    def cloak_path(self, artist: str, variant: str, k: int) -> Path:
        return self.out / "cloaks" / artist / variant / f"work-{k:03d}.pt"

    def _cloak(
        self,
        image: torch.Tensor,
        style: str,
        budget: str,
        intensity: str,
        eps: float | None,
        k: int,
        mode: str = "jnd",
        artist: str | None = None,
    ):
        from sfumato.countermeasures.views import TrainingViews
        from sfumato.protect import cloak

        c = self.config
        aware = mode in GENERATOR_OBJECTIVES
        through_views = mode in ("views", "decoded") or aware
        views = TrainingViews(size=c.base.size, scale=c.view_scale) if through_views else None
        against: dict[str, Any] = {}
        if aware:
            assert artist is not None
            against = dict(
                against=self.surrogate_checkpoint,
                objective=GENERATOR_OBJECTIVES[mode],
                prompt=prompt_for_artist(artist),
            )
        encoders = c.cloak_encoders
        if mode == "decoded":
            from sfumato.encoders.roundtrip import SUFFIX

            encoders = tuple(f"{e}{SUFFIX}" for e in encoders)
        return cloak(
            image.float() / 255,
            style,
            encoders=encoders,
            intensity=intensity,
            budget=budget,
            eps=eps,
            speed=c.cloak_speed,
            steps=c.cloak_steps,
            seed=k,
            robust=mode == "robust",
            views=views,
            device=self.device,
            weights_dir=self.weights_dir,
            **against,
        )

    def cloaked(self, artist: str, variant: str, k: int) -> dict[str, Any]:
        """Work ``k`` of ``artist`` cloaked as ``variant`` (cached): image, PSNR, movement, style, eps."""
        path = self.cloak_path(artist, variant, k)
        if path.exists():
            return torch.load(path, weights_only=True)
        if variant.startswith("blend"):
            record = self._blended(artist, variant, k)
            atomic_torch_save(record, path)
            return record
        mode, intensity, style = variant.split("-", 2)
        if mode in FOLDER_KINDS:
            return self._cloaked_together(artist, variant)[k]
        intensity, eps = optimiser_budget(intensity)
        budget = "linf" if mode == "linf" or eps is not None else "jnd"
        work = self.works(artist).images[k]
        started = time.perf_counter()
        target_psnr = None
        passes = 1
        if mode == "linf" and eps is None:  # ``linf-<i>``; ``cloak-linf8`` is ``linf-linf8-<style>``
            # Equal PSNR: the plain bound that gives this work the PSNR of its visibility-aware copy.
            target_psnr = float(self.cloaked(artist, f"jnd-{intensity}-{style}", k)["psnr"])
            eps = min(0.25, max(1 / 255, 10 ** (-target_psnr / 20)))  # a saturated +-eps has that PSNR
            passes = self.config.linf_passes
        for p in range(passes):
            result = self._cloak(work, style, budget, intensity, eps, k, mode, artist)
            psnr = float(result.report["effect"]["quality"]["psnr_db"])
            if eps is not None and target_psnr is not None and p < passes - 1:
                eps = min(0.25, max(0.5 / 255, eps * 10 ** ((psnr - target_psnr) / 20)))
        latents = result.report["effect"]["latents"]
        record = {
            "image": result.pixels,
            "name": self.works(artist).names[k],
            "psnr": psnr,
            "target_psnr": target_psnr,
            "eps_255": None if eps is None else eps * 255,
            "style": result.report.get("style", style),
            "moved": {e: float(v.get("fraction_moved", 0.0)) for e, v in latents.items()},
            "seconds": time.perf_counter() - started,
        }
        atomic_torch_save(record, path)
        return record

    def _cloaked_together(self, artist: str, variant: str) -> list[dict[str, Any]]:
        """``aspl-`` / ``metacloak-<intensity>-<style>``: all of ``artist``'s works protected together
        against a surrogate fine-tuned on them (:func:`sfumato.works.protect_works`), round by round
        resumable from ``surrogate.pt`` in the variant's folder; every work's record cached as usual."""
        from sfumato.countermeasures.views import TrainingViews
        from sfumato.report import effect_report
        from sfumato.styles import render_style
        from sfumato.works import protect_works

        c = self.config
        mode, intensity, style = variant.split("-", 2)
        intensity, eps = optimiser_budget(intensity)
        budget = "jnd" if eps is None else "linf"
        works = self.works(artist)
        paths = [self.cloak_path(artist, variant, k) for k in range(len(works.images))]
        if not all(p.exists() for p in paths):
            checkpoint = paths[0].parent / "surrogate.pt"
            checkpoint.parent.mkdir(parents=True, exist_ok=True)

            def said(report: Any) -> None:
                _log(self.progress, f"{artist} {variant}: round {report.round}/{report.rounds}")

            started = time.perf_counter()
            protected = protect_works(
                [w.float() / 255 for w in works.images],
                against=self.surrogate_checkpoint,
                objective=GENERATOR_OBJECTIVES[mode],
                prompt=prompt_for_artist(artist),
                intensity=intensity,
                budget=budget,
                eps=eps,
                seed=stable_seed(artist, variant) % 2**31,
                views=TrainingViews(size=c.base.size, scale=c.view_scale),
                checkpoint=checkpoint,
                device=self.device,
                on_round=said,
            )
            seconds = (time.perf_counter() - started) / len(paths)
            for k, (work, result, path) in enumerate(zip(works.images, protected, paths, strict=True)):
                x = work.float()[None] / 255
                target = render_style(style, x[0], seed=k)[None]
                effect = effect_report(x, result.pixels[None], target, [self.encoder])
                record = {
                    "image": result.pixels,
                    "name": works.names[k],
                    "psnr": float(effect["quality"]["psnr_db"]),
                    "target_psnr": None,
                    "eps_255": None if eps is None else eps * 255,
                    "style": style,
                    "moved": {e: float(v["fraction_moved"]) for e, v in effect["latents"].items()},
                    "seconds": seconds,
                }
                atomic_torch_save(record, path)
            checkpoint.unlink(missing_ok=True)
        return [torch.load(p, weights_only=True) for p in paths]

    def _blended(self, artist: str, variant: str, k: int) -> dict[str, Any]:
        """``blend<NN>-<style>``: work ``k`` with NN % of its target-style rendering mixed in (visible)."""
        from sfumato.report import effect_report
        from sfumato.styles import render_style

        started = time.perf_counter()
        work = self.works(artist).images[k]
        name, style = variant.split("-", 1)
        alpha = int(name[len("blend") :]) / 100
        x = work.float()[None] / 255
        target = render_style(style, x[0], seed=k)[None]
        image = (((1 - alpha) * x + alpha * target) * 255).round().clamp(0, 255).to(torch.uint8)[0]
        effect = effect_report(x, image[None].float() / 255, target, [self.encoder])
        return {
            "image": image,
            "name": self.works(artist).names[k],
            "psnr": effect["quality"]["psnr_db"],
            "target_psnr": None,
            "eps_255": None,
            "style": style,
            "moved": {e: float(v["fraction_moved"]) for e, v in effect["latents"].items()},
            "seconds": time.perf_counter() - started,
        }

    def cloaked_set(self, artist: str, cond: Condition) -> list[int]:
        """Indices of the works cloaked under ``cond``: a fixed order per artist, the first share %."""
        n = len(self.works(artist).images)
        order = sorted(range(n), key=lambda k: stable_seed(artist, "share-order", k))
        return sorted(order[: round(n * cond.share / 100)])

    def training_views(self, artist: str, cond: Condition) -> tuple[torch.Tensor, list[int]]:
        """The fine-tuning views (uint8 (views, 3, 64, 64)) and the indices of the cloaked works."""
        c = self.config
        images = list(self.works(artist).images)
        chosen = self.cloaked_set(artist, cond)
        variant = cond.variant(c.style)
        for i, k in enumerate(chosen, 1):
            if variant is not None:
                if not self.cloak_path(artist, variant, k).exists():
                    _log(self.progress, f"cloaking {artist} work {i}/{len(chosen)} ({variant})")
                images[k] = self.cloaked(artist, variant, k)["image"]
        if c.countermeasure:
            images = [self.scraped(artist, image, k) for k, image in enumerate(images)]
        views = views_of(artist, images, c.views, size=c.base.size, scale=c.view_scale, salt="mimicry")
        return views, chosen

    def scraped(self, artist: str, image: torch.Tensor, k: int) -> torch.Tensor:
        """Work ``k`` (uint8, cloaked or not) as the scraper keeps it: through the countermeasure.

        Cached in ``scraped/`` under a digest of the image and the countermeasure: a purification such
        as IMPRESS costs seconds per work, and every run and report of a condition asks for its views.
        """
        from sfumato.countermeasures import apply

        cm = self.config.countermeasure
        path = self.out / "scraped" / f"{artist}-{k}-{cm}-{images_checksum(image)[:16]}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        seed = stable_seed(artist, "scrape", k)
        out = apply(cm, image[None].float() / 255, seed=seed, weights_dir=self.weights_dir)[0]
        result = (out.clamp(0, 1) * 255).round().to(torch.uint8)
        atomic_torch_save(result, path)
        return result

    def captions(self, artist: str, n: int) -> list[str]:
        """Training captions: the artist's name in a random template (depends on the artist only)."""
        rng = random.Random(stable_seed(artist, "captions"))
        name = ARTISTS[artist].name
        return [rng.choice(CAPTION_TEMPLATES).format(name) for _ in range(n)]

    # -- runs ---------------------------------------------------------------------------------------

    def run_dir(self, artist: str, condition: str, seed: int) -> Path:
        return self.out / "runs" / artist / condition / f"seed{seed}"

    def planned(self, config: MimicryConfig | None = None) -> list[tuple[str, str, int]]:
        """Every (artist, condition, seed) run of ``config`` (default: this call's)."""
        c = config or self.config
        return [(a, cond, s) for s in c.seeds for a in c.artists for cond in c.conditions]

    def run(self, artist: str, condition: str, seed: int) -> Path:
        """Fine-tune on the artist's (protected) views, then draw and keep the images; resumable."""
        c = self.config
        folder = self.run_dir(artist, condition, seed)
        record = folder / "run.json"
        if record.exists():
            return folder
        cond = parse_condition(condition)
        started = time.perf_counter()
        views, chosen = self.training_views(artist, cond)
        folder.mkdir(parents=True, exist_ok=True)
        latents = latents_for(
            views, c.base.encoder, self.out, f"views-{artist}-{condition}", c.base.size, progress=self.bars
        )
        captions = self.captions(artist, views.shape[0])
        from sfumato.lab.models.autoencoders import load_lab_decoder

        decoder = load_lab_decoder(c.base.encoder)
        prompt = prompt_for_artist(artist)
        timings = finetune_and_sample(
            folder,
            self.base_checkpoint,
            latents,
            captions,
            self.text.encode_tokens,
            decoder,
            [prompt],
            c,
            seed=seed,
            meta={"artist": artist, "condition": condition},
            bars=self.bars,
            on_length=lambda steps: _log(
                self.progress, f"{artist} {condition} seed={seed}: fine-tuned to {steps} steps and sampled"
            ),
        )
        info = {
            "artist": artist,
            "condition": condition,
            "seed": seed,
            "train_views": int(views.shape[0]),
            "works": len(self.works(artist).images),
            "cloaked_works": chosen,
            "seconds": round(time.perf_counter() - started, 1),
            "timings": timings,
        }
        atomic_write_text(record, json.dumps(info, indent=2) + "\n")
        return folder

    def run_all(self, only: Sequence[tuple[str, str, int]] | None = None) -> list[Path]:
        todo = list(only) if only is not None else self.planned()
        done = []
        for k, (artist, condition, seed) in enumerate(todo, 1):
            _log(self.progress, f"[{k}/{len(todo)}] {artist} {condition} seed={seed}")
            done.append(self.run(artist, condition, seed))
        return done

    # -- scoring ------------------------------------------------------------------------------------

    def score_run(self, folder: Path, judge: Judge) -> dict[str, dict[str, float]]:
        """``{"L<len>-w<g>": {class: share}}`` of the run's images, cached against the judge."""
        path = folder / SCORE
        key = _judge_key(judge)
        if path.exists():
            cached = json.loads(path.read_text())
            if cached.get("judge") == key:
                return cached["scores"]
        scores = {}
        for f in sorted(folder.glob("samples-L*-w*.pt")):
            images: dict[str, torch.Tensor] = torch.load(f, weights_only=True)
            (drawn,) = images.values()
            scores[f.stem[len("samples-") :]] = shares(judge, drawn)
        atomic_write_text(path, json.dumps({"judge": key, "scores": scores}, indent=1) + "\n")
        return scores

    def target_styles(self, artist: str, cond: Condition) -> list[str]:
        """The cloak's target style(s) for ``cond``: the fixed style, or those ``auto`` chose (clean:
        the fixed style, as the baseline of how often an unprotected mimic draws it by chance)."""
        s = self.settings
        if cond.kind != "auto":
            return [s.style]
        variant = cond.variant(s.style)
        assert variant is not None
        found = {
            str(torch.load(p, weights_only=True)["style"])
            for p in sorted((self.out / "cloaks" / artist / variant).glob("work-*.pt"))
        }
        return sorted(found)

    def protection_stats(self, artist: str, cond: Condition, judge: Judge | None) -> dict[str, Any]:
        """What the cloak did to the works: PSNR, latent movement, bound, styles, time, and what the
        judge makes of the training views (the same views, clean or cloaked)."""
        s = self.settings
        variant = cond.variant(s.style)
        n = len(self.works(artist).images)
        chosen = self.cloaked_set(artist, cond)
        out: dict[str, Any] = {"works": n, "cloaked": len(chosen), "variant": variant}
        records = []
        if variant is not None:
            paths = [self.cloak_path(artist, variant, k) for k in chosen]
            if not all(p.exists() for p in paths):
                return out
            records = [torch.load(p, weights_only=True) for p in paths]
        if records:
            psnr = torch.tensor([r["psnr"] for r in records])
            works = self.works(artist).images
            pairs = zip(chosen, records, strict=True)
            out.update(
                psnr_mean=float(psnr.mean()),
                psnr_min=float(psnr.min()),
                ssim_mean=sum(ssim(works[k][None], r["image"][None]) for k, r in pairs) / len(records),
                moved_mean={
                    e: sum(r["moved"][e] for r in records) / len(records) for e in records[0]["moved"]
                },
                seconds_per_work=sum(float(r["seconds"]) for r in records) / len(records),
                styles={
                    st: sum(r["style"] == st for r in records) for st in sorted({r["style"] for r in records})
                },
            )
            if records[0]["eps_255"] is not None:
                out["eps_255_mean"] = sum(float(r["eps_255"]) for r in records) / len(records)
                if records[0]["target_psnr"] is not None:  # equal-PSNR L-inf, not a fixed bound
                    out["target_psnr_mean"] = sum(float(r["target_psnr"]) for r in records) / len(records)
            out["views_moved"] = self._cached(
                f"views-moved-{artist}-{cond.name}",
                {
                    "cloaks": hashlib.sha256(
                        "".join(images_checksum(r["image"]) for r in records).encode()
                    ).hexdigest()
                },
                lambda: self.views_moved(artist, chosen, records),
            )
        if judge is not None:
            views, _ = self.training_views(artist, cond)
            targets = self.target_styles(artist, cond)
            stamp = {"views": images_checksum(views), "judge": _judge_key(judge)}
            judged = self._cached(f"judged-{artist}-{cond.name}", stamp, lambda: shares(judge, views))
            decoded = self.decoded_votes(artist, cond.name, views, judge)
            for key, votes in (("views_judged", judged), ("decoded_judged", decoded)):
                out[key] = {"artist": votes[artist], "target": sum(votes[t] for t in targets)}
        return out

    def _cached(self, name: str, stamp: dict[str, str], compute: Callable[[], Any]) -> Any:
        """``compute()``, kept in ``latents/<name>.json`` against ``stamp`` (what it was computed from):
        every finished run rewrites the report, and recomputing each condition's figures made a
        report of a full experiment take minutes."""
        path = self.out / "latents" / f"{name}.json"
        if path.exists():
            cached = json.loads(path.read_text())
            if "value" in cached and {k: cached.get(k) for k in stamp} == stamp:
                return cached["value"]
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({**stamp, "value": value}, indent=1) + "\n")
        return value

    def decoded_votes(
        self, artist: str, condition: str, views: torch.Tensor, judge: Judge
    ) -> dict[str, float]:
        """The judge's shares on :meth:`decoded` views, cached against the views and the judge."""
        stamp = {"views": images_checksum(views), "judge": _judge_key(judge)}
        return self._cached(
            f"decoded-{artist}-{condition}",
            stamp,
            lambda: shares(judge, self.decoded(artist, condition, views)),
        )

    def decoded(self, artist: str, condition: str, views: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """``decode(encode(views))`` on the generator's autoencoder, uint8: what the fine-tuned generator
        is taught to draw (it learns the latents, the very ones cached for its runs; its images are
        latents decoded).

        A cloak can move the latents in directions the decoder hardly shows; judging the decoded views
        tells such a shift from one the generator would reproduce, without fine-tuning anything.
        """
        from sfumato.lab.models.autoencoders import load_lab_decoder

        c = self.settings
        key = f"views-{artist}-{condition}"  # the latents its runs were fine-tuned on
        latents = latents_for(views, c.base.encoder, self.out, key, c.base.size, progress=False)
        decoder = load_lab_decoder(c.base.encoder)
        with torch.no_grad():
            out = [decoder(latents[i : i + batch]).clamp(0, 1) for i in range(0, latents.shape[0], batch)]
        return (torch.cat(out) * 255).round().to(torch.uint8)

    def views_moved(self, artist: str, chosen: Sequence[int], records: Sequence[dict[str, Any]]) -> float:
        """How much of the cloak's latent shift the generator's training views still carry.

        The cloak moves a work's latents toward the work rendered in its target style, at the work's
        size; the generator trains on smaller crops of it. Cutting the same views from the clean work,
        the cloaked work and the rendered target, this is 1 - d(cloaked, target) / d(clean, target) on
        the base generator's encoder (mean over views): the cloak's ``moved``, as the views see it.
        """
        from sfumato.styles import render_style

        c = self.settings
        encoder = self.encoder
        per_work = 8
        closed = []
        with torch.no_grad():
            for k, record in zip(chosen, records, strict=True):
                work = self.works(artist).images[k]
                target = (render_style(record["style"], work.float() / 255, seed=k) * 255).round()
                seed = stable_seed(artist, "views-moved", k)
                z = [
                    encoder(
                        cut_views(
                            x.to(torch.uint8), per_work, seed, size=c.base.size, scale=c.view_scale
                        ).float()
                        / 255
                    ).flatten(1)
                    for x in (work, record["image"], target)
                ]
                closed.append(1 - (z[1] - z[2]).norm(dim=1) / (z[0] - z[2]).norm(dim=1).clamp_min(1e-12))
        return float(torch.cat(closed).mean())

    def score(self, judge: Judge) -> list[dict[str, Any]]:
        runs = []
        for artist, condition, seed in self.planned(self.settings):
            folder = self.run_dir(artist, condition, seed)
            if not (folder / "run.json").exists():
                continue
            info = json.loads((folder / "run.json").read_text())
            runs.append({**info, "scores": self.score_run(folder, judge)})
        return runs

    def summarise(self, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``summary[artist][condition][setting]``: mimicry, protection, target, photo and every class's
        share as ``{"mean", "std", "n"}`` over seeds (each seed's share of its ``samples`` images)."""
        table: dict[str, Any] = {}
        for artist in self.settings.artists:
            per_cond: dict[str, Any] = {}
            for condition in self.settings.conditions:
                group = [r for r in runs if r["artist"] == artist and r["condition"] == condition]
                if not group:
                    continue
                targets = self.target_styles(artist, parse_condition(condition))
                per_setting: dict[str, Any] = {}
                for setting in sorted({s for r in group for s in r["scores"]}):
                    sc = [r["scores"][setting] for r in group if setting in r["scores"]]
                    classes = list(sc[0])
                    per_setting[setting] = {
                        "seeds": len(sc),
                        "images": len(sc) * self.settings.samples,
                        "mimicry": mean_std([s[artist] for s in sc]),
                        "protection": mean_std([1.0 - s[artist] for s in sc]),
                        "target": mean_std([sum(s[t] for t in targets) for s in sc]),
                        "target_styles": targets,
                        "photo": mean_std([s.get("photo", 0.0) for s in sc]),
                        "shares": {cl: mean_std([s[cl] for s in sc]) for cl in classes},
                    }
                per_cond[condition] = per_setting
            table[artist] = per_cond
        return table

    def main_setting(self) -> str:
        s = self.settings
        return f"L{max(s.finetune_steps)}-w{s.guidance[0]:g}"

    def carried(self, sources: Sequence[str | Path]) -> list[dict[str, Any]]:
        """The runs of earlier results files (``--merge``) that belong to this folder's experiment."""
        s = self.settings
        return carried_runs(
            sources,
            schema=SCHEMA,
            settings=s.to_dict(),
            growable=GROWABLE,
            within=lambda r: r["artist"] in s.artists and r["condition"] in s.conditions,
            from_summary=runs_from_summary,
        )

    @staticmethod
    def _carry_protection(protection: dict[str, Any], merge: Sequence[str | Path]) -> None:
        """Cloak figures this workdir has not made (its runs of that artist did not start here) taken from
        the merged results, which were checked to be the same experiment: a cloak does not depend on the
        run's seed, so its figures are the same wherever it was made."""
        for source in merge:
            theirs = load_results(source, SCHEMA).get("protection", {})
            for artist, per in protection.items():
                for condition, stats in per.items():
                    other = theirs.get(artist, {}).get(condition, {})
                    if stats.get("variant") and "psnr_mean" not in stats and "psnr_mean" in other:
                        per[condition] = {**other, "carried_from": str(results_path(source))}

    def finish(
        self, judge: Judge, extra: dict[str, Any] | None = None, merge: Sequence[str | Path] = ()
    ) -> Path:
        """Score every finished run (and the runs carried over from ``merge``'s results files) and write
        ``results.json``, ``report.md`` and the figures."""
        from sfumato.lab.mimicry.report import write_mimicry_report

        s = self.settings
        runs = combine(self.score(judge), self.carried(merge), run_key)
        summary = self.summarise(runs)
        main = self.main_setting()
        protection = {
            a: {
                c: self.protection_stats(a, parse_condition(c), judge)
                for c in s.conditions
                if c in summary[a]
            }
            for a in s.artists
        }
        self._carry_protection(protection, merge)
        goal: dict[str, Any] = {"condition": "cloak-default", "setting": main, "artists": {}}
        for a in s.artists:
            entry = summary.get(a, {}).get("cloak-default", {}).get(main)
            psnr = protection[a].get("cloak-default", {}).get("psnr_mean")
            if entry is None:
                continue
            clean = summary[a].get("clean", {}).get(main)
            base_rate = None if clean is None else clean["mimicry"]["mean"]
            # Met only where there was mimicry to remove: a mimic that (almost) never drew the style (the
            # autoencoder cannot redraw it) says nothing about the cloak, and a ratio of two shares near
            # zero is noise.
            measurable = mimicry_to_remove(base_rate)
            goal["artists"][a] = {
                "protection": entry["protection"]["mean"],
                "psnr_mean": psnr,
                "met": bool(
                    entry["protection"]["mean"] >= 0.9 and psnr is not None and psnr >= 35.0 and measurable
                ),
                # What the cloak itself removed: a judge that calls weak mimics "photo" leaves protection
                # high even for clean works, so the clean run's mimicry is the baseline to read it against.
                "clean_mimicry": base_rate,
                "mimicry_removed": 1 - entry["mimicry"]["mean"] / base_rate if measurable else None,
            }
        results = {
            "schema": SCHEMA,
            "settings": s.to_dict() | {"seeds": merged_seeds(s.seeds, runs)},
            "base_checkpoint": str(self.base_checkpoint),
            "judge": {
                "name": judge.name,
                "classes": list(judge.classes),
                **{
                    k: v for k, v in judge.info.items() if k in ("key", "test_accuracy", "per_class", "epoch")
                },
            },
            "artists": {
                a: {
                    "name": ARTISTS[a].name,
                    "prompt": prompt_for_artist(a),
                    "look": ARTISTS[a].look,
                    "why_distinct": ARTISTS[a].why_distinct,
                    "works": self.works(a).names,
                }
                for a in s.artists
            },
            "conditions": {
                c: {k: v for k, v in asdict(parse_condition(c)).items() if k != "name"}
                | {"budget": parse_condition(c).budget, "variant": parse_condition(c).variant(s.style)}
                for c in s.conditions
            },
            "protection": protection,
            "summary": summary,
            "goal": goal,
            "runs": runs,
            "carried_from": sources_note(runs),
            **(extra or {}),
        }
        atomic_write_text(self.out / "results.json", json.dumps(results, indent=1) + "\n")
        write_mimicry_report(self, results)
        return self.out / "results.json"
