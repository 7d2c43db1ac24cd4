"""Checking a job request from the page, and the words the page shows for each choice.

The page posts JSON; anything it holds is checked here against the engine's own tables (styles,
intensity and speed presets), so a bad request is one clear message and never a failure halfway
through a job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sfumato.app.db import Store, Upload
from sfumato.app.uploads import valid_id
from sfumato.app.words import AUTO_HELP, FAMILY_HELP, INTENSITY_HELP, MODE_HELP, SPEED_HELP
from sfumato.budget import INTENSITY
from sfumato.families import AUTO, FAMILIES
from sfumato.optimise import SPEED
from sfumato.styles import STYLE_DESCRIPTIONS, STYLE_NAMES

MODES = ("cloak", "shade")
MAX_IMAGES = 500
MAX_CONCEPT_CHARS = 60
_CONCEPT = re.compile(r"^[^\x00-\x1f\x7f]+$")


class JobRequestError(ValueError):
    """A request the app cannot run; the message says which field and why."""


@dataclass
class JobRequest:
    """A checked request: what :meth:`Store.create_job` records and the worker runs."""

    mode: str
    speed: str
    images: list[Upload]
    options: dict[str, Any] = field(default_factory=dict)


def choices(families: tuple[str, ...] = ()) -> dict[str, Any]:
    """The page's menus: every choice with the sentence that says what it trades. ``families`` are the
    model families whose encoders this machine can attack (:func:`sfumato.families.available_families`)."""
    return {
        "families": [{"name": AUTO, "label": "All available", "help": FAMILY_HELP[AUTO]}]
        + [{"name": n, "label": FAMILIES[n].label, "help": FAMILY_HELP[n]} for n in families],
        "modes": [{"name": m, "help": MODE_HELP[m]} for m in MODES],
        "styles": [{"name": "auto", "help": AUTO_HELP}]
        + [{"name": n, "help": STYLE_DESCRIPTIONS[n]} for n in STYLE_NAMES],
        "intensities": [{"name": n, "help": INTENSITY_HELP[n]} for n in INTENSITY["jnd"]],
        "speeds": [{"name": n, "help": SPEED_HELP[n]} for n in SPEED],
    }


def parse_job_request(body: object, store: Store, families: tuple[str, ...] = ()) -> JobRequest:
    """Check a posted job (JSON object) against the presets, the model families this machine can attack
    and the uploads on record."""
    if not isinstance(body, dict):
        raise JobRequestError("the request must be a JSON object")
    mode = pick(body, "mode", MODES, None)
    intensity = pick(body, "intensity", tuple(INTENSITY["jnd"]), "default")
    speed = pick(body, "speed", tuple(SPEED), "default")
    images = _uploads(body, "images", store)
    family = pick(body, "family", (AUTO, *families), AUTO)
    options: dict[str, Any] = {"intensity": intensity, "family": family}
    if mode == "cloak":
        options["style"] = pick(body, "style", ("auto", *STYLE_NAMES), "auto")
    else:
        options["concept"] = _concept(body, "concept")
        options["as_concept"] = _concept(body, "as_concept")
        if options["concept"].casefold() == options["as_concept"].casefold():
            raise JobRequestError("the concept and the concept to teach instead must differ")
        targets = _uploads(body, "targets", store)
        overlap = {u.id for u in targets} & {u.id for u in images}
        if overlap:
            raise JobRequestError("an image cannot be both a source and a target image")
        options["targets"] = [{"id": u.id, "name": u.name, "size": [u.width, u.height]} for u in targets]
    return JobRequest(mode, speed, images, options)


def pick(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = body.get(key, default)
    if value not in allowed:
        raise JobRequestError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _concept(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise JobRequestError(f"{key} is missing: name the concept in a word or two, e.g. dog")
    if len(text) > MAX_CONCEPT_CHARS or not _CONCEPT.match(text):
        raise JobRequestError(f"{key} must be a short plain phrase (at most {MAX_CONCEPT_CHARS} characters)")
    return text


def _uploads(body: dict[str, Any], key: str, store: Store) -> list[Upload]:
    ids = body.get(key)
    if not isinstance(ids, list) or not ids:
        raise JobRequestError(f"{key} must be a non-empty list of upload ids")
    if len(ids) > MAX_IMAGES:
        raise JobRequestError(f"{key}: at most {MAX_IMAGES} images a job, not {len(ids)}")
    found = []
    for upload_id in dict.fromkeys(ids):
        upload = store.get_upload(upload_id) if isinstance(upload_id, str) and valid_id(upload_id) else None
        if upload is None:
            raise JobRequestError(f"{key}: no uploaded image {upload_id!r}; upload it again")
        found.append(upload)
    return found
