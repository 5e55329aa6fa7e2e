"""engine.http.perform: the http_request block's effect behind the SSRF guard.

Real sockets throughout: a ThreadingHTTPServer on 127.0.0.1 (and an HTTPS one with a
throw-away certificate made by the openssl CLI). Names that are not in DNS (``*.papo.test``)
go through the ``resolver`` hook, which stands in for getaddrinfo.
"""
from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.http import (
    MAX_BODY_BYTES,
    HttpOutcome,
    blocked_reason,
    host_allowed,
    is_blocked_address,
    perform,
)

# ---------------------------------------------------------------------------------------
# The local server
# ---------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data, extra: dict | None = None):
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", extra)

    def _route(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path,
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": body})
        path = url.path
        if path == "/json":
            self._json(200, {"nome": "Ana", "plano": "ouro", "itens": [1, 2, 3]})
        elif path == "/problem":
            self._send(200, b'{"tipo": "x"}', "application/problem+json")
        elif path == "/text":
            self._send(200, "olá, mundo".encode(), "text/plain; charset=utf-8")
        elif path == "/latin1":
            self._send(200, "ação".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/badutf8":
            self._send(200, b"ok \xff\xfe fim", "text/plain")
        elif path == "/badjson":
            self._send(200, b"{not json", "application/json")
        elif path == "/nan":
            self._send(200, b"NaN", "application/json")
        elif path == "/500":
            self._json(500, {"erro": "falhou"})
        elif path == "/404":
            self._send(404, b"nada aqui", "text/plain")
        elif path == "/created":
            self._json(201, {"id": 7})
        elif path == "/slow":
            time.sleep(3)
            self._json(200, {"tarde": True})
        elif path == "/drip":  # headers at once, then a byte every 0.1 s for 5 s
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "50")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        elif path == "/big":  # 1 MiB
            self._send(200, b"a" * (1024 * 1024), "text/plain")
        elif path == "/bigchunked":  # 1 MiB, chunked
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(16):
                piece = b"b" * 65536
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/echo":
            self._json(200, {"method": self.command, "path": self.path,
                             "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body.decode("utf-8", "replace")})
        elif path == "/redirect":
            status = int(query.get("status", "302"))
            self._send(status, b"", "text/plain", {"Location": query["to"]})
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left == 0:
                self._json(200, {"fim": True})
            else:
                self._send(302, b"", "text/plain", {"Location": f"/chain/{left - 1}"})
        else:
            self._send(404, b"?", "text/plain")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.seen: list[dict] = []

    def handle_error(self, request, client_address):  # clients hang up on purpose
        pass


def _start(server: _Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    _start(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def port(server: _Server) -> int:
    server.seen.clear()
    return server.server_address[1]


@pytest.fixture
def base(port: int) -> str:
    return f"http://127.0.0.1:{port}"


LOCAL = ("127.0.0.1",)


def get(url: str, **call) -> dict:
    return {"type": "http", "block_id": "b1", "method": "GET", "url": url, "headers": {},
            "body": None, "timeout_s": 5, **call}


def names(mapping: dict[str, list[str]]):
    """A resolver hook: name → addresses (unknown names do not resolve); counts calls."""
    calls: list[str] = []

    def resolve(host: str) -> list[str]:
        calls.append(host)
        if host not in mapping:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return mapping[host]

    resolve.calls = calls
    return resolve


# ---------------------------------------------------------------------------------------
# The guard: refused targets
# ---------------------------------------------------------------------------------------


def test_loopback_refused_without_allow_list(base, server):
    out = perform(get(f"{base}/json"))
    assert out == HttpOutcome(False, None, None, out.error)
    assert "destino bloqueado" in out.error
    assert "127.0.0.1" in out.error and "loopback" in out.error
    assert "PAPO_HTTP_ALLOW_HOSTS" in out.error
    assert server.seen == []  # never connected


def test_allowed_by_bare_host(base):
    out = perform(get(f"{base}/json"), LOCAL)
    assert out.ok and out.status == 200 and out.error is None
    assert out.body == {"nome": "Ana", "plano": "ouro", "itens": [1, 2, 3]}


def test_allowed_by_host_and_port(base, port):
    out = perform(get(f"{base}/json"), (f"127.0.0.1:{port}",))
    assert out.ok and out.body["nome"] == "Ana"


def test_other_port_in_allow_list_refused(base, port, server):
    out = perform(get(f"{base}/json"), (f"127.0.0.1:{port + 1}", "example.com"))
    assert not out.ok and out.status is None
    assert "destino bloqueado" in out.error and "127.0.0.1" in out.error
    assert server.seen == []


@pytest.mark.parametrize("url, address, reason", [
    ("http://10.0.0.1/", "10.0.0.1", "rede privada"),
    ("http://192.168.1.10:8080/x", "192.168.1.10", "rede privada"),
    ("http://172.20.0.3/", "172.20.0.3", "rede privada"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "metadados de nuvem"),
    ("http://169.254.10.1/", "169.254.10.1", "link-local"),
    ("http://100.100.100.200/", "100.100.100.200", "CGNAT"),
    ("http://[::1]:9/", "::1", "loopback"),
    ("http://0.0.0.0:9/", "0.0.0.0", "não especificado"),
    ("http://[::]/", "::", "não especificado"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "IPv4 mapeado"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", "metadados de nuvem"),
    ("http://[fd00::1]/", "fd00::1", "ULA"),
    ("http://[fe80::1]/", "fe80::1", "link-local"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://127.0.0.2:9/", "127.0.0.2", "loopback"),
])
def test_internal_literals_refused_with_reason(url, address, reason):
    out = perform(get(url, timeout_s=2))
    assert not out.ok and out.status is None and out.body is None
    assert out.error.startswith("destino bloqueado: ")
    assert address in out.error and reason in out.error


def test_localhost_name_refused(port):
    out = perform(get(f"http://localhost:{port}/json"))
    assert not out.ok
    assert "localhost" in out.error and "127.0.0.1" in out.error and "loopback" in out.error


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
def test_odd_ipv4_spellings_resolve_to_loopback_and_are_refused(host, port, server):
    out = perform(get(f"http://{host}:{port}/json"))
    assert not out.ok and "destino bloqueado" in out.error and "127.0.0.1" in out.error
    assert server.seen == []


def test_public_looking_name_resolving_to_private_ip_refused():
    resolve = names({"api.loja-exemplo.com.br": ["10.1.2.3"]})
    out = perform(get("https://api.loja-exemplo.com.br/pedidos"), resolver=resolve)
    assert not out.ok and out.status is None
    assert "api.loja-exemplo.com.br" in out.error and "10.1.2.3" in out.error
    assert "rede privada" in out.error


def test_any_internal_address_among_several_refuses():
    resolve = names({"misto.papo.test": ["93.184.216.34", "2606:4700::1111", "127.0.0.1"]})
    out = perform(get("http://misto.papo.test/"), resolver=resolve)
    assert not out.ok and "127.0.0.1" in out.error


def test_name_resolved_once_and_connection_pinned(port, server):
    """The allowed name is resolved by the hook only (system DNS does not know it), once,
    and the request carries the original Host header."""
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    out = perform(get(f"http://api.papo.test:{port}/echo"), ("api.papo.test",), resolver=resolve)
    assert out.ok, out.error
    assert resolve.calls == ["api.papo.test"]
    assert out.body["headers"]["host"] == f"api.papo.test:{port}"


def test_allow_list_is_about_the_url_host_not_the_address(port):
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    out = perform(get(f"http://api.papo.test:{port}/json"), LOCAL, resolver=resolve)
    assert not out.ok and "api.papo.test" in out.error


def test_unresolvable_name():
    out = perform(get("http://nao-existe.papo.test/"), resolver=names({}))
    assert out == HttpOutcome(False, None, None,
                              "não foi possível resolver o nome nao-existe.papo.test")


def test_slow_dns_counts_against_the_timeout():
    def slow(host):
        time.sleep(3)
        return ["93.184.216.34"]

    started = time.monotonic()
    out = perform(get("http://lento.papo.test/", timeout_s=0.5), resolver=slow)
    assert time.monotonic() - started < 2.5  # the resolver takes 3 s
    assert out.error == "tempo esgotado após 0,5 s"


@pytest.mark.parametrize("url, shown", [
    ("file:///etc/passwd", "file"),
    ("gopher://127.0.0.1:70/_x", "gopher"),
    ("ftp://example.com/a", "ftp"),
    ("dict://example.com:11211/", "dict"),
    ("javascript:alert(1)", "javascript"),
    ("//example.com/x", "nenhum"),
    ("example.com/x", "nenhum"),
])
def test_non_http_schemes_refused(url, shown):
    out = perform(get(url))
    assert not out.ok and out.status is None
    assert out.error == f"esquema não permitido: {shown} (use http ou https)"


def test_ipv6_literal_allowed_and_host_header_bracketed():
    class _Server6(_Server):
        address_family = socket.AF_INET6

    try:
        srv = _Server6(("::1", 0), _Handler)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    _start(srv)
    try:
        port = srv.server_address[1]
        assert not perform(get(f"http://[::1]:{port}/echo")).ok
        out = perform(get(f"http://[::1]:{port}/echo"), ("[::1]",))
        assert out.ok, out.error
        assert out.body["headers"]["host"] == f"[::1]:{port}"
    finally:
        srv.shutdown()
        srv.server_close()


# ---------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------


def test_text_body(base):
    out = perform(get(f"{base}/text"), LOCAL)
    assert out.ok and out.body == "olá, mundo"


def test_declared_charset_and_bad_utf8(base):
    assert perform(get(f"{base}/latin1"), LOCAL).body == "ação"
    assert perform(get(f"{base}/badutf8"), LOCAL).body == "ok \ufffd\ufffd fim"


def test_json_variants(base):
    assert perform(get(f"{base}/problem"), LOCAL).body == {"tipo": "x"}
    assert perform(get(f"{base}/badjson"), LOCAL).body == "{not json"
    assert perform(get(f"{base}/nan"), LOCAL).body == "NaN"  # kept as text, not a float NaN


def test_non_2xx_is_not_ok_but_has_status_and_body(base):
    out = perform(get(f"{base}/500"), LOCAL)
    assert out.ok is False and out.status == 500 and out.body == {"erro": "falhou"}
    assert "500" in out.error
    out = perform(get(f"{base}/404"), LOCAL)
    assert (out.ok, out.status, out.body) == (False, 404, "nada aqui")


def test_post_json_body_arrives_intact(base, server):
    payload = {"nome": "João", "itens": [{"sku": "A1", "qtd": 2}], "vip": True, "nota": None}
    out = perform(get(f"{base}/created", method="POST", body=payload), LOCAL)
    assert (out.ok, out.status, out.body) == (True, 201, {"id": 7})
    request = server.seen[-1]
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    assert json.loads(request["body"]) == payload


def test_list_body_is_json(base, server):
    perform(get(f"{base}/echo", method="PUT", body=[1, "dois"]), LOCAL)
    assert json.loads(server.seen[-1]["body"]) == [1, "dois"]


def test_string_body_is_sent_as_is(base):
    out = perform(get(f"{base}/echo", method="POST", body="a=1&b=ç"), LOCAL)
    assert out.body["body"] == "a=1&b=ç"
    assert out.body["headers"]["content-type"] == "text/plain; charset=utf-8"
    out = perform(get(f"{base}/echo", method="PATCH", body='{"x": 1}',
                      headers={"content-type": "application/json"}), LOCAL)
    assert out.body["headers"]["content-type"] == "application/json"
    assert out.body["method"] == "PATCH" and out.body["body"] == '{"x": 1}'


def test_no_body(base, server):
    out = perform(get(f"{base}/echo", method="DELETE"), LOCAL)
    assert out.ok and out.body["method"] == "DELETE" and out.body["body"] == ""
    assert "content-type" not in out.body["headers"]


def test_headers_sent(base, port):
    headers = {"Authorization": "Bearer segredo", "X-Loja": "Centro", "Accept": "text/plain",
               "X-Nome": "José ☕"}
    out = perform(get(f"{base}/echo", headers=headers), LOCAL)
    sent = out.body["headers"]
    assert sent["authorization"] == "Bearer segredo"
    assert sent["x-loja"] == "Centro"
    assert sent["accept"] == "text/plain"
    assert sent["host"] == f"127.0.0.1:{port}"
    assert sent["user-agent"].startswith("papo/")
    assert "x-nome" in sent  # non-Latin-1 values go out as UTF-8


def test_owned_headers_cannot_be_overridden(base, port):
    out = perform(get(f"{base}/echo", method="POST", body="abc",
                      headers={"Host": "evil.example", "Content-Length": "999"}), LOCAL)
    assert out.ok
    assert out.body["headers"]["host"] == f"127.0.0.1:{port}"
    assert out.body["headers"]["content-length"] == "3"


@pytest.mark.parametrize("headers", [
    {"X-A": "1\r\nX-Injetado: sim"},
    {"X-A\r\nX-B": "1"},
    {"": "1"},
    {"X A": "1"},
    ["X-A", "1"],
])
def test_bad_headers_refused(base, server, headers):
    out = perform(get(f"{base}/echo", headers=headers), LOCAL)
    assert not out.ok and out.status is None and "cabeçalho" in out.error
    assert server.seen == []


def test_url_with_spaces_and_accents_is_encoded(base):
    out = perform(get(f"{base}/echo?nome=João Silva&cidade=São Paulo"), LOCAL)
    assert out.ok
    assert parse_qs(urlsplit(out.body["path"]).query) == {
        "nome": ["João Silva"], "cidade": ["São Paulo"]}


def test_credentials_in_url_become_basic_auth_and_never_show_in_errors(port):
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    out = perform(get(f"http://ana:s3nh4%21@api.papo.test:{port}/echo"), ("api.papo.test",),
                  resolver=resolve)
    expected = base64.b64encode(b"ana:s3nh4!").decode()
    assert out.body["headers"]["authorization"] == f"Basic {expected}"
    refused = perform(get(f"http://ana:s3nh4@127.0.0.1:{port}/echo"))
    assert not refused.ok and "s3nh4" not in refused.error and "ana" not in refused.error


def test_response_body_cut_at_256_kib(base):
    out = perform(get(f"{base}/big"), LOCAL)
    assert out.ok and out.body == "a" * MAX_BODY_BYTES
    out = perform(get(f"{base}/bigchunked"), LOCAL)
    assert out.ok and out.body == "b" * MAX_BODY_BYTES


def test_head_request(base):
    out = perform(get(f"{base}/json", method="HEAD"), LOCAL)
    assert (out.ok, out.status, out.body) == (True, 200, "")


# ---------------------------------------------------------------------------------------
# Time limits and network errors
# ---------------------------------------------------------------------------------------


def test_slow_response_times_out_quickly(base):
    started = time.monotonic()
    out = perform(get(f"{base}/slow", timeout_s=0.5), LOCAL)
    assert time.monotonic() - started < 2.5  # the server takes 3 s
    assert out == HttpOutcome(False, None, None, "tempo esgotado após 0,5 s")


def test_drip_fed_body_cannot_stretch_the_deadline(base):
    """Each byte arrives well inside a per-read timeout; the overall deadline still holds."""
    started = time.monotonic()
    out = perform(get(f"{base}/drip", timeout_s=1), LOCAL)
    assert time.monotonic() - started < 3.5  # the drip lasts 5 s
    assert out == HttpOutcome(False, None, None, "tempo esgotado após 1 s")


def test_timeout_is_capped_and_defaulted():
    import engine.http as mod

    assert mod._timeout(120) == 30
    assert mod._timeout(None) == 10
    assert mod._timeout("abc") == 10
    assert mod._timeout(-1) == 10
    assert mod._timeout(float("nan")) == 10
    assert mod._timeout("2.5") == 2.5


def test_connection_refused():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    out = perform(get(f"http://127.0.0.1:{free}/"), LOCAL)
    assert not out.ok and out.status is None
    assert out.error == f"conexão recusada por 127.0.0.1:{free}"


def test_server_hanging_up_without_answer():
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up():
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        out = perform(get(f"http://127.0.0.1:{listener.getsockname()[1]}/"), LOCAL)
    finally:
        thread.join(2)
        listener.close()
    assert not out.ok and out.status is None and "encerrou a conexão" in out.error


# ---------------------------------------------------------------------------------------
# Redirects
# ---------------------------------------------------------------------------------------


def test_redirect_within_allowed_host_is_followed(base):
    out = perform(get(f"{base}/redirect?to=/json"), LOCAL)
    assert out.ok and out.body["nome"] == "Ana"


def test_three_redirects_followed_a_fourth_is_not(base):
    assert perform(get(f"{base}/chain/3"), LOCAL).body == {"fim": True}
    out = perform(get(f"{base}/chain/4"), LOCAL)
    assert not out.ok and out.status == 302
    assert out.error == "redirecionamentos demais (máximo 3)"


def test_redirect_to_loopback_refused(port, server):
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    target = f"http://127.0.0.1:{port}/json"
    out = perform(get(f"http://api.papo.test:{port}/redirect?to={target}"), ("api.papo.test",),
                  resolver=resolve)
    assert not out.ok and out.status is None
    assert "redirecionamento" in out.error and "127.0.0.1" in out.error
    assert [r["path"] for r in server.seen] == [f"/redirect?to={target}"]


def test_redirect_to_metadata_ip_refused(base):
    out = perform(get(f"{base}/redirect?to=http://169.254.169.254/latest/meta-data/&status=301"),
                  LOCAL)
    assert not out.ok and out.status is None
    assert "169.254.169.254" in out.error and "metadados de nuvem" in out.error


def test_redirect_to_other_port_not_in_allow_list_refused(base, port):
    other = f"http://127.0.0.1:{port + 1}/"
    out = perform(get(f"{base}/redirect?to={other}"), (f"127.0.0.1:{port}",))
    assert not out.ok and "destino bloqueado" in out.error


def test_redirect_to_other_scheme_refused(base):
    out = perform(get(f"{base}/redirect?to=file:///etc/passwd"), LOCAL)
    assert out.error == "esquema não permitido: file (use http ou https)"


def test_redirect_303_turns_post_into_get(base, server):
    out = perform(get(f"{base}/redirect?to=/echo&status=303", method="POST", body={"a": 1}),
                  LOCAL)
    assert out.body["method"] == "GET" and out.body["body"] == ""


def test_redirect_307_keeps_method_and_body(base):
    out = perform(get(f"{base}/redirect?to=/echo&status=307", method="POST", body={"a": 1}),
                  LOCAL)
    assert out.body["method"] == "POST" and json.loads(out.body["body"]) == {"a": 1}


def test_cross_origin_redirect_drops_secret_headers(port):
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    to = f"http://127.0.0.1:{port}/echo"
    out = perform(get(f"http://api.papo.test:{port}/redirect?to={to}",
                      headers={"Authorization": "Bearer segredo", "X-Api-Key": "k",
                               "Accept": "application/json"}),
                  ("api.papo.test", "127.0.0.1"), resolver=resolve)
    sent = out.body["headers"]
    assert "authorization" not in sent and "x-api-key" not in sent
    assert sent["accept"] == "application/json"


def test_same_origin_redirect_keeps_headers(base):
    out = perform(get(f"{base}/redirect?to=/echo", headers={"Authorization": "Bearer s"}), LOCAL)
    assert out.body["headers"]["authorization"] == "Bearer s"


# ---------------------------------------------------------------------------------------
# HTTPS: pinned address, SNI and certificate checks on the URL's name
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[_Server, str, list]]:
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=api.papo.test", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:api.papo.test",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        check=True, capture_output=True)
    sni: list = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    _start(srv)
    yield srv, str(cert), sni
    srv.shutdown()
    srv.server_close()


def test_https_pinned_with_sni_and_host(tls_server):
    srv, cert, sni = tls_server
    port = srv.server_address[1]
    client = ssl.create_default_context(cafile=cert)
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    out = perform(get(f"https://api.papo.test:{port}/echo"), ("api.papo.test",),
                  resolver=resolve, ssl_context=client)
    assert out.ok, out.error
    assert sni[-1] == "api.papo.test"
    assert out.body["headers"]["host"] == f"api.papo.test:{port}"
    assert resolve.calls == ["api.papo.test"]


def test_https_certificate_checked_against_url_name(tls_server):
    srv, cert, _ = tls_server
    port = srv.server_address[1]
    client = ssl.create_default_context(cafile=cert)
    resolve = names({"outro.papo.test": ["127.0.0.1"]})
    out = perform(get(f"https://outro.papo.test:{port}/json"), ("outro.papo.test",),
                  resolver=resolve, ssl_context=client)
    assert not out.ok and out.status is None
    assert "certificado TLS inválido" in out.error and "outro.papo.test" in out.error


def test_https_untrusted_certificate_refused_by_default(tls_server):
    srv, _, _ = tls_server
    resolve = names({"api.papo.test": ["127.0.0.1"]})
    out = perform(get(f"https://api.papo.test:{srv.server_address[1]}/json"),
                  ("api.papo.test",), resolver=resolve)
    assert not out.ok and "certificado TLS inválido" in out.error


def test_stalled_tls_handshake_times_out():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never speaks
    try:
        resolve = names({"mudo.papo.test": ["127.0.0.1"]})
        started = time.monotonic()
        out = perform(get(f"https://mudo.papo.test:{listener.getsockname()[1]}/", timeout_s=0.5),
                      ("mudo.papo.test",), resolver=resolve)
        assert time.monotonic() - started < 2.5
        assert out.error == "tempo esgotado após 0,5 s"
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------
# Never raises
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    None, [], "http://example.com", {}, {"url": None}, {"url": 5}, {"method": "GET"},
    {"method": "GET", "url": "http://"}, {"method": "GET", "url": "http://[::1"},
    {"method": "GET", "url": "http://a:99999/"}, {"method": "GET", "url": "http://a:0/"},
    {"method": "GET", "url": "http://a:-1/"}, {"method": "GET", "url": "http://exa mple.com/"},
    {"method": "GET", "url": "http://ex\nample.com/"}, {"method": "GET", "url": "http://x\x00/"},
    {"method": "TRACE", "url": "http://example.com"}, {"method": 5, "url": "http://example.com"},
    {"method": "GET\r\nX: y", "url": "http://example.com"},
    {"method": "POST", "url": "http://10.0.0.1", "body": {1, 2}},
    {"method": "POST", "url": "http://10.0.0.1", "body": float("nan")},
    {"method": "GET", "url": "http://10.0.0.1", "timeout_s": "x", "headers": None},
    {"method": "GET", "url": "http://" + "a" * 70 + ".com/"},
    {"method": "GET", "url": "http://a..b/"},
])
def test_malformed_calls_never_raise(call):
    out = perform(call, resolver=names({}))
    assert isinstance(out, HttpOutcome)
    assert out.ok is False and out.status is None and out.error


@settings(max_examples=150, deadline=None)
@given(url=st.one_of(st.text(max_size=60), st.text(max_size=40).map(lambda s: "http://" + s),
                     st.text(max_size=40).map(lambda s: "https://[" + s)),
       allow=st.lists(st.text(max_size=20), max_size=3))
def test_any_url_never_raises(url, allow):
    out = perform({"method": "GET", "url": url, "timeout_s": 0.3}, tuple(allow),
                  resolver=lambda host: ["10.0.0.1"])
    assert isinstance(out, HttpOutcome) and not out.ok


# ---------------------------------------------------------------------------------------
# Helpers: is_blocked_address, host_allowed
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1",
    "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.192",
    "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "fc00::1", "fd12:3456::1", "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1",
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::1", "2002:a9fe:a9fe::", "2001::1",
    "2001:db8::1", "100::1", "[::1]", "not an ip", "", None, 2130706433,
])
def test_blocked_addresses(ip):
    assert is_blocked_address(ip) is True
    assert blocked_reason(ip)


@pytest.mark.parametrize("ip", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.32.0.1",
    "169.253.255.255", "2606:4700:4700::1111", "2a03:2880:f12f:83:face:b00c::25de",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
])
def test_public_addresses(ip):
    assert is_blocked_address(ip) is False
    assert blocked_reason(ip) is None


@pytest.mark.parametrize("host, port, allow, expected", [
    ("127.0.0.1", 8000, ("127.0.0.1",), True),
    ("127.0.0.1", 8000, ("127.0.0.1:8000",), True),
    ("127.0.0.1", 8000, ("127.0.0.1:8001",), False),
    ("127.0.0.1", 8000, (), False),
    ("127.0.0.1", 8000, ("localhost",), False),
    ("localhost", 80, ("localhost",), True),
    ("LocalHost.", 80, (" localhost ",), True),
    ("api.interna", 443, ("api.interna:443", "outra"), True),
    ("sub.api.interna", 443, ("api.interna",), False),
    ("::1", 8080, ("[::1]:8080",), True),
    ("::1", 8080, ("[::1]",), True),
    ("::1", 8080, ("::1",), True),
    ("::1", 8080, ("0:0::1",), True),
    ("::1", 8080, ("[::1]:9",), False),
    ("api.interna", 80, ("api.interna:abc", "api.interna:99999", "[::1"), False),
    ("api.interna", 80, "x,api.interna:80", True),
    ("", 80, ("",), False),
])
def test_host_allowed(host, port, allow, expected):
    assert host_allowed(host, port, allow) is expected
