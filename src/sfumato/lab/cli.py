"""``sfumato lab ...``: the lab's commands, a thin layer over :mod:`sfumato.lab`.

Every command works in one workdir (``--workdir``, default ``$SFUMATO_LAB_DIR`` or ``./sfumato-lab``):
``judges/<name>``, ``base/<encoder>-<hash>``, ``latents`` (cache), and resumes whatever it finds there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sfumato.options import eps_option

EXIT_OK, EXIT_FAILED = 0, 1
VOTERS = ("pixel", "grey64")
FEATURES = "features"


def default_workdir() -> Path:
    return Path(os.environ.get("SFUMATO_LAB_DIR", "sfumato-lab"))


def _err(message: str) -> None:
    print(f"sfumato lab: error: {message}", file=sys.stderr)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _setup(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "weights", None):
        os.environ["SFUMATO_WEIGHTS"] = str(args.weights)
    _restore(args)


def _restore(args: argparse.Namespace) -> None:
    """Bring the committed trained models the workdir lacks into it, so nothing is retrained for hours."""
    from sfumato.lab.models.store import StoreError, default_store, restore_models

    if getattr(args, "no_models", False):
        return
    store = args.models if getattr(args, "models", None) else default_store()
    try:
        restore_models(args.workdir, store, log=None if args.quiet else print)
    except StoreError as e:
        _err(f"{e} (or pass --no-models to train here instead)")
        raise SystemExit(EXIT_FAILED) from None


def _zip(args: argparse.Namespace) -> Path:
    from sfumato.lab.models.base import cifar_zip

    return cifar_zip(args.shared)


def load_judges(workdir: Path) -> tuple[list[Any], Any | None]:
    """The trained voters and the feature network found in ``workdir/judges`` (missing ones skipped)."""
    from sfumato.lab.judging.classifiers import load_judge

    voters = [
        load_judge(workdir / "judges" / n)
        for n in VOTERS
        if (workdir / "judges" / n / "metrics.json").exists()
    ]
    feat_dir = workdir / "judges" / FEATURES
    features = load_judge(feat_dir) if (feat_dir / "metrics.json").exists() else None
    return voters, features


def _cmd_export_models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.models.store import StoreError, checkout_store, export_model

    store = args.to or checkout_store()
    failed = 0
    for folder in args.folders:
        try:
            entry = export_model(args.workdir, folder.strip("/"), store, args.command)
        except StoreError as e:
            _err(str(e))
            failed += 1
            continue
        print(f"{folder}: {entry.bytes / 1e6:.1f} MB, sha256 {entry.sha256[:16]}... -> {store / folder}")
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_judges(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.data.datasets import load_cifar
    from sfumato.lab.judging.classifiers import judge_config, train_judge

    _setup(args)
    zip_path = _zip(args)
    train = load_cifar(zip_path, "train", progress=not args.quiet)
    test = load_cifar(zip_path, "test", progress=not args.quiet)
    for name in args.only:
        overrides = {"epochs": args.epochs} if args.epochs else {}
        out = args.workdir / "judges" / name
        train_judge(judge_config(name, **overrides), train, test, out, progress=not args.quiet)
        metrics = json.loads((out / "metrics.json").read_text())
        print(f"{name}: test accuracy {100 * metrics['test_accuracy']:.2f} % ({out})")
    return EXIT_OK


def _cmd_train_base(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.models.base import base_quality, train_base, variant_spec

    _setup(args)
    try:
        spec = variant_spec(args.encoder, width=args.width, seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
        _err(f"--encoder {args.encoder}: {e}")
        return EXIT_FAILED
    if args.steps:
        spec.training.steps = args.steps
    ckpt = train_base(args.workdir, _zip(args), spec, progress=not args.quiet)
    print(f"base generator: {ckpt}")
    voters, _ = load_judges(args.workdir)
    if not voters:
        print("no trained judges in the workdir yet ('sfumato lab judges'); skipping the quality check")
        return EXIT_OK
    result = base_quality(ckpt, voters, n=args.samples)
    for g, per_judge in result["by_guidance"].items():
        for judge, acc in per_judge.items():
            per = ", ".join(f"{c} {100 * v:.0f}" for c, v in acc["per_class"].items())
            print(f"guidance {g}, judge {judge}: mean {100 * acc['mean']:.1f} % ({per})")
    return EXIT_OK


def _base_checkpoint(args: argparse.Namespace) -> Path:
    from sfumato.lab.models.base import spec_for

    if args.base:
        return Path(args.base)
    ckpt = spec_for(args.encoder).folder(args.workdir) / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(
            f"no base generator at {ckpt}; run 'sfumato lab train-base' first or pass --base"
        )
    return ckpt


def _surrogate(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The protector's generator named by ``--surrogate-width/-seed/-encoder`` (its spec and checkpoint),
    or (None, None): the victim base itself, white-box."""
    from sfumato.lab.models.base import variant_spec

    if not (args.surrogate_encoder or args.surrogate_width or args.surrogate_seed is not None):
        return None, None
    spec = variant_spec(
        args.surrogate_encoder or args.encoder, width=args.surrogate_width, seed=args.surrogate_seed
    )
    checkpoint = spec.folder(args.workdir) / "checkpoint.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(
            f"no surrogate generator at {checkpoint}; train it first: sfumato lab train-base "
            f"--encoder {spec.encoder} --width {spec.generator.width} --seed {spec.training.seed}"
        )
    return spec, checkpoint


def _surrogate_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "the protector's generator (generator-aware methods; default: the victim base, white-box)"
    )
    group.add_argument("--surrogate-width", type=int, default=None, help="grey-box: another width")
    group.add_argument("--surrogate-seed", type=int, default=None, help="grey-box: another training seed")
    group.add_argument("--surrogate-encoder", default=None, help="black-box: a base in another latent space")


def _merge_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        metavar="RESULTS",
        help="also report the runs of an earlier results.json (or its folder) of the same experiment, e.g. "
        "seed 0 made in another workdir; repeatable",
    )


def _protector_encoders(args: argparse.Namespace) -> tuple[str, ...]:
    """The encoders the protector attacks by default: the latent space of the generator it holds, the
    victim's own (``--encoder``) unless a black-box surrogate lives in another (``--surrogate-encoder``)."""
    return (args.surrogate_encoder or args.encoder,)


def _run_and_report(exp: Any, args: argparse.Namespace) -> int:
    """Run what is missing (unless ``--report-only``), then score every run with the workdir's judges."""
    if not args.report_only:
        exp.run_all()
    voters, features = load_judges(args.workdir)
    if not voters:
        print("no trained judges yet ('sfumato lab judges'): generated images are kept; rerun to score")
        return EXIT_OK
    merge = getattr(args, "merge", [])
    results = exp.finish(voters, features, merge=merge) if merge else exp.finish(voters, features)
    print(f"results: {results}\nreport:  {results.parent / 'report.md'}")
    return EXIT_OK


def _cmd_poison(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.models.base import spec_for
    from sfumato.lab.poison.experiment import Experiment
    from sfumato.lab.poison.settings import PoisonConfig, load_settings

    _setup(args)
    try:
        base = _base_checkpoint(args)
        surrogate, surrogate_ckpt = _surrogate(args)
        if args.report_only:
            if args.out is None:
                raise ValueError("--report-only needs the experiment folder (-o)")
            config = load_settings(args.out)
            if config.surrogate is not None:
                surrogate_ckpt = config.surrogate.folder(args.workdir) / "checkpoint.pt"
        elif args.poisons_from:
            config = _transfer_config(args, base)
        else:
            config = PoisonConfig(
                source=args.source,
                target=args.target,
                **_schedule(args),
                poison_encoders=args.poison_encoders or _protector_encoders(args),
                intensity=args.intensity,
                budget=args.budget,
                poison_eps=args.eps,
                base=spec_for(args.encoder),
                surrogate=surrogate,
            )
        default = config.pair + ("-transfer" if config.poisons_from else "")
        out = args.out or args.workdir / "poison" / default
        exp = Experiment(
            config, out, base, _zip(args), bars=not args.quiet, surrogate_checkpoint=surrogate_ckpt
        )
        return _run_and_report(exp, args)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return EXIT_FAILED


def _schedule(args: argparse.Namespace) -> dict[str, Any]:
    """The poisoning options that say which runs to make and how to evaluate them."""
    keys = ("doses", "methods", "seeds", "samples", "guidance", "finetune_steps")
    return {k: getattr(args, k) for k in keys}


def _transfer_config(args: argparse.Namespace, checkpoint: Path) -> Any:
    """A transfer experiment: the attacker's poison settings, this run's generator and schedule."""
    from dataclasses import replace

    from sfumato.lab.models.base import spec_for, spec_from_dict
    from sfumato.lab.poison.settings import load_settings

    attacker = load_settings(args.poisons_from)
    # The victim's base may be trained with its own settings (steps): record the spec it was trained with.
    spec_file = checkpoint.parent / "spec.json"
    if spec_file.exists():
        base = spec_from_dict(json.loads(spec_file.read_text()))
    else:
        base = spec_for(args.encoder)
    return replace(
        attacker,
        **_schedule(args),
        countermeasure="",
        poisons_from=str(Path(args.poisons_from).resolve()),
        base=base,
    )


def _cmd_robustness(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.models.base import spec_for
    from sfumato.lab.poison.settings import PoisonConfig, load_settings
    from sfumato.lab.robustness.experiment import RobustnessExperiment
    from sfumato.lab.robustness.settings import NONE, RobustnessConfig

    _setup(args)
    try:
        base = _base_checkpoint(args)
        pair = f"{args.source}-to-{args.target}"
        main_out = args.poison or args.workdir / "poison" / pair
        if (main_out / "settings.json").exists():
            poison = load_settings(main_out)
        else:
            poison = PoisonConfig(source=args.source, target=args.target, base=spec_for(args.encoder))
        config = RobustnessConfig(
            poison=poison,
            dose=args.dose,
            countermeasures=args.countermeasures,
            methods=args.methods,
        )
        config.poison.seeds = args.seeds
        out = args.out or args.workdir / "robustness" / pair
        mimicry = {NONE: args.workdir / "mimicry" / "results.json"} | {
            cm: args.workdir / f"mimicry-{cm}" / "results.json" for cm in config.countermeasures
        }
        exp = RobustnessExperiment(
            config, out, main_out, base, _zip(args), mimicry=mimicry, bars=not args.quiet
        )
        return _run_and_report(exp, args)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return EXIT_FAILED


def _cmd_finetune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.data.datasets import load_captioned_folder
    from sfumato.lab.models.base import latents_for
    from sfumato.lab.models.text_encoder import TextEncoder
    from sfumato.lab.models.training import TrainConfig, finetune, load_checkpoint

    _setup(args)
    try:
        meta = json.loads(load_checkpoint(args.base)["meta"] or "{}")
        encoder = meta.get("spec", {}).get("encoder", "flux2")
        images, captions, problems = load_captioned_folder(args.folder, size=64)
    except (FileNotFoundError, ValueError, KeyError) as e:
        _err(str(e))
        return EXIT_FAILED
    for p in problems:
        _err(f"skipped: {p}")
    latents = latents_for(
        images, encoder, args.workdir, f"finetune-{args.folder.name}", progress=not args.quiet
    )
    config = TrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, warmup=20, min_lr_frac=1.0, seed=args.seed
    )
    ckpt = finetune(
        args.base,
        latents,
        captions,
        TextEncoder().encode_tokens,
        config,
        args.out,
        progress=not args.quiet,
        meta={"folder": str(args.folder), "images": len(captions)},
    )
    print(f"fine-tuned on {len(captions)} images: {ckpt}")
    return EXIT_FAILED if problems else EXIT_OK


def _cmd_private(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from sfumato.lab.data.datasets import load_cifar, photo_crops
    from sfumato.lab.models.base import LAB_CLASSES
    from sfumato.lab.models.latent_cache import to_unit
    from sfumato.lab.models.private_autoencoder import PrivateConfig, train_private_autoencoder

    _setup(args)
    zip_path = _zip(args)
    train = load_cifar(zip_path, "train", classes=LAB_CLASSES, progress=not args.quiet)
    test = load_cifar(zip_path, "test", classes=LAB_CLASSES, per_class=100, progress=False)

    def to64(x: torch.Tensor) -> torch.Tensor:
        return (to_unit(x, 64) * 255).round().to(torch.uint8)

    try:
        config = PrivateConfig(
            latent_channels=args.latent_channels,
            kl=args.kl,
            perceptual=args.perceptual,
            imagenet_crops=args.imagenet_crops,
        )
    except ValueError as e:
        _err(str(e))
        return EXIT_FAILED
    if args.steps:
        config.steps = args.steps
    images, held_out = to64(train.images), {"cifar": to64(test.images)}
    if config.imagenet_crops:
        photos = args.shared / "data" / "imagenet-samples" if args.shared else None
        if photos is None or not photos.is_dir():
            _err("--imagenet-crops needs --shared with data/imagenet-samples")
            return EXIT_FAILED
        images = torch.cat([images, photo_crops(photos, config.imagenet_crops, seed=config.seed)])
        held_out["imagenet"] = photo_crops(photos, 4, held_out=True, seed=config.seed)
    feature_net = None
    if config.perceptual:
        voters, features = load_judges(args.workdir)
        if features is None:
            _err("--perceptual needs the workdir's 'features' judge ('sfumato lab judges --only features')")
            return EXIT_FAILED
        feature_net = features.model
    out = args.out or args.workdir / "private-autoencoder"
    ckpt = train_private_autoencoder(
        images, held_out, out, config, progress=not args.quiet, feature_net=feature_net
    )
    metrics = json.loads((out / "metrics.json").read_text())
    extra = "".join(
        f", {k} {v:.2f} dB"
        for k, v in metrics.items()
        if k.startswith("held_out_") and k.endswith("_psnr_db")
    )
    print(f"private autoencoder: {ckpt} (held-out PSNR {metrics['held_out_psnr_db']:.2f} dB{extra})")
    print(f"train its generator: sfumato lab train-base --encoder {ckpt}")
    return EXIT_OK


def _cmd_style_judge(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.judging.style_judge import StyleJudgeSpec, train_style_judge

    _setup(args)
    spec = StyleJudgeSpec()
    if args.epochs:
        spec.judge.epochs = args.epochs
    try:
        folder = train_style_judge(args.workdir, args.shared, spec, bars=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return EXIT_FAILED
    metrics = json.loads((folder / "metrics.json").read_text())
    print(f"style judge: held-out accuracy {100 * metrics['test_accuracy']:.2f} % ({folder})")
    return EXIT_OK


def _cmd_mimicry(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.lab.judging.style_judge import load_style_judge, train_style_judge
    from sfumato.lab.mimicry.experiment import MimicryExperiment
    from sfumato.lab.mimicry.settings import MimicryConfig, load_settings
    from sfumato.lab.models.base import spec_for

    _setup(args)
    try:
        base = _base_checkpoint(args)
        surrogate, surrogate_ckpt = _surrogate(args)
        if args.report_only:
            if args.out is None:
                raise ValueError("--report-only needs the experiment folder (-o)")
            config = load_settings(args.out)
        else:
            chosen = {k: getattr(args, k) for k in ("artists", "conditions") if getattr(args, k)}
            config = MimicryConfig(
                **chosen,
                seeds=args.seeds,
                style=args.style,
                samples=args.samples,
                finetune_steps=args.finetune_steps,
                finetune_lr=args.finetune_lr,
                guidance=args.guidance,
                countermeasure=args.countermeasure,
                base=spec_for(args.encoder),
                surrogate=surrogate,
                cloak_encoders=args.cloak_encoders or _protector_encoders(args),
            )
        out = args.out or args.workdir / (
            "mimicry" + (f"-{args.countermeasure}" if args.countermeasure else "")
        )
        if args.report_only and config.surrogate is not None:
            surrogate_ckpt = config.surrogate.folder(args.workdir) / "checkpoint.pt"
        exp = MimicryExperiment(
            config,
            out,
            base,
            args.shared,
            bars=not args.quiet,
            weights_dir=args.weights,
            surrogate_checkpoint=surrogate_ckpt,
        )
        if not args.report_only:
            train_style_judge(args.workdir, args.shared, config.judge, bars=not args.quiet)
            exp.run_all()
        results = exp.finish(load_style_judge(args.workdir, config.judge), merge=args.merge)
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return EXIT_FAILED
    print(f"results: {results}\nreport:  {results.parent / 'report.md'}")
    return EXIT_OK


def add_lab_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Register ``sfumato lab`` and its commands on the main parser's subparsers."""
    lab = sub.add_parser(
        "lab",
        formatter_class=formatter,
        help="train a small text-to-image generator and measure attacks on it",
        description="The lab: judges, base generators and experiments, resumable in one workdir.",
    )
    lab.set_defaults(func=lambda a, p: (p.print_help(), 2)[1], subparser=lab)
    cmds = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--workdir", type=Path, default=default_workdir(), help="lab folder (resumes what is there)"
        )
        p.add_argument(
            "--shared", type=Path, default=None, help="folder holding data/cifar10.zip (../shared)"
        )
        p.add_argument("--weights", type=Path, default=None, help="encoder weights folder")
        p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument(
            "--models",
            type=Path,
            default=None,
            help="committed trained models to start from (default: $SFUMATO_LAB_MODELS or the checkout's "
            "lab-models/)",
        )
        p.add_argument("--no-models", action="store_true", help="start from no committed model (train here)")

    p = cmds.add_parser(
        "export-models",
        formatter_class=formatter,
        help="store finished models in half precision for committing",
        description="Copy finished models (their folders under the workdir, e.g. judges/pixel) into a model "
        "store (default: the checkout's lab-models/) as float16 safetensors with their checksums, side files "
        "and the command that trained them.",
    )
    p.add_argument("folders", nargs="+", help="model folders relative to the workdir")
    p.add_argument("--workdir", type=Path, default=default_workdir(), help="lab folder")
    p.add_argument("--to", type=Path, default=None, help="store folder (default: the checkout's lab-models/)")
    p.add_argument("--command", required=True, help="the command that trained them (recorded)")
    p.set_defaults(func=_cmd_export_models, subparser=p)

    p = cmds.add_parser("judges", formatter_class=formatter, help="train the judges on CIFAR-10")
    common(p)
    p.add_argument("--only", type=_names, default=(*VOTERS, FEATURES), help="comma-separated judge presets")
    p.add_argument("--epochs", type=int, default=0, help="override the presets' epochs")
    p.set_defaults(func=_cmd_judges, subparser=p)

    p = cmds.add_parser("train-base", formatter_class=formatter, help="train a base generator from scratch")
    common(p)
    p.add_argument(
        "--encoder", default="flux2", help="latent space: flux2 or a private autoencoder checkpoint"
    )
    p.add_argument("--steps", type=int, default=0, help="training steps (default: the preset's)")
    p.add_argument("--samples", type=int, default=200, help="images per class for the quality check")
    p.add_argument(
        "--width",
        type=int,
        default=None,
        help="generator width (default 64): another model, e.g. a grey-box surrogate",
    )
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    p.set_defaults(func=_cmd_train_base, subparser=p)

    p = cmds.add_parser("finetune", formatter_class=formatter, help="fine-tune a generator on a folder")
    common(p)
    p.add_argument("base", type=Path, help="generator checkpoint to start from")
    p.add_argument("folder", type=Path, help="images; captions from <name>.txt sidecars or folder names")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (resumes)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_finetune, subparser=p)

    p = cmds.add_parser("private", formatter_class=formatter, help="train the private autoencoder")
    common(p)
    p.add_argument("--steps", type=int, default=0, help="training steps (default: the preset's)")
    p.add_argument("--latent-channels", type=int, default=16, help="latent channels (8x8 latents at 64 px)")
    p.add_argument(
        "--kl",
        type=float,
        default=0.0,
        help="KL weight: a variational, Stable-Diffusion-class latent space (SD: 4 channels, 1e-6)",
    )
    p.add_argument(
        "--perceptual", type=float, default=0.0, help="weight of the feature judge's perceptual distance"
    )
    p.add_argument(
        "--imagenet-crops", type=int, default=0, help="64-128 px crops per ImageNet sample added to the data"
    )
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="folder (default: <workdir>/private-autoencoder)"
    )
    p.set_defaults(func=_cmd_private, subparser=p)

    p = cmds.add_parser("poison", formatter_class=formatter, help="the poisoning experiment")
    common(p)
    p.add_argument("--source", default="dog")
    p.add_argument("--target", default="cat")
    p.add_argument("--doses", type=_ints, default=(0, 25, 50, 100, 200, 400))
    p.add_argument(
        "--methods",
        type=_names,
        default=("shade", "shade-real", "dirty"),
        help="comma-separated, of: shade, shade-gm, shade-mist, shade-robust, shade-real, dirty "
        "(docs/lab.md)",
    )
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2))
    p.add_argument("--samples", type=int, default=200, help="images per prompt")
    p.add_argument("--guidance", type=_floats, default=(3.0, 1.0), help="guidance scales to evaluate")
    p.add_argument("--finetune-steps", type=_ints, default=(200, 400), help="fine-tuning lengths evaluated")
    p.add_argument(
        "--poison-encoders",
        type=_names,
        default=None,
        help="encoders the poisons attack (default: the protector's latent space: --surrogate-encoder, "
        "else --encoder)",
    )
    p.add_argument("--intensity", choices=("low", "default", "high"), default="high", help="poison budget")
    p.add_argument("--budget", choices=("jnd", "linf"), default="jnd", help="poison budget kind")
    p.add_argument(
        "--eps", type=eps_option, default=None, metavar="E", help="poisons' L-inf bound, 0..255 units"
    )
    p.add_argument("--encoder", default="flux2", help="latent space of the base generator attacked")
    p.add_argument("--base", type=Path, default=None, help="base checkpoint (default: the workdir's)")
    _surrogate_options(p)
    p.add_argument(
        "--poisons-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="transfer test: train on the poisons of the attacker's experiment DIR (its pair and "
        "poison settings) instead of crafting them against this --encoder",
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="experiment folder")
    p.add_argument("--report-only", action="store_true", help="score and report the finished runs only")
    _merge_option(p)
    p.set_defaults(func=_cmd_poison, subparser=p)

    p = cmds.add_parser(
        "robustness",
        formatter_class=formatter,
        help="poisons against countermeasures (JPEG, resizing, purification)",
    )
    common(p)
    p.add_argument("--source", default="dog")
    p.add_argument("--target", default="cat")
    p.add_argument("--dose", type=int, default=100, help="poisoned images N")
    p.add_argument(
        "--countermeasures",
        type=_names,
        default=("jpeg75", "resize0.5", "ae_roundtrip", "impress"),
        help="applied to every fine-tuning image (see sfumato purify --help)",
    )
    p.add_argument("--methods", type=_names, default=("shade", "shade-robust"))
    p.add_argument("--seeds", type=_ints, default=(0,))
    p.add_argument("--encoder", default="flux2", help="latent space of the base generator attacked")
    p.add_argument("--base", type=Path, default=None, help="base checkpoint (default: the workdir's)")
    p.add_argument(
        "--poison", type=Path, default=None, help="the main poisoning experiment (its poisons are reused)"
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="experiment folder")
    p.add_argument("--report-only", action="store_true", help="score and report the finished runs only")
    p.set_defaults(func=_cmd_robustness, subparser=p)

    p = cmds.add_parser(
        "style-judge", formatter_class=formatter, help="train the style judge of the mimicry experiment"
    )
    common(p)
    p.add_argument("--epochs", type=int, default=0, help="override the preset's epochs")
    p.set_defaults(func=_cmd_style_judge, subparser=p)

    p = cmds.add_parser("mimicry", formatter_class=formatter, help="the style-mimicry experiment")
    common(p)
    p.add_argument(
        "--artists",
        type=_names,
        default=None,
        help="artists fine-tuned on (default: all of sfumato.lab.artists)",
    )
    p.add_argument(
        "--conditions",
        type=_names,
        default=None,
        help="clean, cloak-<i>, robust-<i>, views-<i>, decoded-<i> (views through the autoencoder's round "
        "trip), linf-<i> (equal PSNR), auto-<i>, share<NN>-<i>, "
        "blend<NN> (visible: NN %% of the target rendering mixed in); "
        "generator-aware (against the surrogate, through training views): advdm-<i>, sds-<i>, "
        "targeted-<i>, aspl-<i>, metacloak-<i>; "
        "<i>: low, default, high, or the field's plain budgets linf8, linf16 (8 or 16 levels) "
        "(default: clean, cloak at each intensity, views, linf, auto and "
        "shares 25/50/75 at default)",
    )
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2))
    p.add_argument("--style", default="sketch", help="the fixed cloak target style")
    p.add_argument("--samples", type=int, default=80, help="images drawn per run (per seed)")
    p.add_argument("--guidance", type=_floats, default=(3.0,), help="guidance scales to evaluate")
    p.add_argument("--finetune-steps", type=_ints, default=(400,), help="fine-tuning lengths evaluated")
    p.add_argument("--finetune-lr", type=float, default=5e-4, help="fine-tuning learning rate")
    p.add_argument("--encoder", default="flux2", help="latent space of the base generator")
    p.add_argument("--base", type=Path, default=None, help="base checkpoint (default: the workdir's)")
    p.add_argument(
        "--cloak-encoders",
        type=_names,
        default=None,
        help="encoders the encoder-only cloaks attack (default: the protector's latent space: "
        "--surrogate-encoder, else --encoder)",
    )
    _surrogate_options(p)
    p.add_argument(
        "--countermeasure",
        default="",
        help="applied to every work before training, as a scraper would (see sfumato purify --help)",
    )
    p.add_argument(
        "-o", "--out", type=Path, default=None, help="experiment folder (WORKDIR/mimicry[-COUNTERMEASURE])"
    )
    p.add_argument("--report-only", action="store_true", help="score and report the finished runs only")
    _merge_option(p)
    p.set_defaults(func=_cmd_mimicry, subparser=p)
