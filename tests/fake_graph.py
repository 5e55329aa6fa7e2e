"""A fake WhatsApp Graph API on 127.0.0.1 for tests: real sockets, real HTTP.

``POST /<version>/<phone_number_id>/messages`` is recorded and answered like Meta does.
It honours ``Idempotency-Key`` the way a de-duplicating proxy in front of Meta would: a
key that already got a 2xx answer gets the same answer again and is not recorded twice.

    with FakeGraph() as graph:
        graph.fail(2, status=500)      # the next two requests get a 500
        graph.fail(1, status=429, retry_after=30)
        graph.reject(400, "(#131030) Recipient phone number not in allowed list")
        graph.hang(1, seconds=2)       # answer the next request only after 2 s
        graph.templates = [{"name": "pedido_pronto", "language": "pt_BR", "status": "APPROVED",
                            "components": [{"type": "BODY", "text": "Olá {{1}}!"}]}]
        graph.page_size = 2            # GET /<version>/<waba>/message_templates pages by 2
        ...graph.api_base, graph.delivered, graph.requests
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict
    body: bytes
    status: int = 0  # what the fake answered

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class FakeGraph:
    """The fake server. ``delivered``: accepted messages, each idempotency key once."""

    def __init__(self, version: str = "v21.0", token: str | None = None):
        self.version = version
        self.token = token  # when set, other bearer tokens get a 401 like Meta's
        self.requests: list[Request] = []  # every request, answered or not, in order
        self.delivered: list[Request] = []  # accepted, one per idempotency key
        self._answers: dict[str, tuple[int, dict]] = {}
        self._plan: list[tuple[str, dict]] = []  # what the next requests get
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._count = 0
        # Served by GET /<version>/<business account id>/message_templates, paged.
        self.templates: list[dict] = []
        self.page_size = 25
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> FakeGraph:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake._handle(self, body)

            def do_GET(self):  # noqa: N802
                fake._handle_get(self)

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="fake-graph")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeGraph not started"
        return self._server.server_address[1]

    @property
    def api_base(self) -> str:
        """The value for ``PAPO_WHATSAPP_API_BASE``."""
        return f"http://127.0.0.1:{self.port}/{self.version}"

    # -- behaviour ------------------------------------------------------------------
    def fail(self, times: int, status: int = 500, retry_after: float | None = None) -> None:
        """The next ``times`` requests get ``status`` (500, 503, 429...)."""
        with self._lock:
            for _ in range(times):
                self._plan.append(("fail", {"status": status, "retry_after": retry_after}))

    def reject(self, status: int = 400, message: str = "Invalid parameter", code: int = 100) -> None:
        """The next request gets a Meta-style error ``status`` (a permanent 4xx)."""
        with self._lock:
            self._plan.append(("reject", {"status": status, "message": message, "code": code}))

    def hang(self, times: int = 1, seconds: float = 5.0) -> None:
        """The next ``times`` requests are accepted but answered only after ``seconds``."""
        with self._lock:
            for _ in range(times):
                self._plan.append(("hang", {"seconds": seconds}))

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests arrived (a client that timed out does not wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return True
            time.sleep(0.01)
        return False

    def texts(self) -> list[str]:
        """The text (or interactive body text, or template name) of each delivered message."""
        out = []
        for req in self.delivered:
            body = req.json
            out.append(body["text"]["body"] if body["type"] == "text"
                       else f"template:{body['template']['name']}" if body["type"] == "template"
                       else body["interactive"]["body"]["text"])
        return out

    # -- the handler ----------------------------------------------------------------
    def _handle_get(self, handler) -> None:
        """``message_templates`` of any business account, ``page_size`` per page, with
        ``paging.next`` as Meta writes it (a full URL with an ``after`` cursor)."""
        from urllib.parse import parse_qs, urlsplit

        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request("GET", handler.path, headers, b"")
        with self._lock:
            self.requests.append(request)
        parts = urlsplit(handler.path)
        if not parts.path.rstrip("/").endswith("/message_templates") or \
                not parts.path.startswith(f"/{self.version}/"):
            request.status = 404
            handler._send(404, {"error": {"message": "Unknown path", "code": 100}})
            return
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            request.status = 401
            handler._send(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
            return
        after = int((parse_qs(parts.query).get("after") or ["0"])[0])
        page = self.templates[after:after + self.page_size]
        answer: dict = {"data": page, "paging": {"cursors": {"before": str(after),
                                                             "after": str(after + len(page))}}}
        if after + self.page_size < len(self.templates):
            answer["paging"]["next"] = (f"http://127.0.0.1:{self.port}{parts.path}?limit={self.page_size}"
                                        f"&after={after + self.page_size}")
        request.status = 200
        handler._send(200, answer)

    def _handle(self, handler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request("POST", handler.path, headers, body)
        with self._lock:
            self.requests.append(request)
            step = self._plan.pop(0) if self._plan else ("ok", {})
        if not handler.path.rstrip("/").endswith("/messages") or \
                not handler.path.startswith(f"/{self.version}/"):
            request.status = 404
            handler._send(404, {"error": {"message": "Unknown path", "code": 100}})
            return
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            request.status = 401
            handler._send(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
            return
        kind, options = step
        if kind == "fail":
            request.status = options["status"]
            extra = {"Retry-After": str(options["retry_after"])} if options["retry_after"] else None
            handler._send(options["status"], {"error": {"message": "Temporary failure",
                                                        "code": 2}}, extra)
            return
        if kind == "reject":
            request.status = options["status"]
            handler._send(options["status"], {"error": {
                "message": options["message"], "type": "OAuthException", "code": options["code"],
                "error_data": {"messaging_product": "whatsapp", "details": options["message"]}}})
            return
        try:
            payload = json.loads(body.decode("utf-8"))
            to = payload.get("to") or payload["recipient"]  # a number, or a business-scoped user id
        except (ValueError, KeyError, TypeError, AttributeError):
            request.status = 400
            handler._send(400, {"error": {"message": "Invalid JSON body", "code": 100}})
            return
        key = request.idempotency_key
        with self._lock:
            if key and key in self._answers:  # a repeat: same answer, not recorded again
                status, answer = self._answers[key]
            else:
                self._count += 1
                status = 200
                answer = {"messaging_product": "whatsapp",
                          "contacts": [{"input": to, "wa_id": to}],
                          "messages": [{"id": f"wamid.FAKE{self._count:06d}"}]}
                self.delivered.append(request)
                if key:
                    self._answers[key] = (status, answer)
        request.status = status
        if kind == "hang":  # accepted, but the client may give up before it hears so
            self._release.wait(options["seconds"])
        handler._send(status, answer)
