"""Users (people who log in to the editor and inbox) and their API tokens.

Passwords are stored only as werkzeug hashes (scrypt); API tokens only as the sha256
hex of the token, so a database dump does not hand out working credentials.
No Flask here: the CLI, the web app and the service all use these functions.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
import weakref
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from engine.db import read_only
from engine.errors import Conflict, Invalid, NotFound
from engine.i18n import N_, t
from engine.store import api_tokens, users

ROLES = ("admin", "agent")
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
TOKEN_PREFIX = "papo_"
MIN_PASSWORD_LENGTH = 10  # DESIGN §10.5
MAX_PASSWORD_LENGTH = 1024  # hashing is deliberately slow; do not hash megabytes
MAX_TOKEN_NAME = 100
# Writing last_used_at on every API call would turn each read into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
# Each process remembers a token's user this long, so an API call does not pay a query to
# learn who is asking. Revoking in this process forgets at once; another process (the
# second gunicorn worker, the CLI) is obeyed within this many seconds.
TOKEN_CACHE_SECONDS = 5.0
_token_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# Hashing a throw-away password when the login is unknown keeps the answer time the
# same, so timing does not reveal which logins exist.
# "no such user" as the API says it (engine.i18n.gettext of this pt-BR id).
MESSAGES_NO_USER = N_("Não existe usuário com o login \"%(login)s\".")

_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


def _msg(key: str, lang: str, **params) -> str:
    """The accounts message ``key`` (``accounts.<key>`` in ``engine.i18n.MESSAGES``)."""
    return t(f"accounts.{key}", lang, **params)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored timestamp is UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _user_dict(row) -> dict:
    return {
        "id": row.id,
        "login": row.login,
        "name": row.name or "",
        "role": row.role,
        "lang": row.lang,
        "created_at": _aware(row.created_at),
        "disabled": row.disabled_at is not None,
        "session_generation": row.session_generation,
        "availability": row.availability,  # online | away (automatic assignment, §10.3)
        "max_open": row.max_open,  # 0: no limit
    }


_USER_COLUMNS = (users.c.id, users.c.login, users.c.name, users.c.role, users.c.lang,
                 users.c.created_at, users.c.disabled_at, users.c.session_generation,
                 users.c.availability, users.c.max_open)


def validate_login(login: str, lang: str = "pt") -> str:
    """``login`` if it is a well-formed login, else ``Invalid``."""
    if not isinstance(login, str) or not LOGIN_PATTERN.match(login):
        raise Invalid(_msg("bad_login", lang, login=login), code="invalid_login")
    return login


def validate_role(role: str, lang: str = "pt") -> str:
    if role not in ROLES:
        raise Invalid(_msg("bad_role", lang, role=role), code="invalid_role")
    return role


def validate_password(password: str, lang: str = "pt") -> str:
    """``password`` if it has 10 to 1,024 characters, else ``Invalid`` saying so."""
    if not isinstance(password, str) or \
            not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Invalid(_msg("bad_password", lang, minimum=MIN_PASSWORD_LENGTH,
                           limit=MAX_PASSWORD_LENGTH), code="invalid_password")
    return password



def generate_password() -> str:
    """A random password of about 96 bits, easy to copy (URL-safe characters)."""
    return secrets.token_urlsafe(12)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(engine: Engine, login: str, role: str, password: str | None = None,
                name: str = "", *, lang: str = "pt") -> tuple[dict, str | None]:
    """Create a user; returns ``(user, generated_password)``.

    The password is generated (and returned, the only time it is visible) when
    ``password`` is None; otherwise the second item is None.
    """
    validate_login(login, lang)
    validate_role(role, lang)
    generated = None
    if password is None:
        password = generated = generate_password()
    validate_password(password, lang)
    values = {
        "login": login,
        "name": (name or "").strip()[:200],
        "password_hash": generate_password_hash(password),
        "role": role,
        "created_at": _now(),
    }
    try:
        with engine.begin() as conn:
            if conn.execute(select(users.c.id).where(users.c.login == login)).first():
                raise Conflict(_msg("login_taken", lang, login=login), code="login_taken")
            user_id = conn.execute(insert(users).values(**values)).inserted_primary_key[0]
    except IntegrityError:  # lost a race with another process creating the same login
        raise Conflict(_msg("login_taken", lang, login=login), code="login_taken") from None
    return get_user_by_id(engine, user_id), generated


def set_password(engine: Engine, login: str, password: str | None = None, *,
                 lang: str = "pt") -> str | None:
    """Replace a user's password; returns the generated one when ``password`` is None.

    Every browser session of the user ends (their session generation moves on).
    """
    generated = None
    if password is None:
        password = generated = generate_password()
    validate_password(password, lang)
    with engine.begin() as conn:
        changed = conn.execute(
            update(users).where(users.c.login == login)
            .values(password_hash=generate_password_hash(password),
                    session_generation=users.c.session_generation + 1)
        ).rowcount
    if not changed:
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")
    return generated


def authenticate(engine: Engine, login: str, password: str) -> dict | None:
    """The enabled user whose login and password match, else None (same cost either way)."""
    login = (login or "").strip().lower()  # people type "Ana" on phones
    if not login or not password or len(password) > MAX_PASSWORD_LENGTH:
        check_password_hash(_DUMMY_HASH, "x")
        return None
    with read_only(engine) as conn:
        row = conn.execute(
            select(*_USER_COLUMNS, users.c.password_hash).where(users.c.login == login)
        ).first()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(row.password_hash, password) or row.disabled_at is not None:
        return None
    return _user_dict(row)


def get_user(engine: Engine, login: str) -> dict | None:
    with read_only(engine) as conn:
        row = conn.execute(select(*_USER_COLUMNS).where(users.c.login == login)).first()
    return _user_dict(row) if row else None


def get_user_by_id(engine: Engine, user_id: int) -> dict | None:
    with read_only(engine) as conn:
        row = conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).first()
    return _user_dict(row) if row else None


def list_users(engine: Engine) -> list[dict]:
    """Every user, by login."""
    with read_only(engine) as conn:
        rows = conn.execute(select(*_USER_COLUMNS).order_by(users.c.login)).all()
    return [_user_dict(row) for row in rows]


def user_exists(engine: Engine, login: str) -> bool:
    with read_only(engine) as conn:
        return conn.execute(
            select(func.count()).select_from(users).where(users.c.login == login)
        ).scalar_one() > 0


def set_user_lang(engine: Engine, user_id: int, lang: str | None) -> None:
    """Remember the interface language a user picked."""
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(lang=lang))
    forget_tokens(engine)


def create_token(engine: Engine, login: str, *, name: str = "", expires_in_days: int | None = None,
                 lang: str = "pt") -> str:
    """A new API token for ``login``; only its sha256 is stored, so show it now or never.

    ``name`` says what it is for; ``expires_in_days`` (1–3650) makes it stop by itself.
    """
    return create_token_record(engine, login, name=name, expires_in_days=expires_in_days,
                               lang=lang)[1]


def create_token_record(engine: Engine, login: str, *, name: str = "",
                        expires_in_days: int | None = None, lang: str = "pt") -> tuple[int, str]:
    """Like :func:`create_token`, also returning the token's id: ``(id, token)``."""
    name = " ".join((name or "").split())
    if len(name) > MAX_TOKEN_NAME:
        raise Invalid(_msg("bad_token_name", lang, limit=MAX_TOKEN_NAME), code="invalid_token_name")
    if expires_in_days is not None and (isinstance(expires_in_days, bool) or
                                        not isinstance(expires_in_days, int) or
                                        not 1 <= expires_in_days <= 3650):
        raise Invalid(_msg("bad_expiry", lang), code="invalid_expiry")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    with engine.begin() as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.login == login)).scalar()
        if user_id is None:
            raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")
        token_id = conn.execute(insert(api_tokens).values(
            user_id=user_id, token_hash=hash_token(token), created_at=now, name=name,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        )).inserted_primary_key[0]
    return token_id, token


def list_tokens(engine: Engine, login: str, *, lang: str = "pt") -> list[dict]:
    """``login``'s tokens, oldest first: ``{"id","name","created_at","last_used_at",
    "expires_at","expired"}`` (never the secret: only its hash is stored)."""
    if not user_exists(engine, login):
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")
    with read_only(engine) as conn:
        rows = conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.created_at,
                   api_tokens.c.last_used_at, api_tokens.c.expires_at)
            .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
            .where(users.c.login == login).order_by(api_tokens.c.id)).all()
    now = _now()
    return [{"id": row.id, "name": row.name or "", "created_at": _aware(row.created_at),
             "last_used_at": _aware(row.last_used_at), "expires_at": _aware(row.expires_at),
             "expired": row.expires_at is not None and _aware(row.expires_at) <= now}
            for row in rows]


def revoke_token(engine: Engine, token_id: int, *, login: str | None = None,
                 lang: str = "pt") -> dict:
    """Delete one token (of ``login``, when given); returns ``{"id","login","name"}``.

    This process forgets it at once; other processes within ``TOKEN_CACHE_SECONDS``.
    """
    query = (select(api_tokens.c.id, api_tokens.c.name, users.c.login)
             .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
             .where(api_tokens.c.id == token_id))
    if login is not None:
        query = query.where(users.c.login == login)
    with engine.begin() as conn:
        row = conn.execute(query).first()
        if row is not None:
            conn.execute(api_tokens.delete().where(api_tokens.c.id == token_id))
    forget_tokens(engine)
    if row is None:
        raise NotFound(_msg("no_token", lang, token_id=token_id), code="token_not_found")
    return {"id": row.id, "login": row.login, "name": row.name or ""}


def user_for_token(engine: Engine, token: str | None) -> dict | None:
    """The enabled user owning ``token`` (not expired), else None. Notes the token's use
    (at most once a minute)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    cache = _token_cache.setdefault(engine, {})
    moment = time.monotonic()
    found = cache.get(digest)
    if found is None or found[0] < moment:
        with read_only(engine) as conn:
            row = conn.execute(
                select(*_USER_COLUMNS, api_tokens.c.id.label("token_id"),
                       api_tokens.c.last_used_at, api_tokens.c.expires_at)
                .select_from(api_tokens.join(users, users.c.id == api_tokens.c.user_id))
                .where(api_tokens.c.token_hash == digest)
            ).first()
        if row is None or row.disabled_at is not None:
            cache.pop(digest, None)
            return None
        if len(cache) > 1000:
            cache.clear()
        found = cache[digest] = [moment + TOKEN_CACHE_SECONDS, _user_dict(row), row.token_id,
                                 _aware(row.last_used_at), _aware(row.expires_at)]
    _expiry, user, token_id, last_used, expires_at = found
    now = _now()
    if expires_at is not None and expires_at <= now:
        return None
    if last_used is None or now - last_used >= TOKEN_TOUCH_INTERVAL:
        with engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                         .values(last_used_at=now))
        found[3] = now
    return dict(user)


def forget_tokens(engine: Engine) -> None:
    """Drop this process's remembered token owners (after revoking or changing a user)."""
    _token_cache.pop(engine, None)


def revoke_tokens(engine: Engine, login: str) -> int:
    """Delete every API token of ``login``; returns how many there were."""
    with engine.begin() as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.login == login)).scalar()
        removed = 0 if user_id is None else \
            conn.execute(api_tokens.delete().where(api_tokens.c.user_id == user_id)).rowcount
    forget_tokens(engine)  # after the commit: a lookup meanwhile may have remembered it again
    return removed


def set_disabled(engine: Engine, login: str, disabled: bool = True, *, lang: str = "pt") -> dict:
    """Disable (or enable again) a user. Disabling ends their sessions at once (the session
    generation moves on) and their tokens within ``TOKEN_CACHE_SECONDS`` in every process
    (at once in this one). The tokens are kept, so enabling brings them back."""
    with engine.begin() as conn:
        values = {"disabled_at": _now() if disabled else None}
        if disabled:
            values["session_generation"] = users.c.session_generation + 1
        changed = conn.execute(
            update(users).where(users.c.login == login)
            .where(users.c.disabled_at.is_(None) if disabled else users.c.disabled_at.isnot(None))
            .values(**values)).rowcount
        exists = changed or conn.execute(
            select(users.c.id).where(users.c.login == login)).first() is not None
    if not exists:
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")
    forget_tokens(engine)
    return get_user(engine, login)


def end_sessions(engine: Engine, user_id: int) -> int:
    """End every browser session of a user (logout); returns the new session generation."""
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id)
                     .values(session_generation=users.c.session_generation + 1))
        return conn.execute(select(users.c.session_generation)
                            .where(users.c.id == user_id)).scalar() or 0


def set_role(engine: Engine, login: str, role: str, *, lang: str = "pt") -> dict:
    """Change a user's role (their sessions end: the new role applies from the next login)."""
    validate_role(role, lang)
    with engine.begin() as conn:
        changed = conn.execute(update(users).where(users.c.login == login).values(
            role=role, session_generation=users.c.session_generation + 1)).rowcount
    if not changed:
        raise NotFound(_msg("no_user", lang, login=login), code="user_not_found")
    forget_tokens(engine)
    return get_user(engine, login)
