"""Backups: ``papo db backup FILE`` and ``papo db restore FILE``.

SQLite: SQLite's online backup API copies the database page by page inside one read
transaction, so the copy is consistent (every transaction wholly in or wholly out) while
the web app and the worker keep writing (WAL mode: readers never block writers). The copy
is written beside the target, checked, and renamed into place: a half-written backup never
carries the final name. Restore copies a backup into the database with the same API, and
only when no other connection has the database open (SQLite refuses to leave WAL mode
while another connection is open: that is the test).

PostgreSQL: ``pg_dump`` / ``pg_restore`` are the right tools; papo prints the command.
"""
from __future__ import annotations

import os
import shlex
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

# A papo database has these; anything else is not one of our backups.
REQUIRED_TABLES = frozenset({"conversations", "messages", "flows", "users"})
BUSY_TIMEOUT_MS = 30_000


class BackupError(RuntimeError):
    """The backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Copied:
    source: str
    target: str
    size: int
    conversations: int
    revision: str | None
    kept: str | None = None  # restore: where the replaced database was saved


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database. In-memory → ``BackupError``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("An in-memory database has nothing to back up.")
    return Path(parsed.database).resolve()


def _summary(conn: sqlite3.Connection) -> tuple[int, str | None]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = REQUIRED_TABLES - tables
    if missing:
        raise BackupError(f"not a papo database (no table {', '.join(sorted(missing))})")
    conversations = conn.execute("SELECT count(*) FROM conversations").fetchone()[0]
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return conversations, revision


def _check(path: Path) -> tuple[int, str | None]:
    """Open ``path`` read-only, check it is a sound papo database; (conversations, revision)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be opened: {exc}") from None
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"{path} is damaged: {verdict}")
        return _summary(conn)
    except sqlite3.DatabaseError as exc:  # "file is not a database"
        raise BackupError(f"{path} is not a SQLite database: {exc}") from None
    finally:
        conn.close()


def _copy(source: sqlite3.Connection, target_path: Path) -> None:
    """Copy ``source`` into a new single-file database at ``target_path`` (no -wal beside it)."""
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)  # one step: one consistent read snapshot of the source
        target.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
        target.commit()
    finally:
        target.close()


def backup_sqlite(url: str, destination: str | os.PathLike, *, overwrite: bool = False) -> Copied:
    """Copy the live SQLite database at ``url`` to ``destination``."""
    source_path = sqlite_path(url)
    target = Path(destination).resolve()
    if source_path is None:
        raise BackupError("not a SQLite database")
    if not source_path.is_file():
        raise BackupError(f"There is no database at {source_path}.")
    if target == source_path:
        raise BackupError("The backup file must not be the database itself.")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} already exists (use --force to replace it).")
    if not target.parent.is_dir():
        raise BackupError(f"The folder {target.parent} does not exist.")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    source = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        source.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _summary(source)  # refuse to copy something that is not papo's
        partial.unlink(missing_ok=True)
        _copy(source, partial)
        conversations, revision = _check(partial)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"The copy failed: {exc}") from None
    finally:
        source.close()
        partial.unlink(missing_ok=True)
    return Copied(str(source_path), str(target), target.stat().st_size, conversations, revision)


def restore_sqlite(backup: str | os.PathLike, url: str) -> Copied:
    """Replace the SQLite database at ``url`` with ``backup``; refused while it is in use.

    The replaced database (if it had any data) is kept as
    ``<name>.before-restore-<UTC time>`` beside it.
    """
    source_path = Path(backup).resolve()
    target_path = sqlite_path(url)
    if target_path is None:
        raise BackupError("not a SQLite database")
    if not source_path.is_file():
        raise BackupError(f"There is no backup file at {source_path}.")
    if source_path == target_path:
        raise BackupError("The backup file is the database itself.")
    conversations, revision = _check(source_path)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    kept = None
    target = sqlite3.connect(target_path, timeout=0)
    try:
        # Leaving WAL mode needs the only connection to the database: a running server or
        # worker (or anyone else) holding it open makes this fail, and we stop here.
        try:
            mode = target.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except sqlite3.OperationalError:
            mode = None
        if mode != "delete":
            raise BackupError(
                f"The database {target_path} is in use (a papo server or worker, or another "
                "program, has it open). Stop them all, then restore again.")
        tables = target.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            kept_path = target_path.with_name(f"{target_path.name}.before-restore-{stamp}")
            _copy(target, kept_path)
            kept = str(kept_path)
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        try:
            source.backup(target)
        finally:
            source.close()
        target.execute("PRAGMA journal_mode=WAL")
        target.commit()
    except sqlite3.Error as exc:
        raise BackupError(f"The restore failed: {exc}") from None
    finally:
        target.close()
    return Copied(str(source_path), str(target_path), target_path.stat().st_size, conversations,
                  revision, kept)


def postgres_commands(url: str, file: str) -> tuple[str, str]:
    """The ``pg_dump`` and ``pg_restore`` commands for ``url`` (password left out: use
    ``PGPASSWORD`` or ``~/.pgpass``)."""
    parsed = make_url(url)
    libpq = parsed.set(drivername="postgresql")._replace(password=None)
    target = libpq.render_as_string(hide_password=False)
    dump = (f"pg_dump --format=custom --no-owner --file={shlex.quote(file)} "
            f"--dbname={shlex.quote(target)}")
    restore = (f"pg_restore --clean --if-exists --no-owner --single-transaction "
               f"--dbname={shlex.quote(target)} {shlex.quote(file)}")
    return dump, restore
