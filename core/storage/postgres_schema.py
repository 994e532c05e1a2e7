"""The PostgreSQL backend's connection rules and SQL schema, with versioned migrations.

* **Naming the vault**: ``postgresql://user@host:port/db`` (or ``postgres://``).
  A password in the URL (or its query string) is refused: passwords come the
  libpq way only (``~/.pgpass``, ``PGPASSFILE``, a service file, a client
  certificate), so none sits in shell history, config files or process lists.
* **Schema**: everything lives in the schema ``glasskey``; ``glasskey.schema_version``
  records which of ``MIGRATIONS`` ran. The audit table is append-only for
  clients: they hold no INSERT/UPDATE/DELETE on it and append through the
  ``SECURITY DEFINER`` function ``glasskey.append_audit``, which only ever adds
  the next sequence number (docs/team-mode.md has the roles).

None of this is what makes the vault trustworthy: a database superuser can do
anything to these tables. The signed chain and each client's checkpoint do
(core/storage/postgres_guard.py); the privileges make honest mistakes and a
stolen operator role unable to rewrite history, and they put every write under
a named role in the server's own logs.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import psycopg
from glasskey.core.errors import NotFoundError, StorageError, UsageError
from glasskey.core.text import printable
from glasskey.core.witness import state_dir
from psycopg.conninfo import conninfo_to_dict

SCHEMES = ("postgresql://", "postgres://")
#: The group role every operator's login role is a member of (least privilege).
CLIENT_ROLE = "glasskey_client"
SCHEMA = "glasskey"
#: The vault metadata's key that retires a database vault: the directory it moved to
#: ('glasskey migrate --to DIR', core/storage/postgres_export.py).
MOVED_KEY = "moved_to"

_SCHEMA_V1 = """
CREATE SCHEMA IF NOT EXISTS glasskey;
CREATE TABLE glasskey.audit (
    seq  bigint PRIMARY KEY CHECK (seq > 0),
    line bytea  NOT NULL,
    hash text   NOT NULL
);
CREATE TABLE glasskey.doc (
    tbl  text  NOT NULL,
    key  text  NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (tbl, key)
);
CREATE TABLE glasskey.counter (
    id  int    PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL
);
INSERT INTO glasskey.counter VALUES (1, 0);
CREATE TABLE glasskey.table_version (
    tbl     text   PRIMARY KEY,
    version bigint NOT NULL
);
CREATE FUNCTION glasskey.append_audit(p_seq bigint, p_line bytea, p_hash text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_seq <> COALESCE((SELECT max(seq) FROM glasskey.audit), 0) + 1 THEN
        RAISE EXCEPTION 'audit entries are only appended, in order'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF p_hash <> encode(sha256(p_line), 'hex') THEN
        RAISE EXCEPTION 'an audit entry must carry its own hash'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    INSERT INTO glasskey.audit VALUES (p_seq, p_line, p_hash);
END $$;
CREATE FUNCTION glasskey.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit history is append-only'
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON glasskey.audit
    FOR EACH STATEMENT EXECUTE FUNCTION glasskey.refuse_change();
REVOKE ALL ON ALL TABLES IN SCHEMA glasskey FROM PUBLIC;
REVOKE ALL ON FUNCTION glasskey.append_audit(bigint, bytea, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA glasskey TO glasskey_client;
GRANT SELECT ON ALL TABLES IN SCHEMA glasskey TO glasskey_client;
GRANT INSERT, UPDATE, DELETE ON glasskey.doc, glasskey.table_version TO glasskey_client;
GRANT UPDATE ON glasskey.counter TO glasskey_client;
GRANT EXECUTE ON FUNCTION glasskey.append_audit(bigint, bytea, text) TO glasskey_client;
"""

#: Version 2: the database itself refuses a second open checkout of one credential
#: and a second redemption of one approval. Documents are canonical JSON the server
#: can read, and the ``active`` table is keyed by credential id, so the primary key
#: (tbl, key) already makes two open checkouts of one credential two rows that cannot
#: exist; what remains is an *overwrite* of the open one (``put`` is an upsert) and a
#: request revealed twice. This trigger refuses both, whoever writes (a client outside
#: the writers' queue, an older glasskey, a stolen operator role). A superuser can
#: drop it: against one, the signed chain and the checkpoints stand (SECURITY.md).
_SCHEMA_V2 = """
CREATE FUNCTION glasskey.refuse_second_holder() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was jsonb := convert_from(OLD.body, 'UTF8')::jsonb;
    now_ jsonb := convert_from(NEW.body, 'UTF8')::jsonb;
BEGIN
    IF OLD.tbl = 'active' AND (was->>'request') IS DISTINCT FROM (now_->>'request') THEN
        RAISE EXCEPTION 'credential % already has an open checkout %', OLD.key,
            was->>'request' USING ERRCODE = 'unique_violation';
    END IF;
    IF OLD.tbl = 'requests' AND jsonb_typeof(was->'revealed_at') = 'number'
            AND (was->'revealed_at') IS DISTINCT FROM (now_->'revealed_at') THEN
        RAISE EXCEPTION 'request % was already redeemed', OLD.key
            USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER doc_one_holder_one_redemption BEFORE UPDATE ON glasskey.doc
    FOR EACH ROW WHEN (OLD.tbl IN ('active', 'requests'))
    EXECUTE FUNCTION glasskey.refuse_second_holder();
"""

#: SQL migrations: MIGRATIONS[n] takes the database schema from version n to n + 1.
MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1, 1: _SCHEMA_V2}
SQL_SCHEMA_VERSION = len(MIGRATIONS)


def is_url(location: str) -> bool:
    return location.startswith(SCHEMES)


def check_url(url: str) -> dict[str, str]:
    """The URL's libpq parameters; a password anywhere in it is refused (exit 2).

    The message never repeats the URL: it holds the password.
    """
    if not is_url(url):
        raise UsageError("a PostgreSQL vault is named postgresql://user@host:port/db")
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except psycopg.ProgrammingError:
        raise UsageError("the PostgreSQL vault URL is malformed (expected "
                         "postgresql://user@host:port/db)") from None
    if "password" in params:
        raise UsageError(
            "the PostgreSQL vault URL contains a password; glasskey takes database "
            "passwords only the libpq way (~/.pgpass, PGPASSFILE, a service file or a "
            "client certificate): remove it from the URL")
    if not params.get("dbname") and not params.get("service"):
        raise UsageError("the PostgreSQL vault URL names no database "
                         "(postgresql://user@host:port/db, or ?service=NAME)")
    return params


def location_key(params: dict[str, str]) -> str:
    """Where the vault lives, without the role: every operator of one database pins
    the same vault identity under the same key (a service file's name stands for
    whatever it leaves out)."""
    service = params.get("service")
    default_host, default_port = ("", "") if service else ("localhost", "5432")
    host = params.get("host") or params.get("hostaddr") or default_host
    key = f"postgresql://{host}:{params.get('port') or default_port}/{params.get('dbname', '')}"
    return f"{key}?service={service}" if service else key


def local_dir(params: dict[str, str]) -> Path:
    """This client's directory for a database vault (site config: glasskey.toml).

    A URL vault has no directory of its own; its checkpoint stays where every
    checkpoint is (keyed by vault id, core/witness.py) and its pin is keyed by
    ``location_key``.
    """
    key = location_key(params)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key.removeprefix("postgresql://"))[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return state_dir() / "vaults" / f"{slug}-{digest}"


def describe(params: dict[str, str]) -> str:
    """The vault as error messages name it (no role, no password: there is none)."""
    return location_key(params)


def moved(where: str, meta_value: object) -> NotFoundError:
    """A retired database vault: one sentence naming where it went (exit 2, as a
    retired directory's MOVED note gives). The value comes from the database, which
    is untrusted: shown escaped and cut short, never as a control sequence."""
    to = printable(str(meta_value)[:300]).strip()
    return NotFoundError(f"the vault at {where} moved to the directory {to}; "
                         f"open it with --vault {to}")


def first_line(exc: BaseException) -> str:
    """The first line of a driver error: its sentence, without libpq's detail lines."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lost(exc: psycopg.Error, where: str) -> StorageError:
    """A connection that failed or timed out mid-transaction: nothing committed."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StorageError(f"the PostgreSQL vault at {where} did not answer in time "
                            f"({first_line(exc)}); nothing was changed, try again")
    return StorageError(f"the connection to the PostgreSQL vault at {where} failed "
                        f"({first_line(exc)}); nothing was changed, try again")


#: SQLSTATEs of a transaction the server rolled back for a concurrent one
#: (serialization_failure, deadlock_detected): nothing committed, run it again.
CONFLICTS = frozenset({"40001", "40P01"})


def is_conflict(exc: psycopg.Error) -> bool:
    return exc.sqlstate in CONFLICTS


def is_out_of_space(exc: psycopg.Error) -> bool:
    """The server could not write: disk full (53100), or a file it may not grow."""
    text = str(exc)
    return exc.sqlstate == "53100" or "could not extend file" in text \
        or "No space left on device" in text


def no_space(exc: psycopg.Error, where: str) -> StorageError:
    """A write the server could not make for want of space: rolled back, nothing lost."""
    return StorageError(f"the PostgreSQL vault at {where} could not write: the database "
                        f"server is out of disk space ({first_line(exc)}); nothing was "
                        "changed, try again once it has space")


def refused(exc: psycopg.Error, where: str) -> StorageError:
    """A statement the server refused (permissions, constraints): nothing committed."""
    return StorageError(f"the PostgreSQL vault at {where} refused the operation "
                        f"({first_line(exc)}); nothing was changed")


def connect(params: dict[str, str], where: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection, or one clear sentence (exit 1) when the database is unreachable."""
    try:
        return psycopg.connect(**params, autocommit=True,  # type: ignore[arg-type]
                               application_name="glasskey")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason given"
        raise StorageError(f"cannot connect to the PostgreSQL vault at {where}: "
                           f"{reason}") from None


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The database schema's version (0: glasskey's schema is not there)."""
    row = conn.execute("SELECT to_regclass('glasskey.schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM glasskey.schema_version").fetchone()
    return int(found[0]) if found and isinstance(found[0], int) else 0  # type: ignore[arg-type]


def ensure_client_role(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CLIENT_ROLE,)).fetchone()
    if row:
        return
    try:
        conn.execute(f"CREATE ROLE {CLIENT_ROLE} NOLOGIN")
    except psycopg.errors.InsufficientPrivilege:
        raise UsageError(
            f"the role {CLIENT_ROLE} does not exist and this role may not create it; ask "
            f"the database administrator to run: CREATE ROLE {CLIENT_ROLE} NOLOGIN "
            "(docs/team-mode.md)") from None


def migrate(conn: psycopg.Connection[tuple[object, ...]], current: int) -> None:
    """Apply every SQL migration after ``current`` (the caller holds a transaction)."""
    if current > SQL_SCHEMA_VERSION:
        raise UsageError(f"the PostgreSQL vault's schema is version {current}, newer than "
                         f"this glasskey ({SQL_SCHEMA_VERSION}); upgrade glasskey")
    if current == 0:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
                     "version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())")
    for version in range(current, SQL_SCHEMA_VERSION):
        conn.execute(MIGRATIONS[version].encode())
        conn.execute("INSERT INTO glasskey.schema_version (version) VALUES (%s)",
                     (version + 1,))
    if current == 0:
        conn.execute(f"GRANT SELECT ON {SCHEMA}.schema_version TO {CLIENT_ROLE}")
