"""The background worker: one thread that runs the queued jobs one at a time, image by image.

One at a time because the engine already uses every core it is given (the CPU budget): two jobs at
once would each run at half speed and hold twice the memory. Every finished image is recorded in the
database before the next starts, so a stopped server loses at most the image in progress, and a
restarted one goes on from there (images already done are not redone).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sfumato.app.config import AppConfig, default_threads
from sfumato.app.db import Store
from sfumato.app.heatmap import heat_map
from sfumato.app.progress import Live, step_fraction
from sfumato.app.uploads import artist_words, source_path
from sfumato.encoders import load_encoder
from sfumato.encoders.weights import ChecksumError, WeightsNotFoundError
from sfumato.families import family_ensemble
from sfumato.imageio import ImageInputError, atomic_write_bytes, load_image, save_image
from sfumato.protect import Protected, cloak, shade
from sfumato.targets import choose_anchor, set_style, style_distances

EventFn = Callable[[str, str, str], None]  # (event, job id, message): the server prints these
_IDLE_WAIT = 2.0  # seconds between looks at the queue when nothing wakes the worker


class _Interrupted(Exception):
    """Raised from the progress callback to stop the engine: the job was cancelled or the app stops."""


def result_path(config: AppConfig, job_id: str, idx: int) -> Path:
    return config.jobs_dir / job_id / f"{idx}.png"


def heat_path(config: AppConfig, job_id: str, idx: int) -> Path:
    return config.jobs_dir / job_id / f"{idx}.heat.png"


class Worker:
    """Runs jobs from the store in a daemon thread; :meth:`live` tells the server what it is doing."""

    def __init__(self, config: AppConfig, store: Store, on_event: EventFn | None = None) -> None:
        self.config = config
        self.store = store
        self.on_event = on_event
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._set_styles: dict[str, tuple[str, dict[str, Any]]] = {}

    # -- control (server threads)

    def start(self) -> None:
        """Queue again what a stopped server left running, then start the thread."""
        requeued = self.store.requeue_interrupted()
        if requeued:
            plural = "s" if requeued != 1 else ""
            self._event("resumed", "", f"{requeued} interrupted job{plural} queued again")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="sfumato-worker", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the current optimisation step, without waiting (callable from
        the worker thread itself); the image in progress is redone at the next start."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop and wait for the thread (at most ``timeout`` seconds: it is a daemon either way)."""
        self.request_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def notify(self) -> None:
        """A job was queued: look at the queue now rather than at the next poll."""
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (the running image stops at its next step)."""
        if not self.store.cancel_job(job_id):
            return False
        with self._lock:
            self._cancelled.add(job_id)
        return True

    def rerun(self, job_id: str) -> int:
        """Queue a finished job's cancelled and failed images again; returns how many."""
        n = self.store.rerun_job(job_id)
        if n:
            with self._lock:
                self._cancelled.discard(job_id)
            self.notify()
        return n

    def busy_with(self, job_id: str) -> bool:
        """Whether an image of this job is still being computed (a cancel stops it at its next step)."""
        live = self.live()
        return live is not None and live.job_id == job_id

    def live(self) -> Live | None:
        with self._lock:
            return None if self._live is None else Live(**vars(self._live))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread

    def _loop(self) -> None:
        torch.set_num_threads(self.config.threads or default_threads())
        while not self._stopping.is_set():
            job_id = self.store.next_job()
            if job_id is None:
                self._wake.wait(_IDLE_WAIT)
                self._wake.clear()
                continue
            try:
                self._run_job(job_id)
            except Exception as e:  # noqa: BLE001 - an unforeseen bug must not kill the worker for good
                self._fail_rest(job_id, f"internal error: {type(e).__name__}: {e}")

    def _run_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job["status"] not in ("queued", "running"):
            return
        self.store.set_job(job_id, "running")
        n = len(job["items"])
        for idx in range(n):
            if self._stopping.is_set() or self._is_cancelled(job_id):
                return
            # Read again before each image: a cancel, or a rerun of a cancelled job while this loop was
            # still finishing its image, changes the record under it (a rerun puts it back to queued).
            now = self.store.get_job(job_id)
            if now is None or now["status"] not in ("queued", "running"):
                return
            if now["status"] == "queued":
                self.store.set_job(job_id, "running")
            item = now["items"][idx]
            if item["status"] != "queued" and item["status"] != "running":
                continue
            try:
                self._run_item(job, item)
            except _Interrupted:
                if not self._is_cancelled(job_id):
                    self.store.set_item(job_id, item["idx"], "queued")
                return
            except (WeightsNotFoundError, ChecksumError) as e:
                self._fail_rest(job_id, str(e))
                return
            finally:
                with self._lock:
                    self._live = None
            status = self.store.get_job(job_id)
            done = sum(1 for i in (status or job)["items"] if i["status"] in ("done", "failed"))
            self._event("image", job_id, f"{done}/{n} {item['name']}")
        final = self.store.get_job(job_id)
        if final is None or final["status"] != "running":
            return
        if all(i["status"] == "failed" for i in final["items"]):
            self.store.set_job(job_id, "failed", "no image could be protected; see each image's message")
            self._event("failed", job_id, "no image could be protected")
        else:
            self.store.set_job(job_id, "done")
            failed = sum(1 for i in final["items"] if i["status"] == "failed")
            self._event("done", job_id, f"{n - failed} protected, {failed} failed")

    def _fail_rest(self, job_id: str, message: str) -> None:
        """A missing or corrupt weight file fails every image alike: say it once, on the job, and on
        each image not done (images already done keep their results)."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        for item in job["items"]:
            if item["status"] in ("queued", "running"):
                self.store.set_item(job_id, item["idx"], "failed", error=message)
        self.store.set_job(job_id, "failed", message)
        self._event("failed", job_id, message)

    def _run_item(self, job: dict[str, Any], item: dict[str, Any]) -> None:
        job_id, idx = job["id"], item["idx"]
        started = time.time()
        with self._lock:
            self._live = Live(job_id, idx, started)
        self.store.set_item(job_id, idx, "running")
        source = source_path(self.config, item["upload_id"])
        try:
            loaded = load_image(source)
            protected = self._protect(job, item, source, loaded.size)
            out = result_path(self.config, job_id, idx)
            warnings = save_image(loaded, protected.pixels, out, forbidden=[source])
            heat, visibility = heat_map(loaded.rgb, protected.tensor)
            buf = io.BytesIO()
            heat.save(buf, format="PNG")
            atomic_write_bytes(heat_path(self.config, job_id, idx), buf.getvalue())
        except ImageInputError as e:
            self.store.set_item(job_id, idx, "failed", error=f"{item['name']} {artist_words(e.problem)}")
            return
        except (OSError, ValueError, RuntimeError) as e:
            if isinstance(e, (WeightsNotFoundError, ChecksumError)):
                raise
            self.store.set_item(job_id, idx, "failed", error=f"{item['name']} could not be protected: {e}")
            return
        report = {
            "input": item["name"],
            **protected.report,
            "visibility": visibility,
            "warnings": warnings,
        }
        self.store.set_item(job_id, idx, "done", seconds=round(time.time() - started, 3), report=report)

    def _protect(
        self, job: dict[str, Any], item: dict[str, Any], source: Path, size: tuple[int, int]
    ) -> Protected:
        options = job["options"]
        # jobs recorded before the family choice existed attacked FLUX.2 alone: a resume keeps that
        encoders, weights = family_ensemble(options.get("family", "flux2"))
        common: dict[str, Any] = dict(
            encoders=encoders,
            encoder_weights=weights,
            intensity=options["intensity"],
            speed=job["speed"],
            device=self.config.device,
            weights_dir=self.config.weights_dir,
            progress=self._progress_callback(job["id"]),
        )
        if job["mode"] == "cloak":
            style, choice = self._job_style(job)
            protected = cloak(str(source), style, **common)
            if choice is not None:
                protected.report["style_choice"] = choice
            return protected
        anchors = [
            (source_path(self.config, t["id"]), (t["size"][0], t["size"][1])) for t in options["targets"]
        ]
        anchor = choose_anchor(size, anchors, key=f"{job['id']}:{item['idx']}")
        # the report names the target as the artist uploaded it, never by its path on this machine
        names = {t["id"]: t["name"] for t in options["targets"]}
        return shade(
            str(source),
            str(anchor),
            target_name=names.get(Path(anchor).parent.name, "target image"),
            concept=options["concept"],
            as_concept=options["as_concept"],
            **common,
        )

    def _job_style(self, job: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """The one style of a cloak job whose style is ``auto`` (issue 23): chosen over all its images as
        the CLI chooses it for a folder (:func:`sfumato.targets.set_style`), so a mimic trained on the set
        sees one wrong target. Deterministic, so a job resumed after a restart chooses the same style."""
        style = job["options"]["style"]
        if style != "auto" or job["options"].get("style_per_image"):
            return style, None
        if job["id"] not in self._set_styles:
            encoder = load_encoder("flux2", self.config.weights_dir)
            per_work = []
            for item in job["items"]:
                try:
                    rgb = load_image(source_path(self.config, item["upload_id"])).rgb[None]
                except ImageInputError:
                    continue  # it fails later with its own message
                per_work.append(style_distances(rgb, encoder, 0))
            if not per_work:
                return style, None
            chosen, medians = set_style(per_work)
            choice = {"auto": "set", "works": len(per_work), "median_rank": medians}
            self._set_styles[job["id"]] = (chosen, choice)
        return self._set_styles[job["id"]]

    def _progress_callback(self, job_id: str) -> Callable[[int, int], None]:
        def progress(done: int, total: int) -> None:
            if self._stopping.is_set() or self._is_cancelled(job_id):
                raise _Interrupted
            with self._lock:
                if self._live is not None:
                    self._live.fraction = step_fraction(done, total)
                    self._live.phase = "measuring" if done >= total else "protecting"

        return progress

    def _is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def _event(self, event: str, job_id: str, message: str) -> None:
        if self.on_event is not None:
            self.on_event(event, job_id, message)
