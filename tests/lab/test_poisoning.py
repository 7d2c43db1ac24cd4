"""The lab end to end in miniature: tiny judges, a tiny base generator, a tiny poisoning experiment.

The networks are far too small to learn anything; the test checks the plumbing (every step runs, resumes
and writes its files) and that the figures are computed from the images actually generated.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from tests.conftest import SHARED, WEIGHTS

from sfumato.lab.data.captions import prompt_for
from sfumato.lab.data.datasets import load_cifar
from sfumato.lab.figures import fmt
from sfumato.lab.judging.classifiers import judge_config, load_judge, train_judge
from sfumato.lab.judging.scoring import score_run
from sfumato.lab.models.base import BaseSpec, base_quality, spec_for, train_base
from sfumato.lab.models.generator import GeneratorConfig
from sfumato.lab.models.text_encoder import TextEncoder
from sfumato.lab.models.training import TrainConfig
from sfumato.lab.poison.craft import choose_anchors, make_poisons
from sfumato.lab.poison.experiment import Experiment
from sfumato.lab.poison.goals import goal_checks
from sfumato.lab.poison.settings import PoisonConfig

CIFAR_ZIP = SHARED / "data" / "cifar10.zip"
pytestmark = pytest.mark.skipif(not CIFAR_ZIP.exists(), reason=f"CIFAR-10 zip not found at {CIFAR_ZIP}")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def _weights_for_module_fixtures():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFUMATO_WEIGHTS", str(WEIGHTS))
        yield


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    return TextEncoder()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab")


def tiny_spec() -> BaseSpec:
    return BaseSpec(
        per_class=6,
        generator=GeneratorConfig(width=16, channel_mults=(1,), attn_resolutions=(8,), heads=2, ff_mult=1),
        training=TrainConfig(steps=3, batch=8, warmup=1, checkpoint_every=2, log_every=1),
    )


@pytest.fixture(scope="module")
def judges(workdir: Path) -> list:
    train = load_cifar(CIFAR_ZIP, "train", per_class=12, progress=False)
    test = load_cifar(CIFAR_ZIP, "test", per_class=4, progress=False)
    widths = {"pixel": (8, 8, 8, 8), "grey64": (8, 8, 8), "features": (8, 8, 8)}
    out = []
    for name in ("pixel", "grey64", "features"):
        cfg = judge_config(name, epochs=1, widths=widths[name], batch=32)
        train_judge(cfg, train, test, workdir / "judges" / name, progress=False)
        out.append(load_judge(workdir / "judges" / name))
    return out


@pytest.fixture(scope="module")
def base(workdir: Path, text: TextEncoder) -> Path:
    return train_base(workdir, CIFAR_ZIP, tiny_spec(), text=text, progress=False)


def test_base_trains_resumes_and_is_judged(
    base: Path, workdir: Path, judges: list, text: TextEncoder
) -> None:
    spec = tiny_spec()
    assert base == spec.folder(workdir) / "checkpoint.pt"
    assert json.loads((base.parent / "spec.json").read_text())["per_class"] == 6
    assert train_base(workdir, CIFAR_ZIP, spec, text=text, progress=False) == base  # done: returns at once
    result = base_quality(base, judges[:2], n=4, guidances=(3.0,), text=text)
    per = result["by_guidance"]["3"]["pixel"]["per_class"]
    assert set(per) == set(spec.classes)
    assert all(v in (0.0, 0.25, 0.5, 0.75, 1.0) for v in per.values())  # shares of 4 real images
    assert (base.parent / "samples.png").exists()


def test_anchor_choice_is_nearest_with_a_cap() -> None:
    src = torch.tensor([[0.0], [0.1], [5.0]])
    cand = torch.tensor([[0.05], [4.9]])
    idx = choose_anchors(src, cand)
    assert idx[2] == 1
    assert torch.bincount(idx, minlength=2).max() <= 2


def test_poisons_move_latents_within_budget() -> None:
    dogs = load_cifar(CIFAR_ZIP, "train", classes=["dog"], per_class=3, progress=False).images
    cats = load_cifar(CIFAR_ZIP, "train", classes=["cat"], per_class=4, progress=False).images
    up = torch.nn.functional.interpolate(dogs.float(), size=64, mode="bicubic").clamp(0, 255).round()
    cats64 = torch.nn.functional.interpolate(cats.float(), size=64, mode="bicubic").clamp(0, 255).round()
    batch = make_poisons(up.to(torch.uint8), cats64.to(torch.uint8), steps=6, batch=2)
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (3, 3, 64, 64)
    assert (batch.closed > 0.05).all()
    assert (batch.psnr > 28).all()
    assert int((batch.images.int() - up.int()).abs().max()) <= 11  # high preset: at most 10/255, rounded
    wider = make_poisons(
        up.to(torch.uint8), cats64.to(torch.uint8), budget="linf", eps=16 / 255, steps=6, batch=2
    )
    assert int((wider.images.int() - up.int()).abs().max()) <= 17
    assert float(wider.closed.mean()) > float(batch.closed.mean())  # a wider bound moves the latents further


def test_poison_eps_is_a_pool_setting() -> None:
    plain = PoisonConfig()
    assert "poison_eps" not in plain.to_dict()  # folders from before the option keep their settings
    wide = PoisonConfig(budget="linf", poison_eps=16 / 255)
    assert PoisonConfig.from_dict(wide.to_dict()) == wide
    assert wide.poison_settings() != plain.poison_settings()


def test_experiment_end_to_end(base: Path, workdir: Path, judges: list, text: TextEncoder) -> None:
    config = PoisonConfig(
        doses=(0, 3),
        methods=("shade", "dirty"),
        seeds=(0,),
        clean_per_class=2,
        samples=4,
        guidance=(3.0, 1.0),
        sampler_steps=2,
        finetune_steps=(1, 2),
        finetune_batch=4,
        anchor_candidates=3,
        poison_pool=3,
        poison_steps=2,
        base=tiny_spec(),
    )
    out = workdir / "poison"
    messages: list[str] = []
    exp = Experiment(config, out, base, CIFAR_ZIP, text=text, progress=messages.append)
    exp.run_all()
    assert [r for r in exp.planned()] == [("clean", 0, 0), ("shade", 3, 0), ("dirty", 3, 0)]
    run = exp.run_dir("shade", 3, 0)
    assert sorted(p.name for p in run.glob("samples-*.pt")) == [
        "samples-L1-w3.pt",
        "samples-L2-w1.pt",
        "samples-L2-w3.pt",
    ]
    assert not (run / "finetune").exists()  # weights deleted once sampled
    assert json.loads((run / "run.json").read_text())["train_images"] == 6 * 2 + 3

    before = (run / "run.json").stat().st_mtime_ns
    exp.run_all()  # resumes: nothing redone
    assert (run / "run.json").stat().st_mtime_ns == before
    # A later call asking for fewer runs makes only those, and reports on every run in the folder.
    fewer = dataclasses.replace(config, methods=("shade",), doses=(3,))
    again = Experiment(fewer, out, base, CIFAR_ZIP, text=text, progress=None)
    assert again.planned(again.requested) == [("shade", 3, 0)]
    assert again.config.methods == ("shade", "dirty") and again.config.doses == (0, 3)

    results = json.loads(exp.finish(judges[:2], judges[2]).read_text())
    source_prompt = prompt_for("dog")
    # The summary's figures are the judges' votes on the stored images.
    images = torch.load(run / "samples-L2-w3.pt", weights_only=True)[source_prompt]
    pred = judges[0].predict(images)
    share_cat = float((pred == judges[0].classes.index("cat")).float().mean())
    got = results["summary"]["shade"]["L2-w3"]["3"]["judges"]["pixel"][source_prompt]["cat"]["mean"]
    assert got == pytest.approx(share_cat)
    assert set(results["summary"]) == {"shade", "dirty"}
    assert "0" in results["summary"]["dirty"]["L2-w3"]  # the clean run counts for every method
    assert results["poisons"]["shade"]["closed_mean"] > 0
    assert "frechet" in results["summary"]["shade"]["L2-w3"]["3"]
    report = (out / "report.md").read_text()
    assert "Attack success" in report and "Bleed-through" in report and "Goal figures" in report
    assert (out / "dose_response.png").exists() and (out / "samples.png").exists()
    assert json.loads((out / "settings.json").read_text())["doses"] == [0, 3]
    # Scores are cached against the judges that made them.
    cached = score_run(run, judges[:2], judges[2], {}, source_prompt)
    assert cached["L2-w3"]["shares"]["pixel"][source_prompt]["cat"] == pytest.approx(share_cat)


def _stat(v: float) -> dict:
    return {"mean": v, "std": 0.0, "n": 1}


def _cell(dog_cat: float, truck: float, frechet: tuple[float, float] | None = None) -> dict:
    shares = {"a photo of a dog": {"cat": _stat(dog_cat)}, "a photo of a truck": {"truck": _stat(truck)}}
    cell: dict = {"judges": {"a": shares, "b": shares}}
    if frechet:
        cell["frechet"] = {"cat": _stat(frechet[0]), "dog": _stat(frechet[1])}
    return cell


def test_goal_checks_read_the_best_poison_against_dirty_labels() -> None:
    """The goals are judged on the poison run whose weaker judge does best, beside dirty labels at its N."""
    results = {
        "settings": {"source": "dog", "target": "cat"},
        "judges": {"a": {}, "b": {}},
        "prompts": {
            "a photo of a dog": {"role": "source", "classes": ["dog"]},
            "a photo of a truck": {"role": "unrelated", "classes": ["truck"]},
        },
        "summary": {
            "shade": {
                "S": {"0": _cell(0.1, 0.98), "50": _cell(0.85, 0.95, (5.0, 9.0)), "200": _cell(0.9, 0.9)}
            },
            "dirty": {"S": {"0": _cell(0.1, 0.98), "50": _cell(0.3, 0.99)}},
        },
    }
    goals = goal_checks(results, "S", "a photo of a dog")
    assert [g.met for g in goals] == [True, True, True, False]
    assert "shade N=50: 85 / 85 %" in goals[0].measured  # N = 200 is past the goal's dose
    assert "dirty N=50: 30 / 30 %" in goals[2].measured
    assert "largest fall 8 points" in goals[3].measured  # shade N = 200 on the truck prompt
    results["summary"]["dirty"]["S"]["50"] = _cell(0.7, 0.99)
    assert goal_checks(results, "S", "a photo of a dog")[2].met is False
    results["transfer"] = {"poisons_from": "elsewhere"}
    assert goal_checks(results, "S", "a photo of a dog")[-1].measured == "best: shade: 90 / 90 %"


def test_cli_reports_a_finished_experiment(base: Path, workdir: Path, judges: list, capsys) -> None:
    from sfumato.cli import main

    out = workdir / "poison"
    if not (out / "settings.json").exists():
        pytest.skip("needs test_experiment_end_to_end's folder")
    (out / "report.md").unlink()
    code = main(
        [
            "lab",
            "poison",
            "--workdir",
            str(workdir),
            "--base",
            str(base),
            "-o",
            str(out),
            "--report-only",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (out / "report.md").exists()
    # Other settings in the same folder are refused rather than mixed in.
    code = main(
        [
            "lab",
            "poison",
            "--workdir",
            str(workdir),
            "--base",
            str(base),
            "-o",
            str(out),
            "--quiet",
            "--samples",
            "5",
        ]
    )
    assert code == 1
    assert "other settings" in capsys.readouterr().err


def pool_config(method: str) -> PoisonConfig:
    """A three-poison pool of ``method`` on the tiny base: enough to craft, nothing to fine-tune."""
    return PoisonConfig(
        doses=(3,),
        methods=(method,),
        seeds=(0,),
        anchor_candidates=3,
        poison_pool=3,
        poison_steps=2,
        sampler_steps=2,
        base=tiny_spec(),
    )


def test_gradient_poisons_steer_the_training_gradient(base: Path, workdir: Path, text: TextEncoder) -> None:
    from sfumato.lab.data.captions import captions_for
    from sfumato.lab.models.autoencoders import load_lab_encoder
    from sfumato.lab.models.training import load_generator
    from sfumato.lab.poison.gradient_match import GradientPoisoner, make_gradient_poisons

    dogs = load_cifar(CIFAR_ZIP, "train", classes=["dog"], per_class=3, progress=False).images
    cats = load_cifar(CIFAR_ZIP, "train", classes=["cat"], per_class=4, progress=False).images
    up = torch.nn.functional.interpolate(dogs.float(), size=64, mode="bicubic").clamp(0, 255).round()
    cats64 = torch.nn.functional.interpolate(cats.float(), size=64, mode="bicubic").clamp(0, 255).round()
    model, _, _, _ = load_generator(base)
    encoder = load_lab_encoder("flux2")
    captions = captions_for([0] * 3, ["dog"], seed=100)
    batch = make_gradient_poisons(
        up.to(torch.uint8), cats64.to(torch.uint8), model, encoder, captions, text.encode_tokens, steps=8
    )
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (3, 3, 64, 64)
    assert int((batch.images.int() - up.int()).abs().max()) <= 11  # the same budget as shade's
    assert (batch.psnr > 28).all()
    # Measured afresh (other noise draws): the poisons' gradient points more toward the cats' than the
    # clean dogs' does.
    target_captions = captions_for([0] * 4, ["dog"], seed=7)
    poisoner = GradientPoisoner(model, encoder, cats64.to(torch.uint8), text.encode_tokens, target_captions)
    match = poisoner.match(captions)
    with torch.no_grad():
        clean_lat, poison_lat = encoder(up / 255), encoder(batch.images.float() / 255)
    clean = float(match.alignment(clean_lat, torch.Generator().manual_seed(99)))
    poisoned = float(match.alignment(poison_lat, torch.Generator().manual_seed(99)))
    assert poisoned > clean + 0.05, (clean, poisoned)

    # In the experiment: a pool method like the others, aimed at the anchors the base generator drew.
    config = pool_config("shade-gm")
    exp = Experiment(config, workdir / "poison-gm", base, CIFAR_ZIP, text=text, progress=None)
    assert exp.poisons("shade-gm", 3).shape == (3, 3, 64, 64)
    assert (workdir / "poison-gm" / "poisons" / "anchors-shade.pt").exists()
    assert "shade-gm" in exp.poison_stats()


def test_auc() -> None:
    from sfumato.lab.robustness.experiment import auc

    assert auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert auc(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])) == 0.5


def test_robustness_experiment(base: Path, workdir: Path, judges: list, text: TextEncoder) -> None:
    from sfumato.lab.robustness.experiment import RobustnessExperiment
    from sfumato.lab.robustness.settings import RobustnessConfig

    main_out = workdir / "poison"
    if not (main_out / "settings.json").exists():
        pytest.skip("needs test_experiment_end_to_end's folder")
    from sfumato.lab.poison.settings import load_settings

    config = RobustnessConfig(
        poison=load_settings(main_out), dose=3, countermeasures=("jpeg75",), methods=("shade", "shade-robust")
    )
    out = workdir / "robustness"
    exp = RobustnessExperiment(config, out, main_out, base, CIFAR_ZIP)
    exp.run_all()
    # The main experiment grew a method; the countermeasure's experiment shares its poison pool.
    settings = json.loads((main_out / "settings.json").read_text())
    assert settings["methods"] == ["shade", "shade-robust", "dirty"]
    assert (main_out / "poisons" / "shade-robust" / "chunk-000.pt").exists()
    assert not (out / "jpeg75" / "poisons").exists()
    # The scraper trained on JPEG-compressed images, clean and poisoned alike.
    scraped = torch.load(out / "jpeg75" / "scraped" / "shade-jpeg75-3.pt", weights_only=True)
    poisons = torch.load(main_out / "poisons" / "shade" / "chunk-000.pt", weights_only=True)["images"]
    assert scraped.shape == poisons.shape and not torch.equal(scraped, poisons)
    assert (out / "jpeg75" / "scraped" / "clean-mix-jpeg75-12.pt").exists()

    results = json.loads(exp.finish(judges[:2], judges[2]).read_text())
    assert results["schema"] == "sfumato.lab.robustness/1"
    assert set(results["attack"]) == {"none", "jpeg75"}
    assert set(results["attack"]["jpeg75"]) == {"shade", "shade-robust", "clean"}
    cell = results["attack"]["jpeg75"]["shade"]["pixel"]["target"]
    run = out / "jpeg75" / "runs" / "shade" / "N3" / "seed0"
    images = torch.load(run / "samples-L2-w3.pt", weights_only=True)[prompt_for("dog")]
    share_cat = float((judges[0].predict(images) == judges[0].classes.index("cat")).float().mean())
    assert cell["mean"] == pytest.approx(share_cat)
    for method in ("shade", "shade-robust"):
        assert results[method]["survival"]["none"]["kept"] == pytest.approx(1.0)
        assert 0.0 <= results[method]["detection_auc"] <= 1.0
    report = (out / "report.md").read_text()
    assert "Latent shift kept" in report and "- `jpeg75`: JPEG" in report
    assert (out / "robustness.png").exists()


def test_transfer_trains_a_private_generator_on_the_attackers_poisons(
    base: Path, workdir: Path, judges: list, text: TextEncoder, tmp_path: Path, capsys
) -> None:
    from dataclasses import replace

    from sfumato.cli import main
    from sfumato.lab.models.private_autoencoder import PrivateConfig, train_private_autoencoder

    # The attacker: poisons crafted against FLUX.2 toward anchors its own (tiny) generator drew.
    attacker_config = PoisonConfig(
        doses=(0, 2),
        methods=("shade",),
        seeds=(0,),
        clean_per_class=2,
        sampler_steps=2,
        finetune_batch=4,
        anchor_candidates=2,
        poison_pool=2,
        poison_steps=2,
        samples=2,
        guidance=(3.0,),
        finetune_steps=(1,),
        base=tiny_spec(),
    )
    attacker = tmp_path / "attacker"
    attack = Experiment(attacker_config, attacker, base, CIFAR_ZIP, text=text, progress=None)
    attack.run_all()
    attack.finish(judges[:2], None)
    poisons = attack.poisons("shade", 2)

    # The victim: a generator in a private latent space the attacker never queried.
    train = load_cifar(CIFAR_ZIP, "train", classes=["dog"], per_class=8, progress=False).images
    images = torch.nn.functional.interpolate(train.float(), size=64).round().to(torch.uint8)
    ae_config = PrivateConfig(latent_channels=4, widths=(8, 8, 8), steps=2, batch=4, checkpoint_every=2)
    private = train_private_autoencoder(images, images[:2], tmp_path / "private", ae_config, progress=False)
    assert spec_for("flux2") == BaseSpec()  # the default generator is shaped for FLUX.2 latents
    victim_spec = replace(tiny_spec(), encoder=str(private))
    victim_spec.generator.latent_channels = spec_for(str(private)).generator.latent_channels
    assert victim_spec.generator.latent_channels == 4
    victim = train_base(tmp_path / "victim", CIFAR_ZIP, victim_spec, text=text, progress=False)
    assert victim.parent.name.startswith("private-")  # named by the autoencoder's folder

    out = tmp_path / "transfer"
    args = ["lab", "poison", "--workdir", str(workdir), "--shared", str(SHARED), "--quiet"]
    args += [
        "--base",
        str(victim),
        "--encoder",
        str(private),
        "--poisons-from",
        str(attacker),
        "-o",
        str(out),
    ]
    args += ["--doses", "0,2", "--methods", "shade", "--seeds", "0", "--samples", "2", "--guidance", "3"]
    code = main([*args, "--finetune-steps", "1"])
    assert code == 0, capsys.readouterr().err

    settings = json.loads((out / "settings.json").read_text())
    assert settings["poisons_from"] == str(attacker)
    assert settings["base"]["encoder"] == str(private) and settings["clean_per_class"] == 2
    assert not (out / "poisons").exists()  # the attacker's pool, as it is
    run = json.loads((out / "runs" / "shade" / "N2" / "seed0" / "run.json").read_text())
    assert run["train_images"] == 6 * 2 + 2
    exp = Experiment(PoisonConfig.from_dict(settings), out, victim, CIFAR_ZIP, text=text, progress=None)
    assert torch.equal(exp.poisons("shade", 2), poisons)
    results = json.loads((out / "results.json").read_text())
    closed = results["transfer"].pop("closed_in_victim_space")
    assert results["transfer"] == {
        "poisons_from": str(attacker),
        "poison_encoders": ["flux2"],
        "attacker_base_encoder": "flux2",
        "victim_encoder": str(private),
    }
    # How far the poisons move this generator's latents toward their anchors, measured with its encoder.
    assert closed["shade"]["n"] == 2 and -1.0 < closed["shade"]["closed_mean"] < 1.0
    assert closed["shade"]["closed_mean"] != pytest.approx(results["poisons"]["shade"]["closed_mean"])
    report = (out / "report.md").read_text()
    assert "Transfer test" in report
    # The transfer table sets the attacker's own figure beside this generator's, from both results.
    theirs = json.loads((attacker / "results.json").read_text())["summary"]["shade"]["L1-w3"]["2"]
    ours = results["summary"]["shade"]["L1-w3"]["2"]
    cells = [
        fmt(r["judges"][j][prompt_for("dog")]["cat"]) for r in (theirs, ours) for j in ("pixel", "grey64")
    ]
    assert f"| shade | 2 | {cells[0]} / {cells[1]} | {cells[2]} / {cells[3]} |" in report

    # A transfer experiment never draws anchors with the victim's generator, nor crafts without a pool.
    bare = tmp_path / "bare-attacker"
    Experiment(attacker_config, bare, base, CIFAR_ZIP, text=text, progress=None)
    transfer = replace(PoisonConfig.from_dict(settings), poisons_from=str(bare))
    with pytest.raises(ValueError, match="anchors the attacker's generator drew"):
        Experiment(transfer, tmp_path / "t2", victim, CIFAR_ZIP, text=text, progress=None).poisons("shade", 1)
    with pytest.raises(ValueError, match="no poison pool"):
        Experiment(
            replace(transfer, poisons_from=str(tmp_path)), tmp_path / "t3", victim, CIFAR_ZIP, text=text
        )
    with pytest.raises(ValueError, match="poison_steps"):
        Experiment(replace(transfer, poison_steps=3), tmp_path / "t4", victim, CIFAR_ZIP, text=text)


def test_surrogate_trained_poisons_are_a_pool_method(base: Path, workdir: Path, text: TextEncoder) -> None:
    config = pool_config("shade-mist")
    exp = Experiment(config, workdir / "poison-mist", base, CIFAR_ZIP, text=text, progress=None)
    poisons = exp.poisons("shade-mist", 3)
    sources = (exp._cifar("dog", 1000, 3) * 255).round()
    assert poisons.shape == (3, 3, 64, 64) and poisons.dtype == torch.uint8
    assert int((poisons.int() - sources.int()).abs().max()) <= 11  # shade's budget (high, JND)
    stats = exp.poison_stats()["shade-mist"]
    assert stats and not list((workdir / "poison-mist" / "poisons" / "shade-mist").glob("surrogate-*.pt"))
    # grey-box: a surrogate in the settings needs its checkpoint, and goes into the pool's settings
    grey = dataclasses.replace(config, surrogate=tiny_spec())
    with pytest.raises(ValueError, match="surrogate"):
        Experiment(grey, workdir / "poison-mist-grey", base, CIFAR_ZIP, text=text, progress=None)
    assert "surrogate" in grey.poison_settings() and "surrogate" not in config.poison_settings()


def _as_old_seed(results: dict, seed: int) -> dict:
    """``results`` as a file written before runs kept their scores, made by another workdir at ``seed``."""
    old = json.loads(json.dumps(results))
    old["settings"]["seeds"] = [seed]
    old["runs"] = [{k: v for k, v in r.items() if k != "scores"} | {"seed": seed} for r in old["runs"]]
    return old


def test_runs_of_another_workdir_are_merged_into_the_report(
    base: Path, workdir: Path, judges: list, text: TextEncoder, tmp_path: Path
) -> None:
    from sfumato.lab.judging.scoring import summarise
    from sfumato.lab.poison.experiment import runs_from_summary

    out = workdir / "poison"
    if not (out / "results.json").exists():
        pytest.skip("needs test_experiment_end_to_end's folder")
    exp = Experiment(
        PoisonConfig.from_dict(json.loads((out / "settings.json").read_text())),
        out,
        base,
        CIFAR_ZIP,
        text=text,
        progress=None,
    )
    own = json.loads(exp.finish(judges[:2], judges[2]).read_text())
    assert all("scores" in r for r in own["runs"]) and own["carried_from"] == {}
    # An old single-seed file's summary gives its runs' scores back exactly.
    old = _as_old_seed(own, 1)
    classes = {p: v["classes"] for p, v in own["prompts"].items()}
    assert summarise(runs_from_summary(old), classes) == own["summary"]
    earlier = tmp_path / "seed1" / "results.json"
    earlier.parent.mkdir()
    earlier.write_text(json.dumps(old))

    merged = json.loads(exp.finish(judges[:2], judges[2], merge=[earlier.parent]).read_text())
    assert merged["settings"]["seeds"] == [0, 1]
    assert merged["carried_from"] == {str(earlier): len(own["runs"])}
    cell = merged["summary"]["shade"]["L2-w3"]["3"]["judges"]["pixel"][prompt_for("dog")]["cat"]
    mine = own["summary"]["shade"]["L2-w3"]["3"]["judges"]["pixel"][prompt_for("dog")]["cat"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(mine["mean"]) and cell["std"] == 0
    assert "(seed 0)" in (out / "report.md").read_text()  # the grid shows a seed whose images are here
    # A run this workdir holds is never replaced by a carried copy.
    same_seed = tmp_path / "seed0.json"
    same_seed.write_text(json.dumps(_as_old_seed(own, 0)))
    again = json.loads(exp.finish(judges[:2], judges[2], merge=[same_seed]).read_text())
    assert again["summary"] == own["summary"] and again["carried_from"] == {}
    # Another experiment, or an old file whose seeds cannot be told apart, is refused.
    other = _as_old_seed(own, 1) | {"settings": {**old["settings"], "samples": 5}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="samples"):
        exp.finish(judges[:2], judges[2], merge=[tmp_path / "other.json"])
    two = _as_old_seed(own, 1)
    two["runs"] += [r | {"seed": 2} for r in two["runs"]]
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(ValueError, match="cannot be split"):
        exp.finish(judges[:2], judges[2], merge=[tmp_path / "two.json"])
    with pytest.raises(FileNotFoundError):
        exp.finish(judges[:2], judges[2], merge=[tmp_path / "missing"])
    exp.finish(judges[:2], judges[2])
