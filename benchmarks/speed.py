"""Speed and memory: seconds per image for each speed preset, and peak memory on large images.

Timing goes through the public API, ``sfumato.shade(..., device="cpu")``, with the default
budget, on real dog photos (cover-resized and centre-cropped to the size; the sample photos are
about 500 px, so the larger sizes are upscaled) pulled toward cat photos. Two figures per call:
``report["seconds"]`` (the protection: budget, optimisation, 8-bit rounding) and the wall time of
the whole call (adds fitting the anchor and measuring the effect on every encoder).

Peak memory: each size runs ``shade(..., steps=1)`` in a fresh subprocess; the parent reads
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the largest child so far: sizes run in
increasing order) and the child reports its own ``RUSAGE_SELF`` peak.

    python benchmarks/speed.py            # full run (about half an hour on 2 cores)
    python benchmarks/speed.py --quick    # 256 px, one image, a 512 px memory probe (about a minute)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import _common as C

GOAL = {"size": "512x512", "speed": "default", "seconds": 20.0}
NAME = "speed"


def label(h: int, w: int) -> str:
    return f"{w}x{h}"


def plan(quick: bool) -> tuple[list[tuple[int, int, str, int]], list[int]]:
    """Cells (height, width, speed, images) and memory-probe sizes (0 = imports and weights only)."""
    if quick:
        return [(256, 256, "fast", 1), (256, 256, "default", 1)], [0, 512]
    cells = []
    for h, w in ((256, 256), (512, 512), (512, 768), (1024, 1024)):
        for speed in ("fast", "default", "thorough"):
            cells.append((h, w, speed, 1 if (h, w, speed) == (1024, 1024, "thorough") else 2))
    return cells, [0, 1024, 2048, 4096]


def _own_peak_mib() -> float:
    """This process's own peak resident set. On Linux ``ru_maxrss`` of a child started by fork+exec
    inherits the parent's high-water mark, so read ``VmHWM``, which belongs to the new image alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(size: int) -> None:
    """Child process: one ``shade`` with ``steps=1`` at size x size; print the peak RSS."""
    import sfumato
    from sfumato.encoders import load_encoder

    t0 = time.perf_counter()
    if size == 0:
        for name in ("flux2", "sana"):
            load_encoder(name, C.WEIGHTS)
        seconds = None
    else:
        src = C.load_photo(C.DOGS[0], size, size)[0]
        anchor = C.load_photo(C.CATS[0])[0]
        out = sfumato.shade(src, anchor, steps=1, device="cpu", weights_dir=C.WEIGHTS)
        seconds = out.report["seconds"]
    wall = time.perf_counter() - t0
    peak = _own_peak_mib()
    print(
        "PROBE "
        + json.dumps(
            {
                "size": size,
                "self_maxrss_mib": round(peak, 1),
                "seconds": seconds,
                "wall_seconds": round(wall, 2),
            }
        ),
        flush=True,
    )


def memory(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        what = "imports + encoder weights" if size == 0 else f"{size}x{size}, steps=1"
        C.say(f"[speed] memory probe: {what}")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-probe", str(size)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        row: dict[str, Any] = {
            "size": size,
            "returncode": proc.returncode,
            "children_maxrss_mib": round(children, 1),
            "process_seconds": round(wall, 2),
        }
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
        if lines:
            row.update(json.loads(lines[-1][6:]))
        else:
            row["error"] = proc.stderr[-2000:]
        rows.append(row)
        C.say(
            f"    peak {row.get('self_maxrss_mib')} MiB (children max {row['children_maxrss_mib']} MiB), "
            f"{wall:.1f} s, rc {proc.returncode}"
        )
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    import sfumato
    from sfumato.optimise import SPEED, TILE

    cells, mem_sizes = plan(args.quick)
    path = C.out_dir(args.quick) / f"{NAME}.json"
    data: dict[str, Any] = {
        "benchmark": NAME,
        "started": C.now(),
        "loadavg_start": C.loadavg(),
        "machine": C.machine(),
        "settings": {
            "api": "sfumato.shade(src, anchor, device='cpu'), default budget (jnd, intensity default)",
            "presets": SPEED,
            "tile": TILE,
            "cells": [{"size": label(h, w), "speed": s, "images": n} for h, w, s, n in cells],
            "images": [[d, c] for d, c in C.pairs(2)],
            "memory_sizes": mem_sizes,
            "goal": GOAL,
            "quick": args.quick,
        },
        "runs": [],
    }
    C.say(f"[speed] warm-up (loads weights; not timed) ; {len(cells)} cells")
    warm_src = C.load_photo(C.DOGS[0], 128, 128)[0]
    sfumato.shade(warm_src, C.load_photo(C.CATS[0])[0], steps=1, device="cpu", weights_dir=C.WEIGHTS)
    for h, w, speed, n in cells:
        for dog, cat in C.pairs(n):
            src = C.load_photo(dog, h, w)[0]
            anchor = C.load_photo(cat)[0]
            load0 = C.loadavg()
            t0 = time.perf_counter()
            out = sfumato.shade(src, anchor, speed=speed, device="cpu", weights_dir=C.WEIGHTS)
            wall = time.perf_counter() - t0
            row = {
                "size": label(h, w),
                "pixels": h * w,
                "speed": speed,
                "steps": out.report["steps"],
                "source": dog,
                "anchor": cat,
                "seconds": out.report["seconds"],
                "wall_seconds": round(wall, 2),
                "fraction_moved_flux2": out.report["effect"]["latents"]["flux2"]["fraction_moved"],
                "psnr_db": out.report["effect"]["quality"]["psnr_db"],
                "loadavg_1min": load0[0] if load0 else None,
            }
            data["runs"].append(row)
            C.say(
                f"  {label(h, w)} {speed:8s} {dog}: protect {row['seconds']:.1f} s, wall {wall:.1f} s, "
                f"moved {row['fraction_moved_flux2']:.3f}"
            )
            C.write_json(path, data)  # partial results survive an interruption
    data["memory"] = memory(mem_sizes)
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    return data


def render(data: dict[str, Any], plot: Path | None) -> str:
    runs = data["runs"]
    keys = list(dict.fromkeys((r["size"], r["speed"]) for r in runs))
    rows = []
    for size, speed in keys:
        sel = [r for r in runs if r["size"] == size and r["speed"] == speed]
        rows.append(
            [
                size,
                speed,
                sel[0]["steps"],
                C.pm([r["seconds"] for r in sel], 1),
                C.pm([r["wall_seconds"] for r in sel], 1),
                C.pm([r["fraction_moved_flux2"] for r in sel]),
                len(sel),
            ]
        )
    body = [
        "## Speed\n",
        'Seconds per image through `sfumato.shade(..., device="cpu")`, default budget, real photos '
        '(dog -> cat). *protect s*: `report["seconds"]` (budget, optimisation, rounding); *wall s*: '
        "the whole call (adds measuring the effect on both encoders). Mean ± std over images; images "
        "over 576 px are attacked in overlapping tiles of at most 576 px. The 2048 px memory probe "
        "was rerun while tests ran, so its seconds are inflated; memory figures are unaffected.\n",
        C.table(["size", "speed", "steps/tile", "protect s", "wall s", "moved (flux2)", "images"], rows),
    ]
    goal = [r for r in runs if r["size"] == GOAL["size"] and r["speed"] == GOAL["speed"]]
    if goal:
        m, _ = C.mean_std([r["seconds"] for r in goal])
        mw, _ = C.mean_std([r["wall_seconds"] for r in goal])
        verdict = "met" if m <= GOAL["seconds"] else "NOT met"
        body.append(
            f"\nGoal: {GOAL['size']} at `{GOAL['speed']}` in <= {GOAL['seconds']:.0f} s: **{verdict}** "
            f"(protect {m:.1f} s, wall {mw:.1f} s).\n"
        )
    if data.get("memory"):
        mrows = [
            [
                ("imports + weights" if r["size"] == 0 else f"{r['size']}x{r['size']}"),
                r.get("self_maxrss_mib"),
                r.get("children_maxrss_mib"),
                r.get("seconds"),
                r.get("wall_seconds"),
                r.get("returncode"),
            ]
            for r in data["memory"]
        ]
        body += [
            "\nPeak memory (resident set) of one `shade(..., steps=1)` in a fresh process:\n",
            C.table(["size", "peak RSS MiB", "RUSAGE_CHILDREN max MiB", "protect s", "wall s", "rc"], mrows),
        ]
    if plot is not None and plot.exists():
        body.append(f"\n![speed]({plot.name})\n")
    body.append(
        f"\nRun {data['started']} - {data.get('finished', '?')}; load average "
        f"{data['loadavg_start']} -> {data.get('loadavg_end')}; {data['machine']['cpu']}, "
        f"{data['machine']['cpu_count']} cores, {data['machine']['torch_threads']} torch threads, "
        f"torch {data['machine']['torch']}. Timings are noisy: the machine is shared.\n"
    )
    return "\n".join(body)


def make_plot(data: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for speed, colour in (("fast", "tab:green"), ("default", "tab:blue"), ("thorough", "tab:red")):
        sel = [r for r in data["runs"] if r["speed"] == speed]
        if not sel:
            continue
        px = sorted({r["pixels"] for r in sel})
        prot = [C.mean_std([r["seconds"] for r in sel if r["pixels"] == p])[0] for p in px]
        wall = [C.mean_std([r["wall_seconds"] for r in sel if r["pixels"] == p])[0] for p in px]
        mp = [p / 1e6 for p in px]
        ax.plot(mp, prot, "o-", color=colour, label=f"{speed} (protect)")
        ax.plot(mp, wall, "x--", color=colour, alpha=0.6, label=f"{speed} (wall)")
    ax.axhline(GOAL["seconds"], color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="megapixels", ylabel="seconds per image", title="shade on CPU")
    ax.legend(fontsize=7)
    mem = [r for r in data.get("memory", []) if r["size"] and r.get("self_maxrss_mib")]
    if mem:
        axes[1].plot([r["size"] ** 2 / 1e6 for r in mem], [r["self_maxrss_mib"] for r in mem], "o-")
        axes[1].set(
            xscale="log", yscale="log", xlabel="megapixels", ylabel="peak RSS MiB", title="memory, steps=1"
        )
    else:
        axes[1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 256 px, one image, small memory probes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    ap.add_argument("--memory-only", action="store_true", help="rerun only the memory probes")
    ap.add_argument("--memory-sizes", default="", help="with --memory-only: comma list of sizes to rerun")
    ap.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        probe(args.memory_probe)
        return
    out = C.out_dir(args.quick)
    path = out / f"{NAME}.json"
    if args.render_only:
        data = C.read_json(path)
    elif args.memory_only:
        data = C.read_json(path)
        old = {r["size"]: r for r in data.get("memory", [])}
        sizes = [int(v) for v in args.memory_sizes.split(",") if v] or sorted(old) or [0, 1024, 2048, 4096]
        old.update({r["size"]: r for r in memory(sizes)})
        data["memory"] = [old[k] for k in sorted(old)]
        data["memory_rerun"] = {"at": C.now(), "sizes": sizes}
    else:
        data = run(args)
    C.write_json(path, data)
    plot = make_plot(data, out / f"{NAME}.png")
    text = render(data, plot)
    md = C.write_markdown(NAME, text, args.quick)
    C.say(text)
    C.say(f"[speed] wrote {path} and {md}")


if __name__ == "__main__":
    main()
