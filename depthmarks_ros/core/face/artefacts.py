"""The face artefacts that `depthmarks fit-face` writes as JSON (hybrid blend, landmark sigma model,
visibility model): written and read one way, with one error for a file that is missing or not
what it should be; and the sha1 that names an artefact file by its bytes (ROS-free: read by the
pipeline at run time and written by the fit)."""
from __future__ import annotations

import hashlib
import json
from typing import Callable, TypeVar

T = TypeVar('T')


def save_json(path: str, data: dict) -> None:
    with open(path, 'w') as f:
        json.dump(data, f)


def load_json(path: str, what: str, build: Callable[[dict], T]) -> T:
    """``build(parsed JSON)``; a missing or unreadable file, or one ``build`` cannot use (a missing
    key, a wrong type or value), raises ``ValueError('<path>: not a <what> (<why>); refit with
    depthmarks fit-face')``."""
    try:
        with open(path) as f:
            d = json.load(f)
        return build(d)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f'{path}: not a {what} ({exc}); refit with depthmarks fit-face') from exc


def file_sha1(path: str) -> str:
    """sha1 of a file's bytes (hex)."""
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
