"""Ours against the published recipes, on the same encoder, images and per-step cost.

All methods attack the tiny FLUX.2 encoder through the same ``Ensemble.encode(..., grad=True)``
(bf16 autocast on the CPU), pulling dog photos toward cat photos' latents, at 256x256:

* **Nightshade recipe**: sign-gradient PGD, 500 steps, step decaying linearly from eps to eps/100,
  L-inf eps 0.04 -- ``attack(..., method="sign", steps=500, lr=1.0)`` with a flat allowance of 0.04.
* **PhotoGuard encoder recipe**: sign PGD, L-inf 0.03, constant step 0.01, 1000 steps, projected
  to the eps-ball and to [0, 1] after every step (its own loop below; ``attack`` always decays).
  (MadryLab's published ``pgd`` also starts from a uniform random point in the ball and decays the
  step; their eps 0.06 / step 0.01 are in [-1, 1] pixel units. ``--photoguard-code`` runs that
  variant, eps 0.03, step 0.005 on [0, 1] images, decaying, random start.)
* **Ours**: ``attack(..., method="momentum", lr=0.5, steps=S)`` for S in {6, 12, 24, 48}, at the same
  L-inf 0.04 (vs Nightshade) and 0.03 (vs PhotoGuard).

Distances are ``latent_distance`` (L2 per latent element) between the fp32 latent of the 8-bit
rounded result and the cat's latent. Per-step traces come from a local copy of the loop (same math
as ``attack``, checked against it at the start of every run), with the distance evaluations
excluded from the timings. One torch thread by default (``--threads``): on a shared 2-core machine
two OpenMP threads slow down erratically whenever another job runs, which would swamp the ratios.
Time-to-match: the optimisation time until ours first reaches a recipe's final distance.

Resumable: each finished (pair, method, eps, steps) is cached in ``results/recipes-cache.json``
and skipped on rerun.

    python benchmarks/recipes.py            # 4 pairs at 256 px (about an hour on one shared core)
    python benchmarks/recipes.py --quick    # 1 pair at 128 px, short recipes (about a minute)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

import _common as C
from sfumato.encoders import load_encoder
from sfumato.encoders.ensemble import Ensemble
from sfumato.optimise import attack, latent_distance
from sfumato.quality import measure_quality

NAME = "recipes"
MOM = 0.5
GOAL = (
    "ours matches the Nightshade recipe's latent shift in a tenth of its time or less, "
    "at equal or better PSNR"
)


def quantise(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().clamp(0, 255) / 255


class Evaluator:
    """fp32 latent distance of the 8-bit rounded image to the target."""

    def __init__(self, ens: Ensemble, x: torch.Tensor, z_target: torch.Tensor):
        self.ens, self.x, self.z_target = ens, x, z_target

    @torch.no_grad()
    def __call__(self, delta: torch.Tensor) -> float:
        return latent_distance(self.ens.encode(quantise(self.x + delta))[0], self.z_target)


def loop_attack(
    x: torch.Tensor,
    z_target: torch.Tensor,
    ens: Ensemble,
    allowance: torch.Tensor,
    *,
    steps: int,
    lr: float,
    method: str,
    evaluate: Evaluator,
    eval_every: int = 1,
    report: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """``sfumato.optimise.attack`` with a trace of distance and optimisation time (evaluation excluded)."""
    trace: dict[str, list[float]] = {
        "step": [0],
        "seconds": [0.0],
        "cpu_seconds": [0.0],
        "distance": [evaluate(torch.zeros_like(x))],
    }
    clock = {"spent": 0.0, "cpu": 0.0, "t0": time.perf_counter(), "c0": time.process_time()}

    def on_step(step: int, delta: torch.Tensor) -> None:
        clock["spent"] += time.perf_counter() - clock["t0"]
        clock["cpu"] += time.process_time() - clock["c0"]
        if step % eval_every == 0 or step == steps:
            trace["step"].append(step)
            trace["seconds"].append(round(clock["spent"], 4))
            trace["cpu_seconds"].append(round(clock["cpu"], 4))
            trace["distance"].append(evaluate(delta))
            if report is not None:
                report(step)
        clock["t0"], clock["c0"] = time.perf_counter(), time.process_time()

    result = attack(
        x, [z_target], ens, allowance, steps=steps, lr=lr, method=method, mom=MOM, on_step=on_step
    )
    return result.delta, trace


def photoguard_loop(
    x: torch.Tensor,
    z_target: torch.Tensor,
    ens: Ensemble,
    *,
    eps: float,
    step_size: float,
    steps: int,
    decay: bool,
    random_start: bool,
    evaluate: Evaluator,
    eval_every: int,
    report: Callable[[int], None] | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """PhotoGuard's encoder attack: sign PGD on the image, projected to the eps-ball and [0, 1]."""
    if random_start:
        gen = torch.Generator().manual_seed(seed)
        x_adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
    else:
        x_adv = x.clone()
    trace: dict[str, list[float]] = {
        "step": [0],
        "seconds": [0.0],
        "cpu_seconds": [0.0],
        "distance": [evaluate(torch.zeros_like(x))],
    }
    spent = cpu = 0.0
    for i in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        size = step_size - (step_size - step_size / 100) / steps * i if decay else step_size
        x_adv.requires_grad_(True)
        loss = (ens.encode(x_adv, grad=True)[0] - z_target).square().mean()
        (grad,) = torch.autograd.grad(loss, [x_adv])
        with torch.no_grad():
            x_adv = x_adv - grad.sign() * size
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0, 1)
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if (i + 1) % eval_every == 0 or i + 1 == steps:
            trace["step"].append(i + 1)
            trace["seconds"].append(round(spent, 4))
            trace["cpu_seconds"].append(round(cpu, 4))
            trace["distance"].append(evaluate(x_adv - x))
            if report is not None:
                report(i + 1)
    return (x_adv - x).detach(), trace


def summarise(
    x: torch.Tensor, delta: torch.Tensor, trace: dict[str, list[float]], **extra: Any
) -> dict[str, Any]:
    q = measure_quality(x, quantise(x + delta))
    d0, d1 = trace["distance"][0], trace["distance"][-1]
    return {
        **extra,
        "initial_distance": round(d0, 6),
        "final_distance": round(d1, 6),
        "fraction_closed": round(1 - d1 / d0, 5),
        "psnr_db": round(q.psnr_db, 3),
        "ssim": round(q.ssim, 5),
        "max_change_255": round(q.max_change, 2),
        "opt_seconds": trace["seconds"][-1],
        "opt_cpu_seconds": trace["cpu_seconds"][-1],
        "trace": {k: [round(v, 6) for v in vals] for k, vals in trace.items()},
        "loadavg": C.loadavg(),
    }


def traced(
    x: torch.Tensor,
    z_t: torch.Tensor,
    ens: Ensemble,
    allowance: torch.Tensor,
    ev: Evaluator,
    *,
    method: str,
    lr: float,
    steps: int,
    name: str,
    eps: float,
    eval_every: int = 1,
    report: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    delta, trace = loop_attack(
        x,
        z_t,
        ens,
        allowance,
        steps=steps,
        lr=lr,
        method=method,
        evaluate=ev,
        eval_every=eval_every,
        report=report,
    )
    return summarise(x, delta, trace, method=name, eps=eps, steps=steps)


def photoguard(
    x: torch.Tensor, z_t: torch.Tensor, ens: Ensemble, ev: Evaluator, *, eps: float, steps: int, **kw: Any
) -> dict[str, Any]:
    delta, trace = photoguard_loop(x, z_t, ens, eps=eps, steps=steps, evaluate=ev, **kw)
    return summarise(x, delta, trace, method="photoguard", eps=eps, steps=steps)


def first_reach(trace: dict[str, Any], level: float) -> tuple[int, float] | None:
    for step, sec, d in zip(trace["step"], trace["seconds"], trace["distance"], strict=True):
        if d <= level:
            return step, sec
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = C.out_dir(args.quick)
    cache_path = out / f"{NAME}-cache.json"
    cache = C.read_json(cache_path)
    ns_eps, pg_eps = 0.04, 0.03
    pg_step, pg_decay, pg_random = (0.005, True, True) if args.photoguard_code else (0.01, False, False)
    settings = {
        "encoder": "flux2 (tiny FLUX.2 autoencoder), bf16 autocast for gradients",
        "size": args.size,
        "pairs": C.pairs(args.pairs),
        "nightshade": {
            "method": "sign",
            "eps": ns_eps,
            "steps": args.ns_steps,
            "lr": 1.0,
            "schedule": "linear eps -> eps/100",
            "eval_every": args.ns_eval,
        },
        "photoguard": {
            "eps": pg_eps,
            "step": pg_step,
            "steps": args.pg_steps,
            "decay": pg_decay,
            "random_start": pg_random,
            "eval_every": args.pg_eval,
        },
        "ours": {
            "method": "momentum",
            "lr": 0.5,
            "mom": MOM,
            "steps": args.ours_steps,
            "eps": [ns_eps, pg_eps],
            "schedule": "linear lr -> lr/100",
        },
        "distance": "latent_distance (RMS over latent elements), fp32 encode of the 8-bit rounded image",
        "timing": "sum of optimisation step times; distance evaluations excluded",
        "threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    data: dict[str, Any] = {
        "benchmark": NAME,
        "started": C.now(),
        "loadavg_start": C.loadavg(),
        "machine": C.machine(),
        "settings": settings,
        "goal": GOAL,
        "pairs": [],
    }
    enc = load_encoder("flux2", C.WEIGHTS)
    ens = Ensemble([enc], bf16=True)
    n = args.size

    def cached(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if key in cache:
            C.say(f"    {key}: cached")
            return cache[key]
        t0 = time.perf_counter()
        result = compute()
        result["wall_seconds"] = round(time.perf_counter() - t0, 2)
        cache[key] = result
        C.write_json(cache_path, cache)
        C.say(
            f"    {key}: distance {result['initial_distance']:.4f} -> {result['final_distance']:.4f} "
            f"(closed {result['fraction_closed']:.3f}), PSNR {result['psnr_db']:.2f}, "
            f"{result['opt_seconds']:.1f} s"
        )
        return result

    def ticker(total: int) -> Callable[[int], None]:
        every = max(total // 5, 1)

        def tick(step: int) -> None:
            if step % every == 0 and step < total:
                C.say(f"      step {step}/{total}")

        return tick

    for dog, cat in settings["pairs"]:
        C.say(f"[recipes] {dog} -> {cat} at {n}x{n}")
        x = quantise(C.load_photo(dog, n, n))
        with torch.no_grad():
            z_t = ens.encode(C.load_photo(cat, n, n))[0]
        ev = Evaluator(ens, x, z_t)
        prefix = f"{n}px|{torch.get_num_threads()}thr|{dog}->{cat}"
        entry: dict[str, Any] = {"source": dog, "anchor": cat, "ours": {}}

        for eps in (ns_eps, pg_eps):
            allowance = torch.full_like(x[:, :1], eps)
            for s in args.ours_steps:
                job = partial(
                    traced,
                    x,
                    z_t,
                    ens,
                    allowance,
                    ev,
                    method="momentum",
                    lr=0.5,
                    steps=s,
                    name="ours",
                    eps=eps,
                )
                entry["ours"][f"{eps}|{s}"] = cached(f"{prefix}|ours|{eps}|{s}", job)
        job = partial(
            traced,
            x,
            z_t,
            ens,
            torch.full_like(x[:, :1], ns_eps),
            ev,
            method="sign",
            lr=1.0,
            steps=args.ns_steps,
            name="nightshade",
            eps=ns_eps,
            eval_every=args.ns_eval,
            report=ticker(args.ns_steps),
        )
        entry["nightshade"] = cached(f"{prefix}|nightshade|{ns_eps}|{args.ns_steps}", job)
        job = partial(
            photoguard,
            x,
            z_t,
            ens,
            ev,
            eps=pg_eps,
            step_size=pg_step,
            steps=args.pg_steps,
            decay=pg_decay,
            random_start=pg_random,
            eval_every=args.pg_eval,
            report=ticker(args.pg_steps),
        )
        pg_key = f"{prefix}|photoguard{'-code' if args.photoguard_code else ''}|{pg_eps}|{args.pg_steps}"
        entry["photoguard"] = cached(pg_key, job)
        data["pairs"].append(entry)
        data["comparison"] = compare(data)
        C.write_json(out / f"{NAME}.json", data)
    data["finished"] = C.now()
    data["loadavg_end"] = C.loadavg()
    data["comparison"] = compare(data)
    return data


def compare(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per pair and recipe: when ours first reaches the recipe's final distance, for each S."""
    rows = []
    for entry in data["pairs"]:
        for recipe, eps in (("nightshade", 0.04), ("photoguard", 0.03)):
            r = entry[recipe]
            level = r["final_distance"]
            matched_s = None
            for res in sorted(entry["ours"].values(), key=lambda v: v["steps"]):
                if res["eps"] != eps:
                    continue
                reach = first_reach(res["trace"], level)
                row = {
                    "source": entry["source"],
                    "anchor": entry["anchor"],
                    "recipe": recipe,
                    "eps": eps,
                    "S": res["steps"],
                    "recipe_distance": level,
                    "recipe_steps": r["steps"],
                    "recipe_seconds": r["opt_seconds"],
                    "recipe_psnr_db": r["psnr_db"],
                    "final_distance": res["final_distance"],
                    "psnr_db": res["psnr_db"],
                    "seconds": res["opt_seconds"],
                    "matches_at_end": res["final_distance"] <= level,
                    "reach_step": reach[0] if reach else None,
                    "reach_seconds": reach[1] if reach else None,
                    "time_ratio": round(reach[1] / r["opt_seconds"], 4) if reach else None,
                    "step_ratio": round(reach[0] / r["steps"], 4) if reach else None,
                    "full_time_ratio": round(res["opt_seconds"] / r["opt_seconds"], 4),
                }
                if row["matches_at_end"] and matched_s is None:
                    matched_s = res["steps"]
                    row["smallest_matching_S"] = True
                rows.append(row)
    return rows


def render(data: dict[str, Any], plot: Any) -> str:
    s = data["settings"]
    body = [
        "## Ours vs the published recipes\n",
        f"Tiny FLUX.2 encoder, {len(data['pairs'])} dog -> cat pairs at {s['size']}x{s['size']}, same bf16 "
        "encoder passes for every method (the same cost per step). Distance: RMS latent distance to the "
        "cat's latent of the 8-bit rounded result; *closed*: fraction of the initial distance closed; "
        "seconds: optimisation only (distance evaluations excluded), on a shared 2-core CPU.\n",
        f"- Nightshade recipe: sign PGD, L-inf {s['nightshade']['eps']}, {s['nightshade']['steps']} steps, "
        "step eps -> eps/100.",
        f"- PhotoGuard recipe: sign PGD, L-inf {s['photoguard']['eps']}, step {s['photoguard']['step']}"
        f"{' decaying' if s['photoguard']['decay'] else ' constant'}, {s['photoguard']['steps']} steps"
        f"{', random start' if s['photoguard']['random_start'] else ''}.",
        f"- Ours: momentum sign steps, lr 0.5 -> 0.005, S in {s['ours']['steps']}.\n",
    ]
    # Per-method averages.
    rows = []
    methods: list[tuple[str, Any]] = [
        ("nightshade", lambda e: e["nightshade"]),
        ("photoguard", lambda e: e["photoguard"]),
    ]
    for eps in (0.04, 0.03):
        for st in s["ours"]["steps"]:
            methods.append((f"ours S={st}", lambda e, k=f"{eps}|{st}": e["ours"].get(k)))
    for name, get in methods:
        for eps in (0.04,) if name == "nightshade" else (0.03,) if name == "photoguard" else (0.04, 0.03):
            res = [get(e) for e in data["pairs"]]
            res = [r for r in res if r is not None and r["eps"] == eps]
            if not res:
                continue
            rows.append(
                [
                    name,
                    eps,
                    res[0]["steps"],
                    C.pm([r["final_distance"] for r in res], 4),
                    C.pm([r["fraction_closed"] for r in res]),
                    C.pm([r["psnr_db"] for r in res], 2),
                    C.pm([r["opt_seconds"] for r in res], 1),
                    len(res),
                ]
            )
    body += [
        "### Averages over pairs (mean ± std)\n",
        C.table(
            ["method", "L-inf", "steps", "final distance", "closed", "PSNR dB", "seconds", "pairs"], rows
        ),
    ]
    # Time to match.
    comp = data.get("comparison", [])
    trows = []
    for recipe in ("nightshade", "photoguard"):
        for st in s["ours"]["steps"]:
            sel = [c for c in comp if c["recipe"] == recipe and c["S"] == st]
            if not sel:
                continue
            reached = [c for c in sel if c["reach_seconds"] is not None]
            at_end = sum(c["matches_at_end"] for c in sel)
            trows.append(
                [
                    recipe,
                    st,
                    f"{len(reached)}/{len(sel)}",
                    f"{at_end}/{len(sel)}",
                    C.pm([c["reach_step"] for c in reached], 1) if reached else "-",
                    C.pm([c["step_ratio"] for c in reached], 4) if reached else "-",
                    C.pm([c["time_ratio"] for c in reached], 4) if reached else "-",
                    C.pm([c["full_time_ratio"] for c in sel], 4),
                    C.pm([c["psnr_db"] - c["recipe_psnr_db"] for c in sel], 2),
                ]
            )
    body += [
        "\n### Time for ours to reach each recipe's final distance\n",
        "*reached*: pairs where ours' trace goes at or below the recipe's final distance at some step; "
        "*at end*: pairs where ours' final result does. *steps to reach*, *step ratio*, *time ratio*: "
        "first step at which it does, over the recipe's steps / optimisation time; *full-run ratio*: "
        "ours' whole run over the recipe's; *PSNR gain*: ours' final PSNR minus the recipe's.\n",
        C.table(
            [
                "recipe",
                "ours S",
                "reached",
                "at end",
                "steps to reach",
                "step ratio",
                "time ratio",
                "full-run ratio",
                "PSNR gain dB",
            ],
            trows,
        ),
    ]
    # Per pair.
    prow = []
    for e in data["pairs"]:
        for recipe in ("nightshade", "photoguard"):
            r = e[recipe]
            prow.append(
                [
                    f"{e['source']} -> {e['anchor']}",
                    recipe,
                    r["eps"],
                    r["steps"],
                    r["final_distance"],
                    r["fraction_closed"],
                    r["psnr_db"],
                    r["opt_seconds"],
                ]
            )
        for res in sorted(e["ours"].values(), key=lambda v: (-v["eps"], v["steps"])):
            prow.append(
                [
                    "",
                    f"ours S={res['steps']}",
                    res["eps"],
                    res["steps"],
                    res["final_distance"],
                    res["fraction_closed"],
                    res["psnr_db"],
                    res["opt_seconds"],
                ]
            )
    body += [
        "\n### Per pair\n",
        C.table(["pair", "method", "L-inf", "steps", "final distance", "closed", "PSNR dB", "seconds"], prow),
    ]
    body.append(goal_line(data))
    if plot is not None:
        body.append(f"\n![recipes]({plot.name})\n")
    chk = data.get("loop_vs_attack_max_abs_diff")  # runs before attack() had on_step traced a copy
    check = (
        f"The traced loop reproduces `attack()` (max |delta difference| over 8 steps: {chk}). " if chk else ""
    )
    body.append(
        f"\n{check}Run {data['started']} - {data.get('finished', '?')}; "
        f"load average {data['loadavg_start']} -> "
        f"{data.get('loadavg_end')}; "
        f"{data['machine']['cpu']}, {data['settings']['threads']} torch threads, "
        f"torch {data['machine']['torch']}.\n"
    )
    return "\n".join(body)


def goal_line(data: dict[str, Any]) -> str:
    """Verdict on the goal: the smallest S that matches Nightshade on every pair at its end, with
    ratio <= 0.1 and PSNR no worse (per pair)."""
    comp = [c for c in data.get("comparison", []) if c["recipe"] == "nightshade"]
    if not comp:
        return ""
    lines = [f"\n**Goal**: {GOAL}."]
    for st in data["settings"]["ours"]["steps"]:
        sel = [c for c in comp if c["S"] == st]
        if not sel:
            continue
        ok_match = all(c["matches_at_end"] for c in sel)
        ratio = max(c["full_time_ratio"] for c in sel)
        psnr_ok = all(c["psnr_db"] >= c["recipe_psnr_db"] - 0.05 for c in sel)
        lines.append(
            f"- S={st}: final distance <= recipe's on {sum(c['matches_at_end'] for c in sel)}/{len(sel)} "
            f"pairs, time ratio (whole run) max {ratio:.3f}, PSNR >= recipe's on "
            f"{sum(c['psnr_db'] >= c['recipe_psnr_db'] - 0.05 for c in sel)}/{len(sel)} pairs -> "
            f"{'**met**' if ok_match and ratio <= 0.1 and psnr_ok else 'not met'}"
        )
    return "\n".join(lines) + "\n"


def make_plot(data: dict[str, Any], path: Any) -> Any:
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    colours = {6: "tab:green", 12: "tab:blue", 24: "tab:orange", 48: "tab:red"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for col, (eps, recipe) in enumerate(((0.04, "nightshade"), (0.03, "photoguard"))):
        for row, xkey in enumerate(("seconds", "step")):
            ax = axes[row][col]
            for e in data["pairs"]:
                first = e is data["pairs"][0]
                d0 = e[recipe]["trace"]["distance"][0]
                curves = [(e[recipe], "black", recipe)]
                for res in sorted(e["ours"].values(), key=lambda v: v["steps"]):
                    if res["eps"] == eps:
                        curves.append(
                            (res, colours.get(res["steps"], "tab:purple"), f"ours S={res['steps']}")
                        )
                for res, colour, name in curves:
                    tr = res["trace"]  # skip the starting point: log x axis
                    ax.plot(
                        tr[xkey][1:],
                        [1 - d / d0 for d in tr["distance"][1:]],
                        color=colour,
                        lw=1,
                        alpha=0.75,
                        label=name if first else None,
                    )
            ax.set(
                xscale="log",
                xlabel="optimisation seconds" if xkey == "seconds" else "steps (encoder passes)",
                ylabel="fraction of distance closed",
                title=f"{recipe} recipe vs ours, L-inf {eps}",
            )
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 pair at 128 px, short recipes")
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument(
        "--photoguard-code",
        action="store_true",
        help="PhotoGuard as in MadryLab's code (step 0.005 decaying, random start)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine two threads slow down erratically; "
        "0 = torch's choice)",
    )
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.pairs = args.pairs or (1 if args.quick else 4)
    args.size = args.size or (128 if args.quick else 256)
    args.ns_steps, args.pg_steps = (30, 30) if args.quick else (500, 1000)
    args.ns_eval, args.pg_eval = (3, 3) if args.quick else (10, 20)
    args.ours_steps = [6, 12] if args.quick else [6, 12, 24, 48]
    out = C.out_dir(args.quick)
    path = out / f"{NAME}.json"
    data = C.read_json(path) if args.render_only else run(args)
    C.write_json(path, data)
    plot = make_plot(data, out / f"{NAME}.png")
    text = render(data, plot)
    md = C.write_markdown(NAME, text, args.quick)
    C.say(text)
    C.say(f"[recipes] wrote {path} and {md}")


if __name__ == "__main__":
    main()
