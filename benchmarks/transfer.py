"""Transfer: how much of a latent shift crafted on one encoder shows on the other.

For dog -> cat pairs, ``sfumato.shade`` protects each dog photo toward a cat photo with the
attacked set ("flux2",), ("sana",), ("flux2", "sana") with equal weights and ("auto",), the default
ensemble of model families weighted by the latent-space table (sfumato.families), at the default
budget and speed. Its
report measures ``fraction_moved`` (1 - distance_after / distance_before, toward the cat's
latents) on every encoder, attacked or not; the table gives mean ± std per attacked set and the
ratio transfer / own (how much of the shift the attacked encoder sees also shows on the other).

    python benchmarks/transfer.py            # 6 pairs at 256 px (a few minutes)
    python benchmarks/transfer.py --quick    # 2 pairs at 128 px, fast speed (seconds)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import _common as C
import sfumato

ENCODERS = ("flux2", "sana")
SETS = (("flux2",), ("sana",), ("flux2", "sana"), ("auto",))  # auto: the default family ensemble
NAME = "transfer"


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "pairs": C.pairs(args.pairs),
        "size": args.size,
        "intensity": "default",
        "budget": "jnd",
        "speed": args.speed,
        "attacked_sets": [list(s) for s in SETS],
        "device": "cpu",
        "seed": 0,
        "quick": args.quick,
    }
    data = C.new_record(NAME, settings)
    C.say(f"[transfer] {len(settings['pairs'])} pairs at {args.size} px, speed {args.speed}")
    for dog, cat in settings["pairs"]:
        src = C.load_photo(dog, args.size, args.size)[0]
        anchor = C.load_photo(cat)[0]
        for attacked in SETS:
            t0 = time.perf_counter()
            out = sfumato.shade(
                src,
                anchor,
                encoders=None if attacked == ("auto",) else attacked,
                speed=args.speed,
                device="cpu",
                weights_dir=C.WEIGHTS,
            )
            wall = time.perf_counter() - t0
            lat = out.report["effect"]["latents"]
            row = {
                "source": dog,
                "anchor": cat,
                "attacked": list(attacked),
                "encoder_weights": list(out.report["settings"].get("encoder_weights") or []),
                "fraction_moved": {e: lat[e]["fraction_moved"] for e in ENCODERS if e in lat},
                "distance_before": {e: lat[e]["distance_before"] for e in ENCODERS if e in lat},
                "distance_after": {e: lat[e]["distance_after"] for e in ENCODERS if e in lat},
                "psnr_db": out.report["effect"]["quality"]["psnr_db"],
                "seconds": out.report["seconds"],
                "wall_seconds": round(wall, 2),
            }
            data["runs"].append(row)
            moved = ", ".join(f"{e} {v:.3f}" for e, v in row["fraction_moved"].items())
            C.say(f"  {dog} -> {cat} attacked {'+'.join(attacked)}: moved {moved} ({wall:.1f} s)")
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def _auto_weights(runs: list[dict[str, Any]]) -> str:
    weights = next((r.get("encoder_weights") for r in runs if r["attacked"] == ["auto"]), None)
    if not weights:
        return "not run"
    return ", ".join(f"{e} {w:.4f}" for e, w in zip(ENCODERS, weights, strict=False))


def render(data: dict[str, Any]) -> str:
    runs = data["runs"]
    s = data["settings"]

    def moved(attacked: tuple[str, ...], enc: str) -> list[float]:
        return [r["fraction_moved"][enc] for r in runs if tuple(r["attacked"]) == attacked]

    rows = []
    for attacked in SETS:
        sel = [r for r in runs if tuple(r["attacked"]) == attacked]
        if not sel:
            continue
        rows.append(
            ["+".join(attacked)]
            + [C.pm(moved(attacked, e)) for e in ENCODERS]
            + [C.pm([r["psnr_db"] for r in sel], 2), C.pm([r["seconds"] for r in sel], 1), len(sel)]
        )
    body = [
        "## Transfer between encoders\n",
        f"{len(s['pairs'])} dog -> cat pairs at {s['size']}x{s['size']} px, `sfumato.shade` at the default "
        f"budget ({s['budget']}, intensity {s['intensity']}) and speed `{s['speed']}` on the CPU. "
        "Figures: fraction of the distance to the cat's latents closed on each encoder "
        "(mean ± std over pairs); the attacked set's own encoders in the row label; `auto` is the default "
        "ensemble of model families, weighted by the latent-space table (`sfumato.families`: "
        f"{_auto_weights(runs)}).\n",
        C.table(["attacked", "moved on flux2", "moved on sana", "PSNR dB", "protect s", "pairs"], rows),
    ]
    ratio_rows = []
    own = {e: moved((e,), e) for e in ENCODERS}
    for attacked, enc in ((("flux2",), "sana"), (("sana",), "flux2")):
        trans = moved(attacked, enc)
        if trans and own[enc]:
            m_t, _ = C.mean_std(trans)
            m_o, _ = C.mean_std(own[enc])
            per = [t / o for t, o in zip(trans, own[enc], strict=True) if o]
            ratio_rows.append(
                [f"{attacked[0]} -> {enc}", f"{m_t:.3f}", f"{m_o:.3f}", f"{m_t / m_o:.2f}", C.pm(per, 2)]
            )
    for together in (("flux2", "sana"), ("auto",)):
        for enc in ENCODERS:
            ens = moved(together, enc)
            if ens and own[enc]:
                m_e, _ = C.mean_std(ens)
                m_o, _ = C.mean_std(own[enc])
                per = [t / o for t, o in zip(ens, own[enc], strict=True) if o]
                label = "+".join(together)
                figures = [f"{m_e:.3f}", f"{m_o:.3f}", f"{m_e / m_o:.2f}", C.pm(per, 2)]
                ratio_rows.append([f"{label} on {enc}", *figures])
    body += [
        "\nTransfer / own: the shift on an encoder that was not attacked (or was attacked jointly) "
        "relative to the shift when that encoder alone is attacked.\n",
        C.table(
            ["crafted on -> seen on", "moved", "own attack moved", "ratio of means", "per-pair ratio"],
            ratio_rows,
        ),
        f"\nRun {data['started']} - {data.get('finished', '?')}; load average "
        f"{data['loadavg_start']} -> {data.get('loadavg_end')}; {data['machine']['cpu']}, "
        f"{data['machine']['torch_threads']} torch threads, torch {data['machine']['torch']}.\n",
    ]
    return "\n".join(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 pairs at 128 px, fast speed")
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--size", type=int, default=None, help="square side (a multiple of 32 for Sana)")
    ap.add_argument("--speed", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.pairs = args.pairs or (2 if args.quick else 6)
    args.size = args.size or (128 if args.quick else 256)
    args.speed = args.speed or ("fast" if args.quick else "default")
    path = C.out_dir(args.quick) / f"{NAME}.json"
    data = C.run_or_load(path, args.render_only, lambda: run(args))
    md = C.write_markdown(NAME, render(data), args.quick)
    C.say(render(data))
    C.say(f"[transfer] wrote {path} and {md}")


if __name__ == "__main__":
    main()
