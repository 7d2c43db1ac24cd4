"""The poisoning experiment: does a small number of shaded images teach the generator the wrong concept?

For one (source -> target) pair, e.g. dog -> cat: fine-tune the base generator on a clean mix
(``clean_per_class`` CIFAR-10 training images of every class, so that many clean source images are in it)
plus N poisoned source images captioned as the source, then draw images for the source prompt, related
prompts and unrelated prompts and judge them. Poisoning methods:

- ``shade``: source images shaded by the engine toward anchors that the base generator itself draws for
  the target prompt (the Nightshade recipe);
- ``shade-real``: the same, toward real target-class training images (never used for evaluation);
- ``shade-gm``: source images shaded so that the base generator's training gradient on them, captioned
  as the source, matches its gradient on those anchors (gradient matching,
  :mod:`sfumato.lab.poison.gradient_match`): an attacker holding the base generator's weights, aiming
  at the fine-tuning rather than the latents;
- ``shade-mist``: the surrogate-trained poison (Mist-v2's targeted loss with its surrogate training,
  :func:`sfumato.lab.poison.craft.make_mist_poisons`): a copy of the generator is fine-tuned on each
  chunk of poisons captioned as the source, and every poison steers that copy's prediction toward its
  anchor's latents;
- ``shade-robust``: ``shade`` crafted in the engine's robust mode (``--robust``: optimised through random
  JPEG, resizing, blur and noise), for training sets that a scraper has compressed or purified;
- ``dirty``: the baseline, real target-class images captioned as the source (plain mislabelling).

A ``countermeasure`` (any of :data:`sfumato.countermeasures.COUNTERMEASURES`) models a scraper that
compresses or purifies everything it collects: it is applied to every fine-tuning image, clean and
poisoned alike, before encoding (see :mod:`sfumato.lab.robustness.experiment`).

Doses are nested (the first N of one fixed poison set). Runs are independent folders under
``out/runs/<method>/N<dose>/seed<seed>``; each keeps its generated images (``samples-*.pt``) and its
``run.json``; the fine-tuned weights are deleted once sampled (hundreds of MB each). A rerun skips what is
done, so the experiment resumes after an interruption. :func:`score` judges every run's images and
:mod:`sfumato.lab.judging.scoring` and :mod:`sfumato.lab.poison.report` turn them into ``results.json``,
``report.md`` and plots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.data.captions import captions_for, prompt_for
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.finetune_runs import finetune_and_sample
from sfumato.lab.judging.evaluation import generate
from sfumato.lab.merging import carried_runs, combine, merged_seeds, sources_note
from sfumato.lab.models.autoencoders import load_lab_decoder
from sfumato.lab.models.base import latents_for
from sfumato.lab.models.latent_cache import to_unit
from sfumato.lab.models.text_encoder import TextEncoder
from sfumato.lab.models.training import load_generator
from sfumato.lab.poison.settings import (
    ANCHOR_OFFSET,
    ANCHOR_SET,
    GROWABLE,
    POISON_CHUNK,
    POISON_OFFSET,
    PoisonConfig,
    crafted_chunks,
)
from sfumato.lab.storage import atomic_torch_save, merge_folder_settings

if TYPE_CHECKING:
    from sfumato.lab.poison.gradient_match import GradientPoisoner

Progress = Callable[[str], None]
SCHEMA = "sfumato.lab.poison/1"


def run_key(run: dict[str, Any]) -> tuple[str, int, int]:
    return run["method"], int(run["dose"]), int(run["seed"])


def runs_from_summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a single-seed results file written before runs kept their scores, each with the
    scores its summary holds (with one seed, a summary entry's mean is that run's share); the N = 0 run is
    listed under every method with the same figures, so the first method's copy is read."""
    summary = results["summary"]
    runs = []
    for r in results["runs"]:
        dose = str(r["dose"])
        methods = [r["method"]] if r["method"] != "clean" else list(summary)
        method = next(m for m in methods if any(dose in per for per in summary[m].values()))
        scores: dict[str, Any] = {}
        for setting, per_dose in summary[method].items():
            if dose not in per_dose:
                continue
            entry = per_dose[dose]
            scores[setting] = {
                "shares": {
                    judge: {
                        p: {c: stat["mean"] for c, stat in per_class.items()}
                        for p, per_class in prompts.items()
                    }
                    for judge, prompts in entry["judges"].items()
                }
            }
            if "frechet" in entry:
                scores[setting]["frechet"] = {c: stat["mean"] for c, stat in entry["frechet"].items()}
        runs.append({**r, "scores": scores})
    return runs


def _log(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


class Experiment:
    """One poisoning experiment in a folder; every step is cached there and resumes."""

    def __init__(
        self,
        config: PoisonConfig,
        out: str | Path,
        base_checkpoint: str | Path,
        zip_path: str | Path,
        *,
        pool: str | Path | None = None,
        text: TextEncoder | None = None,
        progress: Progress | None = print,
        bars: bool = False,
        surrogate_checkpoint: str | Path | None = None,
    ) -> None:
        """``surrogate_checkpoint``: the generator ``shade-gm`` and ``shade-mist`` attack, trained from
        ``config.surrogate``; without one they attack the victim, ``base_checkpoint`` (white-box)."""
        if config.surrogate is not None and surrogate_checkpoint is None:
            raise ValueError("the settings name a surrogate generator: pass its checkpoint")
        self.surrogate_checkpoint = Path(surrogate_checkpoint or base_checkpoint)
        self.config = config  # below: the folder's settings, every run in it (what the report covers)
        self.requested = config  # the runs this call makes
        self._poisoner: GradientPoisoner | None = None  # the shade-gm crafter, made on first use
        self.out = Path(out)
        self.base_checkpoint = Path(base_checkpoint)
        self.zip_path = Path(zip_path)
        if pool is None:
            pool = Path(config.poisons_from) / "poisons" if config.poisons_from else self.out / "poisons"
        self.pool = Path(pool)
        self.text = text or TextEncoder()
        self.progress = progress
        self.bars = bars
        self.out.mkdir(parents=True, exist_ok=True)
        # The folder's settings describe every run in it: runs of an earlier (or concurrent) call with
        # other doses, methods or seeds stay part of the report.
        self.config = PoisonConfig.from_dict(merge_folder_settings(self.out, config.to_dict(), GROWABLE))
        self._check_pool()

    def _check_pool(self) -> None:
        """A pool shared between experiments must have been crafted with the same poison settings.

        The attacker's pool of a transfer experiment was made with another base generator (its anchors
        were drawn by the attacker's model), so there the base is the one setting allowed to differ.
        """
        record = self.pool / "pool.json"
        mine = json.loads(json.dumps(self.config.poison_settings()))
        transfer = bool(self.config.poisons_from)
        if transfer and not record.exists():
            raise ValueError(
                f"no poison pool in {self.pool}: run the attacker's experiment "
                f"(sfumato lab poison -o {self.config.poisons_from}) first"
            )
        if record.exists():
            theirs = json.loads(record.read_text())
            diff = sorted(
                k
                for k in set(mine) | set(theirs)
                if mine.get(k) != theirs.get(k) and not (transfer and k == "base")
            )
            if diff:
                raise ValueError(f"the poison pool {self.pool} was crafted with other {', '.join(diff)}")
        else:
            self.pool.mkdir(parents=True, exist_ok=True)
            atomic_write_text(record, json.dumps(mine, indent=2) + "\n")

    # -- data ---------------------------------------------------------------------------------------

    def _cifar(self, cls: str, offset: int, n: int) -> torch.Tensor:
        data = load_cifar(self.zip_path, "train", classes=[cls], per_class=n, offset=offset, progress=False)
        return to_unit(data.images, self.config.base.size)

    def clean_mix(self) -> tuple[torch.Tensor, list[str]]:
        """The clean fine-tuning images (uint8, 64 px) and their captions."""
        c = self.config
        data = load_cifar(
            self.zip_path, "train", classes=c.base.classes, per_class=c.clean_per_class, progress=False
        )
        images = (to_unit(data.images, c.base.size) * 255).round().to(torch.uint8)
        return images, captions_for(data.labels, data.classes, seed=1)

    def anchors(self, method: str) -> torch.Tensor:
        """Target images the poisons aim at: drawn by the base generator, or real ones (cached)."""
        c = self.config
        method = ANCHOR_SET[method]
        path = self.pool / f"anchors-{method}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        if method == "shade" and c.poisons_from:
            raise ValueError(
                f"{path} not found: a transfer experiment aims at the anchors the attacker's generator "
                f"drew; run the attacker's experiment in {c.poisons_from} with this method first"
            )
        if method == "shade":
            _log(self.progress, f"drawing {c.anchor_candidates} anchors for '{prompt_for(c.target)}'")
            model, _, _, _ = load_generator(self.base_checkpoint)
            decoder = load_lab_decoder(c.base.encoder)
            images = generate(
                model,
                decoder,
                self.text.encode_tokens,
                [prompt_for(c.target)],
                c.anchor_candidates,
                seed=777,
                steps=c.sampler_steps,
            )[prompt_for(c.target)]
        else:
            images = (self._cifar(c.target, ANCHOR_OFFSET, c.anchor_candidates) * 255).round().to(torch.uint8)
        atomic_torch_save(images, path)
        return images

    def poisons(self, method: str, n: int) -> torch.Tensor:
        """The first ``n`` poisoned (or mislabelled) images of ``method``'s pool, uint8.

        Shaded poisons are crafted in chunks of :data:`POISON_CHUNK`, each saved when done, so the pool
        grows as larger doses are asked for and an interrupted crafting run resumes.
        """
        c = self.config
        if n > c.poison_pool:
            raise ValueError(f"dose {n} exceeds the poison pool of {c.poison_pool} images")
        folder = self.pool / method
        folder.mkdir(parents=True, exist_ok=True)
        if method == "dirty":
            path = folder / "images.pt"
            if not path.exists():
                images = (self._cifar(c.target, POISON_OFFSET, c.poison_pool) * 255).round().to(torch.uint8)
                atomic_torch_save(images, path)
            return torch.load(path, weights_only=True)[:n]
        from sfumato.lab.poison.craft import assign_anchors

        sources = self._cifar(c.source, POISON_OFFSET, c.poison_pool)
        candidates = self.anchors(method)
        anchor_path = folder / "anchors.pt"
        if not anchor_path.exists():
            atomic_torch_save(assign_anchors(sources, candidates, c.poison_encoders), anchor_path)
        anchors = torch.load(anchor_path, weights_only=True)
        chunks = []
        for k in range(-(-n // POISON_CHUNK)):
            path = folder / f"chunk-{k:03d}.pt"
            if not path.exists():
                lo, hi = k * POISON_CHUNK, min((k + 1) * POISON_CHUNK, c.poison_pool)
                _log(
                    self.progress,
                    f"crafting {method} poisons {lo}-{hi} ({c.intensity} {c.budget}, {c.poison_steps} steps)",
                )
                started = time.perf_counter()
                batch = self._craft(method, sources[lo:hi], candidates, anchors[lo:hi], lo)
                atomic_torch_save(
                    {
                        "images": batch.images,
                        "closed": batch.closed,
                        "psnr": batch.psnr,
                        "seconds": time.perf_counter() - started,
                    },
                    path,
                )
            chunks.append(torch.load(path, weights_only=True))
        return torch.cat([ch["images"] for ch in chunks])[:n]

    def _craft(
        self, method: str, sources: torch.Tensor, candidates: torch.Tensor, anchors: torch.Tensor, first: int
    ) -> Any:
        """One chunk of ``method``'s poisons (sources ``first``.. of the pool), as a ``PoisonBatch``."""
        c = self.config
        budget = {"intensity": c.intensity, "budget": c.budget, "eps": c.poison_eps, "steps": c.poison_steps}
        # The victim's captions are drawn per run; generator-aware poisons are crafted for seed 0's.
        captions = captions_for([0] * c.poison_pool, [c.source], seed=100)[first : first + sources.shape[0]]
        if method == "shade-gm":
            return self._gradient_poisoner(candidates).poison(
                sources, captions, anchors=anchors, seed=first, **budget
            )
        if method == "shade-mist":
            from sfumato.generators import load_generator as load_attacked
            from sfumato.lab.poison.craft import make_mist_poisons

            rounds = self.pool / method / f"surrogate-{first:04d}.pt"  # resumes an interrupted chunk
            batch = make_mist_poisons(
                sources,
                candidates,
                anchors,
                load_attacked(self.surrogate_checkpoint),
                captions,
                encoders=c.poison_encoders,
                intensity=c.intensity,
                budget=c.budget,
                eps=c.poison_eps,
                seed=first,
                checkpoint=rounds,
            )
            rounds.unlink(missing_ok=True)
            return batch
        from sfumato.lab.poison.craft import make_poisons

        return make_poisons(
            sources,
            candidates,
            anchors=anchors,
            encoders=c.poison_encoders,
            robust=method == "shade-robust",
            seed=first,
            **budget,
        )

    def _gradient_poisoner(self, candidates: torch.Tensor) -> GradientPoisoner:
        """The ``shade-gm`` crafter: the base generator and its target gradient (the gradient on every
        anchor candidate under the source's captions), made once for all chunks."""
        if self._poisoner is None:
            from sfumato.lab.models.autoencoders import load_lab_encoder
            from sfumato.lab.poison.gradient_match import GradientPoisoner

            c = self.config
            model, _, _, _ = load_generator(self.surrogate_checkpoint)
            self._poisoner = GradientPoisoner(
                model,
                load_lab_encoder(c.base.encoder),
                candidates,
                self.text.encode_tokens,
                captions_for([0] * candidates.shape[0], [c.source], seed=7),
            )
        return self._poisoner

    def poison_stats(self) -> dict[str, Any]:
        """Strength and cost of the crafted poisons, per method (over every chunk crafted so far)."""
        out = {}
        for m in self.config.methods:
            chunks = crafted_chunks(self.pool, m)
            if not chunks:
                continue
            closed = torch.cat([ch["closed"] for ch in chunks])
            quality = torch.cat([ch["psnr"] for ch in chunks])
            seconds = sum(float(ch["seconds"]) for ch in chunks)
            out[m] = {
                "n": int(closed.numel()),
                "closed_mean": float(closed.mean()),
                "closed_std": float(closed.std()) if closed.numel() > 1 else 0.0,
                "psnr_mean": float(quality.mean()),
                "psnr_min": float(quality.min()),
                "seconds_per_image": seconds / closed.numel(),
            }
        return out

    def transfer(self) -> dict[str, Any] | None:
        """Whose latent space the poisons were made in, and whose generator trained on them (or None)."""
        if not self.config.poisons_from:
            return None
        attacker = json.loads((self.pool / "pool.json").read_text())
        return {
            "poisons_from": self.config.poisons_from,
            "poison_encoders": attacker["poison_encoders"],
            "attacker_base_encoder": attacker["base"]["encoder"],
            "victim_encoder": self.config.base.encoder,
            "closed_in_victim_space": self.closed_in_victim_space(),
        }

    def closed_in_victim_space(self) -> dict[str, dict[str, float]]:
        """Per crafted method, the share of the latent distance to the anchors the poisons close in
        *this* generator's latent space (the attacker measured it in the encoders it attacked)."""
        from sfumato.lab.models.autoencoders import load_lab_encoder
        from sfumato.lab.poison.craft import as_unit, closed_fraction, encode_with

        c = self.config
        encoder = load_lab_encoder(c.base.encoder)
        out = {}
        for m in c.methods:
            chunks = crafted_chunks(self.pool, m)
            if m == "dirty" or not chunks:
                continue
            poisons = as_unit(torch.cat([ch["images"] for ch in chunks]))
            n = poisons.shape[0]
            sources = self._cifar(c.source, POISON_OFFSET, n)
            anchors = torch.load(self.pool / m / "anchors.pt", weights_only=True)[:n]
            targets = as_unit(self.anchors(m)[anchors])
            z_src, z_poison, z_target = (encode_with([encoder], x)[0] for x in (sources, poisons, targets))
            closed = closed_fraction(z_poison, z_src, z_target)
            out[m] = {"n": n, "closed_mean": float(closed.mean()), "closed_std": float(closed.std())}
        return out

    def scraped(self, images: torch.Tensor, key: str) -> torch.Tensor:
        """``images`` (uint8) as the scraper trains on them: through the countermeasure, if any (cached).

        Image ``i`` of a set always gets seed ``i``, so nested doses see the same purified poisons.
        """
        if not self.config.countermeasure:
            return images
        return self.scraped_with(self.config.countermeasure, images, key)

    def scraped_with(self, countermeasure: str, images: torch.Tensor, key: str) -> torch.Tensor:
        """``images`` (uint8) through ``countermeasure``, cached in ``scraped/``; image i gets seed i."""
        from sfumato.countermeasures import COUNTERMEASURES

        path = self.out / "scraped" / f"{key}-{countermeasure}-{images.shape[0]}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        _log(self.progress, f"applying {countermeasure} to {images.shape[0]} {key} images")
        cm = COUNTERMEASURES[countermeasure]
        x = images.float() / 255
        step = 1 if cm.random else 100
        out = torch.cat([cm(x[i : i + step], seed=i) for i in range(0, x.shape[0], step)])
        result = (out.clamp(0, 1) * 255).round().to(torch.uint8)
        atomic_torch_save(result, path)
        return result

    # -- runs ---------------------------------------------------------------------------------------

    def run_dir(self, method: str, dose: int, seed: int) -> Path:
        if dose == 0:
            return self.out / "runs" / "clean" / "N0" / f"seed{seed}"
        return self.out / "runs" / method / f"N{dose}" / f"seed{seed}"

    def planned(self, config: PoisonConfig | None = None) -> list[tuple[str, int, int]]:
        """Every (method, dose, seed) run of the folder (or of ``config``); dose 0 (no poison) once per
        seed, shared by all methods."""
        c = config or self.config
        runs: list[tuple[str, int, int]] = []
        for seed in c.seeds:
            for dose in c.doses:
                for method in ["clean"] if dose == 0 else c.methods:
                    runs.append((method, dose, seed))
        return runs

    def run(self, method: str, dose: int, seed: int) -> Path:
        """Fine-tune on the clean mix plus ``dose`` poisons of ``method``, then sample; resumable."""
        c = self.config
        folder = self.run_dir(method, dose, seed)
        record = folder / "run.json"
        if record.exists():
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        images, captions = self.clean_mix()
        images = self.scraped(images, "clean-mix")
        latents = latents_for(images, c.base.encoder, self.out, "clean-mix", c.base.size, progress=self.bars)
        if dose:
            poison = latents_for(
                self.scraped(self.poisons(method, dose), method),
                c.base.encoder,
                self.out,
                f"poisons-{method}",
                c.base.size,
                progress=self.bars,
            )[:dose]
            latents = torch.cat([latents, poison])
            captions = captions + captions_for([0] * dose, [c.source], seed=100 + seed)
        decoder = load_lab_decoder(c.base.encoder)
        prompts = list(c.prompts())
        timings = finetune_and_sample(
            folder,
            self.base_checkpoint,
            latents,
            captions,
            self.text.encode_tokens,
            decoder,
            prompts,
            c,
            seed=seed,
            meta={"method": method, "dose": dose},
            bars=self.bars,
            on_length=lambda steps: _log(
                self.progress, f"{method} N={dose} seed={seed}: fine-tuned to {steps} steps and sampled"
            ),
        )
        info = {
            "method": method,
            "dose": dose,
            "seed": seed,
            "train_images": int(latents.shape[0]),
            "seconds": round(time.perf_counter() - started, 1),
            "timings": timings,
        }
        atomic_write_text(record, json.dumps(info, indent=2) + "\n")
        return folder

    def run_all(self, only: Sequence[tuple[str, int, int]] | None = None) -> list[Path]:
        todo = list(only) if only is not None else self.planned(self.requested)
        done = []
        for k, (method, dose, seed) in enumerate(todo, 1):
            _log(self.progress, f"[{k}/{len(todo)}] {method} N={dose} seed={seed}")
            done.append(self.run(method, dose, seed))
        return done

    # -- scoring and the report ---------------------------------------------------------------------

    def classes_of_prompt(self) -> dict[str, list[str]]:
        """Per evaluation prompt, the classes whose shares are reported: source, target, and its own."""
        c = self.config
        out = {}
        for prompt, role in c.prompts().items():
            cls = [c.source, c.target]
            if role == "unrelated":
                own = prompt.split(" ")[-1]
                cls.append(own)
            out[prompt] = cls
        return out

    def references(self, n: int = 1000) -> dict[str, torch.Tensor]:
        """Real CIFAR-10 *test* images of the source and target classes (never trained on or poisoned)."""
        c = self.config
        return {
            cls: load_cifar(self.zip_path, "test", classes=[cls], per_class=n, progress=False).images
            for cls in (c.target, c.source)
        }

    def score(self, judges: Sequence[Any], features: Any | None) -> list[dict[str, Any]]:
        from sfumato.lab.judging.scoring import score_run

        refs = self.references() if features is not None else {}
        source_prompt = prompt_for(self.config.source)
        runs = []
        for method, dose, seed in self.planned():
            folder = self.run_dir(method, dose, seed)
            if not (folder / "run.json").exists():
                continue
            scores = score_run(folder, judges, features, refs, source_prompt)
            runs.append(
                {
                    "method": method,
                    "dose": dose,
                    "seed": seed,
                    "scores": scores,
                    **{
                        k: v
                        for k, v in json.loads((folder / "run.json").read_text()).items()
                        if k in ("seconds", "timings", "train_images")
                    },
                }
            )
        return runs

    def carried(self, sources: Sequence[str | Path]) -> list[dict[str, Any]]:
        """The runs of earlier results files (``--merge``) that belong to this folder's experiment."""
        c = self.config

        def within(r: dict[str, Any]) -> bool:
            return (
                r["dose"] in c.doses
                and (r["method"] == "clean") == (r["dose"] == 0)
                and (r["method"] == "clean" or r["method"] in c.methods)
            )

        return carried_runs(
            sources,
            schema=SCHEMA,
            settings=c.to_dict(),
            growable=GROWABLE,
            within=within,
            from_summary=runs_from_summary,
        )

    def finish(
        self,
        judges: Sequence[Any],
        features: Any | None,
        extra: dict[str, Any] | None = None,
        merge: Sequence[str | Path] = (),
    ) -> Path:
        """Score every finished run (and the runs carried over from ``merge``'s results files) and write
        ``results.json``, ``report.md`` and the figures."""
        from sfumato.lab.judging.scoring import summarise
        from sfumato.lab.poison.report import write_poison_report

        runs = combine(self.score(judges, features), self.carried(merge), run_key)
        summary = summarise(runs, self.classes_of_prompt())
        results = {
            "schema": SCHEMA,
            "settings": self.config.to_dict() | {"seeds": merged_seeds(self.config.seeds, runs)},
            "base_checkpoint": str(self.base_checkpoint),
            "judges": {j.name: j.info for j in judges},
            "features": None if features is None else {features.name: features.info},
            "poisons": self.poison_stats(),
            "transfer": self.transfer(),
            "prompts": {
                p: {"role": r, "classes": self.classes_of_prompt()[p]}
                for p, r in self.config.prompts().items()
            },
            "summary": summary,
            "runs": runs,
            "carried_from": sources_note(runs),
            **(extra or {}),
        }
        atomic_write_text(self.out / "results.json", json.dumps(results, indent=1) + "\n")
        write_poison_report(self, results)
        return self.out / "results.json"
