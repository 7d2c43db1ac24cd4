"""The batch runner's Python API: outputs, sidecars, reruns, bad files, never overwriting inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tests.conftest import photo

from sfumato.batch import BatchError, run_batch
from sfumato.imageio import JPEG_LOSSY_WARNING
from sfumato.inspect import sidecar_path

FAST = dict(steps=1, speed="fast", device="cpu", progress=False, verbose=False)


def _write(path: Path, pattern: str, size: tuple[int, int] = (128, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    photo(pattern, size).save(path)
    return path


@pytest.fixture
def two_images(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    _write(src / "a.jpg", "golden_retriever")
    _write(src / "sub" / "b.png", "Labrador_retriever", (96, 128))
    return src


def test_cloak_folder_writes_outputs_sidecars_summary_and_reruns_skip(two_images, tmp_path, weights_dir):
    out = tmp_path / "out"
    result = run_batch([two_images], out, "cloak", style="sketch", **FAST)
    assert not result.failed and len(result.done) == 2 and not result.skipped
    for rel, source in (("a.png", "a.jpg"), ("sub/b.png", "sub/b.png")):
        doc = json.loads(sidecar_path(out / rel).read_text())
        assert (out / rel).is_file()
        assert doc["output"] == str(out / rel) and doc["input"] == str(two_images / source)
        assert doc["settings"]["mode"] == "cloak" and doc["settings"]["style"] == "sketch"
        assert doc["warnings"] == [] and "settings_key" in doc and "quality" in doc["effect"]
    assert "| a.png | protected |" in (out / "summary.md").read_text()
    original = (out / "a.png").read_bytes()

    again = run_batch([two_images], out, "cloak", style="sketch", **FAST)
    assert not again.done and len(again.skipped) == 2 and not again.failed
    assert (out / "a.png").read_bytes() == original
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [(r["image"], r["status"]) for r in rows] == [("a.png", "skipped"), ("sub/b.png", "skipped")]
    assert all(float(r["psnr_db"]) > 25 for r in rows)

    changed = run_batch([two_images], out, "cloak", style="sketch", **{**FAST, "seed": 1})
    assert len(changed.done) == 2 and not changed.skipped
    assert json.loads(sidecar_path(out / "a.png").read_text())["settings"]["seed"] == 1


def test_shade_writes_captions_and_picks_anchors_by_aspect(tmp_path, weights_dir):
    src, cats = tmp_path / "in", tmp_path / "cats"
    _write(src / "wide.png", "golden_retriever", (128, 96))
    _write(cats / "wide_cat.jpg", "tabby", (160, 120))
    _write(cats / "tall_cat.jpg", "tiger_cat", (96, 128))
    (cats / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = run_batch(
        [src], tmp_path / "out", "shade", concept="dog", as_concept="cat", target_images=cats, **FAST
    )
    assert len(result.done) == 1
    assert [p.name for p, _ in result.failed] == ["broken.jpg"]
    assert "target image" in result.failed[0][1] and "broken.jpg" in result.failed[0][1]
    out = tmp_path / "out" / "wide.png"
    assert (tmp_path / "out" / "wide.txt").read_text().strip() == "dog"
    doc = json.loads(sidecar_path(out).read_text())
    assert doc["settings"]["target_name"] == "wide_cat.jpg"
    assert doc["caption"] == "dog" and doc["settings"]["as_concept"] == "cat"


def test_shade_without_usable_targets_stops_before_starting(two_images, tmp_path, weights_dir):
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(BatchError, match="no usable target images"):
        run_batch([two_images], tmp_path / "out", "shade", concept="dog", target_images=empty, **FAST)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(style="watercolour"), "unknown style"),
        (dict(style="sketch", eps=0.5), "eps"),
        (dict(style="sketch", fmt="gif"), "format"),
        (dict(style="sketch", encoders=("flux2", "sana"), encoder_weights=(1.0,)), "encoder weights"),
    ],
)
def test_bad_options_are_one_clear_error(two_images, tmp_path, kwargs, message, weights_dir):
    with pytest.raises(BatchError, match=message):
        run_batch([two_images], tmp_path / "out", "cloak", **{**FAST, **kwargs})


def test_nothing_to_do_is_an_error(tmp_path, weights_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="no input images found"):
        run_batch([tmp_path / "empty"], tmp_path / "out", "cloak", **FAST)
    with pytest.raises(BatchError, match="does not exist"):
        run_batch([tmp_path / "missing"], tmp_path / "out", "cloak", **FAST)


def test_bad_files_and_clashing_outputs_do_not_stop_the_batch(tmp_path, capsys, weights_dir):
    src = tmp_path / "in"
    _write(src / "good.jpg", "golden_retriever")
    _write(src / "good.png", "Labrador_retriever")  # would also become good.jpg
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("I am not a picture")
    result = run_batch(
        [src, tmp_path / "missing.png"], tmp_path / "out", "cloak", style="sketch", fmt="jpg", **FAST
    )
    assert [p.name for p in (i.output for i in result.done)] == ["good.jpg"]
    failed = {p.name: m for p, m in result.failed}
    assert set(failed) == {"missing.png", "empty.png", "good.png", "text.png"}
    assert "is empty (0 bytes)" in failed["empty.png"] and "not an image" in failed["text.png"]
    assert "same output" in failed["good.png"]
    err = capsys.readouterr().err
    assert err.count(JPEG_LOSSY_WARNING) == 1 and "4 files failed" in err
    doc = json.loads(sidecar_path(tmp_path / "out" / "good.jpg").read_text())
    assert JPEG_LOSSY_WARNING in doc["warnings"]
    assert "## Failed" in (tmp_path / "out" / "summary.md").read_text()


def test_output_folder_on_the_inputs_never_overwrites_them(tmp_path, weights_dir):
    src = tmp_path / "in"
    _write(src / "photo.jpg", "golden_retriever")
    art = _write(src / "art.png", "Labrador_retriever")
    before = art.read_bytes()
    result = run_batch([src], src, "cloak", style="sketch", **FAST)
    assert art.read_bytes() == before
    assert [p.name for p, _ in result.failed] == ["art.png"]
    assert "never overwrites" in result.failed[0][1]
    assert [i.output.name for i in result.done] == ["photo.png"]
    # a rerun recognises photo.png as an output (it has a sidecar), not as a new input
    again = run_batch([src], src, "cloak", style="sketch", **FAST)
    assert [i.output.name for i in again.skipped] == ["photo.png"] and not again.done
    assert [p.name for p, _ in again.failed] == ["art.png"]


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, weights_dir):
    src = tmp_path / "in"
    _write(src / "a.jpg", "golden_retriever")
    out = src / "protected"
    run_batch([src], out, "cloak", style="sketch", **FAST)
    (out / "a.png.json").unlink()  # even without its sidecar, an output is not taken as an input
    again = run_batch([src], out, "cloak", style="sketch", **FAST)
    # ... and, having no report of ours beside it any more, it is kept rather than overwritten
    assert not again.done and [p.name for p, _ in again.failed] == ["a.jpg"]
    assert "which sfumato did not write" in again.failed[0][1]
