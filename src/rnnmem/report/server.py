"""``rnnmem serve``: the connectivity explorer on localhost, with a text box analysed live.

Built on Starlette (routing, trusted-host middleware) served by uvicorn (HTTP/1.1 with h11).

Routes:

* ``GET /`` - the explorer page (``report/explorer.py``) in live mode; its menu offers the
  ``examples`` given to the server beside the user's own text (``rnnmem serve`` passes
  planted-dependency texts, test-set observations of the model's corpus when available, and
  ``--example`` texts).
* ``POST /api/analyze`` with JSON ``{"text": "..."}`` - the page data for that text
  (:func:`rnnmem.report.explorer.analyze`: connectivity from the probe, top-3 suggestions), as
  JSON. ``GET /api/analyze?text=...`` answers the same (handy with curl).
* Errors answer ``{"error": message}`` with status 400 (bad text or request), 404, 405, 408
  (request not received in time) or 413 (body too large).

Safety limits:

* It binds 127.0.0.1 by default. Binding any other address prints a loud warning: everyone who
  can reach that address can make the machine compute.
* DNS-rebinding guard: a request whose ``Host`` header is not the bound host, ``localhost``,
  ``127.0.0.1``, ``[::1]`` or a name given with ``--allow-host`` (``allow_hosts=``) is refused
  with 400 (Starlette's ``TrustedHostMiddleware``).
* Each request (headers and body) must arrive within ``read_timeout`` seconds (default 10) of the
  connection opening or of the previous response, else the server answers 408 and closes the
  connection: a half-sent request cannot hold a connection forever. Idle keep-alive
  connections close after 5 s; request headers are limited to 16 KiB, bodies to 64 KiB, open
  connections to 64 (more get 503).
* One analysis runs at a time (the probe uses every CPU thread it is given); the others wait.
  A request whose client went away while it waited is skipped, and a client that disconnects
  never produces a traceback.
* Texts over ``max_chars`` characters (after cleaning, not counting the leading space cleaning
  adds) are refused.

Use from Python (tests do): ``with make_server(models, port=0).start() as srv: ... srv.url``;
``serve_forever()`` / ``shutdown()`` / ``server_close()`` mirror ``http.server``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
import warnings

from ..errors import ConfigError, RnnmemError, RnnmemWarning
from .explorer import DEFAULT_MAX_CHARS, TARGETS, _example_entry, alphabet, analyze, clean_text, explorer_html

MAX_BODY = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 64
READ_TIMEOUT = 10.0
KEEP_ALIVE_S = 5
API = "api/analyze"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: 63\r\n\r\n"
                    b'{"error":"the request did not arrive in time; send it in full"}')
assert len(_REQUEST_TIMEOUT.split(b"\r\n\r\n", 1)[1]) == 63


def _host_name(host: str) -> str:
    """``host`` as it appears in a Host header: IPv6 literals in brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        return host
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (only this machine can connect).

    Parameters
    ----------
    host : str
        A host name or IP literal (IPv6 with or without brackets); names are resolved with
        ``getaddrinfo``.

    Returns
    -------
    bool
        True for ``localhost``, a loopback literal, or a name all of whose addresses are loopback;
        False otherwise (also when the name does not resolve).
    """
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def allowed_hosts(host: str, extra=()) -> list[str]:
    """Host names a request may carry in its ``Host`` header: the bound host, ``localhost``,
    ``127.0.0.1``, ``[::1]`` and ``extra`` (``--allow-host``; ``*.example.com`` patterns allowed).

    Parameters
    ----------
    host : str
        The bound host (IPv6 literals are put in brackets, names lower-cased).
    extra : iterable of str, default ()
        Further names; a wildcard only as a leading ``*.`` (or ``*`` alone).

    Returns
    -------
    list of str
        The names without duplicates, the bound host first.

    Raises
    ------
    ConfigError
        If an extra name has a scheme, path, user, space or port, or a wildcard other than a leading ``*.``.
    """
    names = [_host_name(host), *LOCAL_HOSTS]
    for name in extra or ():
        name = _host_name(str(name))
        if not name or any(c in name for c in "/@ \t") or (":" in name and not name.startswith("[")):
            raise ConfigError(f"--allow-host {name!r} is not a host name (give a name such as myhost.lan, "
                              "without scheme or port)")
        if "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*.")):
            raise ConfigError(f"--allow-host {name!r}: a wildcard must be a leading '*.' (e.g. *.example.com)")
        names.append(name)
    return list(dict.fromkeys(names))


def bind_warning(host: str, port: int | None = None, allowed=None) -> str | None:
    """The warning for a bind that other machines can reach, or ``None`` for a loopback bind.

    Parameters
    ----------
    host : str
        The bound host.
    port : int or None, default None
        The bound port, shown in the message when given.
    allowed : list of str or None, default None
        The accepted Host names listed in the message (default: :func:`allowed_hosts` of ``host``).

    Returns
    -------
    str or None
        The message, or None when ``host`` is a loopback address (:func:`is_loopback`).
    """
    if is_loopback(host):
        return None
    where = f"{host}:{port}" if port is not None else host
    names = ", ".join(allowed or allowed_hosts(host))
    return (f"the explorer listens on {where}, which is not a loopback address: anyone who can reach this "
            f"machine there can make it compute. Requests must name one of these hosts: {names}; add the name "
            "others use with --allow-host NAME, or bind 127.0.0.1 to keep it local")


def _deadline_protocol(read_timeout: float):
    """uvicorn's h11 protocol with a deadline for each request to arrive in full: from the
    connection opening (or the previous response) until the request's last byte. When it passes,
    the server answers 408 and closes the connection."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _deadline = None

        def connection_made(self, transport):  # noqa: D401 - asyncio protocol interface
            super().connection_made(transport)
            self._sync_deadline()

        def handle_events(self) -> None:
            super().handle_events()
            self._sync_deadline()

        def on_response_complete(self) -> None:
            self._cancel_deadline()
            super().on_response_complete()
            self._sync_deadline()

        def connection_lost(self, exc) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _sync_deadline(self) -> None:
            receiving = self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()
            if not receiving:
                self._cancel_deadline()
            elif self._deadline is None:
                self._deadline = self.loop.call_later(read_timeout, self._expire)

        def _expire(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is None or not cycle.response_started or cycle.response_complete:
                self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()

    return DeadlineH11Protocol


class ExplorerServer:
    """The live explorer: the models, the analysis options and a uvicorn server on a bound socket.

    Parameters
    ----------
    models : dict
        ``{name: autocomplete model}``.
    host, port : str, int
        Address to bind (``port=0``: any free port; see :attr:`url`).
    target, norm, normalize, chunk, device, max_chars :
        As :func:`rnnmem.report.explorer.analyze`.
    text : str
        Text analysed when the page opens (analysed once here, which also validates the options).
    examples : list, optional
        Texts offered in the page's menu beside the user's own, each ``(label, text)``,
        ``(group, label, text)`` or a dict with "label", "text" and optionally "group"; choosing one
        puts it in the text box and analyses it through the API. Each is cleaned here and must fit
        ``max_chars`` (else ``ConfigError`` naming it).
    title : str, optional
        Page title.
    quiet : bool
        No access log (warnings and errors are still logged).
    allow_hosts : iterable of str
        Host names accepted in the ``Host`` header besides the bound host and localhost.
    read_timeout : float
        Seconds a client has to send a whole request (see module docstring).
    max_connections : int
        Open connections served at once; more get 503.
    """

    def __init__(self, models: dict, host: str = "127.0.0.1", port: int = 8765, *, target: str = "predicted",
                 norm: str = "sq_l2", normalize: bool = True, chunk: int | None = None, device=None,
                 max_chars: int | None = DEFAULT_MAX_CHARS, text: str = "", examples=(), title: str | None = None,
                 quiet: bool = True, allow_hosts=(), read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS):
        if not isinstance(models, dict) or not models:
            raise ConfigError("give at least one model, as a dict {name: model}")
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        if max_chars is not None and (not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1):
            raise ConfigError(f"max_chars (--max-chars) must be a positive integer, got {max_chars!r}")
        if not (read_timeout > 0):
            raise ConfigError(f"read_timeout must be a positive number of seconds, got {read_timeout!r}")
        self.models = models
        self.options = {"target": target, "norm": norm, "normalize": normalize, "chunk": chunk, "device": device,
                        "max_chars": max_chars}
        self.title = title
        self.quiet = quiet
        self.host = host
        self.allowed_hosts = allowed_hosts(host, allow_hosts)
        self.read_timeout = float(read_timeout)
        self.max_connections = int(max_connections)
        self.lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.examples = self._check_examples(examples)
        self.initial = self.analyze(text)  # validates the options once, before serving
        self.socket = _bind(host, port)
        self.server_address = self.socket.getsockname()
        self.warning = bind_warning(host, self.server_address[1], self.allowed_hosts)
        self._server = None
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ analysis and page
    @property
    def url(self) -> str:
        """The server's address as a URL.

        Returns
        -------
        str
            ``http://<host>:<port>/`` with the bound port (the one picked when ``port=0``).
        """
        return f"http://{_host_name(self.host)}:{self.server_address[1]}/"

    def analyze(self, text: str) -> dict:
        """The page data for ``text`` (one analysis at a time).

        Parameters
        ----------
        text : str
            The raw text.

        Returns
        -------
        dict
            :func:`rnnmem.report.explorer.analyze`'s output with the server's options.

        Raises
        ------
        ConfigError, InputError
            As :func:`rnnmem.report.explorer.analyze` (e.g. a text over ``max_chars``).
        """
        with self.lock:
            return analyze(self.models, text, **self.options)

    def _check_examples(self, examples) -> list[dict]:
        """The menu's examples, cleaned as the analysis cleans text; one that is empty after cleaning
        or longer than ``max_chars`` is refused before serving (it could only answer an error)."""
        chars = alphabet(next(iter(self.models.values())))
        limit = self.options["max_chars"]
        out = []
        for ex in examples or ():
            entry = _example_entry(ex)
            clean = clean_text(entry["text"], chars)
            if not clean:
                raise ConfigError(f"example {entry['label']!r} has no letters after cleaning; give some words")
            if limit is not None and len(clean) - 1 > limit:
                raise ConfigError(f"example {entry['label']!r} has {len(clean) - 1} characters after cleaning, over "
                                  f"the limit of {limit}: shorten it or raise --max-chars")
            out.append({**entry, "text": clean})
        return out

    def page(self) -> str:
        """The explorer page in live mode.

        Returns
        -------
        str
            The HTML page showing the initial analysis, with the text box posting to ``api/analyze`` and
            the menu of examples.
        """
        return explorer_html(self.initial, live=True, api=API, title=self.title or "Connectivity explorer (live)",
                             examples=self.examples)

    # ------------------------------------------------------------------ the ASGI application
    def app(self):
        """The Starlette application (routes, JSON errors, trusted-host guard).

        Returns
        -------
        starlette.applications.Starlette
            The ASGI application serving ``/``, ``/index.html``, ``/favicon.ico`` and ``/api/analyze``
            (see the module docstring).
        """
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        from starlette.requests import ClientDisconnect
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route

        no_store = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

        def error(status: int, message: str) -> JSONResponse:
            return JSONResponse({"error": message}, status_code=status, headers=no_store)

        async def page(request):
            return HTMLResponse(self.page(), headers=no_store)

        async def favicon(request):  # browsers ask for it; the page has none
            return Response(status_code=204)

        async def read_json(request):
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                return error(413, f"the request body must be at most {MAX_BODY} bytes")
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return error(413, f"the request body must be at most {MAX_BODY} bytes")
            try:
                obj = json.loads(bytes(body) or b"{}")
            except ValueError:
                return error(400, "the request body is not valid JSON")
            return obj.get("text") if isinstance(obj, dict) else None

        async def api(request):
            try:
                if request.method == "POST":
                    text = await read_json(request)
                    if isinstance(text, Response):
                        return text
                else:
                    text = request.query_params.get("text", "")
                if not isinstance(text, str):
                    return error(400, 'send JSON {"text": "..."} with a string')
                if self._async_lock is None:
                    self._async_lock = asyncio.Lock()
                async with self._async_lock:
                    if await request.is_disconnected():
                        return Response(status_code=499)  # nobody is listening: skip the analysis
                    from starlette.concurrency import run_in_threadpool

                    data = await run_in_threadpool(self.analyze, text)
                return JSONResponse(data, headers=no_store)
            except ClientDisconnect:
                return Response(status_code=499)
            except RnnmemError as exc:
                return error(400, str(exc))

        async def http_error(request, exc: HTTPException):
            if exc.status_code == 404:
                return error(404, f"no such page {request.url.path!r}; try / or /{API}")
            return error(exc.status_code, f"{request.method} is not accepted at {request.url.path!r}"
                         if exc.status_code == 405 else str(exc.detail))

        return Starlette(
            routes=[Route("/", page, methods=["GET"]), Route("/index.html", page, methods=["GET"]),
                    Route("/favicon.ico", favicon, methods=["GET"]),
                    Route("/" + API, api, methods=["GET", "POST"])],
            middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=self.allowed_hosts, www_redirect=False)],
            exception_handlers={HTTPException: http_error},
        )

    # ------------------------------------------------------------------ running
    def _uvicorn(self):
        import uvicorn

        config = uvicorn.Config(
            self.app(), http=_deadline_protocol(self.read_timeout), ws="none", lifespan="off", interface="asgi3",
            log_level="info" if not self.quiet else "warning", access_log=not self.quiet,
            timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=self.max_connections,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=5,
            server_header=False,
        )
        return uvicorn.Server(config)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (from another thread) or Ctrl-C (in the main thread).

        Returns
        -------
        None

        Raises
        ------
        ConfigError
            If this server has already run (make a new one).
        """
        if self._server is not None:
            raise ConfigError("this server has already run; make a new one")
        self._server = self._uvicorn()
        self._running.set()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    @property
    def started(self) -> bool:
        """True once the server accepts connections.

        Returns
        -------
        bool
        """
        return bool(self._server is not None and self._server.started)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop a server running in another thread and wait until it has stopped.

        Parameters
        ----------
        timeout : float, default 30.0
            Seconds to wait for it to stop; does nothing if it never ran.

        Returns
        -------
        None
        """
        if not self._running.is_set():
            return
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        """Close the listening socket (done by :meth:`shutdown` too when the server ran).

        Returns
        -------
        None
        """
        self.socket.close()

    def start(self, timeout: float = 30.0) -> "ExplorerServer":
        """Serve in a background thread; returns once it accepts connections. Stop with :meth:`stop`
        (or use it as a context manager).

        Parameters
        ----------
        timeout : float, default 30.0
            Seconds to wait for the server to accept connections.

        Returns
        -------
        ExplorerServer
            ``self``, running.

        Raises
        ------
        ConfigError
            If the server stopped or did not start within ``timeout``.
        """
        import time

        self._thread = threading.Thread(target=self.serve_forever, name="rnnmem-explorer", daemon=True)
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.started:
            if self._stopped.is_set() or time.monotonic() > end:
                raise ConfigError(f"the explorer server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the background server started by :meth:`start` and close its socket.

        Returns
        -------
        None
        """
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.server_close()

    def __enter__(self) -> "ExplorerServer":
        return self if self._running.is_set() else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``ConfigError`` when that is impossible."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port!r}")
    try:
        family = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                          "or --host") from None


def make_server(models: dict, host: str = "127.0.0.1", port: int = 8765, warn: bool = True,
                **options) -> ExplorerServer:
    """Build (not start) the server; ``port=0`` picks a free port (see ``server.url``).

    Parameters
    ----------
    models, host, port, **options : as :class:`ExplorerServer`.
    warn : bool
        Issue :attr:`ExplorerServer.warning` (a non-loopback bind) as an ``RnnmemWarning``.

    Returns
    -------
    ExplorerServer
        Listening already; call ``start()`` (background thread) or ``serve_forever()``.
    """
    server = ExplorerServer(models, host, port, **options)
    if warn and server.warning:
        warnings.warn(server.warning, RnnmemWarning, stacklevel=2)
    return server


def serve(models: dict, host: str = "127.0.0.1", port: int = 8765, on_ready=None, on_warning=None,
          **options) -> None:
    """Serve until interrupted (Ctrl-C). ``on_ready(url)`` is called once the server accepts
    connections (from a helper thread, so a "serving at" line is never printed too early);
    ``on_warning(message)`` for a non-loopback bind (default: an ``RnnmemWarning``).

    Parameters
    ----------
    models : dict
        ``{name: autocomplete model}``.
    host : str, default "127.0.0.1"
        The address to bind.
    port : int, default 8765
        The port (0: any free port).
    on_ready : callable or None
        ``on_ready(url)``, called once the server accepts connections.
    on_warning : callable or None
        ``on_warning(message)`` for a non-loopback bind; None: an ``RnnmemWarning`` is issued.
    **options
        The other options of :class:`ExplorerServer`.

    Returns
    -------
    None
        Returns after Ctrl-C or a shutdown; the socket is closed.

    Raises
    ------
    ConfigError
        From :class:`ExplorerServer` (bad options, a port that cannot be bound).
    """
    server = make_server(models, host, port, warn=on_warning is None, **options)
    try:  # Ctrl-C at any moment from here on stops quietly
        if server.warning and on_warning is not None:
            on_warning(server.warning)
        if on_ready is not None:  # announced once uvicorn accepts connections (and handles Ctrl-C itself)
            import threading

            def announce():
                while not server.started and not server._stopped.wait(0.05):
                    pass
                if server.started:
                    on_ready(server.url)

            threading.Thread(target=announce, daemon=True, name="rnnmem-serve-ready").start()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = ["ExplorerServer", "allowed_hosts", "bind_warning", "is_loopback", "make_server", "serve"]
