"""WhatsApp media: files agents attach, and files customers send (DESIGN §10.4, §10.6).

Out: :func:`check_attachment` holds a file to WhatsApp's limits (type and size, before
anything is uploaded), :func:`upload` sends it to ``POST /{phone-number-id}/media`` and
the message then goes through the outbox by media id like any other (exactly once).

In: a customer's image, audio, video, document or sticker is stored with its media id
only. :func:`fetch` gets it when an agent first opens it (``GET /{media-id}`` → a URL,
then the file with the bearer token) and keeps it in a :class:`MediaCache` on disk under
the instance folder, within ``PAPO_MEDIA_CACHE_MB``.

Where the token goes: the media id is asked of the configured API base only; the file
URL it answers is fetched only when it is on the API base's own scheme, host and port, or
on https at a host of ``PAPO_WHATSAPP_MEDIA_HOSTS`` (Meta's ``lookaside.fbsbx.com``); no
redirect is followed. Nothing here raises for a network or Graph failure: each answers
a :class:`MediaProblem`.
"""
from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from engine.i18n import N_, gettext
from engine.store import conversations, messages

MB = 1024 * 1024
HTTP_TIMEOUT_S = 30.0
CAPTION_MAX = 1024  # longer text goes as a message of its own, before the file
FILENAME_MAX = 240

# What the Cloud API accepts from a business (its "Supported media types" table).
LIMITS: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "audio": (frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "document": (frozenset({
        "text/plain", "application/pdf", "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"}), 100 * MB),
}
LARGEST = max(limit for _types, limit in LIMITS.values())
CAPTIONED = frozenset({"image", "video", "document"})  # audio takes no caption
# Browsers name some types otherwise; what WhatsApp calls them.
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "video/3gp": "video/3gpp",
           "audio/mp3": "audio/mpeg", "audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4",
           "audio/x-aac": "audio/aac", "audio/opus": "audio/ogg"}
# Served inline (shown in the page); anything else only as a download.
INLINE = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "audio/aac", "audio/amr",
                    "audio/mpeg", "audio/mp4", "audio/ogg", "video/mp4", "video/3gpp", "application/pdf"})

MESSAGES = {
    "wrong_type": N_("O WhatsApp não aceita este tipo de arquivo (%(mime)s). Envie uma imagem JPEG ou PNG, um áudio (MP3, M4A, AAC, AMR ou OGG), um vídeo MP4 ou 3GP, ou um documento (PDF, TXT, Word, Excel ou PowerPoint)."),
    "too_big": N_("O arquivo tem %(size)s MB; o WhatsApp aceita %(kind)s de até %(limit)s MB."),
    "empty": N_("O arquivo está vazio."),
    "not_whatsapp": N_("Anexos só podem ser enviados em conversas do WhatsApp."),
    "not_configured": N_("O WhatsApp não está configurado (token e número), então o arquivo não pode ser enviado."),
    "upload_failed": N_("O WhatsApp não recebeu o arquivo (%(reason)s). Tente de novo em instantes."),
}
KIND_NAMES = {"image": N_("imagens"), "audio": N_("áudios"), "video": N_("vídeos"),
              "document": N_("documentos")}


@dataclass(frozen=True)
class Attachment:
    """A file an agent attached, checked against WhatsApp's limits."""

    kind: str  # image | audio | video | document
    mime: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class CachedMedia:
    """A media file on disk, ready to serve."""

    path: Path
    mime: str
    size: int


@dataclass(frozen=True)
class MediaProblem:
    """Why a media file cannot be served: ``status`` 404 (gone), 413 (over the cache's
    size) or 502 (the Graph API did not give it); ``reason`` for the log."""

    status: int
    reason: str


# ---------------------------------------------------------------------------- attachments
def normal_mime(mime: str | None, filename: str | None) -> str:
    """The file's type as WhatsApp names it; from the file name when the browser sent none."""
    mime = (mime or "").split(";", 1)[0].strip().lower()
    if not mime or mime == "application/octet-stream":
        mime = (mimetypes.guess_type(filename or "")[0] or mime or "application/octet-stream").lower()
    return ALIASES.get(mime, mime)


def kind_of(mime: str) -> str | None:
    return next((kind for kind, (types, _limit) in LIMITS.items() if mime in types), None)


def safe_filename(filename: str | None, mime: str = "") -> str:
    """A name fit for WhatsApp and a ``Content-Disposition``: no folders, no control characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>|:*?').strip(" .")
    if not name:
        name = "arquivo" + (mimetypes.guess_extension(mime) or "")
    return name[-FILENAME_MAX:]


def check_attachment(filename: str | None, mime: str | None, data: bytes,
                     lang: str | None = None) -> tuple[Attachment | None, str | None]:
    """``(attachment, None)``, or ``(None, why)`` in the agent's words: a type WhatsApp does
    not take, or a file over its limit for that type."""
    mime = normal_mime(mime, filename)
    kind = kind_of(mime)
    if kind is None:
        return None, gettext(MESSAGES["wrong_type"], lang, mime=mime)
    if not data:
        return None, gettext(MESSAGES["empty"], lang)
    limit = LIMITS[kind][1]
    if len(data) > limit:
        return None, gettext(MESSAGES["too_big"], lang, size=_megabytes(len(data)),
                             kind=gettext(KIND_NAMES[kind], lang), limit=limit // MB)
    return Attachment(kind, mime, safe_filename(filename, mime), data), None


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f}".replace(".", ",") if size < 10 * MB else str(round(size / MB))


def media_of(attachment: Attachment, media_id: str, caption: str | None) -> dict:
    """The ``media`` a sent attachment keeps (``messages.details``, the outbox payload)."""
    media = {"type": attachment.kind, "mime": attachment.mime, "id": media_id,
             "caption": caption if attachment.kind in CAPTIONED else None}
    if attachment.kind == "document":
        media["filename"] = attachment.filename
    return media


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The token must not follow a redirect anywhere: a redirect is an error here."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def upload(settings, attachment: Attachment, lang: str | None = None) -> tuple[str | None, str | None]:
    """``POST {API_BASE}/{phone-number-id}/media``: ``(media_id, None)`` or ``(None, why)``."""
    if not (settings.whatsapp_token and settings.whatsapp_phone_number_id):
        return None, gettext(MESSAGES["not_configured"], lang)
    boundary = "papo-" + secrets.token_hex(16)
    parts = []
    for name, value in (("messaging_product", "whatsapp"), ("type", attachment.mime)):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    quoted = urllib.parse.quote(attachment.filename)
    parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
                  f"Content-Type: {attachment.mime}\r\n\r\n").encode() + attachment.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    number = urllib.parse.quote(str(settings.whatsapp_phone_number_id), safe="")
    request = urllib.request.Request(
        f"{settings.whatsapp_api_base.rstrip('/')}/{number}/media", data=b"".join(parts), method="POST",
        headers={"Authorization": f"Bearer {settings.whatsapp_token}", "User-Agent": "papo",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
            answer = json.loads(response.read(65536).decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code}: {_graph_message(error)}"
        error.close()
        return None, gettext(MESSAGES["upload_failed"], lang, reason=reason)
    except (OSError, ValueError) as exc:
        return None, gettext(MESSAGES["upload_failed"], lang, reason=type(exc).__name__)
    media_id = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(media_id, str) or not media_id.strip():
        return None, gettext(MESSAGES["upload_failed"], lang, reason="sem id")
    return media_id.strip(), None


def _graph_message(error: urllib.error.HTTPError) -> str:
    try:
        found = json.loads(error.read(65536).decode("utf-8", "replace"))["error"]["message"]
    except (OSError, ValueError, KeyError, TypeError):
        return "sem detalhes"
    return str(found)[:300]


# ---------------------------------------------------------------------------- the cache
class MediaCache:
    """Media files under ``folder``, at most ``cap_bytes`` in all: the least recently
    served go first when a new one needs room. A file over the whole cap is never kept.

    Files are named by the sha256 of their media id (``<hash>`` and ``<hash>.json``, its
    type), written to a temporary name and renamed, so a reader never sees half a file.
    """

    def __init__(self, folder: str | Path, cap_bytes: int):
        self.folder = Path(folder)
        self.cap_bytes = int(cap_bytes)
        self._lock = threading.Lock()

    def _paths(self, media_id: str) -> tuple[Path, Path]:
        name = hashlib.sha256(media_id.encode("utf-8")).hexdigest()
        return self.folder / name, self.folder / f"{name}.json"

    def get(self, media_id: str) -> CachedMedia | None:
        data_path, meta_path = self._paths(media_id)
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            size = data_path.stat().st_size
            os.utime(data_path)  # recently served: evicted last
        except (OSError, ValueError):
            return None
        return CachedMedia(data_path, str(meta.get("mime") or "application/octet-stream"), size)

    def put(self, media_id: str, data: bytes, mime: str) -> CachedMedia | None:
        """Keep ``data``; None when it is over the whole cap."""
        if len(data) > self.cap_bytes:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        data_path, meta_path = self._paths(media_id)
        with self._lock:
            self._make_room(len(data))
            for path, content in ((data_path, data), (meta_path, json.dumps({"mime": mime}).encode())):
                handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".part-")
                with os.fdopen(handle, "wb") as out:
                    out.write(content)
                os.replace(temporary, path)
        return CachedMedia(data_path, mime, len(data))

    def used_bytes(self) -> int:
        return sum(size for _path, size, _when in self._files())

    def _files(self) -> list[tuple[Path, int, float]]:
        found = []
        for path in self.folder.glob("[0-9a-f]" * 2 + "*"):
            if path.suffix:
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            found.append((path, info.st_size, info.st_mtime))
        return found

    def _make_room(self, size: int) -> None:
        files = sorted(self._files(), key=lambda item: item[2])
        used = sum(item[1] for item in files)
        for path, file_size, _when in files:
            if used + size <= self.cap_bytes:
                break
            for victim in (path, path.with_name(path.name + ".json")):
                victim.unlink(missing_ok=True)
            used -= file_size


def cache_for(settings, instance_path: str | Path) -> MediaCache:
    """The one media cache of this instance: ``<instance>/media``, ``PAPO_MEDIA_CACHE_MB``."""
    return MediaCache(Path(instance_path) / "media", settings.media_cache_mb * MB)


# ---------------------------------------------------------------------------- customers' media
def message_media(db, message_id: int) -> dict | None:
    """The ``media`` of a WhatsApp message that has a file (not a location), else None."""
    with db.connect() as conn:
        details = conn.execute(
            select(messages.c.details).join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(messages.c.id == message_id, conversations.c.channel == "whatsapp")).scalar()
    media = details.get("media") if isinstance(details, dict) else None
    if not isinstance(media, dict) or media.get("type") == "location" or not media.get("id"):
        return None
    return media


def allowed_media_url(settings, url: str) -> bool:
    """Whether the bearer token may go to ``url`` (see the module's docstring)."""
    try:
        target, base = urllib.parse.urlsplit(url), urllib.parse.urlsplit(settings.whatsapp_api_base)
        target_port, base_port = target.port, base.port
    except ValueError:
        return False
    if target.username or target.password or not target.hostname:
        return False
    if (target.scheme, target.hostname, target_port) == (base.scheme, base.hostname, base_port):
        return True
    hosts = {h.strip().lower() for h in settings.whatsapp_media_hosts}
    return target.scheme == "https" and target.hostname.lower() in hosts and target_port in (None, 443)


def fetch(settings, media_id: str, cache: MediaCache, mime_hint: str | None = None
          ) -> tuple[CachedMedia | None, MediaProblem | None]:
    """The media file, from the cache or else from the Graph API (then cached)."""
    cached = cache.get(media_id)
    if cached is not None:
        return cached, None
    if not settings.whatsapp_token:
        return None, MediaProblem(502, "PAPO_WHATSAPP_TOKEN is not set")
    headers = {"Authorization": f"Bearer {settings.whatsapp_token}", "User-Agent": "papo"}
    info_url = f"{settings.whatsapp_api_base.rstrip('/')}/{urllib.parse.quote(media_id, safe='')}"
    info, problem = _get(info_url, headers, 65536)
    if problem is not None:
        return None, problem
    try:
        answer = json.loads(info.decode("utf-8", "replace"))
    except ValueError:
        return None, MediaProblem(502, "the media id's answer is not JSON")
    url = answer.get("url") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not allowed_media_url(settings, url):
        return None, MediaProblem(502, f"media URL not allowed: {str(url)[:200]}")
    size = answer.get("file_size")
    if isinstance(size, int) and size > cache.cap_bytes:
        return None, MediaProblem(413, f"{size} bytes, over the cache's {cache.cap_bytes}")
    data, problem = _get(url, headers, min(cache.cap_bytes, LARGEST))
    if problem is not None:
        return None, problem
    mime = normal_mime(answer.get("mime_type") if isinstance(answer.get("mime_type"), str) else mime_hint,
                       None)
    stored = cache.put(media_id, data, mime)
    if stored is None:
        return None, MediaProblem(413, f"{len(data)} bytes, over the cache's {cache.cap_bytes}")
    return stored, None


def _get(url: str, headers: dict, limit: int) -> tuple[bytes, MediaProblem | None]:
    """At most ``limit`` bytes of ``url``; more is a 413 problem, any failure a 502 (404 kept)."""
    request = urllib.request.Request(url, headers=headers, method="GET")
    started = time.monotonic()
    try:
        with _opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
            chunks, total = [], 0
            while chunk := response.read(256 * 1024):
                total += len(chunk)
                if total > limit:
                    return b"", MediaProblem(413, f"more than {limit} bytes")
                if time.monotonic() - started > 4 * HTTP_TIMEOUT_S:
                    return b"", MediaProblem(502, "download too slow")
                chunks.append(chunk)
            return b"".join(chunks), None
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
        return b"", MediaProblem(404 if status == 404 else 502, f"HTTP {status} from {url[:200]}")
    except (OSError, ValueError) as exc:
        return b"", MediaProblem(502, f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- an agent's file
def send_attachment(service, cache: MediaCache, conversation_id: int, actor: str, text: str | None,
                    filename: str | None, mime: str | None, data: bytes,
                    lang: str | None = None) -> tuple[dict | None, str | None]:
    """Check, upload and send an agent's file (with ``text`` as its caption when it takes
    one): ``(Service.agent_message's result, None)`` or ``(None, why)`` with nothing
    sent or stored; outside WhatsApp's 24-hour window :class:`engine.errors.Conflict`
    (``window_closed``) as for a text. The conversation must exist (the caller checked)."""
    if service.get_conversation(conversation_id, include_test=False).get("channel") != "whatsapp":
        return None, gettext(MESSAGES["not_whatsapp"], lang)
    service.check_window(conversation_id)  # 409 window_closed, before anything is uploaded
    attachment, problem = check_attachment(filename, mime, data, lang)
    if attachment is None:
        return None, problem
    media_id, problem = upload(service.settings, attachment, lang)
    if media_id is None:
        return None, problem
    cache.put(media_id, attachment.data, attachment.mime)  # the agent's own copy, shown at once
    text = text or ""
    caption = text.strip() if attachment.kind in CAPTIONED and len(text.strip()) <= CAPTION_MAX else None
    media = media_of(attachment, media_id, caption or None)
    return service.agent_message(conversation_id, actor, text, media=media), None
