"""Throwaway PostgreSQL and OpenLDAP servers for the connector tests.

The postgres and ldap connectors are only worth something if they work against
the real thing (DESIGN.md, "Connectors"; RELIABILITY.md R1 and "Real servers in
tests: notes"), so the tests start real servers: a PostgreSQL cluster made with
``initdb`` and an ``slapd`` with an mdb database, each in its own temp dir, on
127.0.0.1 and a free port, started once per test session.

Plain functions and context managers, no pytest import, so that benchmarks or a
REPL can use them too::

    with postgres_server() as pg:
        psycopg.connect(pg.role_conninfo("breakglass"), password=pg.breakglass_password)

When a server cannot start, ``RuntimeError`` carries the tail of its log: the
tests then fail with the reason instead of being skipped.

PostgreSQL refuses to run as root: when we are root the cluster belongs to the
``postgres`` user and ``initdb``/``pg_ctl`` run under ``runuser``. Every role
logs in with scram-sha-256 (never ``trust``, which would make "the old password
is refused" prove nothing). The server logs every statement
(``log_statement = all``) so tests can grep the log for leaked plaintext.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_USER = "glasskey_admin"
BREAKGLASS_USER = "breakglass"
#: A role that pg_hba.conf lets in with ``trust`` over TCP, only so a test can
#: prove the postgres connector notices a login that used no password.
TRUST_PROBE_USER = "glasskey_trust_probe"

LDAP_SUFFIX = "dc=example,dc=org"
LDAP_ADMIN_DN = f"cn=admin,{LDAP_SUFFIX}"
LDAP_PEOPLE_DN = f"ou=people,{LDAP_SUFFIX}"
LDAP_SCHEMA_DIR = "/etc/ldap/schema"
LDAP_MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib64/openldap")

_LOG_TAIL_LINES = 40


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def new_password() -> str:
    """A random password; recognisable in a log grep, never reused."""
    return "gk-" + secrets.token_urlsafe(18)


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _is_root() -> bool:
    return os.geteuid() == 0


def _run(
    argv: Sequence[str], *, as_user: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = list(argv)
    if as_user is not None:
        cmd = ["runuser", "-u", as_user, "--", *cmd]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not run {' '.join(cmd)}: {exc}") from exc


def _ssha(password: str) -> str:
    """An RFC 2307 ``{SSHA}`` value for userPassword/rootpw (what slappasswd makes)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # LDAP {SSHA} format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


# --------------------------------------------------------------------------- PostgreSQL


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (``GLASSKEY_PG_BIN`` overrides)."""
    override = os.environ.get("GLASSKEY_PG_BIN")
    if override:
        return Path(override)
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        on_path = shutil.which("initdb")
        if on_path:
            return Path(on_path).parent
        raise RuntimeError(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, "
            "no initdb on PATH); install postgresql or set GLASSKEY_PG_BIN"
        )

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.parent.name
        return tuple(int(x) for x in re.findall(r"\d+", part)) or (0,)

    return Path(max(found, key=version)).parent


@dataclass
class PostgresServer:
    """A running throwaway cluster. Roles log in with scram-sha-256 over TCP."""

    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    log_file: Path
    bin_dir: Path
    base_dir: Path
    admin_user: str
    admin_password: str
    breakglass_user: str
    breakglass_password: str
    owner: str | None
    started_in: float = 0.0
    dbname: str = "postgres"
    _roles: list[str] = field(default_factory=list)

    @property
    def admin_conninfo(self) -> str:
        """libpq conninfo for the superuser over TCP, password included (tests only)."""
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} "
            f"user={self.admin_user} password={self.admin_password} connect_timeout=5"
        )

    @property
    def admin_socket_conninfo(self) -> str:
        """The same over the Unix socket in ``socket_dir``."""
        return (
            f"host={self.socket_dir} port={self.port} dbname={self.dbname} "
            f"user={self.admin_user} password={self.admin_password}"
        )

    def role_conninfo(self, user: str) -> str:
        """A connector target: a conninfo naming ``user``, no password."""
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} user={user} connect_timeout=5"
        )

    def write_service_files(
        self, directory: Path, service: str = "glasskey-admin"
    ) -> tuple[Path, Path]:
        """Write ``pg_service.conf`` (a ``[service]`` for the admin role) and a 0600
        ``pgpass`` with its password into ``directory``; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        service_file = directory / "pg_service.conf"
        service_file.write_text(
            f"[{service}]\nhost={self.host}\nport={self.port}\n"
            f"dbname={self.dbname}\nuser={self.admin_user}\nconnect_timeout=5\n"
        )
        passfile = directory / "pgpass"
        passfile.touch(mode=0o600)
        passfile.chmod(0o600)
        passfile.write_text(
            f"{self.host}:{self.port}:{self.dbname}:{self.admin_user}:{self.admin_password}\n"
        )
        return service_file, passfile

    def execute(self, query: str, *params: object) -> None:
        """Run one statement as the superuser (client-side binding, autocommit)."""
        import psycopg

        with psycopg.connect(
            self.admin_conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as conn:
            conn.execute(query, params or None)

    def create_role(self, name: str, password: str) -> None:
        """(Re)create a LOGIN role whose password is sent as a SCRAM verifier,
        so the plaintext never reaches the statement log."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(
                password.encode(), name.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(verifier)
                )
            )
        if name not in self._roles:
            self._roles.append(name)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        _run(
            [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"],
            as_user=self.owner,
        )
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_postgres(*, start_timeout: float = 30) -> PostgresServer:
    """initdb + pg_ctl start in a fresh temp dir; create the admin and breakglass roles."""
    t0 = time.monotonic()
    bin_dir = find_pg_bin()
    owner: str | None = None
    if _is_root():
        owner = "postgres"
        try:
            import pwd

            pw = pwd.getpwnam(owner)
        except KeyError as exc:
            raise RuntimeError(
                "running as root but there is no 'postgres' user to own the test cluster"
            ) from exc
    base = Path(tempfile.mkdtemp(prefix="glasskey-pg-"))
    data_dir = base / "data"
    socket_dir = base / "run"
    log_file = base / "postgres.log"
    pwfile = base / "admin.pw"
    admin_password = new_password()
    try:
        socket_dir.mkdir()
        log_file.touch()
        pwfile.write_text(admin_password + "\n")
        if owner is not None:
            for path in (base, socket_dir, log_file, pwfile):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        base.chmod(0o700)

        init = _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                ADMIN_USER,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            as_user=owner,
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
            )

        (data_dir / "pg_hba.conf").write_text(
            "# written by tests/servers.py: passwords everywhere, except one probe role\n"
            f"host  all {TRUST_PROBE_USER} 127.0.0.1/32 trust\n"
            "local all all scram-sha-256\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
        )
        last_error = ""
        for _attempt in range(3):
            port = free_port()
            with (data_dir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# tests/servers.py\n"
                    f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                    f"unix_socket_directories = '{socket_dir}'\n"
                    "password_encryption = 'scram-sha-256'\n"
                    "log_statement = 'all'\nlog_connections = on\n"
                    "logging_collector = off\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 30\nshared_buffers = '16MB'\n"
                )
            start = _run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(int(start_timeout)),
                    "-D",
                    str(data_dir),
                    "-l",
                    str(log_file),
                ],
                as_user=owner,
                timeout=start_timeout + 10,
            )
            if start.returncode == 0:
                break
            last_error = f"{start.stdout}\n{start.stderr}\n--- server log ---\n{log_tail(log_file)}"
            if "could not bind" not in last_error and "in use" not in last_error:
                break
        if start.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start (pg_ctl exit {start.returncode}):\n{last_error}"
            )

        server = PostgresServer(
            host="127.0.0.1",
            port=port,
            socket_dir=socket_dir,
            data_dir=data_dir,
            log_file=log_file,
            bin_dir=bin_dir,
            base_dir=base,
            admin_user=ADMIN_USER,
            admin_password=admin_password,
            breakglass_user=BREAKGLASS_USER,
            breakglass_password=new_password(),
            owner=owner,
        )
        try:
            server.create_role(server.breakglass_user, server.breakglass_password)
            server.execute(f'CREATE ROLE "{TRUST_PROBE_USER}" LOGIN')
        except Exception as exc:
            server.stop()
            raise RuntimeError(
                f"PostgreSQL started but role setup failed: {exc}\n"
                f"--- server log ---\n{log_tail(log_file)}"
            ) from exc
        server.started_in = time.monotonic() - t0
        return server
    except BaseException:
        if data_dir.exists():
            _run(
                [str(bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate"],
                as_user=owner,
            )
        shutil.rmtree(base, ignore_errors=True)
        raise


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def small_filesystem(size: str, owner: str | None = None) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"2M"``), owned by ``owner``: a disk that really fills up
    (ENOSPC), for a tablespace whose writes should fail. Mounting needs root (or
    CAP_SYS_ADMIN); ``RuntimeError`` says so when it cannot be mounted."""
    path = Path(tempfile.mkdtemp(prefix="glasskey-small-fs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        path.rmdir()
        raise RuntimeError(f"cannot mount a small tmpfs: {done.stderr.strip()}")
    try:
        if owner is not None:
            import pwd

            pw = pwd.getpwnam(owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            path.rmdir()


# --------------------------------------------------------------------------- OpenLDAP


def find_slapd() -> tuple[Path, Path]:
    """Paths of ``slapd`` and ``slapadd``."""
    slapd = shutil.which("slapd") or (
        "/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None
    )
    slapadd = shutil.which("slapadd") or (
        "/usr/sbin/slapadd" if Path("/usr/sbin/slapadd").exists() else None
    )
    if not slapd or not slapadd:
        raise RuntimeError("slapd/slapadd not found; install the slapd package")
    return Path(slapd), Path(slapadd)


@dataclass
class LdapServer:
    """A running throwaway slapd (mdb backend) on ldap://127.0.0.1:<port>."""

    host: str
    port: int
    base_dir: Path
    conf_file: Path
    log_file: Path
    process: subprocess.Popen[bytes]
    admin_password: str
    breakglass_password: str
    suffix: str = LDAP_SUFFIX
    admin_dn: str = LDAP_ADMIN_DN
    people_dn: str = LDAP_PEOPLE_DN
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"ldap://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def breakglass_dn(self) -> str:
        return self.user_dn("breakglass")

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people_dn}"

    def add_user(self, uid: str, password: str) -> str:
        """(Re)create ``uid=...,ou=people`` with an ``{SSHA}`` userPassword; return its DN."""
        import ldap3

        dn = self.user_dn(uid)
        conn = ldap3.Connection(
            ldap3.Server(self.url, connect_timeout=5),
            user=self.admin_dn,
            password=self.admin_password,
            receive_timeout=10,
        )
        if not conn.bind():
            raise RuntimeError(f"admin bind to test slapd failed: {conn.result}")
        try:
            conn.delete(dn)
            ok = conn.add(
                dn,
                ["inetOrgPerson"],
                {"uid": uid, "cn": uid, "sn": uid, "userPassword": _ssha(password)},
            )
            if not ok:
                raise RuntimeError(f"adding {dn} failed: {conn.result}")
        finally:
            conn.unbind()
        return dn

    def write_admin_password_file(self, directory: Path) -> Path:
        """The rootdn password in a 0600 file, the way a site keeps it."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "ldap-admin.pw"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(self.admin_password + "\n")
        return path

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _slapd_conf(base: Path, admin_password: str) -> str:
    module_dir = next((d for d in LDAP_MODULE_DIRS if Path(d, "back_mdb.la").exists()), None)
    modules = f"modulepath {module_dir}\nmoduleload back_mdb\n" if module_dir else ""
    return (
        f"include {LDAP_SCHEMA_DIR}/core.schema\n"
        f"include {LDAP_SCHEMA_DIR}/cosine.schema\n"
        f"include {LDAP_SCHEMA_DIR}/inetorgperson.schema\n"
        f"pidfile {base}/slapd.pid\n"
        f"argsfile {base}/slapd.args\n"
        f"{modules}"
        "password-hash {SSHA}\n"
        "database mdb\n"
        "maxsize 67108864\n"
        f'suffix "{LDAP_SUFFIX}"\n'
        f'rootdn "{LDAP_ADMIN_DN}"\n'
        f"rootpw {_ssha(admin_password)}\n"
        f"directory {base}/db\n"
        "access to attrs=userPassword\n"
        "  by self write\n  by anonymous auth\n  by * none\n"
        "access to *\n  by self read\n  by users read\n  by anonymous auth\n"
    )


def _base_ldif(breakglass_password: str) -> str:
    return (
        f"dn: {LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "dc: example\no: example\n\n"
        f"dn: {LDAP_PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
        f"dn: uid=breakglass,{LDAP_PEOPLE_DN}\nobjectClass: inetOrgPerson\n"
        "uid: breakglass\ncn: breakglass\nsn: breakglass\n"
        f"userPassword: {_ssha(breakglass_password)}\n"
    )


def _wait_for_ldap(host: str, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with status {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5) as s:
                # An anonymous bind request (LDAPv3, message id 1); any BindResponse
                # means slapd is answering, not only listening.
                s.sendall(bytes.fromhex("300c020101600702010304008000"))
                s.settimeout(2)
                if s.recv(64)[:1] == b"\x30":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"slapd did not answer on {host}:{port} within {timeout:.0f} s")


def start_slapd(*, start_timeout: float = 15) -> LdapServer:
    """slapadd a base tree into a fresh mdb, then run slapd in the foreground
    (``-d stats``, logging to a file) on a free 127.0.0.1 port."""
    t0 = time.monotonic()
    slapd, slapadd = find_slapd()
    base = Path(tempfile.mkdtemp(prefix="glasskey-ldap-"))
    log_file = base / "slapd.log"
    conf = base / "slapd.conf"
    admin_password = new_password()
    breakglass_password = new_password()
    try:
        (base / "db").mkdir()
        conf.write_text(_slapd_conf(base, admin_password))
        ldif = base / "base.ldif"
        ldif.write_text(_base_ldif(breakglass_password))
        added = _run([str(slapadd), "-f", str(conf), "-l", str(ldif)])
        ldif.unlink()
        if added.returncode != 0:
            raise RuntimeError(
                f"slapadd failed (exit {added.returncode}):\n{added.stdout[-2000:]}\n{added.stderr[-2000:]}"
            )
        last_error = ""
        for _attempt in range(3):
            port = free_port()
            with log_file.open("ab") as log:
                process = subprocess.Popen(
                    [str(slapd), "-d", "stats", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                _wait_for_ldap("127.0.0.1", port, process, start_timeout)
                break
            except RuntimeError as exc:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
                last_error = f"{exc}\n--- slapd log ---\n{log_tail(log_file)}"
                if "Address already in use" not in last_error:
                    raise RuntimeError(last_error) from None
        else:
            raise RuntimeError(last_error)
        server = LdapServer(
            host="127.0.0.1",
            port=port,
            base_dir=base,
            conf_file=conf,
            log_file=log_file,
            process=process,
            admin_password=admin_password,
            breakglass_password=breakglass_password,
        )
        server.started_in = time.monotonic() - t0
        return server
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


@contextlib.contextmanager
def ldap_server() -> Iterator[LdapServer]:
    server = start_slapd()
    try:
        yield server
    finally:
        server.stop()
