"""``rnnmem serve``: the connectivity explorer on localhost, with a text box analysed live.

Routes (standard library ``http.server``; one analysis at a time, guarded by a lock):

* ``GET /`` - the explorer page (``report/explorer.py``) in live mode.
* ``POST /api/analyze`` with JSON ``{"text": "..."}`` - the page data for that text
  (:func:`rnnmem.report.explorer.analyze`: connectivity from the probe, top-3 suggestions), as
  JSON. ``GET /api/analyze?text=...`` answers the same (handy with curl).
* Errors answer ``{"error": message}`` with status 400 (bad text or request) or 404.

The server binds 127.0.0.1 by default; bodies over 64 KiB and texts over ``max_chars``
characters (after cleaning) are refused.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError, RnnmemError
from .explorer import DEFAULT_MAX_CHARS, TARGETS, analyze, explorer_html

MAX_BODY = 64 * 1024
API = "api/analyze"


class ExplorerServer(ThreadingHTTPServer):
    """An HTTP server holding the models and the analysis options."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, models: dict, *, target: str = "predicted", norm: str = "sq_l2",
                 normalize: bool = True, chunk: int | None = None, device=None,
                 max_chars: int | None = DEFAULT_MAX_CHARS, text: str = "", title: str | None = None,
                 quiet: bool = True):
        if not isinstance(models, dict) or not models:
            raise ConfigError("give at least one model, as a dict {name: model}")
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.models = models
        self.options = {"target": target, "norm": norm, "normalize": normalize, "chunk": chunk, "device": device,
                        "max_chars": max_chars}
        self.title = title
        self.quiet = quiet
        self.lock = threading.Lock()
        self.initial = self.analyze(text)  # validates the options once, before serving
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def analyze(self, text: str) -> dict:
        with self.lock:
            return analyze(self.models, text, **self.options)

    def page(self) -> str:
        return explorer_html(self.initial, live=True, api=API, title=self.title or "Connectivity explorer (live)")


class _Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "rnnmem-explorer"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode("utf-8"), "application/json; charset=utf-8")

    def _analyze(self, text) -> None:
        if not isinstance(text, str):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "send JSON {\"text\": \"...\"} with a string"})
            return
        try:
            self._json(HTTPStatus.OK, self.server.analyze(text))
        except RnnmemError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def do_GET(self):  # noqa: N802 - http.server naming
        parts = urlsplit(self.path)
        if parts.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page().encode("utf-8"), "text/html; charset=utf-8")
        elif parts.path == "/" + API:
            self._analyze(parse_qs(parts.query).get("text", [""])[0])
        elif parts.path == "/favicon.ico":  # browsers ask for it; the page has none
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {parts.path!r}; try / or /{API}"})

    def do_POST(self):  # noqa: N802
        if urlsplit(self.path).path != "/" + API:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"POST goes to /{API}"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the request body must be 0..{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the request body is not valid JSON"})
            return
        self._analyze(body.get("text") if isinstance(body, dict) else None)


def make_server(models: dict, host: str = "127.0.0.1", port: int = 8765, **options) -> ExplorerServer:
    """Build (not start) the server; ``port=0`` picks a free port (see ``server.url``)."""
    try:
        return ExplorerServer((host, port), models, **options)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None


def serve(models: dict, host: str = "127.0.0.1", port: int = 8765, on_ready=None, **options) -> None:
    """Serve until interrupted (Ctrl-C). ``on_ready(url)`` is called once listening."""
    server = make_server(models, host, port, **options)
    if on_ready is not None:
        on_ready(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = ["ExplorerServer", "make_server", "serve"]
