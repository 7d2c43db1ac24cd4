"""The app's HTTP side: the page, a JSON API over uploads and jobs, and :func:`serve`.

Starlette (with uvicorn) because it is small, well kept and needs nothing else; the page is plain
HTML, CSS and JavaScript served from package data, so there is no build step and nothing is loaded
from the network (a Content-Security-Policy header holds the page to that).

Endpoints (all JSON unless an image or a zip):

- ``GET /``: the page; ``GET /static/...``: its script and style sheet
- ``GET /api/info``: version, menus (styles, presets with what each trades), limits
- ``POST /api/uploads``: multipart ``files``; per file accepted (id, size) or rejected (message)
- ``GET /api/uploads/{id}``; ``.../thumb.png``, ``.../original.png``, ``.../styles/{style}.png``
- ``POST /api/jobs``; ``GET /api/jobs`` (``current``: the running or newest job); ``GET /api/jobs/{id}``
  (with progress, time left and each image's verdict); ``POST /api/jobs/{id}/cancel``,
  ``POST /api/jobs/{id}/rerun`` (its cancelled and failed images), ``DELETE /api/jobs/{id}`` (the job, its
  results and the uploads no other job uses)
- ``POST /api/estimate``: seconds a job would take, before starting it
- ``GET /api/jobs/{id}/images/{idx}/protected.png`` (``?download=1`` to save it),
  ``.../heatmap.png``; ``GET /api/jobs/{id}/download.zip``

Requests must name this machine as their host (a web page elsewhere cannot reach the app through a
DNS trick), and every POST must carry the ``X-Sfumato`` header, which a page of another site cannot
add without the server's consent (so no other site can make the browser upload or start jobs).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

import python_multipart  # noqa: F401 - Starlette parses uploads with it; missing, fail here with its name
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sfumato import __version__
from sfumato.app.config import (
    DEFAULT_PORT,
    LARGE_PIXELS,
    AppConfig,
    is_loopback,
    make_private,
    private_umask,
)
from sfumato.app.db import Store
from sfumato.app.downloads import build_zip, content_disposition, output_names
from sfumato.app.jobs import JobRequestError, choices, parse_job_request, pick
from sfumato.app.progress import estimate, job_progress
from sfumato.app.uploads import (
    UploadRejected,
    accept_upload,
    format_mb,
    original_path,
    style_preview,
    thumb_path,
    upload_dir,
    valid_id,
)
from sfumato.app.words import FIGURE_HELP, VERDICT_WORDS
from sfumato.app.worker import EventFn, Worker, heat_path, result_path
from sfumato.families import available_families
from sfumato.verdict import lab_text, verdict

STATIC = Path(str(resources.files("sfumato.app") / "static"))
CLIENT_HEADER = "x-sfumato"
REQUEST_OVERHEAD = 1 << 20  # multipart framing and form fields, on top of the files
FILES_PER_REQUEST = 8  # the page sends one file a request; the API takes a few at once
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class _Guard:
    """ASGI middleware: host check, the POST header, security headers, and the upload size cap."""

    def __init__(self, app: Any, *, loopback_only: bool, max_body: int) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.loopback_only and not is_loopback(_host_name(headers.get("host", ""))):
            await _plain(send, 400, "this app answers only requests addressed to localhost")
            return
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and CLIENT_HEADER not in headers:
            await _plain(send, 403, f"requests that change anything must carry the {CLIENT_HEADER} header")
            return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _plain(
                send,
                413,
                f"the upload of {format_mb(int(length))} is larger than the limit of "
                f"{format_mb(self.max_body)} a request; send fewer or smaller files at once",
            )
            return

        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _BodyTooLarge
            return message

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, counted, secured)


def _host_name(host: str) -> str:
    """``localhost:8765`` -> ``localhost``; ``[::1]:8765`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _plain(send: Send, status: int, text: str) -> None:
    body = JSONResponse({"error": text}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})


# ------------------------------------------------------------------------------------------ helpers


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _state(request: Request) -> tuple[AppConfig, Store, Worker]:
    app = request.app
    return app.state.config, app.state.store, app.state.worker


def _path_id(request: Request, key: str = "id") -> str:
    value = request.path_params[key]
    if not valid_id(value):
        raise HTTPException(404, f"no such {key.replace('_', ' ')}: {value!r}")
    return value


def _image(path: Path, what: str) -> FileResponse:
    if not path.is_file():
        raise HTTPException(404, f"{what} is not there (not made yet, or removed)")
    return FileResponse(path, media_type="image/png")


def _job_view(config: AppConfig, store: Store, worker: Worker, job: dict[str, Any]) -> dict[str, Any]:
    """The job as the page needs it: record, progress, time left, and the URLs of each image."""
    progress = job_progress(job, worker.live(), store.seconds_per_pixel(job["speed"], job["mode"]))
    names = output_names(job["items"])
    base = f"/api/jobs/{job['id']}"
    for item, fraction in zip(job["items"], progress["items"], strict=True):
        item["fraction"] = fraction
        item["output_name"] = names[item["idx"]]
        item["urls"] = {
            "thumb": f"/api/uploads/{item['upload_id']}/thumb.png",
            "original": f"/api/uploads/{item['upload_id']}/original.png",
        }
        item["verdict"] = verdict(item["report"] or {}).as_dict() if item["status"] == "done" else None
        if item["status"] == "done":
            item["urls"].update(
                protected=f"{base}/images/{item['idx']}/protected.png",
                heatmap=f"{base}/images/{item['idx']}/heatmap.png",
                download=f"{base}/images/{item['idx']}/protected.png?download=1",
            )
    job["progress"] = {k: v for k, v in progress.items() if k != "items"}
    job["zip"] = f"{base}/download.zip" if any(i["status"] == "done" for i in job["items"]) else None
    return job


# -------------------------------------------------------------------------------------------- pages


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


README = Path(__file__).resolve().parents[3] / "README.md"  # beside the source, in a checkout


def lab_page(request: Request) -> PlainTextResponse:
    """What the lab found, which each verdict rests on: the README's lab section when the app runs from
    a checkout, else the findings the verdicts quote (the page loads nothing from the network)."""
    return PlainTextResponse(lab_text(README))


async def info(request: Request) -> JSONResponse:
    config, _, worker = _state(request)
    return JSONResponse(
        {
            "version": __version__,
            "choices": choices(available_families(config.weights_dir)),
            "words": {"figures": FIGURE_HELP, "verdicts": VERDICT_WORDS},
            "max_upload_bytes": config.max_upload_bytes,
            "max_pixels": config.max_pixels,
            "large_pixels": LARGE_PIXELS,
            "device": config.device,
            "worker": worker.alive,
        }
    )


# ------------------------------------------------------------------------------------------ uploads


async def post_uploads(request: Request) -> JSONResponse:
    config, store, _ = _state(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return _error(400, "send the images as multipart/form-data in the field 'files'")
    try:
        form = await request.form(max_files=FILES_PER_REQUEST, max_fields=16)
    except _BodyTooLarge:
        return _error(413, f"the upload is larger than the limit of {format_mb(_max_body(config))} a request")
    except HTTPException as e:  # too many files or fields, or a malformed body
        return _error(400, f"the upload could not be read: {e.detail}")
    accepted, rejected = [], []
    try:
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not files:
            return _error(400, "no files in the upload (the field must be called 'files')")
        for file in files:
            try:
                upload = await run_in_threadpool(accept_upload, config, store, file.filename, file.file)
            except UploadRejected as e:
                rejected.append({"name": e.name, "error": str(e)})
                continue
            accepted.append(upload.as_dict())
    finally:
        await form.close()
    status = 200 if accepted else 422
    return JSONResponse({"accepted": accepted, "rejected": rejected}, status_code=status)


def _max_body(config: AppConfig) -> int:
    return config.max_upload_bytes * FILES_PER_REQUEST + REQUEST_OVERHEAD


def get_upload(request: Request) -> JSONResponse:
    _, store, _ = _state(request)
    upload = store.get_upload(_path_id(request))
    if upload is None:
        raise HTTPException(404, "no such upload")
    return JSONResponse(upload.as_dict())


def upload_image(request: Request) -> FileResponse:
    config, store, _ = _state(request)
    upload_id = _path_id(request)
    if store.get_upload(upload_id) is None:
        raise HTTPException(404, "no such upload")
    kind = request.path_params["kind"]
    finder = {"thumb": thumb_path, "original": original_path}.get(kind)
    if finder is None:
        raise HTTPException(404, f"uploads have thumb.png and original.png, not {kind}.png")
    return _image(finder(config, upload_id), f"the {kind} image")


def upload_style(request: Request) -> FileResponse:
    config, store, _ = _state(request)
    upload_id = _path_id(request)
    if store.get_upload(upload_id) is None:
        raise HTTPException(404, "no such upload")
    try:
        path = style_preview(config, upload_id, request.path_params["style"])
    except ValueError as e:
        raise HTTPException(404, str(e)) from None
    return FileResponse(path, media_type="image/png")


# --------------------------------------------------------------------------------------------- jobs


async def post_job(request: Request) -> JSONResponse:
    config, store, worker = _state(request)
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the request body must be JSON")
    try:
        parsed = await run_in_threadpool(
            parse_job_request, body, store, available_families(config.weights_dir)
        )
    except JobRequestError as e:
        return _error(400, str(e))
    job_id = store.create_job(parsed.mode, parsed.speed, parsed.options, parsed.images)
    worker.notify()
    job = store.get_job(job_id)
    assert job is not None
    return JSONResponse(_job_view(config, store, worker, job), status_code=201)


def list_jobs(request: Request) -> JSONResponse:
    _, store, worker = _state(request)
    jobs = store.list_jobs()
    live = worker.live()
    for job in jobs:
        job["running_image"] = live.idx if live is not None and live.job_id == job["id"] else None
    current = store.latest_job()
    return JSONResponse({"jobs": jobs, "current": None if current is None else current["id"]})


async def post_estimate(request: Request) -> JSONResponse:
    """How long a job would take, before it starts: ``{"images": [ids], "speed", "mode"}``."""
    _, store, _ = _state(request)
    try:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise JobRequestError("send {images: [upload ids], speed, mode}")
        speed = pick(body, "speed", ("fast", "default", "thorough"), "default")
        mode = pick(body, "mode", ("cloak", "shade"), "cloak")
    except (ValueError, JobRequestError) as e:
        return _error(400, str(e))
    uploads = [store.get_upload(i) for i in body["images"] if isinstance(i, str) and valid_id(i)]
    pixels = sum(u.width * u.height for u in uploads if u is not None)
    return JSONResponse(estimate(pixels, speed, store.seconds_per_pixel(speed, mode)))


def rerun_job(request: Request) -> JSONResponse:
    config, store, worker = _state(request)
    job = _get_job(request)
    if not worker.rerun(job["id"]):
        return _error(409, "nothing to run again: only a finished job's cancelled or failed images can be")
    return JSONResponse(_job_view(config, store, worker, _get_job(request)))


def delete_job(request: Request) -> JSONResponse:
    """Forget a job: its results, and its uploads that no other job uses (the artist's copies only)."""
    import shutil

    config, store, worker = _state(request)
    job = _get_job(request)
    if worker.busy_with(job["id"]):
        return _error(409, "the job is still stopping; try again in a moment")
    orphans = store.delete_job(job["id"])
    if orphans is None:
        return _error(409, f"the job is {job['status']}; cancel it before deleting it")
    shutil.rmtree(config.jobs_dir / job["id"], ignore_errors=True)
    for upload_id in orphans:
        shutil.rmtree(upload_dir(config, upload_id), ignore_errors=True)
    return JSONResponse({"deleted": job["id"], "uploads_deleted": len(orphans)})


def _get_job(request: Request) -> dict[str, Any]:
    _, store, _ = _state(request)
    job = store.get_job(_path_id(request))
    if job is None:
        raise HTTPException(404, "no such job")
    return job


def get_job(request: Request) -> JSONResponse:
    config, store, worker = _state(request)
    return JSONResponse(_job_view(config, store, worker, _get_job(request)))


def cancel_job(request: Request) -> JSONResponse:
    config, store, worker = _state(request)
    job = _get_job(request)
    if not worker.cancel(job["id"]):
        return _error(
            409, f"the job is {job['status']} already; only a queued or running job can be cancelled"
        )
    return JSONResponse(_job_view(config, store, worker, _get_job(request)))


def _done_item(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    job = _get_job(request)
    idx = request.path_params["idx"]
    item = next((i for i in job["items"] if i["idx"] == idx), None)
    if item is None:
        raise HTTPException(404, f"the job has no image {idx}")
    if item["status"] != "done":
        raise HTTPException(404, f"image {idx} is {item['status']}, not done")
    return job, item


def job_image(request: Request) -> FileResponse:
    config, _, _ = _state(request)
    job, item = _done_item(request)
    response = _image(result_path(config, job["id"], item["idx"]), "the protected image")
    if request.query_params.get("download"):
        name = output_names(job["items"])[item["idx"]]
        response.headers["content-disposition"] = content_disposition(name)
    return response


def job_heatmap(request: Request) -> FileResponse:
    config, _, _ = _state(request)
    job, item = _done_item(request)
    return _image(heat_path(config, job["id"], item["idx"]), "the heat map")


def job_zip(request: Request) -> FileResponse:
    config, _, _ = _state(request)
    job = _get_job(request)
    if not any(i["status"] == "done" for i in job["items"]):
        raise HTTPException(404, "no image of this job is done yet")
    path = build_zip(config, job)
    return FileResponse(
        path,
        media_type="application/zip",
        headers={"content-disposition": content_disposition(f"sfumato-{job['mode']}-{job['id'][:6]}.zip")},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


# ---------------------------------------------------------------------------------------------- app


def create_app(
    config: AppConfig,
    *,
    start_worker: bool = True,
    loopback_only: bool = True,
    on_event: EventFn | None = None,
) -> Starlette:
    """The ASGI app. The worker starts and stops with the app's lifespan (``start_worker=False``
    leaves jobs queued, for tests of the API alone)."""
    make_private(config)
    store = Store(config.db_path)
    make_private(config)  # the database files now exist
    worker = Worker(config, store, on_event)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if start_worker:
            worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)
            if not worker.alive:
                store.close()

    routes = [
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", info),
        Route("/lab", lab_page),
        Route("/api/uploads", post_uploads, methods=["POST"]),
        Route("/api/uploads/{id}", get_upload),
        Route("/api/uploads/{id}/{kind:str}.png", upload_image),
        Route("/api/uploads/{id}/styles/{style}.png", upload_style),
        Route("/api/jobs", post_job, methods=["POST"]),
        Route("/api/jobs", list_jobs),
        Route("/api/jobs/{id}", get_job),
        Route("/api/jobs/{id}", delete_job, methods=["DELETE"]),
        Route("/api/jobs/{id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/jobs/{id}/rerun", rerun_job, methods=["POST"]),
        Route("/api/estimate", post_estimate, methods=["POST"]),
        Route("/api/jobs/{id}/images/{idx:int}/protected.png", job_image),
        Route("/api/jobs/{id}/images/{idx:int}/heatmap.png", job_heatmap),
        Route("/api/jobs/{id}/download.zip", job_zip),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.config, app.state.store, app.state.worker = config, store, worker
    app.add_middleware(_Guard, loopback_only=loopback_only, max_body=_max_body(config))
    return app


def serve(
    config: AppConfig,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    echo: Callable[[str], None] | None = None,
) -> None:
    """Run the app until interrupted: print the URL, warn when reachable from other machines, and
    open the browser. ``port=0`` takes any free port (the URL printed says which)."""
    echo = echo or _echo
    loopback = is_loopback(host)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = host.strip("[]")
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}/"
    if not loopback:
        echo(
            f"warning: serving on {host}: anyone who can reach this machine on port {bound} can upload "
            "images, start jobs and download results; there is no password. Use only on a network you trust."
        )

    def event(kind: str, job_id: str, message: str) -> None:
        echo(f"[{kind}] {job_id[:6]} {message}".rstrip())

    private_umask()  # the artist's images and results: readable by this user only
    app = create_app(config, loopback_only=loopback, on_event=event)
    echo(f"sfumato app: {url}  (data in {config.data_dir}; Ctrl+C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    server.run(sockets=[sock])


def _echo(line: str) -> None:
    print(line, flush=True)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}; try another --port") from None
    sock.set_inheritable(True)
    return sock


def _open_when_started(server: Any, url: str) -> None:
    import time

    for _ in range(200):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)
