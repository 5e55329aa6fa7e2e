"""Performing the ``http_request`` block's effect, behind an SSRF guard.

The engine is pure: the ``http_request`` block returns an effect
``{"type": "http", "block_id", "method", "url", "headers", "body", "timeout_s"}``.
``engine.service`` calls :func:`perform` with it and feeds the outcome back to the
engine as ``engine.core.HttpResult(at, outcome.ok, outcome.status, outcome.body)``.

Security rules (DESIGN §2, docs/HTTP_REQUESTS.md):

- only ``http`` and ``https``;
- the host is resolved once; if *any* address is internal (private, loopback,
  link-local, CGNAT, multicast, reserved, unspecified, cloud metadata, or an IPv6 form
  embedding one of those) the call is refused, unless the URL's host (or ``host:port``)
  is in ``PAPO_HTTP_ALLOW_HOSTS``;
- the connection goes to the address that was checked (pinned: no second DNS lookup,
  so DNS rebinding cannot swap it), with the original ``Host`` header and TLS SNI;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each target checked
  by the same guard;
- one deadline (``timeout_s``, at most 30 s) covers DNS, connect, TLS and reading, for
  the whole redirect chain;
- at most :data:`MAX_BODY_BYTES` of a response body are read.

:func:`perform` never raises: every failure is an :class:`HttpOutcome` with ``ok`` False
and a short message in Portuguese in ``error``. Only the standard library is used.
"""
from __future__ import annotations

import base64
import codecs
import http.client
import ipaddress
import json
import math
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "MAX_TIMEOUT_S",
    "HttpOutcome",
    "blocked_reason",
    "host_allowed",
    "is_blocked_address",
    "perform",
]

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 256 * 1024
MAX_REDIRECTS = 3
USER_AGENT = "papo/0.1 (+http_request)"
ALLOW_SETTING = "PAPO_HTTP_ALLOW_HOSTS"

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers the caller may not set: papo owns framing and the connection.
_OWNED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                            "keep-alive", "upgrade", "te", "trailer", "proxy-connection"})
# Headers kept when a redirect leaves the original origin; every other header the flow
# author set (Authorization, API keys, cookies...) is dropped so it does not leak.
_CROSS_ORIGIN_SAFE_HEADERS = frozenset({"accept", "accept-language", "user-agent",
                                        "content-type", "content-language"})
_READ_CHUNK = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

Resolver = Callable[[str], Iterable[str]]


@dataclass(frozen=True)
class HttpOutcome:
    """The result of :func:`perform`.

    ``ok``: the final response was 2xx. ``status``: its status code, or None when no
    response arrived (refused target, DNS, network error, timeout). ``body``: the parsed
    JSON or the text of the final response (None without a response). ``error``: None when
    ``ok``, else a short message in Portuguese for the run log.
    """

    ok: bool
    status: int | None
    body: Any
    error: str | None


# ---------------------------------------------------------------------------------------
# Address classification
# ---------------------------------------------------------------------------------------

def _nets(*pairs: tuple[str, str]) -> tuple[tuple[Any, str], ...]:
    return tuple((ipaddress.ip_network(net), label) for net, label in pairs)


# Order matters: the first match names the reason (specific before general).
_BLOCKED_V4 = _nets(
    ("169.254.169.254/32", "metadados de nuvem"),
    ("0.0.0.0/8", "rede 0.0.0.0/8, não especificado"),
    ("10.0.0.0/8", "rede privada"),
    ("100.64.0.0/10", "rede compartilhada CGNAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "rede privada"),
    ("192.0.0.0/24", "reservado IETF"),
    ("192.0.2.0/24", "rede de documentação"),
    ("192.88.99.0/24", "relay 6to4"),
    ("192.168.0.0/16", "rede privada"),
    ("198.18.0.0/15", "rede de testes"),
    ("198.51.100.0/24", "rede de documentação"),
    ("203.0.113.0/24", "rede de documentação"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reservado"),
)
_BLOCKED_V6 = _nets(
    ("::/128", "não especificado"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4 compatível (obsoleto)"),
    ("64:ff9b:1::/48", "NAT64 local"),
    ("100::/64", "descarte"),
    ("2001::/23", "reservado IETF (inclui Teredo)"),
    ("2001:db8::/32", "rede de documentação"),
    ("3fff::/20", "rede de documentação"),
    ("5f00::/16", "SRv6"),
    ("fd00:ec2::254/128", "metadados de nuvem"),
    ("fc00::/7", "rede privada (ULA)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (obsoleto)"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64_V6 = ipaddress.ip_network("64:ff9b::/96")


def _parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def blocked_reason(ip: Any) -> str | None:
    """Why ``ip`` (a string or an ``ipaddress`` object) is internal, in Portuguese, or None
    when it is a public address. Anything that is not an IP address is blocked."""
    addr = _parse_ip(ip)
    if addr is None:
        return "endereço inválido"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:  # fe80::1%eth0: the zone makes it local whatever the address
            addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
        # IPv6 forms that carry an IPv4 address are judged by that address.
        embedded, form = None, ""
        if addr.ipv4_mapped is not None:
            embedded, form = addr.ipv4_mapped, "IPv4 mapeado em IPv6"
        elif addr in _NAT64_V6:
            embedded, form = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF), "NAT64"
        elif addr.sixtofour is not None:
            embedded, form = addr.sixtofour, "6to4"
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner}, {form}" if inner else None
        for net, label in _BLOCKED_V6:
            if addr in net:
                return label
        if addr not in _GLOBAL_UNICAST_V6 or not addr.is_global:
            return "reservado"
        return None
    for net, label in _BLOCKED_V4:
        if addr in net:
            return label
    if not addr.is_global or addr.is_multicast or addr.is_reserved:
        return "reservado"
    return None


def is_blocked_address(ip: Any) -> bool:
    """True when ``ip`` is not a public unicast address (see :func:`blocked_reason`)."""
    return blocked_reason(ip) is not None


# ---------------------------------------------------------------------------------------
# Allow-list (PAPO_HTTP_ALLOW_HOSTS)
# ---------------------------------------------------------------------------------------

def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = _parse_ip(host)
    if ip is not None:
        return ip.compressed
    try:
        return host.encode("idna").decode("ascii") if host else host
    except UnicodeError:
        return host


def _parse_allow_entry(entry: str) -> tuple[str, int | None] | None:
    """``host`` / ``host:port`` / ``[v6]`` / ``[v6]:port`` / bare ``v6`` → (host, port)."""
    text = entry.strip()
    if not text:
        return None
    port_text = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address, or a bare IPv6 address (no port)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    host = _normalize_host(host)
    return (host, port) if host else None


def _allow_entries(allow_hosts: Any) -> list[str]:
    if not allow_hosts:
        return []
    if isinstance(allow_hosts, str):
        return allow_hosts.split(",")
    return [entry for entry in allow_hosts if isinstance(entry, str)]


def host_allowed(host: str, port: int | None, allow_hosts: Any) -> bool:
    """Whether ``host`` on ``port`` is in the allow-list (``PAPO_HTTP_ALLOW_HOSTS``).

    Entries are ``host`` (every port) or ``host:port``; IPv6 as ``[::1]:8080`` or bare
    ``::1``. Names compare case-insensitively, without a trailing dot; IP addresses compare
    as addresses (``::1`` equals ``0:0::1``). No wildcards.
    """
    if not isinstance(host, str) or not host.strip():
        return False
    wanted = _normalize_host(host)
    for entry in _allow_entries(allow_hosts):
        parsed = _parse_allow_entry(entry)
        if parsed is None:
            continue
        entry_host, entry_port = parsed
        if entry_host == wanted and (entry_port is None or entry_port == port):
            return True
    return False


# ---------------------------------------------------------------------------------------
# Errors and the deadline
# ---------------------------------------------------------------------------------------

class _Refused(Exception):
    """A failure with a message for the flow author (Portuguese)."""


class _TimedOut(Exception):
    pass


def _seconds(value: float) -> str:
    if value == int(value):
        return f"{int(value)} s"
    return f"{value:g} s".replace(".", ",")


class _Deadline:
    """One deadline for the whole call; a watchdog shuts the open socket down when it
    passes, so a server sending a byte at a time cannot stretch the call."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0 or self._expired:
            raise _TimedOut
        return left

    @property
    def expired(self) -> bool:
        return self._expired

    @property
    def passed(self) -> bool:
        return self._expired or time.monotonic() >= self.end

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            expired = self._expired
        if expired:
            raise _TimedOut

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sock = self._sock
        if sock is not None:
            try:  # the plain socket's shutdown (also on an SSLSocket): unblocks recv()
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()


# ---------------------------------------------------------------------------------------
# DNS and pinned connections
# ---------------------------------------------------------------------------------------

def _system_resolver(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _resolve(host: str, resolver: Resolver | None, deadline: _Deadline) -> list[str]:
    if _parse_ip(host) is not None:
        return [host]
    resolve = resolver or _system_resolver
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["addresses"] = [str(a) for a in resolve(host)]
        except Exception as exc:  # reported below
            box["error"] = exc

    # getaddrinfo has no timeout of its own: run it aside and wait at most the deadline.
    worker = threading.Thread(target=work, name="papo-http-dns", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise _TimedOut
    addresses = list(dict.fromkeys(box.get("addresses") or []))
    if not addresses:
        raise _Refused(f"não foi possível resolver o nome {host}")
    return addresses


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _open_socket(addresses: list[str], port: int, deadline: _Deadline) -> socket.socket:
    last_error: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=deadline.remaining())
        except TimeoutError:
            raise _TimedOut from None
        except OSError as exc:
            last_error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    assert last_error is not None
    raise last_error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to already-checked addresses; ``host`` is only used for the Host header."""

    def __init__(self, host: str, port: int, addresses: list[str], deadline: _Deadline):
        super().__init__(host, port, timeout=deadline.remaining())
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _open_socket(self._addresses, self.port, self._deadline)
        self._deadline.watch(self.sock)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS: SNI and certificate checks use the URL's host name."""

    def __init__(self, host: str, port: int, addresses: list[str], deadline: _Deadline,
                 context: ssl.SSLContext):
        super().__init__(host, port, timeout=deadline.remaining(), context=context)
        self._addresses = addresses
        self._deadline = deadline
        self._tls = context

    def connect(self) -> None:
        # self.sock is set at once so that conn.close() releases it whatever fails next
        self.sock = raw = _open_socket(self._addresses, self.port, self._deadline)
        self._deadline.watch(raw)
        raw.settimeout(self._deadline.remaining())
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        self._deadline.watch(self.sock)


# ---------------------------------------------------------------------------------------
# Request and response
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str          # ASCII (IDNA) host name or IP literal, no brackets
    port: int
    path: str          # request target: path and query, percent-encoded
    auth: str | None   # Authorization value from user:password in the URL

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def shown(self) -> str:
        """host[:port] for messages (never the credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


_SAFE_URL_CHARS = "/:@!$&'()*+,;=?%~[]"


def _parse_url(url: Any) -> _Target:
    if not isinstance(url, str) or not url.strip():
        raise _Refused("URL inválida: vazia")
    url = url.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _Refused("URL inválida: contém caracteres de controle")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _Refused("URL inválida: porta ou endereço malformado") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = scheme or "nenhum"
        raise _Refused(f"esquema não permitido: {shown} (use http ou https)")
    host = parts.hostname or ""
    if not host:
        raise _Refused("URL inválida: sem nome de servidor")
    if _parse_ip(host) is None:
        try:
            host = host.rstrip(".").encode("idna").decode("ascii") if host.rstrip(".") else ""
        except UnicodeError:
            raise _Refused("URL inválida: nome de servidor malformado") from None
        if not host or any(c in host for c in " /\\%@"):
            raise _Refused("URL inválida: nome de servidor malformado")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif port == 0:
        raise _Refused("URL inválida: porta 0")
    path = quote(parts.path or "/", safe=_SAFE_URL_CHARS)
    if not path.startswith("/"):
        path = "/" + path
    if parts.query:
        path += "?" + quote(parts.query, safe=_SAFE_URL_CHARS)
    auth = None
    if parts.username is not None or parts.password is not None:
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        auth = f"Basic {token}"
    return _Target(scheme, host, port, path, auth)


def _timeout(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S
    if not math.isfinite(seconds) or seconds <= 0:
        return DEFAULT_TIMEOUT_S
    return min(seconds, MAX_TIMEOUT_S)


def _encode_body(body: Any) -> tuple[bytes | None, str | None]:
    """(bytes, default content type) for the request body."""
    if body is None:
        return None, None
    if isinstance(body, bytes | bytearray):
        return bytes(body), "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise _Refused("corpo da requisição não pode ser convertido em JSON") from None
    return text.encode("utf-8"), "application/json"


def _clean_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise _Refused("cabeçalhos inválidos: esperado um objeto nome → valor")
    clean: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name.strip():
            raise _Refused("cabeçalho inválido: nome vazio")
        name = name.strip()
        if name.lower() in _OWNED_HEADERS:
            continue
        value = "" if value is None else str(value)
        if not _TOKEN.fullmatch(name):
            raise _Refused(f"cabeçalho inválido: {name[:40]!r}")
        if any(c in value for c in "\r\n\0"):
            raise _Refused(f"cabeçalho inválido: valor de {name} com quebra de linha")
        clean[name] = value
    return clean


def _wire_headers(headers: dict[str, str]) -> dict[str, str | bytes]:
    """Values outside Latin-1 (http.client's encoding) go out as UTF-8 bytes."""
    wire: dict[str, str | bytes] = {}
    for name, value in headers.items():
        try:
            value.encode("latin-1")
            wire[name] = value
        except UnicodeEncodeError:
            wire[name] = value.encode("utf-8")
    return wire


def _has(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _content_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    msg = Message()
    msg["content-type"] = value
    return msg.get_content_type().lower(), msg.get_param("charset")


def _decode_body(raw: bytes, content_type: str | None) -> Any:
    media, charset = _content_type(content_type)
    if media in ("application/json", "text/json") or media.endswith("+json"):
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            pass  # not JSON after all (or cut at the size limit): keep the text
    encoding = "utf-8"
    if isinstance(charset, str):
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass
    return raw.decode(encoding, errors="replace")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity would not survive storage


def _send(method: str, target: _Target, headers: dict[str, str], body: bytes | None,
          addresses: list[str], deadline: _Deadline, ssl_context: ssl.SSLContext | None
          ) -> tuple[int, str | None, str | None, bytes]:
    """One request/response on a pinned connection → (status, location, content type, body)."""
    if target.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPSConnection(
            target.host, target.port, addresses, deadline, ssl_context or _default_ssl_context())
    else:
        conn = _PinnedHTTPConnection(target.host, target.port, addresses, deadline)
    try:
        conn.request(method, target.path, body=body, headers=_wire_headers(headers))
        sock = conn.sock
        if sock is not None:
            sock.settimeout(deadline.remaining())
        response = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BODY_BYTES:
            if sock is not None:
                sock.settimeout(deadline.remaining())
            chunk = response.read1(min(_READ_CHUNK, MAX_BODY_BYTES - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if deadline.expired:  # the watchdog cut the connection: what we have is partial
            raise _TimedOut
        return (response.status, response.getheader("Location"),
                response.getheader("Content-Type"), b"".join(chunks)[:MAX_BODY_BYTES])
    finally:
        deadline.watch(None)
        conn.close()


def _check_target(target: _Target, allow_hosts: Any, resolver: Resolver | None,
                  deadline: _Deadline, redirect: bool) -> list[str]:
    addresses = _resolve(target.host, resolver, deadline)
    if host_allowed(target.host, target.port, allow_hosts):
        return addresses
    for address in addresses:
        reason = blocked_reason(address)
        if reason is None:
            continue
        shown_ip = address.split("%", 1)[0]
        where = "redirecionamento para " if redirect else ""
        if _parse_ip(target.host) is not None:
            subject = f"{where}endereço interno {shown_ip} ({reason})"
        else:
            subject = f"{where}{target.host}, que resolve para o endereço interno {shown_ip} ({reason}),"
        raise _Refused(f"destino bloqueado: {subject} não permitido (ajuste {ALLOW_SETTING})")
    return addresses


def _network_message(exc: BaseException, target: _Target) -> str:
    where = target.shown
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificado TLS inválido para {target.host}: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"falha na negociação TLS com {where}"
    if isinstance(exc, http.client.RemoteDisconnected):  # before ConnectionResetError, its base
        return f"{where} encerrou a conexão sem responder"
    if isinstance(exc, ConnectionRefusedError):
        return f"conexão recusada por {where}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return f"conexão interrompida por {where}"
    if isinstance(exc, http.client.LineTooLong | http.client.BadStatusLine | http.client.HTTPException):
        return f"resposta HTTP inválida de {where}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"falha de rede ao acessar {where}: {exc.strerror or exc.__class__.__name__}"
    return f"falha na requisição para {where}: {exc.__class__.__name__}"


def perform(call: dict, allow_hosts: tuple[str, ...] = (), *, resolver: Resolver | None = None,
            ssl_context: ssl.SSLContext | None = None) -> HttpOutcome:
    """Perform an ``http`` effect and return its :class:`HttpOutcome`. Never raises.

    ``allow_hosts``: ``Settings.http_allow_hosts`` (``PAPO_HTTP_ALLOW_HOSTS``).
    ``resolver``: ``host -> iterable of IP address strings``, replacing
    ``socket.getaddrinfo`` (tests). ``ssl_context``: replaces the default verifying context
    (tests with a private CA).
    """
    try:
        timeout = _timeout(call.get("timeout_s") if isinstance(call, dict) else None)
    except Exception:
        timeout = DEFAULT_TIMEOUT_S
    deadline: _Deadline | None = None
    target: _Target | None = None
    try:
        if not isinstance(call, dict):
            raise _Refused("chamada HTTP inválida")
        method = call.get("method") or "GET"
        method = method.strip().upper() if isinstance(method, str) else ""
        if method not in METHODS:
            raise _Refused(f"método HTTP não suportado: {str(call.get('method'))[:20]!r}")
        target = _parse_url(call.get("url"))
        headers = _clean_headers(call.get("headers"))
        body, default_type = _encode_body(call.get("body"))
        if default_type and not _has(headers, "content-type"):
            headers["Content-Type"] = default_type
        if target.auth and not _has(headers, "authorization"):
            headers["Authorization"] = target.auth
        if not _has(headers, "user-agent"):
            headers["User-Agent"] = USER_AGENT
        if not _has(headers, "accept"):
            headers["Accept"] = "application/json, text/plain;q=0.9, */*;q=0.5"
        headers["Connection"] = "close"

        deadline = _Deadline(timeout)
        redirects = 0
        redirect = False
        while True:
            addresses = _check_target(target, allow_hosts, resolver, deadline, redirect)
            status, location, content_type, raw = _send(
                method, target, headers, body, addresses, deadline, ssl_context)
            if status in REDIRECT_STATUSES and location:
                if redirects >= MAX_REDIRECTS:
                    return HttpOutcome(False, status, _decode_body(raw, content_type),
                                       f"redirecionamentos demais (máximo {MAX_REDIRECTS})")
                redirects += 1
                redirect = True
                new_target = _parse_url(urljoin(_url_of(target), location.strip()))
                if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                    method = "GET" if method != "HEAD" else "HEAD"
                    body = None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                if new_target.origin != target.origin:
                    headers = {k: v for k, v in headers.items()
                               if k.lower() in _CROSS_ORIGIN_SAFE_HEADERS or k == "Connection"}
                if new_target.auth and not _has(headers, "authorization"):
                    headers["Authorization"] = new_target.auth
                target = new_target
                continue
            decoded = _decode_body(raw, content_type)
            if 200 <= status < 300:
                return HttpOutcome(True, status, decoded, None)
            return HttpOutcome(False, status, decoded, f"o servidor respondeu com status {status}")
    except _Refused as exc:
        return HttpOutcome(False, None, None, str(exc))
    except _TimedOut:
        return HttpOutcome(False, None, None, f"tempo esgotado após {_seconds(timeout)}")
    except Exception as exc:  # network errors and anything unexpected: never raise
        if isinstance(exc, TimeoutError) or (deadline is not None and deadline.passed):
            return HttpOutcome(False, None, None, f"tempo esgotado após {_seconds(timeout)}")
        if target is None:
            return HttpOutcome(False, None, None, "falha ao preparar a requisição")
        return HttpOutcome(False, None, None, _network_message(exc, target))
    finally:
        if deadline is not None:
            deadline.cancel()


def _url_of(target: _Target) -> str:
    """The current URL for resolving a relative Location (without credentials)."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.scheme}://{host}:{target.port}{target.path}"
