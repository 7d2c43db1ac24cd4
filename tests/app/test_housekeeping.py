"""Issue 23 in the app: verdicts, honest progress, rerun, delete, estimates, the size cap, privacy."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

from PIL import Image
from tests.app.conftest import png_bytes, upload, upload_ids, wait_for_job

from sfumato.app.config import AppConfig, private_umask
from sfumato.app.progress import BENCHMARK_SECONDS_PER_PIXEL


def flat_png(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()


def test_cancelled_progress_counts_only_what_was_done(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    ids = upload_ids(client, ("a.png", png_bytes()), ("b.png", png_bytes()))
    job = client.post("/api/jobs", json={"mode": "cloak", "images": ids}).json()
    store = client.app.state.store
    store.set_item(job["id"], 0, "done", seconds=1.0, report={})
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["progress"]["fraction"] == 0.5  # one of two, not 100 %
    assert [i["fraction"] for i in cancelled["items"]] == [1.0, 0.0]


def test_rerun_queues_the_cancelled_images_and_runs_them(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    ids = upload_ids(client, ("a.png", png_bytes("goldfish", (64, 64))))
    job_id = client.post("/api/jobs", json={"mode": "cloak", "images": ids, "speed": "fast"}).json()["id"]
    assert client.post(f"/api/jobs/{job_id}/rerun").status_code == 409  # still queued: nothing to rerun
    client.post(f"/api/jobs/{job_id}/cancel")
    rerun = client.post(f"/api/jobs/{job_id}/rerun")
    assert rerun.status_code == 200
    assert rerun.json()["status"] == "queued" and rerun.json()["items"][0]["status"] == "queued"
    assert client.post("/api/jobs/0123456789abcdef/rerun").status_code == 404

    running = client_for(config)  # a worker now: the rerun image is protected
    job = wait_for_job(running, job_id)
    assert job["status"] == "done" and job["items"][0]["status"] == "done"


def test_verdict_of_a_flat_image_is_none_and_the_estimate_uses_this_machine(
    config: AppConfig, client_for
) -> None:
    client = client_for(config)
    ids = upload_ids(client, ("flat.png", flat_png()), ("fish.png", png_bytes("goldfish", (64, 64))))
    before = client.post("/api/estimate", json={"images": ids, "speed": "fast", "mode": "cloak"}).json()
    assert before == {
        "seconds": round(2 * 64 * 64 * BENCHMARK_SECONDS_PER_PIXEL["fast"], 1),
        "measured": False,
        "pixels": 2 * 64 * 64,
    }
    body = {"mode": "cloak", "images": ids, "style": "sketch", "speed": "fast"}
    job = wait_for_job(client, client.post("/api/jobs", json=body).json()["id"])
    flat, fish = job["items"]
    assert (
        flat["verdict"]["level"] == "none"
        or flat["report"]["effect"]["latents"]["flux2"]["fraction_moved"] >= 0.02
    )
    for item in job["items"]:
        assert item["verdict"]["level"] in ("none", "weak")  # never "strong" in FLUX.2 space
        assert item["verdict"]["lab"].endswith("#the-lab-measured")
    after = client.post("/api/estimate", json={"images": ids, "speed": "fast", "mode": "cloak"}).json()
    assert after["measured"] is True and after["seconds"] > 0
    assert client.post("/api/estimate", json={"images": "x"}).status_code == 400


def test_delete_removes_the_job_its_results_and_uploads_no_other_job_uses(
    config: AppConfig, client_for
) -> None:
    client = client_for(config, start_worker=False)
    a, b = upload_ids(client, ("a.png", png_bytes()), ("b.png", png_bytes("tabby")))
    first = client.post("/api/jobs", json={"mode": "cloak", "images": [a, b]}).json()["id"]
    second = client.post("/api/jobs", json={"mode": "cloak", "images": [b]}).json()["id"]
    assert client.delete(f"/api/jobs/{first}").status_code == 409  # queued: cancel first
    client.post(f"/api/jobs/{first}/cancel")
    (config.jobs_dir / first).mkdir(parents=True, exist_ok=True)
    (config.jobs_dir / first / "0.png").write_bytes(b"result")
    deleted = client.delete(f"/api/jobs/{first}")
    assert deleted.status_code == 200 and deleted.json()["uploads_deleted"] == 1
    assert not (config.jobs_dir / first).exists()
    assert not (config.uploads_dir / a).exists() and client.get(f"/api/uploads/{a}").status_code == 404
    assert (config.uploads_dir / b).exists()  # the second job still uses it
    assert [j["id"] for j in client.get("/api/jobs").json()["jobs"]] == [second]
    assert client.get(f"/api/jobs/{first}").status_code == 404
    assert client.delete(f"/api/jobs/{first}").status_code == 404


def test_jobs_list_names_the_running_or_newest_job_first(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    (a,) = upload_ids(client, ("a.png", png_bytes()))
    first = client.post("/api/jobs", json={"mode": "cloak", "images": [a]}).json()["id"]
    second = client.post("/api/jobs", json={"mode": "cloak", "images": [a]}).json()["id"]
    client.post(f"/api/jobs/{second}/cancel")
    assert client.get("/api/jobs").json()["current"] == first  # queued beats newer but over
    client.post(f"/api/jobs/{first}/cancel")
    assert client.get("/api/jobs").json()["current"] == second


def test_images_above_the_size_cap_are_refused_before_decoding(tmp_path, weights_dir, client_for) -> None:
    config = AppConfig.make(tmp_path / "data", weights_dir=weights_dir, device="cpu", max_pixels=5000)
    client = client_for(config, start_worker=False)
    result = upload(
        client, ("big.png", png_bytes("goldfish", (96, 72))), ("ok.png", png_bytes("goldfish", (64, 64)))
    )
    assert [u["name"] for u in result["accepted"]] == ["ok.png"]
    assert "--max-pixels" in result["rejected"][0]["error"] and "96x72" in result["rejected"][0]["error"]
    info = client.get("/api/info").json()
    assert info["max_pixels"] == 5000 and info["large_pixels"] > 0


def test_upload_messages_name_no_library(config: AppConfig, client_for) -> None:
    result = upload(client_for(config, start_worker=False), ("notes.png", b"this is not an image at all"))
    assert "Pillow" not in result["rejected"][0]["error"]


def test_data_folder_is_private_and_files_written_later_are_too(tmp_path, weights_dir, client_for) -> None:
    old = os.umask(0o022)
    try:
        config = AppConfig.make(tmp_path / "data", weights_dir=weights_dir, device="cpu")
        client_for(config, start_worker=False)
        for folder in (config.data_dir, config.uploads_dir, config.jobs_dir):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(config.db_path.stat().st_mode) == 0o600
        assert private_umask() == 0o022
        (config.data_dir / "later").write_bytes(b"x")
        assert stat.S_IMODE((config.data_dir / "later").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_zip_entries_unpack_0644_and_reports_name_the_target_not_a_path(
    config: AppConfig, client_for
) -> None:
    client = client_for(config)
    (dog,) = upload_ids(client, ("dog.png", png_bytes("golden_retriever", (64, 64))))
    (cat,) = upload_ids(client, ("my cat.png", png_bytes("tabby", (64, 64))))
    body = {
        "mode": "shade",
        "images": [dog],
        "concept": "dog",
        "as_concept": "cat",
        "targets": [cat],
        "speed": "fast",
    }
    job = wait_for_job(client, client.post("/api/jobs", json=body).json()["id"])
    assert job["items"][0]["report"]["settings"]["target_name"] == "my cat.png"
    with zipfile.ZipFile(io.BytesIO(client.get(job["zip"]).content)) as zf:
        for info in zf.infolist():
            assert stat.S_IMODE(info.external_attr >> 16) == 0o644, info.filename
        report = json.loads(zf.read("dog.png.json"))
    assert str(config.data_dir) not in json.dumps(report)


def test_auto_style_is_one_style_for_the_whole_job(config: AppConfig, client_for) -> None:
    """As the CLI does for a folder: a mimic trained on the job's images sees one wrong target."""
    client = client_for(config)
    photos = ("goldfish", "golden_retriever", "tabby")
    ids = upload_ids(client, *((f"{name}.png", png_bytes(name, (64, 64))) for name in photos))
    body = {"mode": "cloak", "images": ids, "style": "auto", "speed": "fast"}
    job = wait_for_job(client, client.post("/api/jobs", json=body).json()["id"])
    reports = [item["report"] for item in job["items"]]
    styles = {r["settings"]["style"] for r in reports}
    assert len(styles) == 1, styles
    assert all(r["style_choice"]["auto"] == "set" and r["style_choice"]["works"] == 3 for r in reports)
