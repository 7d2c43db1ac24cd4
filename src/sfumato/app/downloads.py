"""What the artist takes home: one protected image, or all of a job's as a zip.

File names come from the displayed upload names, made safe for every file system and unique within
the zip; the files themselves are read only from the job's own folder, by index.
"""

from __future__ import annotations

import json
import re
import stat
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sfumato.app.config import AppConfig
from sfumato.app.worker import result_path

_UNSAFE = re.compile(r"[^\w .()+,=@-]", re.UNICODE)
MAX_STEM = 100
ENTRY_MODE = 0o644


def safe_stem(name: str) -> str:
    """A file-name stem from a displayed name: no separators, no leading dots, nothing a shell or a
    file system misreads."""
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    stem = _UNSAFE.sub("_", stem).strip(" .")
    return stem[:MAX_STEM] or "image"


def output_names(items: list[dict[str, Any]]) -> dict[int, str]:
    """``{idx: "stem.png"}`` for every item, unique (``stem (2).png`` for a repeated name)."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for item in items:
        stem = safe_stem(item["name"])
        candidate, n = stem, 1
        while candidate.casefold() in used:
            n += 1
            candidate = f"{stem} ({n})"
        used.add(candidate.casefold())
        names[item["idx"]] = f"{candidate}.png"
    return names


def content_disposition(filename: str) -> str:
    """An attachment header that keeps non-ASCII names (RFC 6266), with an ASCII fallback."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _entry(name: str, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A zip entry that unpacks as an ordinary file (0644), not with the data folder's private 0600:
    what the artist downloads is theirs to share."""
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = compress_type
    info.external_attr = (stat.S_IFREG | ENTRY_MODE) << 16
    return info


def build_zip(config: AppConfig, job: dict[str, Any]) -> Path:
    """A temporary zip of the job's protected images, each with its report (``.png.json``) and, for
    a poisoned concept, its caption (``.txt``), as the command line writes them. The caller deletes it.

    PNGs are stored, not deflated: they are compressed already.
    """
    done = [i for i in job["items"] if i["status"] == "done"]
    names = output_names(job["items"])
    handle = tempfile.NamedTemporaryFile(
        prefix=f".{job['id']}.", suffix=".zip", dir=config.jobs_dir / job["id"], delete=False
    )
    with handle, zipfile.ZipFile(handle, "w") as zf:
        for item in done:
            name = names[item["idx"]]
            png = result_path(config, job["id"], item["idx"]).read_bytes()
            zf.writestr(_entry(name, zipfile.ZIP_STORED), png)
            report = json.dumps({"output": name, **(item["report"] or {})}, indent=2, ensure_ascii=False)
            zf.writestr(_entry(name + ".json"), report + "\n")
            caption = job["options"].get("concept")
            if job["mode"] == "shade" and caption:
                zf.writestr(_entry(name[: -len(".png")] + ".txt"), caption + "\n")
    return Path(handle.name)
