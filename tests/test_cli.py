"""The ``sfumato`` command line: subcommands, exit codes, messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from tests.conftest import photo

import sfumato
from sfumato.cli import build_parser, main
from sfumato.styles import STYLE_NAMES

FAST = ["--steps", "1", "--speed", "fast", "--device", "cpu"]


def _write(path: Path, pattern: str, size: tuple[int, int] = (128, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    photo(pattern, size).save(path)
    return path


@pytest.fixture
def two_images(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    _write(src / "a.jpg", "golden_retriever")
    _write(src / "b.png", "Labrador_retriever", (96, 128))
    return src


@pytest.fixture(scope="module")
def cloaked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One original and its cloaked output (with sidecar), shared by the inspect tests."""
    tmp = tmp_path_factory.mktemp("cloaked")
    original = _write(tmp / "in" / "a.png", "golden_retriever")
    with pytest.MonkeyPatch.context() as mp:
        from tests.conftest import WEIGHTS

        mp.setenv("SFUMATO_WEIGHTS", str(WEIGHTS))
        assert (
            main(["cloak", str(original), "-o", str(tmp / "out"), "--style", "sketch", "--quiet", *FAST]) == 0
        )
    return original, tmp / "out" / "a.png"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sfumato {sfumato.__version__}"


def test_cloak_folder_then_rerun_skips_then_new_seed_recomputes(two_images, tmp_path, capsys, weights_dir):
    out = tmp_path / "out"
    args = ["cloak", str(two_images), "-o", str(out), "--style", "sketch", *FAST]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "a.jpg: PSNR" in stdout and "moved flux2" in stdout
    assert f"2 protected, 0 skipped (already done), 0 failed; output in {out}" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "a.png",
        "a.png.json",
        "b.png",
        "b.png.json",
        "summary.csv",
        "summary.md",
    ]

    assert main(args) == 0
    assert "0 protected, 2 skipped (already done), 0 failed" in capsys.readouterr().out

    assert main([*args, "--seed", "1", "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.strip().splitlines() == [
        f"2 protected, 0 skipped (already done), 0 failed; output in {out}"
    ]


def test_shade_writes_caption_files(two_images, tmp_path, capsys, weights_dir):
    cats = tmp_path / "cats"
    _write(cats / "tabby.jpg", "tabby")
    _write(cats / "tiger.jpg", "tiger_cat", (96, 128))
    out = tmp_path / "out"
    code = main(
        [
            "shade",
            str(two_images),
            "--concept",
            "dog",
            "--as",
            "cat",
            "--target-images",
            str(cats),
            "-o",
            str(out),
            "--quiet",
            *FAST,
        ]
    )
    assert code == 0
    assert (out / "a.txt").read_text().strip() == "dog" and (out / "b.txt").read_text().strip() == "dog"
    assert json.loads((out / "b.png.json").read_text())["settings"]["target_name"] == "tiger.jpg"


def test_bad_files_do_not_stop_the_batch_and_exit_1(two_images, tmp_path, capsys, weights_dir):
    (two_images / "b.png").unlink()
    (two_images / "zero.png").write_bytes(b"")
    (two_images / "notes.png").write_text("shopping list: eggs, milk")
    code = main(
        ["cloak", str(two_images), "-o", str(tmp_path / "out"), "--style", "sketch", "--quiet", *FAST]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "1 protected, 0 skipped (already done), 2 failed" in captured.out
    failures = captured.err[captured.err.index("2 files failed:") :]
    assert "zero.png is empty (0 bytes)" in failures and "notes.png is not an image" in failures
    assert "Traceback" not in captured.err
    assert (tmp_path / "out" / "a.png").is_file()


def test_output_on_the_input_folder_refuses_instead_of_overwriting(tmp_path, capsys, weights_dir):
    art = _write(tmp_path / "in" / "art.png", "golden_retriever")
    before = art.read_bytes()
    code = main(
        ["cloak", str(tmp_path / "in"), "-o", str(tmp_path / "in"), "--style", "sketch", "--quiet", *FAST]
    )
    assert code == 1
    assert art.read_bytes() == before
    err = capsys.readouterr().err
    assert "art.png would be written to" in err and "never overwrites its inputs" in err


def test_inspect_prints_a_table_and_json(cloaked, capsys, weights_dir):
    original, protected = cloaked
    assert main(["inspect", str(original), str(protected)]) == 0
    table = capsys.readouterr().out
    assert "PSNR" in table and "SSIM" in table
    flux2 = next(line for line in table.splitlines() if line.strip().startswith("flux2"))
    sana = next(line for line in table.splitlines() if line.strip().startswith("sana"))
    assert "attacked" in flux2 and "%" in flux2 and "attacked" in sana  # the default family ensemble

    assert main(["inspect", str(original), str(protected), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latents"]["flux2"]["attacked"] is True
    assert report["latents"]["flux2"]["fraction_moved"] > 0
    assert report["quality"]["psnr_db"] > 25


def test_inspect_of_a_missing_file_is_one_line(tmp_path, capsys, weights_dir):
    assert main(["inspect", str(tmp_path / "nope.png"), str(tmp_path / "nope2.png")]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"sfumato: error: {tmp_path / 'nope.png'} does not exist"]


def test_styles_lists_and_previews(tmp_path, capsys):
    assert main(["styles"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in (*STYLE_NAMES, "auto"))
    image = _write(tmp_path / "pic.png", "golden_retriever", (96, 64))
    assert main(["styles", "--preview", str(image), "-o", str(tmp_path / "prev")]) == 0
    written = sorted(p.name for p in (tmp_path / "prev").iterdir())
    assert written == sorted(f"pic.{name}.png" for name in STYLE_NAMES)


def test_cloak_help_lists_the_styles(capsys):
    assert main(["cloak", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in STYLE_NAMES) and "Graphite pencil" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--eps", "0"], "--eps"),
        (["--eps", "300"], "--eps"),
        (["--eps", "eight"], "--eps"),
        (["--style", "watercolour"], "--style"),
        (["--encoders", "flux2,sana", "--encoder-weights", "1"], "--encoder-weights"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_usage_errors_exit_2(two_images, tmp_path, capsys, extra, message):
    assert main(["cloak", str(two_images), "-o", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_no_inputs_and_no_targets_are_clear_errors(two_images, tmp_path, capsys, weights_dir):
    (tmp_path / "empty").mkdir()
    assert main(["cloak", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), *FAST]) == 2
    assert "sfumato: error: no input images found" in capsys.readouterr().err
    code = main(
        [
            "shade",
            str(two_images),
            "--concept",
            "dog",
            "--as",
            "cat",
            "--target-images",
            str(tmp_path / "empty"),
            "-o",
            str(tmp_path / "out"),
            *FAST,
        ]
    )
    assert code == 2
    assert "no usable target images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_weights_is_the_weights_message(two_images, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SFUMATO_WEIGHTS", str(tmp_path))
    # a checkpoint name with no pinned download: looked up, never fetched
    code = main(
        [
            "cloak",
            str(two_images),
            "-o",
            str(tmp_path / "out"),
            "--encoders",
            "mine_encoder.pth",
            "--weights",
            str(tmp_path),
            *FAST,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err  # WeightsNotFoundError's own message: where we looked, what to do
    assert err.startswith("sfumato: error: weights file 'mine_encoder.pth' not found")
    assert "Traceback" not in err and "--weights DIR" in err


def _all_parsers(parser: argparse.ArgumentParser, name: str = "sfumato"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_command_help_renders():
    """A stray '%' in a help string only fails when --help is asked for; render them all."""
    names = []
    for name, parser in _all_parsers(build_parser()):
        assert parser.format_help(), name
        names.append(name)
    assert "sfumato lab mimicry" in names and "sfumato cloak" in names
