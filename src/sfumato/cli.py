"""The ``sfumato`` command: ``shade``, ``cloak``, ``inspect``, ``styles``, ``purify`` and ``serve`` (the app).

A thin layer over :func:`sfumato.batch.run_batch` and :func:`sfumato.inspect.inspect`. Exit codes:
0 all good, 1 some files failed (listed at the end, on stderr) or a runtime problem such as missing
weights, 2 usage errors. Expected problems are reported in one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfumato import __version__
from sfumato.families import DEFAULT_FAMILIES, FAMILIES, family_ensemble, parse_families
from sfumato.options import eps_option

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
AUTO_DESCRIPTION = (
    "pick one built-in style for the whole set, at a middling-to-far latent distance from most artworks"
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps the description like argparse does; keeps the epilog's layout (the style list)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(100, shutil.get_terminal_size().columns))

    def add_text(self, text: str | None) -> None:
        if text and "\n" not in text:
            text = textwrap.fill(text, width=max(40, self._width - 2))
        super().add_text(text)


# --------------------------------------------------------------------------------------- option types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _quality(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, not {value}")
    return value


def _tile(text: str) -> int:
    value = _positive_int(text)
    if value < 64:
        raise argparse.ArgumentTypeError(f"must be at least 64 px, not {value}")
    return value


def _views_size(text: str) -> int:
    value = _positive_int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"a training resolution must be at least 16 px, not {value}")
    return value


def _name_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not names or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of encoder names, not {text!r}")
    return names


def _family_list(text: str) -> tuple[str, ...]:
    try:
        return parse_families(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _weight_list(text: str) -> tuple[float, ...]:
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, e.g. 1,1, not {text!r}") from None
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise argparse.ArgumentTypeError(f"must be non-negative and not all zero, not {text!r}")
    return weights


# -------------------------------------------------------------------------------------------- parser


def _style_list(indent: str = "  ") -> str:
    from sfumato.styles import STYLE_DESCRIPTIONS, STYLE_NAMES  # torch: imported inside main's Ctrl-C guard

    width = max(len(n) for n in (*STYLE_NAMES, "auto")) + 2
    lines = [f"{indent}{name:<{width}}{STYLE_DESCRIPTIONS[name]}" for name in STYLE_NAMES]
    lines.append(f"{indent}{'auto':<{width}}{AUTO_DESCRIPTION[0].upper()}{AUTO_DESCRIPTION[1:]} (default).")
    return "\n".join(lines)


def _add_common_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("protected"),
        metavar="DIR",
        help="output folder (default: ./protected); inputs are never overwritten",
    )
    g.add_argument(
        "--format",
        choices=("png", "jpg", "webp"),
        default="png",
        help="output format (default: png; jpg and lossy webp weaken the protection)",
    )
    g.add_argument(
        "--quality",
        type=_quality,
        default=95,
        metavar="Q",
        help="jpg/webp quality 1-100 (default: 95; webp at 100 is lossless)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars and no per-image lines")
    g = p.add_argument_group("strength")
    g.add_argument(
        "--intensity",
        choices=("low", "default", "high"),
        default="default",
        help="how strong and how visible (default: default)",
    )
    g.add_argument(
        "--budget",
        choices=("jnd", "linf"),
        default="jnd",
        help="jnd: per-pixel allowance from a visibility model; linf: the same bound "
        "everywhere (default: jnd)",
    )
    g.add_argument(
        "--eps",
        type=eps_option,
        default=None,
        metavar="E",
        help="largest change of any pixel, in 0..255 units (e.g. 8 = 8/255; default: set by --intensity)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--speed",
        choices=("fast", "default", "thorough"),
        default="default",
        help="steps per tile preset (default: default)",
    )
    g.add_argument(
        "--steps",
        type=_positive_int,
        default=None,
        metavar="N",
        help="optimisation steps per tile (overrides --speed's count)",
    )
    g.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    g.add_argument(
        "--robust",
        action="store_true",
        help="optimise through random JPEG, resizing, blur, noise and shifts so the protection "
        "survives them (about 5x slower; see 'sfumato purify')",
    )
    g.add_argument(
        "--views",
        type=_views_size,
        default=None,
        metavar="PX",
        help="optimise through the random crops a fine-tuning pipeline resizes to PX (e.g. 512 or 1024), "
        "so the protection survives training at that resolution (about 3x slower at small sizes)",
    )
    g.add_argument(
        "--tile", type=_tile, default=None, metavar="PX", help="tile size for large images (default: 512)"
    )
    g.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="where to compute (default: auto = cuda, then mps, then cpu)",
    )
    g = p.add_argument_group("model families and encoders")
    g.add_argument(
        "--family",
        type=_family_list,
        default=None,
        metavar="LIST",
        help="the model families to protect against, comma-separated: auto (default: "
        f"{','.join(DEFAULT_FAMILIES)}, weighted by the lab's latent-space table) or any of "
        f"{','.join(FAMILIES)} (those beyond the default need their tiny autoencoder in --weights)",
    )
    g.add_argument(
        "--encoders",
        type=_name_list,
        default=None,
        metavar="LIST",
        help="instead of --family: the encoders to attack by name, .pth file or diffusers VAE folder, "
        "e.g. flux2,sana",
    )
    g.add_argument(
        "--encoder-weights",
        type=_weight_list,
        default=(),
        metavar="LIST",
        help="comma-separated weight per encoder, e.g. 1,1 (default: equal)",
    )
    g.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder with the encoder weight files (default: $SFUMATO_WEIGHTS, then the cache)",
    )


def _add_generator_options(p: argparse.ArgumentParser, prompt_default: str) -> None:
    from sfumato.objectives import DEFAULT_OBJECTIVE, OBJECTIVES

    g = p.add_argument_group("against a generator (see docs/objectives.md)")
    g.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="GENERATOR",
        help="attack this generator instead of --encoders: a 'sfumato lab train-base' folder or a "
        "diffusers pipeline folder (Stable Diffusion 1.x/2.x/SDXL class)",
    )
    g.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help=f"the loss against --against (default: {DEFAULT_OBJECTIVE}); aspl, metacloak and mist train a "
        "surrogate on all the inputs together, resumably (mist pulls toward the --style rendering or a "
        "--target-images anchor)",
    )
    g.add_argument(
        "--prompt", default=None, metavar="TEXT", help=f"the caption a mimic trains under ({prompt_default})"
    )
    g.add_argument(
        "--rounds",
        type=_positive_int,
        default=None,
        metavar="N",
        help="aspl/metacloak/mist rounds (default: 5)",
    )


def build_parser() -> argparse.ArgumentParser:
    from sfumato.styles import STYLE_NAMES

    parser = argparse.ArgumentParser(
        prog="sfumato",
        formatter_class=_Formatter,
        description="Protect images from text-to-image generators with imperceptible perturbations, "
        "and measure whether the protection works.",
        epilog="Run 'sfumato COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"sfumato {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "shade",
        formatter_class=_Formatter,
        help="concept poisoning: make images of one concept encode like another (like Nightshade)",
        description="Concept poisoning (like Nightshade): perturb photos of --concept so that a "
        "generator's image encoder reads them as the --as concept, pulling each one toward a photo "
        "from --target-images. A caption file holding --concept is written beside each output, as "
        "a scraper would pair it with the image.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    g = p.add_argument_group("concepts")
    g.add_argument("--concept", required=True, help="what the images show, e.g. dog (the caption)")
    g.add_argument(
        "--as",
        dest="as_concept",
        required=True,
        metavar="CONCEPT",
        help="what the encoder should see instead, e.g. cat",
    )
    g.add_argument(
        "--target-images",
        required=True,
        type=Path,
        action="append",
        metavar="PATH",
        help="folder or file with photos of the --as concept to pull toward (repeatable)",
    )
    _add_generator_options(p, "default: --concept, the poison's caption")
    _add_common_options(p)
    p.set_defaults(func=_cmd_protect, subparser=p)

    p = sub.add_parser(
        "cloak",
        formatter_class=_Formatter,
        help="style cloaking: make artworks encode in a different style (like Glaze)",
        description="Style cloaking (like Glaze): perturb artworks so that a generator's image encoder "
        "reads them as the same picture in a different style, which misleads style mimicry.",
        epilog=f"built-in styles:\n{_style_list()}\n\n"
        "See them on your own image with: sfumato styles --preview IMAGE -o DIR",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    g = p.add_argument_group("style")
    g.add_argument(
        "--style",
        choices=(*STYLE_NAMES, "auto"),
        default=None,
        metavar="NAME",
        help="built-in target style, or auto (default: auto; see the list below)",
    )
    g.add_argument(
        "--style-per-image",
        action="store_true",
        help="with auto, choose a style for each image rather than one for the whole set",
    )
    g.add_argument(
        "--style-image",
        type=Path,
        default=None,
        metavar="FILE",
        help="instead of a built-in style, take the look of this reference image",
    )
    _add_generator_options(p, 'e.g. "a painting by NAME"; needed by every objective but latent')
    _add_common_options(p)
    p.set_defaults(func=_cmd_protect, subparser=p)

    p = sub.add_parser(
        "inspect",
        formatter_class=_Formatter,
        help="how far a protected image moved, and at what visible cost",
        description="Report the quality cost and, per encoder, how far the latents moved toward the "
        "target. The target comes from --target, else from the protected file's sidecar report.",
    )
    p.add_argument("original", type=Path, help="the original image")
    p.add_argument("protected", type=Path, help="the protected image")
    p.add_argument(
        "--target",
        type=Path,
        default=None,
        metavar="FILE",
        help="the image the latents should have moved toward",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR", help="folder with the weight files")
    p.set_defaults(func=_cmd_inspect, subparser=p)

    from sfumato.countermeasures import COUNTERMEASURES

    width = max(len(n) for n in COUNTERMEASURES) + 2
    methods = "\n".join(f"  {n:<{width}}{cm.description}" for n, cm in COUNTERMEASURES.items())
    p = sub.add_parser(
        "purify",
        formatter_class=_Formatter,
        help="apply a scraper's countermeasures (JPEG, resizing, noise, autoencoder purification)",
        description="Apply countermeasures a scraper could use against protected images, to test how "
        "much protection survives them. Writes OUT/<name>.png for one method, OUT/<method>/<name>.png "
        "for several; inputs are never overwritten.",
        epilog=f"methods:\n{methods}\n  {'all':<{width}}every method above",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    p.add_argument(
        "--method",
        required=True,
        action="append",
        metavar="NAME",
        help="countermeasure(s): a name, a comma-separated list or all (repeatable)",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("purified"),
        metavar="DIR",
        help="output folder (default: ./purified)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random ones (default: 0)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR", help="folder with the weight files")
    p.add_argument("--quiet", action="store_true", help="no per-image lines")
    p.set_defaults(func=_cmd_purify, subparser=p)

    p = sub.add_parser(
        "styles",
        formatter_class=_Formatter,
        help="list the built-in cloaking styles (and preview them on an image)",
        description="List the built-in target styles of 'sfumato cloak'; with --preview, render an "
        "image in each of them to help choose.",
        epilog=f"built-in styles:\n{_style_list()}",
    )
    p.add_argument(
        "--preview", type=Path, default=None, metavar="IMAGE", help="render this image in every style"
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("style-previews"),
        metavar="DIR",
        help="where --preview writes (default: ./style-previews)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed of the renderings")
    p.set_defaults(func=_cmd_styles, subparser=p)

    p = sub.add_parser(
        "serve",
        formatter_class=_Formatter,
        help="the app: a local web page that protects your images (needs sfumato[app])",
        description="Start the artist's app: a web page on this machine where you drop images, choose "
        "a protection and download the results. Jobs and results are kept in the data folder, so "
        "closing the page or restarting loses nothing.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; any other is reachable "
        "from the network, with no password)",
    )
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where jobs and results are kept (default: $SFUMATO_DATA_DIR, then the user data folder)",
    )
    p.add_argument(
        "--weights", type=Path, default=None, metavar="DIR", help="folder with the encoder weight files"
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="where to compute (default: auto = cuda, then mps, then cpu)",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N", help="CPU threads for protecting"
    )
    p.add_argument(
        "--max-upload-mb",
        type=_positive_int,
        default=64,
        metavar="MB",
        help="largest image file accepted (default: 64)",
    )
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=4096 * 4096,
        metavar="N",
        help="largest image accepted, in pixels (default 4096x4096 = 16777216: memory and time grow with it)",
    )
    p.set_defaults(func=_cmd_serve, subparser=p)
    from sfumato.lab.cli import add_lab_parser

    add_lab_parser(sub, _Formatter)
    return parser


# ------------------------------------------------------------------------------------------ commands


def _error(message: str) -> None:
    print(f"sfumato: error: {message}", file=sys.stderr, flush=True)


def _cmd_protect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.batch import BatchError, run_batch
    from sfumato.encoders.weights import ChecksumError, WeightsNotFoundError
    from sfumato.objectives import FOLDER_OBJECTIVES

    if args.encoders is not None and args.family is not None:
        parser.error("give either --family or --encoders, not both")
    if args.encoders is None:
        if args.encoder_weights:
            parser.error("--encoder-weights needs --encoders (a --family is weighted by the lab's table)")
        args.encoders, args.encoder_weights = family_ensemble(args.family or DEFAULT_FAMILIES)
    if args.encoder_weights and len(args.encoder_weights) != len(args.encoders):
        parser.error(
            f"--encoder-weights gives {len(args.encoder_weights)} weights for "
            f"{len(args.encoders)} encoders (--encoders {','.join(args.encoders)})"
        )
    options: dict[str, Any] = {}
    if args.command == "shade":
        options.update(concept=args.concept, as_concept=args.as_concept, target_images=args.target_images)
    else:
        if args.style is not None and args.style_image is not None:
            parser.error("give either --style or --style-image, not both")
        options.update(
            style=args.style or "auto", style_image=args.style_image, style_per_image=args.style_per_image
        )
    if args.tile is not None:
        options["tile"] = args.tile
    if args.against is None and (args.objective or args.prompt or args.rounds):
        parser.error("--objective, --prompt and --rounds need a generator to attack (--against)")
    if args.objective in FOLDER_OBJECTIVES:
        return _cmd_protect_folder(args, parser)
    if args.against is not None:
        options.update(against=args.against, objective=args.objective, prompt=args.prompt)
    try:
        result = run_batch(
            args.inputs,
            args.out,
            args.command,
            encoders=args.encoders,
            encoder_weights=args.encoder_weights,
            intensity=args.intensity,
            budget=args.budget,
            eps=args.eps,
            speed=args.speed,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            weights_dir=args.weights,
            fmt=args.format,
            quality=args.quality,
            progress=not args.quiet,
            verbose=not args.quiet,
            robust=args.robust,
            views=args.views,
            **options,
        )
    except BatchError as e:
        _error(str(e))
        return EXIT_USAGE
    except (WeightsNotFoundError, ChecksumError) as e:
        _error(str(e))
        return EXIT_FAILED
    print(result.summary_line(), flush=True)
    _print_verdicts(result.done + result.skipped, quiet=args.quiet)
    if result.stopped:
        _error(
            f"{result.stopped}; the images not yet done were not computed. Free space or fix the "
            "folder, then rerun: finished outputs are kept and skipped"
        )
    return EXIT_FAILED if result.failed or result.stopped else EXIT_OK


def _print_verdicts(items: Sequence[Any], quiet: bool = False) -> None:
    """The verdicts after a batch (issue 23): counts on stdout (not with --quiet), and always, on
    stderr, every image with no protection."""
    from sfumato.verdict import batch_lines

    lines, warnings = batch_lines([(item.output.name, item.report) for item in items])
    for line in [] if quiet else lines:
        print(line, flush=True)
    for line in warnings:
        print(line, file=sys.stderr, flush=True)


def _cmd_protect_folder(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """aspl / metacloak / mist: every input together, resumable (sfumato.works)."""
    from sfumato.works import protect_folder_files

    prompt = args.prompt or (args.concept if args.command == "shade" else None)
    if not prompt:
        parser.error(f"--objective {args.objective} needs --prompt, the caption a mimic trains under")
    aim: dict[str, Any] = {}
    if args.command == "shade":
        aim["target_images"] = args.target_images
    else:
        if args.style_image is not None:
            parser.error(f"--objective {args.objective} takes a built-in --style, not --style-image")
        aim["style"] = args.style or "auto"
    try:
        protect_folder_files(
            args.inputs,
            args.out,
            args.command,
            against=args.against,
            objective=args.objective,
            prompt=prompt,
            fmt=args.format,
            quality=args.quality,
            verbose=not args.quiet,
            rounds=args.rounds,
            intensity=args.intensity,
            budget=args.budget,
            eps=args.eps,
            seed=args.seed,
            device=args.device,
            robust=args.robust,
            views=args.views,
            **aim,
        )
    except (ValueError, OSError) as e:
        _error(str(e))
        return EXIT_FAILED
    return EXIT_OK


def _num(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "-"


def format_inspection(report: dict[str, Any]) -> str:
    """The inspect report as a readable table."""
    q = report.get("quality", {})
    lines = [
        f"original:  {report.get('original')}",
        f"protected: {report.get('protected')}",
        "",
        "quality (changes in 0..255 units)",
        f"  PSNR                    {_num(q.get('psnr_db'), '.2f')} dB",
        f"  SSIM                    {_num(q.get('ssim'), '.4f')}",
        f"  max change              {_num(q.get('max_change'), '.2f')}",
        f"  mean change             {_num(q.get('mean_change'), '.2f')}",
        f"  mean change, flat areas {_num(q.get('flat_mean_change'), '.2f')}"
        f" ({_num(q.get('flat_fraction'), '.0%')} of the image)",
        f"  mean change, texture    {_num(q.get('textured_mean_change'), '.2f')}",
        "",
        "latents (distance to the target, per latent element)",
    ]
    header = ("encoder", "role", "before", "after", "moved", "shift")
    rows = [header]
    for name, fig in report.get("latents", {}).items():
        rows.append(
            (
                name,
                {True: "attacked", False: "transfer"}.get(fig.get("attacked"), "not known"),
                _num(fig.get("distance_before"), ".4f"),
                _num(fig.get("distance_after"), ".4f"),
                _num(fig.get("fraction_moved"), ".1%"),
                _num(fig.get("shift"), ".4f"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.append("")
    lines.append("moved: fraction of the way from the original's latent to the target's;")
    if any(fig.get("attacked") is False for fig in report.get("latents", {}).values()):
        lines.append("transfer: not attacked, so any movement carried over from the attacked encoders.")
    if any(fig.get("attacked") is None for fig in report.get("latents", {}).values()):
        lines.append(
            "not known: with no sfumato report beside the image, which encoder was attacked is unknown."
        )
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.encoders.weights import ChecksumError, WeightsNotFoundError
    from sfumato.imageio import ImageInputError
    from sfumato.inspect import inspect

    try:
        report = inspect(args.original, args.protected, target=args.target, weights_dir=args.weights)
    except (ImageInputError, WeightsNotFoundError, ChecksumError, ValueError) as e:
        _error(str(e))
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_inspection(report))
    return EXIT_OK


def _cmd_purify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from sfumato.countermeasures.purify import PurifyError, purify_files
    from sfumato.encoders.weights import ChecksumError, WeightsNotFoundError

    try:
        result = purify_files(
            args.inputs,
            args.out,
            args.method,
            seed=args.seed,
            weights_dir=args.weights,
            verbose=not args.quiet,
        )
    except PurifyError as e:
        _error(str(e))
        return EXIT_USAGE
    except (WeightsNotFoundError, ChecksumError) as e:
        _error(str(e))
        return EXIT_FAILED
    print(result.summary_line(), flush=True)
    return EXIT_FAILED if result.failed else EXIT_OK


def _cmd_styles(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    print("built-in styles (sfumato cloak --style NAME):")
    print(_style_list())
    if args.preview is None:
        return EXIT_OK
    from sfumato.imageio import ImageInputError, load_image, save_image
    from sfumato.styles import STYLE_NAMES, render_style

    try:
        loaded = load_image(args.preview)
    except ImageInputError as e:
        _error(str(e))
        return EXIT_FAILED
    print(f"\npreviews of {args.preview}:")
    failed = 0
    for name in STYLE_NAMES:
        out = args.out / f"{args.preview.stem}.{name}.png"
        try:
            rendered = render_style(name, loaded.pixels, args.seed)  # 8 bits in, 8 bits out
            save_image(loaded, rendered, out, forbidden=[args.preview])
        except (ImageInputError, OSError, ValueError) as e:
            _error(f"{name}: {e}")
            failed += 1
            continue
        print(f"  {out}")
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, not {args.port}")
    try:
        from sfumato.app.config import AppConfig
        from sfumato.app.server import serve
    except ImportError as e:
        _error(f"the app needs the app extra ({e.name} is missing): pip install 'sfumato[app]'")
        return EXIT_FAILED
    config = AppConfig.make(
        args.data_dir,
        weights_dir=args.weights,
        device=args.device,
        threads=args.threads,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
    )
    try:
        serve(config, host=args.host, port=args.port, open_browser=not args.no_browser)
    except (OSError, RuntimeError, ValueError) as e:
        _error(str(e))
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl+C is how the app is stopped: not an error
        print("sfumato app stopped; a job in progress goes on at the next start", flush=True)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (usage errors, --help and --version included).

    Everything heavy (torch, the encoders) is imported in here, under the Ctrl-C guard: an interrupt in
    the first seconds is one line, like any other.
    """
    try:
        args = build_parser().parse_args(argv)
        return args.func(args, args.subparser)
    except SystemExit as e:  # argparse: usage errors (2), --help and --version (0)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        _error("interrupted; finished outputs are kept, and a rerun continues where this one stopped")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
