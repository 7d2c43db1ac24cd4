"""The generator-aware objectives against tiny random generators built here (no downloads): each moves the
quantity it claims to move, inside the budget, through views and robust mode, and the folder-level
schemes resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.tiny_generators import tiny_lab, tiny_pipeline

from sfumato.budget import make_budget
from sfumato.countermeasures.differentiable import ROBUST_RECIPE
from sfumato.countermeasures.views import TrainingViews
from sfumato.encoders.ensemble import Ensemble
from sfumato.generators import DiffusersGenerator, GeneratorEncoder, load_generator
from sfumato.lab.models.generator import flow_matching_loss
from sfumato.objectives import Schedule, make_objective, protect_folder
from sfumato.objectives.denoiser import mean_denoising_loss, prediction_distance
from sfumato.optimise import attack, protect_tensor

PROMPT = "a painting by alice"
EPS = 16 / 255


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline(tmp_path_factory.mktemp("sd") / "pipeline")


@pytest.fixture(scope="module", params=["lab", "diffusers"])
def generator(request: pytest.FixtureRequest, sd_folder: Path):
    return tiny_lab() if request.param == "lab" else load_generator(sd_folder)


def _image(seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, size // 8, size // 8, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


def _run(generator, name: str, x: torch.Tensor, target: torch.Tensor | None = None, steps: int = 16, **kw):
    cond = generator.condition([PROMPT])
    ensemble = Ensemble([GeneratorEncoder(generator)], bf16=False)
    allowance = make_budget("default", "linf", eps=EPS).allowance(x)
    delta = protect_tensor(
        x,
        target if target is not None else x,
        ensemble,
        allowance,
        steps=steps,
        lr=0.5,
        objective=make_objective(name, generator, cond, draws=2),
        **kw,
    )
    assert delta.abs().max() <= EPS + 1e-6
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    return x + delta, cond


def test_lab_adapter_loss_is_the_lab_training_loss():
    lab = tiny_lab()
    z = lab.encode(_image())
    cond = lab.condition([PROMPT])
    mine = mean_denoising_loss(lab, z, cond, seed=3, draws=1)
    with torch.no_grad():
        theirs = flow_matching_loss(
            lab.model, z, cond["emb"], cond["mask"], torch.Generator().manual_seed(3), cond_drop=0.0
        )
    assert mine == pytest.approx(float(theirs), rel=1e-6)


def test_advdm_raises_the_denoising_loss(generator):
    x = _image()
    protected, cond = _run(generator, "advdm", x)
    before = mean_denoising_loss(generator, generator.encode(x), cond, draws=32)
    after = mean_denoising_loss(generator, generator.encode(protected), cond, draws=32)
    assert after > before * 1.01


def test_sds_minus_lowers_the_denoising_loss():
    # On the lab's flow (velocity targets); a random epsilon-predicting UNet has no score to follow.
    generator = tiny_lab()
    x = _image(1)
    protected, cond = _run(generator, "sds-", x)
    before = mean_denoising_loss(generator, generator.encode(x), cond, draws=32)
    after = mean_denoising_loss(generator, generator.encode(protected), cond, draws=32)
    # Most of the loss is the noise no image can predict; the full gradient lowers the lab's by 2.0 %.
    assert after < before * 0.99


@pytest.mark.parametrize("name, backward", [("sds-", False), ("advdm", True)])
def test_score_distillation_skips_the_denoisers_backward(generator, name: str, backward: bool):
    graphs: list[bool] = []  # whether each denoiser output carries a graph a backward pass could take

    def record(module, inputs, output) -> None:
        graphs.append(getattr(output, "sample", output).requires_grad)

    hook = generator.denoiser.register_forward_hook(record)
    try:
        x = _image(5)
        objective = make_objective(name, generator, generator.condition([PROMPT]))
        u = torch.zeros_like(x, requires_grad=True)
        loss = objective([generator.encode(x + 0.01 * u)], torch.Generator().manual_seed(0), [])
        loss.backward()
    finally:
        hook.remove()
    assert graphs and all(g == backward for g in graphs)
    assert float(u.grad.abs().sum()) > 0


def test_sds_gradient_is_the_residual_through_the_forward_process():
    lab = tiny_lab()
    z = torch.randn(1, 4, 8, 8, requires_grad=True)
    cond = lab.condition([PROMPT])
    make_objective("sds-", lab, cond)([z], torch.Generator().manual_seed(0), []).backward()
    t, noise = lab.draw(z, torch.Generator().manual_seed(0))
    with torch.no_grad():
        zt = lab.noisy(z, t, noise)
        residual = lab.predict(zt, t, cond) - lab.target(z, t, noise)
    # d(z_t - target)/dz = (1 - t) + 1 for the rectified flow.
    expected = residual * (2 - t[:, None, None, None]) / z.numel()
    assert torch.allclose(z.grad, expected, atol=1e-7)


def test_targeted_pulls_the_prediction_toward_the_target(generator):
    x, target = _image(2), _image(7)
    protected, cond = _run(generator, "targeted", x, target)
    with torch.no_grad():
        goal = generator.encode(target)
    before = prediction_distance(generator, generator.encode(x), goal, cond, draws=32)
    after = prediction_distance(generator, generator.encode(protected), goal, cond, draws=32)
    # A random denoiser's prediction follows its noisy input; the image moves only a small part of it.
    assert after < before * 0.99


def test_objectives_compose_with_views_and_robust_mode():
    lab = tiny_lab()
    x = _image(3, size=48)
    views = TrainingViews(size=32, draws=2, bank=4)
    protected, cond = _run(lab, "advdm", x, views=views, transform=ROBUST_RECIPE, steps=12)
    # The mimic trains on 32 px views: the loss there rose.
    small = torch.nn.functional.interpolate(protected, size=(32, 32), mode="bicubic", antialias=True)
    clean = torch.nn.functional.interpolate(x, size=(32, 32), mode="bicubic", antialias=True)
    before = mean_denoising_loss(lab, lab.encode(clean), cond, draws=32)
    after = mean_denoising_loss(lab, lab.encode(small.clamp(0, 1)), cond, draws=32)
    assert after > before
    targeted, _ = _run(lab, "targeted", x, _image(8, size=48), views=views, steps=4)
    assert not torch.equal(targeted, x)


def test_attack_resumes_from_a_start():
    lab = tiny_lab()
    x = _image(4)
    allowance = make_budget("default", "linf", eps=EPS).allowance(x)
    ensemble = Ensemble([GeneratorEncoder(lab)], bf16=False)
    objective = make_objective("advdm", lab, lab.condition([PROMPT]))
    first = attack(x, [], ensemble, allowance, steps=3, lr=0.5, objective=objective).delta
    same = attack(x, [], ensemble, allowance, steps=0, lr=0.5, objective=objective, start=first).delta
    assert torch.allclose(same, first, atol=1e-7)


def test_diffusers_v_prediction_target(tmp_path: Path):
    gen = load_generator(tiny_pipeline(tmp_path / "v", prediction_type="v_prediction"))
    assert isinstance(gen, DiffusersGenerator) and gen.prediction_type == "v_prediction"
    z, noise = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    t = torch.tensor([10, 900])
    a = gen.alphas_cumprod[t][:, None, None, None]
    assert torch.allclose(gen.target(z, t, noise), a.sqrt() * noise - (1 - a).sqrt() * z)
    assert torch.allclose(gen.noisy(z, t, noise), a.sqrt() * z + (1 - a).sqrt() * noise)


def test_an_sdxl_layout_is_conditioned_on_both_encoders_and_the_size(tmp_path: Path):
    xl = load_generator(tiny_pipeline(tmp_path / "xl", xl=True))
    assert isinstance(xl, DiffusersGenerator) and xl.xl
    cond = xl.condition([PROMPT])
    assert cond["hidden"].shape[-1] == 32 and cond["pooled"].shape == (1, 8)
    x = _image(6)
    protected, cond = _run(xl, "advdm", x, steps=8)
    before = mean_denoising_loss(xl, xl.encode(x), cond, draws=32)
    after = mean_denoising_loss(xl, xl.encode(protected), cond, draws=32)
    assert after > before


def _folder(n: int = 3) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str]]:
    works = [_image(10 + i) for i in range(n)]
    allowances = [make_budget("default", "linf", eps=EPS).allowance(x) for x in works]
    return works, allowances, [PROMPT] * n


SMALL = Schedule(rounds=3, attack_steps=3, train_steps=2, batch=2, train_lr=1e-3)


def test_aspl_resumes_identically_after_an_interruption(tmp_path: Path):
    lab = tiny_lab()
    works, allowances, prompts = _folder()
    weights = {k: v.clone() for k, v in lab.model.state_dict().items()}
    straight = protect_folder(works, allowances, lab, prompts, scheme="aspl", schedule=SMALL)
    # The generator handed in is left as it was.
    assert all(torch.equal(weights[k], v) for k, v in lab.model.state_dict().items())
    rounds: list[int] = []
    ckpt = tmp_path / "aspl.pt"
    kw = {
        "scheme": "aspl",
        "schedule": SMALL,
        "checkpoint": ckpt,
        "on_round": lambda r: rounds.append(r.round),
    }
    protect_folder(works, allowances, lab, prompts, stop_after=1, **kw)
    assert ckpt.is_file() and rounds == [1]
    resumed = protect_folder(works, allowances, tiny_lab(), prompts, **kw)
    assert rounds == [1, 2, 3]
    for a, b, allowance in zip(straight, resumed, allowances, strict=True):
        assert torch.equal(a, b)
        assert a.abs().max() <= allowance.max() + 1e-6
    with pytest.raises(ValueError, match="another run"):
        protect_folder(works, allowances, lab, ["a photo of a cat"] * 3, **kw)


def test_aspl_raises_the_surrogate_loss_on_the_folder():
    lab = tiny_lab()
    works, allowances, prompts = _folder(2)
    deltas = protect_folder(works, allowances, lab, prompts, scheme="aspl", schedule=SMALL)
    cond = lab.condition([PROMPT])
    before = sum(mean_denoising_loss(lab, lab.encode(x), cond, draws=32) for x in works)
    after = sum(
        mean_denoising_loss(lab, lab.encode(x + d), cond, draws=32)
        for x, d in zip(works, deltas, strict=True)
    )
    assert after > before


def test_metacloak_runs_a_pool_through_views(sd_folder: Path, tmp_path: Path):
    sd = load_generator(sd_folder)
    works, allowances, prompts = _folder(2)
    schedule = Schedule(rounds=2, attack_steps=2, train_steps=1, batch=1, pool=2, pool_steps=2, train_lr=1e-3)
    reports = []
    deltas = protect_folder(
        works,
        allowances,
        sd,
        prompts,
        scheme="metacloak",
        schedule=schedule,
        views=TrainingViews(size=24, draws=1, bank=2),
        checkpoint=tmp_path / "m.pt",
        on_round=reports.append,
    )
    assert [r.round for r in reports] == [1, 2] and all(r.rounds == 2 for r in reports)
    assert all(0 < float(d.abs().max()) <= EPS + 1e-6 for d in deltas)


def test_aspl_composes_with_views_and_robust_mode():
    lab = tiny_lab()
    works, allowances, prompts = _folder(2)
    schedule = Schedule(rounds=1, attack_steps=2, train_steps=1, batch=1)
    views = TrainingViews(size=24, draws=1, bank=2)
    deltas = protect_folder(works, allowances, lab, prompts, schedule=schedule, views=views, robust=True)
    assert all(0 < float(d.abs().max()) <= EPS + 1e-6 for d in deltas)


def test_mist_pulls_the_fine_tuned_surrogates_prediction_toward_each_target(tmp_path: Path):
    lab = tiny_lab()
    works, allowances, prompts = _folder(2)
    targets = [_image(40 + i) for i in range(2)]
    with pytest.raises(ValueError, match="target image per work"):
        protect_folder(works, allowances, lab, prompts, scheme="mist", schedule=SMALL)
    with pytest.raises(ValueError, match="mist only"):
        protect_folder(works, allowances, lab, prompts, scheme="aspl", schedule=SMALL, targets=targets)
    straight = protect_folder(works, allowances, lab, prompts, scheme="mist", schedule=SMALL, targets=targets)
    kw = {"scheme": "mist", "schedule": SMALL, "targets": targets, "checkpoint": tmp_path / "mist.pt"}
    protect_folder(works, allowances, lab, prompts, stop_after=1, **kw)
    deltas = protect_folder(works, allowances, tiny_lab(), prompts, **kw)  # resumed at round 2
    assert all(torch.equal(a, b) for a, b in zip(straight, deltas, strict=True))
    assert all(d.abs().max() <= a.max() + 1e-6 for d, a in zip(deltas, allowances, strict=True))
    # the pull, measured on the base generator (the surrogate it was aimed at moved little from it)
    longer = Schedule(rounds=2, attack_steps=8, train_steps=1, batch=2)
    deltas = protect_folder(works, allowances, lab, prompts, scheme="mist", schedule=longer, targets=targets)
    cond = lab.condition([PROMPT])
    before = after = 0.0
    for x, d, t in zip(works, deltas, targets, strict=True):
        goal = lab.encode(t)
        before += prediction_distance(lab, lab.encode(x), goal, cond, draws=32)
        after += prediction_distance(lab, lab.encode(x + d), goal, cond, draws=32)
    assert after < before * 0.995
    views = TrainingViews(size=24, draws=1, bank=2)
    one = Schedule(rounds=1, attack_steps=2, train_steps=1, batch=1)
    through = protect_folder(
        works,
        allowances,
        lab,
        prompts,
        scheme="mist",
        schedule=one,
        targets=targets,
        views=views,
        robust=True,
    )
    assert all(0 < float(d.abs().max()) <= EPS + 1e-6 for d in through)
