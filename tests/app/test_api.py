"""The app's HTTP API: every endpoint, bad uploads and requests, and a job surviving a restart."""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient
from tests.app.conftest import HEADERS, JOB_TIMEOUT, png_bytes, upload, upload_ids, wait_for_job

from sfumato.app.config import AppConfig
from sfumato.app.server import CLIENT_HEADER, STATIC, create_app
from sfumato.styles import STYLE_NAMES

# --------------------------------------------------------------------------------- page and info


def test_page_and_static_files_are_served_with_a_strict_policy(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "app.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.text) > 1000


def test_the_page_loads_nothing_from_the_network() -> None:
    """Offline: no URL with a host in the page's files (the CSP enforces it in the browser too)."""
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
        assert "@import" not in text, path.name


def test_info_lists_every_choice_with_what_it_trades(config: AppConfig, client_for) -> None:
    info = client_for(config, start_worker=False).get("/api/info").json()
    choices = info["choices"]
    assert [s["name"] for s in choices["styles"]] == ["auto", *STYLE_NAMES]
    assert [i["name"] for i in choices["intensities"]] == ["low", "default", "high"]
    assert [s["name"] for s in choices["speeds"]] == ["fast", "default", "thorough"]
    assert [f["name"] for f in choices["families"]] == ["auto", "flux2", "sana"]  # no other encoder at hand
    for group in ("modes", "styles", "intensities", "speeds", "families"):
        assert all(len(c["help"]) > 20 for c in choices[group]), group
    assert info["max_upload_bytes"] == config.max_upload_bytes and info["version"]


def test_requests_from_elsewhere_are_refused(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    # DNS rebinding: a page of another site that resolves its name to 127.0.0.1
    assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/api/info", headers={"host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/info", headers={"host": "[::1]:8765"}).status_code == 200
    # cross-site form posts cannot add the header
    bare = TestClient(client.app, base_url="http://localhost")
    response = bare.post("/api/uploads", files=[("files", ("a.png", png_bytes(), "image/png"))])
    assert response.status_code == 403 and "x-sfumato" in response.json()["error"]
    assert bare.post("/api/jobs", json={}).status_code == 403


# -------------------------------------------------------------------------------------- uploads


def _gif_animation() -> bytes:
    frames = [Image.new("RGB", (80, 80), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def test_uploads_accept_images_and_name_every_bad_file(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    good = png_bytes()
    small = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(small, format="PNG")
    result = upload(
        client,
        ("goldfish.png", good),
        ("empty.png", b""),
        ("notes.png", b"shopping list: eggs, milk"),
        ("cut.png", good[: len(good) // 2]),
    )
    more = upload(client, ("tiny.png", small.getvalue()), ("moving.gif", _gif_animation()))
    assert [u["name"] for u in result["accepted"]] == ["goldfish.png"]
    errors = {r["name"]: r["error"] for r in result["rejected"] + more["rejected"]}
    assert errors["empty.png"] == "empty.png is empty (0 bytes)"
    assert errors["notes.png"] == "notes.png is not an image file this app can read"
    assert errors["cut.png"].startswith("cut.png is truncated or corrupt")
    assert errors["tiny.png"] == "tiny.png is 32x32; sfumato needs at least 64 px on each side"
    assert errors["moving.gif"].startswith("moving.gif is animated (2 frames)")
    assert not more["accepted"]
    # nothing of the rejected files is kept
    assert len(list(config.uploads_dir.iterdir())) == 1


def test_all_rejected_is_422_and_malformed_uploads_are_400(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    response = client.post("/api/uploads", files=[("files", ("x.png", b"nope", "image/png"))])
    assert response.status_code == 422 and response.json()["rejected"][0]["name"] == "x.png"
    response = client.post("/api/uploads", files=[("other", ("x.png", png_bytes(), "image/png"))])
    assert response.status_code == 400 and "'files'" in response.json()["error"]
    response = client.post("/api/uploads", json={"files": []})
    assert response.status_code == 400 and "multipart" in response.json()["error"]


def test_upload_size_limits(tmp_path: Path, weights_dir: Path, client_for) -> None:
    config = AppConfig.make(tmp_path / "data", weights_dir=weights_dir, max_upload_mb=0.05)  # 51 KB
    client = client_for(config, start_worker=False)
    big = io.BytesIO()
    Image.frombytes("RGB", (160, 160), bytes(range(256)) * 300).save(big, format="BMP")  # 77 KB
    result = upload(client, ("big.bmp", big.getvalue()), ("ok.png", png_bytes()))
    assert [u["name"] for u in result["accepted"]] == ["ok.png"]
    assert result["rejected"] == [
        {"name": "big.bmp", "error": "big.bmp is larger than the limit of 51 KB a file"}
    ]
    # a request past the cap is refused from its header, before anything is read
    huge = b"x" * (config.max_upload_bytes * 8 + (2 << 20))
    response = client.post("/api/uploads", files=[("files", ("huge.png", huge, "image/png"))])
    assert response.status_code == 413 and "larger than the limit" in response.json()["error"]
    # and one without a length (chunked) is cut off once it passes the cap
    head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="huge.png"\r\n\r\n'
    chunks = iter([head, *[b"x" * (1 << 20)] * 3, b"\r\n--b--\r\n"])
    response = client.post(
        "/api/uploads", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413 and "larger than the limit" in response.json()["error"]


def test_file_names_never_reach_a_path(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    markup = "<img src=x onerror=alert(1)>.png"
    result = upload(client, ("../../escape.png", png_bytes()), (markup, png_bytes()))
    names = [u["name"] for u in result["accepted"]]
    assert names == ["escape.png", markup]  # kept as is: the page shows names as text, never as HTML
    assert not (config.data_dir.parent / "escape.png").exists()
    stored = sorted(p.name for p in config.uploads_dir.iterdir())
    assert stored == sorted(u["id"] for u in result["accepted"])
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) for s in stored)


def test_upload_record_images_and_style_previews(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    (upload_id,) = upload_ids(client, ("fish.png", png_bytes(size=(96, 72))))
    record = client.get(f"/api/uploads/{upload_id}").json()
    assert record["name"] == "fish.png" and (record["width"], record["height"]) == (96, 72)
    original = Image.open(io.BytesIO(client.get(f"/api/uploads/{upload_id}/original.png").content))
    assert original.size == (96, 72)
    thumb = client.get(f"/api/uploads/{upload_id}/thumb.png")
    assert thumb.headers["content-type"] == "image/png"
    for style in STYLE_NAMES:
        response = client.get(f"/api/uploads/{upload_id}/styles/{style}.png")
        assert response.status_code == 200, style
        assert Image.open(io.BytesIO(response.content)).size == (96, 72)
    assert client.get(f"/api/uploads/{upload_id}/styles/cubism.png").status_code == 404
    assert client.get(f"/api/uploads/{upload_id}/secret.png").status_code == 404
    assert client.get("/api/uploads/0123456789abcdef").status_code == 404
    assert client.get("/api/uploads/0123456789abcdef/thumb.png").status_code == 404
    assert client.get("/api/uploads/..%2F..%2Fsfumato.db").status_code == 404


# ----------------------------------------------------------------------------------------- jobs


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": "glaze", "images": []}, "mode must be one of cloak, shade"),
        ({"mode": "cloak"}, "images must be a non-empty list"),
        ({"mode": "cloak", "images": ["0123456789abcdef"]}, "no uploaded image '0123456789abcdef'"),
        ({"mode": "cloak", "images": ["../etc/passwd"]}, "no uploaded image '../etc/passwd'"),
        ({"mode": "cloak", "images": "UPLOAD", "style": "cubism"}, "images must be a non-empty list"),
        ({"mode": "cloak", "images": ["UPLOAD"], "style": "cubism"}, "style must be one of auto, sketch"),
        ({"mode": "cloak", "images": ["UPLOAD"], "speed": "ludicrous"}, "speed must be one of fast"),
        ({"mode": "cloak", "images": ["UPLOAD"], "intensity": 11}, "intensity must be one of low"),
        ({"mode": "shade", "images": ["UPLOAD"], "as_concept": "cat"}, "concept is missing"),
        ({"mode": "shade", "images": ["UPLOAD"], "concept": "dog", "as_concept": "Dog"}, "must differ"),
        ({"mode": "shade", "images": ["UPLOAD"], "concept": "dog", "as_concept": "cat"}, "targets must be"),
        (
            {
                "mode": "shade",
                "images": ["UPLOAD"],
                "concept": "dog",
                "as_concept": "cat",
                "targets": ["UPLOAD"],
            },
            "both a source and a target",
        ),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_job_requests_get_a_clear_message(config: AppConfig, client_for, body: Any, message: str) -> None:
    client = client_for(config, start_worker=False)
    (upload_id,) = upload_ids(client, ("fish.png", png_bytes()))
    if isinstance(body, dict):
        body = {k: ([upload_id] if v == ["UPLOAD"] else v) for k, v in body.items()}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_job_body_must_be_json(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    response = client.post("/api/jobs", content=b"mode=cloak", headers={"content-type": "text/plain"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]


def test_queued_job_listing_and_cancel(config: AppConfig, client_for) -> None:
    client = client_for(config, start_worker=False)
    ids = upload_ids(client, ("a.png", png_bytes()), ("b.png", png_bytes("tabby")))
    created = client.post("/api/jobs", json={"mode": "cloak", "images": ids, "speed": "fast"})
    assert created.status_code == 201
    job = created.json()
    assert job["status"] == "queued" and [i["name"] for i in job["items"]] == ["a.png", "b.png"]
    assert job["progress"]["fraction"] == 0 and job["zip"] is None
    listed = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["counts"] == {"queued": 2}
    assert client.get(f"/api/jobs/{job['id']}/download.zip").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}/images/0/protected.png").status_code == 404
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert {i["status"] for i in cancelled.json()["items"]} == {"cancelled"}
    again = client.post(f"/api/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "cancelled already" in again.json()["error"]
    assert client.post("/api/jobs/0123456789abcdef/cancel").status_code == 404
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404


def test_cloak_job_runs_to_the_end_with_figures_heat_maps_and_downloads(
    config: AppConfig, client_for
) -> None:
    client = client_for(config)
    ids = upload_ids(client, ("fish.png", png_bytes()), ("fish.png", png_bytes("tabby", (80, 96))))
    job = client.post(
        "/api/jobs", json={"mode": "cloak", "images": ids, "style": "sketch", "speed": "fast"}
    ).json()
    job = wait_for_job(client, job["id"])
    assert job["status"] == "done", job
    assert job["progress"]["fraction"] == 1 and job["progress"]["seconds_left"] == 0
    for item in job["items"]:
        assert item["status"] == "done" and item["fraction"] == 1 and item["seconds"] > 0
        report = item["report"]
        assert report["style"] == "sketch" and report["settings"]["speed"] == "fast"
        assert report["effect"]["quality"]["psnr_db"] > 30
        assert 0 < report["effect"]["latents"]["flux2"]["fraction_moved"] < 1
        assert 0 <= report["visibility"]["visible_fraction"] <= 1
    assert [i["output_name"] for i in job["items"]] == ["fish.png", "fish (2).png"]

    second = job["items"][1]
    protected = client.get(second["urls"]["protected"])
    assert Image.open(io.BytesIO(protected.content)).size == (80, 96)
    download = client.get(second["urls"]["download"])
    assert download.headers["content-disposition"].startswith('attachment; filename="fish (2).png"')
    heat = Image.open(io.BytesIO(client.get(second["urls"]["heatmap"]).content))
    assert heat.size == (80, 96) and heat.mode == "RGB"
    assert client.get(f"/api/jobs/{job['id']}/images/7/heatmap.png").status_code == 404

    archive = client.get(job["zip"])
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = sorted(zf.namelist())
        assert names == ["fish (2).png", "fish (2).png.json", "fish.png", "fish.png.json"]
        assert Image.open(io.BytesIO(zf.read("fish.png"))).size == (96, 72)
        assert '"psnr_db"' in zf.read("fish.png.json").decode()
    assert not list((config.jobs_dir / job["id"]).glob("*.zip"))  # the temporary zip is removed


def test_a_job_protects_against_the_chosen_family(config: AppConfig, client_for) -> None:
    """The default job attacks every available family (weighted by the lab's table); a chosen one
    alone; a family whose encoder is not on this machine is refused before the job starts."""
    client = client_for(config)
    ids = upload_ids(client, ("fish.png", png_bytes()))
    refused = client.post("/api/jobs", json={"mode": "cloak", "images": ids, "family": "sdxl"})
    assert refused.status_code == 400 and "family must be one of auto, flux2, sana" in refused.json()["error"]
    reports = {}
    for family in ("auto", "sana"):
        job = client.post(
            "/api/jobs",
            json={"mode": "cloak", "images": ids, "style": "sketch", "speed": "fast", "family": family},
        ).json()
        assert job["options"]["family"] == family
        job = wait_for_job(client, job["id"])
        assert job["status"] == "done", job
        reports[family] = job["items"][0]["report"]
    assert list(reports["auto"]["settings"]["encoders"]) == ["flux2", "sana"]
    assert list(reports["sana"]["settings"]["encoders"]) == ["sana"]
    assert not reports["sana"]["effect"]["latents"]["flux2"]["attacked"]


def test_shade_job_writes_captions(config: AppConfig, client_for) -> None:
    client = client_for(config)
    (dog,) = upload_ids(client, ("dog.png", png_bytes("golden_retriever")))
    (cat,) = upload_ids(client, ("cat.png", png_bytes("tabby", (120, 90))))
    job = client.post(
        "/api/jobs",
        json={"mode": "shade", "images": [dog], "concept": "dog", "as_concept": "cat", "targets": [cat]},
    ).json()
    assert job["options"]["targets"] == [{"id": cat, "name": "cat.png", "size": [120, 90]}]
    job = wait_for_job(client, job["id"])
    assert job["status"] == "done", job
    report = job["items"][0]["report"]
    assert report["caption"] == "dog" and report["effect"]["latents"]["flux2"]["fraction_moved"] > 0
    with zipfile.ZipFile(io.BytesIO(client.get(job["zip"]).content)) as zf:
        assert sorted(zf.namelist()) == ["dog.png", "dog.png.json", "dog.txt"]
        assert zf.read("dog.txt") == b"dog\n"


def test_a_job_survives_a_server_restart(config: AppConfig, client_for) -> None:
    """Stop the first server after one image of two; the second finishes the job without redoing it."""
    stopped: list[str] = []

    def stop_after_first_image(kind: str, job_id: str, message: str) -> None:
        if kind == "image" and not stopped:
            stopped.append(message)
            app.state.worker.request_stop()

    app = create_app(config, on_event=stop_after_first_image)
    with TestClient(app, base_url="http://localhost", headers=dict(HEADERS)) as first:
        ids = upload_ids(first, ("a.png", png_bytes()), ("b.png", png_bytes("tabby")))
        body = {"mode": "cloak", "images": ids, "style": "comic", "speed": "fast"}
        job_id = first.post("/api/jobs", json=body).json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT
        while not stopped and time.monotonic() < deadline:
            time.sleep(0.1)
    # the server has stopped (the context's exit waits for the worker)
    assert stopped == ["1/2 a.png"]

    half = client_for(config, start_worker=False).get(f"/api/jobs/{job_id}").json()
    assert half["status"] == "running" and [i["status"] for i in half["items"]] == ["done", "queued"]
    done_first = half["items"][0]
    output = config.jobs_dir / job_id / "0.png"
    mtime = output.stat().st_mtime_ns

    restarted = client_for(config)
    job = wait_for_job(restarted, job_id)
    assert job["status"] == "done" and [i["status"] for i in job["items"]] == ["done", "done"]
    assert job["items"][0]["finished"] == done_first["finished"]  # not redone
    assert job["items"][0]["report"] == done_first["report"]
    assert output.stat().st_mtime_ns == mtime
    assert [j["id"] for j in restarted.get("/api/jobs").json()["jobs"]] == [job_id]

    # and a third start shows the finished job again, results and all
    again = client_for(config, start_worker=False)
    shown = again.get(f"/api/jobs/{job_id}").json()
    assert shown["status"] == "done" and shown["zip"]
    with zipfile.ZipFile(io.BytesIO(again.get(shown["zip"]).content)) as zf:
        assert sorted(n for n in zf.namelist() if n.endswith(".png")) == ["a.png", "b.png"]


def test_the_page_sends_the_header_the_server_wants() -> None:
    assert '"X-Sfumato": "1"' in (STATIC / "app.js").read_text()
    assert CLIENT_HEADER == "x-sfumato" and HEADERS == {"X-Sfumato": "1"}
