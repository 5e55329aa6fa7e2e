"""Settings from ``PAPO_*`` environment variables, read once at start-up.

A malformed value stops start-up with a message naming the variable.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

DEFAULT_HANDOFF_KEYWORDS = ("atendente", "humano", "falar com atendente")
DEFAULT_WHATSAPP_API_BASE = "https://graph.facebook.com/v21.0"
DEFAULT_WHATSAPP_MEDIA_HOSTS = ("lookaside.fbsbx.com",)
DEFAULT_MEDIA_CACHE_MB = 500
MAX_DEBOUNCE_SECONDS = 30
# Channels whose customers type in bursts (DESIGN §10.6); ``api`` callers send whole requests.
DEBOUNCE_CHANNELS = ("whatsapp", "web")

_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class SettingsError(ValueError):
    """A ``PAPO_*`` variable has a value papo cannot use."""


def parse_duration(value: str, name: str = "duration") -> float:
    """Seconds from ``"3600"`` or an ISO-8601 duration such as ``"PT8H"`` / ``"P1DT2H"``."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        found = _ISO_DURATION.match(text.upper())
        if not found or text.upper() in ("P", "PT") or text.upper().endswith("T"):
            raise SettingsError(
                f"{name}={value!r} is not a duration: use seconds (3600) or ISO-8601 (PT8H, P1D)."
            ) from None
        parts = {k: float(v) if v else 0.0 for k, v in found.groupdict().items()}
        seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if seconds <= 0:
        raise SettingsError(f"{name}={value!r} must be a positive duration.")
    return seconds


def parse_debounce(value: str | None) -> float:
    """``PAPO_DEBOUNCE_SECONDS``: 0 (off, the default) to 30 seconds."""
    text = (value or "").strip()
    if not text:
        return 0.0
    try:
        seconds = float(text.replace(",", "."))
    except ValueError:
        seconds = float("nan")
    if not 0 <= seconds <= MAX_DEBOUNCE_SECONDS:  # NaN fails too
        raise SettingsError(
            f"PAPO_DEBOUNCE_SECONDS={value!r}: use de 0 a {MAX_DEBOUNCE_SECONDS} segundos (0 desliga) / "
            f"must be 0 to {MAX_DEBOUNCE_SECONDS} seconds (0 turns it off).")
    return seconds


ASSIGNMENT_POLICIES = ("manual", "round_robin", "balanced")


def parse_assignment(value: str | None) -> str:
    """``PAPO_ASSIGNMENT``: ``manual`` (default), ``round_robin`` or ``balanced``."""
    policy = (value or "").strip().lower() or "manual"
    if policy not in ASSIGNMENT_POLICIES:
        raise SettingsError(f"PAPO_ASSIGNMENT={value!r} is not a way of assigning: use "
                            "manual, round_robin or balanced.")
    return policy


def _csv(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _megabytes(value: str | None, name: str, default: int) -> int:
    if value is None or not value.strip():
        return default
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise SettingsError(f"{name}={value!r} must be a whole number of megabytes from 1 to 1000000.")
    return int(text)


def _timezone(value: str | None) -> str:
    """``PAPO_TIMEZONE``: a zone name zoneinfo knows (default ``America/Sao_Paulo``)."""
    from engine.hours import DEFAULT_TIMEZONE, known_zone

    name = (value or "").strip() or DEFAULT_TIMEZONE
    if not known_zone(name):
        raise SettingsError(
            f"PAPO_TIMEZONE={value!r} is not a time zone papo knows: use an IANA name such as "
            "America/Sao_Paulo, America/Manaus or Europe/Lisbon.")
    return name


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    handoff_keywords: tuple[str, ...] = DEFAULT_HANDOFF_KEYWORDS
    auto_conclude_after: float | None = None  # seconds; None = off
    on_conclude_flow: str | None = None
    csat_variable: str = "csat"
    http_allow_hosts: tuple[str, ...] = ()
    whatsapp_verify_token: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_base: str = DEFAULT_WHATSAPP_API_BASE
    # Where the Graph API's media URLs may point besides the API base's own host.
    whatsapp_media_hosts: tuple[str, ...] = DEFAULT_WHATSAPP_MEDIA_HOSTS
    media_cache_mb: int = DEFAULT_MEDIA_CACHE_MB  # PAPO_MEDIA_CACHE_MB: the /media disk cache
    # The WhatsApp Business Account id: its approved message templates are synced from it.
    whatsapp_business_account_id: str | None = None
    secret_key: str | None = None
    metrics_token: str | None = None  # PAPO_METRICS_TOKEN: GET /metrics needs it; unset → 404
    # PAPO_DEBOUNCE_SECONDS: the bot answers a burst of messages once (0 = off)
    debounce_seconds: float = 0.0
    debounce_channels: tuple[str, ...] = DEBOUNCE_CHANNELS  # the simulator pane adds ``test``

    # PAPO_ASSIGNMENT: who takes a conversation that opens with nobody assigned (§10.3)
    assignment: str = "manual"

    # PAPO_TIMEZONE: the business's zone — reports' days and every date shown in the UI
    timezone: str = "America/Sao_Paulo"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        auto = env.get("PAPO_AUTO_CONCLUDE_AFTER", "").strip()
        values = dict(
            database_url=env.get("PAPO_DATABASE_URL") or None,
            handoff_keywords=_csv(env.get("PAPO_HANDOFF_KEYWORDS"), DEFAULT_HANDOFF_KEYWORDS),
            auto_conclude_after=parse_duration(auto, "PAPO_AUTO_CONCLUDE_AFTER") if auto else None,
            on_conclude_flow=env.get("PAPO_ON_CONCLUDE_FLOW") or None,
            csat_variable=env.get("PAPO_CSAT_VARIABLE") or "csat",
            http_allow_hosts=_csv(env.get("PAPO_HTTP_ALLOW_HOSTS"), ()),
            whatsapp_verify_token=env.get("PAPO_WHATSAPP_VERIFY_TOKEN") or None,
            whatsapp_app_secret=env.get("PAPO_WHATSAPP_APP_SECRET") or None,
            whatsapp_token=env.get("PAPO_WHATSAPP_TOKEN") or None,
            whatsapp_phone_number_id=env.get("PAPO_WHATSAPP_PHONE_NUMBER_ID") or None,
            whatsapp_api_base=(env.get("PAPO_WHATSAPP_API_BASE") or DEFAULT_WHATSAPP_API_BASE).rstrip("/"),
            whatsapp_media_hosts=_csv(env.get("PAPO_WHATSAPP_MEDIA_HOSTS"), DEFAULT_WHATSAPP_MEDIA_HOSTS),
            media_cache_mb=_megabytes(env.get("PAPO_MEDIA_CACHE_MB"), "PAPO_MEDIA_CACHE_MB",
                                      DEFAULT_MEDIA_CACHE_MB),
            whatsapp_business_account_id=(env.get("PAPO_WHATSAPP_BUSINESS_ACCOUNT_ID") or "").strip() or None,
            secret_key=env.get("PAPO_SECRET_KEY") or None,
            metrics_token=(env.get("PAPO_METRICS_TOKEN") or "").strip() or None,
            debounce_seconds=parse_debounce(env.get("PAPO_DEBOUNCE_SECONDS")),
            assignment=parse_assignment(env.get("PAPO_ASSIGNMENT")),
            timezone=_timezone(env.get("PAPO_TIMEZONE")),
        )
        values.update(overrides)
        return cls(**values)
