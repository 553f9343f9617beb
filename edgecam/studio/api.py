"""The teach page's JSON endpoints (docs/teach.md lists them): what the page does, a script can do.

Reads (GET, ``?token=`` accepted like the page's other reads)::

    /teach                                   the page
    /api/teach                               regions (config: read-only; drawn), states, examples, heads, queue
    /api/teach/review[?region=R]             the review queue, newest first, with the model's guesses
    /api/teach/review/<id>.png               one queued crop
    /api/teach/retrain                       the retrain's progress, then its evidence
    /api/teach/why?region=R                  the region's scores of every state, the nearest examples
    /api/teach/examples/<region>/<state>/<file>   one stored example (thumbnails)

Writes (POST, or DELETE; a JSON body of at most :data:`MAX_BODY` bytes; the
token in the Authorization header; refused cross-origin and for a foreign
Host like every request, by :mod:`edgecam.outputs.http_guard`)::

    POST   /api/teach/regions          {"name": N, "box": [x0, y0, x1, y1], "labels": [S1, S2, ...]}
    DELETE /api/teach/regions/<name>
    POST   /api/teach/review/<id>      {"state": S}  or  {"discard": true}
    POST   /api/teach/retrain          {"region": R}
    POST   /api/teach/use              {"region": R}
    POST   /api/teach/undo             {"region": R}
    POST   /api/teach/relabel          {"region": R, "file": "<state>/<name>", "state": S}
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote

from edgecam.bounded import BadNumber, bounded_int
from edgecam.errors import EdgecamError
from edgecam.studio.drawn import BadRegion
from edgecam.studio.page import PAGE

logger = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; "
                                            "script-src 'unsafe-inline'; frame-ancestors 'none'"}


def read(request, studio, path: str, query: dict) -> None:
    """Answer a GET below /teach or /api/teach (``request``: the HTTP handler)."""
    if path == "/teach":
        request._send(200, PAGE, "text/html; charset=utf-8", extra=_PAGE_HEADERS)
        return
    sub = path[len("/api/teach"):] if path.startswith("/api/teach") else None
    arg = (query.get("region") or [""])[0]
    try:
        if sub == "":
            request._json(200, studio.describe())
        elif sub == "/review":
            request._json(200, {"items": studio.review.items(arg or None)})
        elif sub.startswith("/review/") and sub.endswith(".png"):
            _file(request, studio.review.picture(sub[len("/review/"):-4]))
        elif sub == "/retrain":
            request._json(200, studio.retrain_status())
        elif sub == "/why":
            request._json(200, studio.why(arg))
        elif sub.startswith("/examples/"):
            region, _, rest = sub[len("/examples/"):].partition("/")
            _file(request, studio.example_path(unquote(region), unquote(rest)))
        else:
            request._json(404, {"error": f"no such endpoint: GET {path[:100]}"})
    except KeyError as e:
        request._json(404, {"error": e.args[0]})


def _file(request, path) -> None:
    if path is None:
        request._json(404, {"error": "no such picture"})
        return
    try:
        data = path.read_bytes()
    except OSError:
        request._json(404, {"error": "no such picture"})
        return
    request._send(200, data, _IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                  extra={"X-Content-Type-Options": "nosniff"})


def body(request) -> dict | None:
    """The request's JSON object body (at most MAX_BODY bytes); None when a 400 was sent instead."""
    try:
        length = bounded_int(request.headers.get("Content-Length", "0") or "0", "Content-Length", high=MAX_BODY)
    except BadNumber:
        length = None
    ctype = request.headers.get("Content-Type", "")
    if length is None or (length and not ctype.startswith("application/json")):
        request._json(400 if length is not None else 413,
                      {"error": f"send a JSON body (Content-Type: application/json) of at most {MAX_BODY} bytes"})
        return None
    try:
        data = json.loads(request.rfile.read(length) or b"{}")
    except ValueError as e:
        request._json(400, {"error": f"not JSON: {e}"})
        return None
    if not isinstance(data, dict):
        request._json(400, {"error": "send a JSON object"})
        return None
    return data


def write(request, studio, path: str) -> None:
    """Answer a POST or DELETE below /api/teach/ (authorised and guarded already)."""
    data = body(request)
    if data is None:
        return
    try:
        code, out = _write(studio, request.command, path[len("/api/teach"):], data)
    except BadRegion as e:
        code, out = 400, {"error": str(e)}
    except KeyError as e:
        code, out = 404, {"error": e.args[0]}
    except PermissionError as e:
        code, out = 403, {"error": str(e)}
    except LookupError as e:
        code, out = 409, {"error": str(e)}
    except EdgecamError as e:
        code, out = 507, {"error": e.message}
    except OSError as e:
        code, out = 507, {"error": f"cannot write: {e.strerror or e}"}
    request._json(code, out)


def _text(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise BadRegion(f"{key}: expected a string")
    return value


def _write(studio, method: str, sub: str, data: dict) -> tuple[int, dict]:
    if method == "DELETE":
        if sub.startswith("/regions/"):
            name = unquote(sub[len("/regions/"):])
            if not studio.delete_region(name):
                raise KeyError(f"no drawn region {name!r}")
            return 200, {"deleted": name}
        raise KeyError(f"no such endpoint: DELETE /api/teach{sub[:100]}")
    if sub == "/regions":
        region = studio.put_region(data)
        return 201, {"saved": region.to_json()}
    if sub.startswith("/review/"):
        item = sub[len("/review/"):]
        if data.get("discard") is True:
            if not studio.review.discard(item):
                raise KeyError(f"no review item {item!r}")
            return 200, {"discarded": item}
        path = studio.file_item(item, _text(data, "state"))
        return 201, {"saved": path.name, "state": path.parent.name}
    if sub == "/retrain":
        return 202, studio.retrain(_text(data, "region"))
    if sub == "/use":
        return 200, {"version": studio.use(_text(data, "region"))}
    if sub == "/undo":
        return 200, {"version": studio.undo(_text(data, "region"))}
    if sub == "/relabel":
        path = studio.relabel(_text(data, "region"), _text(data, "file"), _text(data, "state"))
        return 200, {"file": f"{path.parent.name}/{path.name}"}
    raise KeyError(f"no such endpoint: POST /api/teach{sub[:100]}")
