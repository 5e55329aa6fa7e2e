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

Media, as the Cloud API serves it: ``POST /<version>/<phone_number_id>/media`` (multipart)
stores an upload and answers its id; ``GET /<version>/<media-id>`` answers the media's
``url`` (on this server, ``/download/<media-id>``), which answers the bytes to the same
bearer token. ``graph.add_media(id, data, mime)`` puts a customer's media there;
``graph.downloads`` counts the downloads. ``graph.statuses("read")`` makes the
``statuses[]`` Meta would send for the messages delivered so far.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


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
        self.media: dict[str, tuple[bytes, str, str | None]] = {}  # id → (data, mime, filename)
        self.downloads = 0  # media downloads answered
        self.media_url_host: str | None = None  # answer media URLs on another host (SSRF tests)

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
                fake._get(self)

            def _send(self, status: int, payload: dict | bytes, headers: dict | None = None,
                      content_type: str = "application/json") -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
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
            if body["type"] == "text":
                out.append(body["text"]["body"])
            elif body["type"] == "interactive":
                out.append(body["interactive"]["body"]["text"])
            elif body["type"] == "template":
                out.append(f"template:{body['template']['name']}")
            else:  # media: its caption
                out.append(body[body["type"]].get("caption", ""))
        return out

    def add_media(self, media_id: str, data: bytes, mime: str, filename: str | None = None) -> None:
        """Media a customer sent, for papo to fetch by ``media_id``."""
        with self._lock:
            self.media[media_id] = (data, mime, filename)

    def uploads(self) -> list[Request]:
        """The accepted media uploads, in order."""
        return [r for r in self.requests if r.path.endswith("/media") and r.status == 200]

    def statuses(self, status: str, at: int = 1_800_000_000, error: dict | None = None,
                 messages: list[Request] | None = None) -> list[dict]:
        """The ``statuses[]`` Meta would send about the delivered messages (or ``messages``)."""
        out = []
        for req in messages if messages is not None else self.delivered:
            answer = self._answers.get(req.idempotency_key or "")
            if answer is None:
                continue
            body = req.json
            item = {"id": answer[1]["messages"][0]["id"], "status": status, "timestamp": str(at),
                    "recipient_id": body.get("to") or body.get("recipient")}
            if error is not None:
                item["errors"] = [error]
            out.append(item)
        return out

    # -- the handler ----------------------------------------------------------------
    def _authorized(self, headers: dict) -> bool:
        return self.token is None or headers.get("authorization") == f"Bearer {self.token}"

    def _get(self, handler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request("GET", handler.path, headers, b"")
        with self._lock:
            self.requests.append(request)
        path = handler.path.split("?", 1)[0]
        if not self._authorized(headers):
            request.status = 401
            handler._send(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
            return
        if path.rstrip("/").endswith("/message_templates") and path.startswith(f"/{self.version}/"):
            self._templates(handler, request)
            return
        if path.startswith("/download/"):
            found = self.media.get(path.removeprefix("/download/"))
            if found is None:
                request.status = 404
                handler._send(404, {"error": {"message": "Unknown media", "code": 100}})
                return
            with self._lock:
                self.downloads += 1
            request.status = 200
            handler._send(200, found[0], content_type=found[1])
            return
        media_id = path.removeprefix(f"/{self.version}/")
        found = self.media.get(media_id) if path.startswith(f"/{self.version}/") else None
        if found is None:
            request.status = 404
            handler._send(404, {"error": {"message": "Unsupported get request", "code": 100}})
            return
        host = self.media_url_host or f"127.0.0.1:{self.port}"
        request.status = 200
        handler._send(200, {"messaging_product": "whatsapp", "url": f"http://{host}/download/{media_id}",
                            "mime_type": found[1], "sha256": "0" * 64, "file_size": len(found[0]),
                            "id": media_id})

    def _upload(self, handler, request: Request) -> None:
        """``POST /{phone-number-id}/media``: a multipart form with ``file``, ``type`` and
        ``messaging_product``; answers ``{"id"}``."""
        if not self._authorized(request.headers):
            request.status = 401
            handler._send(401, {"error": {"message": "Invalid OAuth access token.", "code": 190}})
            return
        head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + request.body)
        fields = {part.get_param("name", header="content-disposition"): part
                  for part in form.iter_parts()} if form.is_multipart() else {}
        file = fields.get("file")
        product = fields.get("messaging_product")
        if file is None or product is None or product.get_content().strip() != "whatsapp":
            request.status = 400
            handler._send(400, {"error": {"message": "(#100) The parameter file is required.", "code": 100}})
            return
        with self._lock:
            self._count += 1
            media_id = f"media.FAKE{self._count:06d}"
            self.media[media_id] = (file.get_payload(decode=True), file.get_content_type(),
                                    file.get_filename())
        request.status = 200
        handler._send(200, {"id": media_id})

    def _templates(self, handler, request: Request) -> None:
        """``message_templates`` of any business account, ``page_size`` per page, with
        ``paging.next`` as Meta writes it (a full URL with an ``after`` cursor)."""
        parts = urlsplit(handler.path)
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
        upload = handler.path.rstrip("/").endswith("/media")
        with self._lock:
            self.requests.append(request)
            step = self._plan.pop(0) if self._plan and not upload else ("ok", {})
        if upload and handler.path.startswith(f"/{self.version}/"):
            self._upload(handler, request)
            return
        if not handler.path.rstrip("/").endswith("/messages") or \
                not handler.path.startswith(f"/{self.version}/"):
            request.status = 404
            handler._send(404, {"error": {"message": "Unknown path", "code": 100}})
            return
        if not self._authorized(headers):
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
