"""Issue 23's reliability findings for the batch: the user's files kept, image and report always a
pair, leftovers cleaned, the output folder checked first, one collision rule, nothing skipped silently."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from PIL import Image
from tests.conftest import photo

from sfumato import batch as batch_module
from sfumato import outputs
from sfumato.batch import BatchError, run_batch
from sfumato.inspect import sidecar_path

FAST = dict(steps=1, speed="fast", device="cpu", progress=False, verbose=False, style="sketch")


def _write(path: Path, pattern: str = "golden_retriever", size: tuple[int, int] = (128, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    photo(pattern, size).save(path)
    return path


def _count_cloaks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = batch_module.cloak

    def counting(image, *args, **kwargs):
        calls.append(Path(image.path).name)
        return real(image, *args, **kwargs)

    monkeypatch.setattr(batch_module, "cloak", counting)
    return calls


def test_users_caption_beside_the_image_is_kept(tmp_path, capsys, weights_dir):
    """Finding 2: shade DIR -o DIR must not replace the dataset's own caption a.txt."""
    src, cats = tmp_path / "set", tmp_path / "cats"
    _write(src / "a.jpg")
    (src / "a.txt").write_text("a golden retriever lying on the grass\n")
    _write(cats / "cat.jpg", "tabby")
    kw = {k: v for k, v in FAST.items() if k != "style"}
    result = run_batch([src], src, "shade", concept="dog", as_concept="cat", target_images=cats, **kw)
    assert [i.output.name for i in result.done] == ["a.png"]
    assert (src / "a.txt").read_text() == "a golden retriever lying on the grass\n"
    assert any("a.txt" in k and "sfumato did not write it" in k for k in result.kept)
    assert "kept" in capsys.readouterr().err
    assert json.loads(sidecar_path(src / "a.png").read_text())["caption_file"] is None
    # a caption sfumato wrote itself is still its own to rewrite
    other = tmp_path / "other"
    _write(other / "b.jpg")
    run_batch([other], tmp_path / "out", "shade", concept="dog", as_concept="cat", target_images=cats, **kw)
    assert (tmp_path / "out" / "b.txt").read_text() == "dog\n"
    again = run_batch(
        [other], tmp_path / "out", "shade", concept="puppy", as_concept="cat", target_images=cats, **kw
    )
    assert len(again.done) == 1 and not again.kept
    assert (tmp_path / "out" / "b.txt").read_text() == "puppy\n"


def test_foreign_summary_files_are_kept(tmp_path, weights_dir):
    """Finding 2: a summary.md/.csv that sfumato did not write stays; ours goes beside it."""
    _write(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.md").write_text("my own notes\n")
    (out / "summary.csv").write_text("title,year\nOrchard,1888\n")
    result = run_batch([tmp_path / "in"], out, "cloak", **FAST)
    assert (out / "summary.md").read_text() == "my own notes\n"
    assert (out / "summary.csv").read_text() == "title,year\nOrchard,1888\n"
    assert (out / "sfumato-summary.md").read_text().startswith("# sfumato batch summary")
    assert (out / "sfumato-summary.csv").read_text().startswith("image,status")
    assert len(result.kept) == 2
    # an image sfumato did not write is kept as well
    (out / "a.png.json").unlink()
    again = run_batch([tmp_path / "in"], out, "cloak", **FAST)
    assert not again.done and "which sfumato did not write" in again.failed[0][1]


def test_an_image_is_never_skipped_on_another_runs_report(tmp_path, monkeypatch, weights_dir):
    """Finding 3: a run killed between its report and its image leaves a pair a rerun recomputes."""
    _write(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    run_batch([tmp_path / "in"], out, "cloak", **FAST)
    default_doc = json.loads(sidecar_path(out / "a.png").read_text())
    assert default_doc["output_sha256"]

    # a high-intensity rerun killed after writing its report, before its image
    def killed(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "atomic_write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        run_batch([tmp_path / "in"], out, "cloak", **{**FAST, "intensity": "high"})
    monkeypatch.undo()
    high_doc = json.loads(sidecar_path(out / "a.png").read_text())
    assert high_doc["settings"]["intensity"] == "high"  # the report came first...
    calls = _count_cloaks(monkeypatch)
    again = run_batch([tmp_path / "in"], out, "cloak", **{**FAST, "intensity": "high"})
    assert calls == ["a.png"] and len(again.done) == 1  # ...but its image never did: recomputed

    # an image replaced behind a report's back (the old order: image first, killed before the report)
    Image.new("RGB", (128, 96), "white").save(out / "a.png")
    back = run_batch([tmp_path / "in"], out, "cloak", **{**FAST, "intensity": "high"})
    assert len(back.done) == 1 and not back.skipped


def test_leftover_temporary_files_are_removed(tmp_path, weights_dir):
    """Finding 4: .name.png.<hex>.tmp files a kill left are removed on the next run."""
    _write(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    run_batch([tmp_path / "in"], out, "cloak", **FAST)
    leftovers = [
        out / ".a.png.deadbeef.tmp",
        out / ".a.png.json.0123abcd.tmp",
        out / ".summary.md.aaaa0000.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    own = out / ".notes.txt.tmp"
    own.write_text("mine")
    again = run_batch([tmp_path / "in"], out, "cloak", **FAST)
    assert len(again.skipped) == 1
    assert not any(p.exists() for p in leftovers) and own.exists()


def test_output_folder_problems_stop_before_any_compute(tmp_path, monkeypatch, weights_dir):
    """Finding 5: -o a file, or a read-only folder, is one clear error before the first image."""
    _write(tmp_path / "in" / "a.png")
    calls = _count_cloaks(monkeypatch)
    a_file = tmp_path / "out.png"
    a_file.write_bytes(b"x")
    with pytest.raises(BatchError, match="is a file"):
        run_batch([tmp_path / "in"], a_file, "cloak", **FAST)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(outputs.os, "open", read_only)
    with pytest.raises(BatchError, match="read-only"):
        run_batch([tmp_path / "in"], tmp_path / "ro", "cloak", **FAST)
    assert calls == []


def test_a_full_disk_stops_the_batch_at_the_first_image(tmp_path, monkeypatch, weights_dir):
    """Finding 5: after ENOSPC the remaining images are not computed."""
    _write(tmp_path / "in" / "a.png")
    _write(tmp_path / "in" / "b.png", "Labrador_retriever")
    calls = _count_cloaks(monkeypatch)

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(batch_module, "atomic_write_text", full)
    result = run_batch([tmp_path / "in"], tmp_path / "out", "cloak", **FAST)
    assert calls == ["a.png"] and result.stopped and "disk is full" in result.stopped
    assert not result.ok


def test_two_folders_with_the_same_name_fail_only_the_clashing_file(tmp_path, weights_dir):
    """Finding 6: one rule for every clash: the later file fails, the batch goes on."""
    _write(tmp_path / "one" / "a.png")
    _write(tmp_path / "two" / "a.png", "Labrador_retriever")
    _write(tmp_path / "two" / "c.png", "tabby")
    result = run_batch([tmp_path / "one", tmp_path / "two"], tmp_path / "out", "cloak", **FAST)
    assert sorted(i.output.name for i in result.done) == ["a.png", "c.png"]
    assert [p.parent.name for p, _ in result.failed] == ["two"]
    assert "same output" in result.failed[0][1] and str(tmp_path / "one" / "a.png") in result.failed[0][1]


def test_ignored_files_and_conversions_are_named(tmp_path, capsys, weights_dir):
    """Finding 7: a GIF and a broken link are counted and named; a conversion is said on screen."""
    src = tmp_path / "in"
    photo("golden_retriever").convert("P").save(_write(src / "pal.png"))
    photo("tabby").save(src / "anim.gif")
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")
    result = run_batch([src], tmp_path / "out", "cloak", **FAST)
    assert sorted(p.name for p, _ in result.ignored) == ["anim.gif", "gone.png"]
    assert "2 ignored" in result.summary_line()
    err = capsys.readouterr().err
    assert "anim.gif" in err and "broken link" in err
    assert "note: pal.png: palette image converted to RGB" in err
