"""Real local receivers for notification tests and the time-to-credential benchmark.

* ``HttpReceiver``: an ``http.server`` on 127.0.0.1 in a thread; it can answer
  200, answer 500, or be slow, and records every request (headers and body).
* ``SmtpReceiver``: an ``aiosmtpd`` server on 127.0.0.1 that requires STARTTLS
  (a self-signed certificate made here with ``cryptography``) and AUTH over
  TLS with a password, and records every message.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class HttpReceiver:
    """``mode``: "ok", "500" or "slow" (sleeps ``delay`` seconds, then 200)."""

    def __init__(self, mode: str = "ok", delay: float = 5.0) -> None:
        self.mode = mode
        self.delay = delay
        self.received: list[Received] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.mode == "slow":
                    time.sleep(receiver.delay)
                status = 500 if receiver.mode == "500" else 200
                if status == 200:
                    with receiver.cond:
                        receiver.received.append(Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                            time.monotonic()))
                        receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < count and time.monotonic() < deadline:
                self.cond.wait(max(0.01, deadline - time.monotonic()))
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Mail:
    sender: str
    rcpts: list[str]
    message: Message
    raw: bytes
    tls: bool
    login: str | None
    at: float = 0.0  # time.monotonic() when the message was accepted


@dataclass
class SmtpReceiver:
    """An aiosmtpd server that insists on STARTTLS and a password."""

    directory: Path
    username: str = "glasskey"
    password: str = "smtp-relay-password"
    messages: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatter
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.cert, keyfile = self_signed(self.directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(keyfile))
        self.cond = threading.Condition()
        receiver = self

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and \
                auth_data.login.decode() == receiver.username and \
                auth_data.password.decode() == receiver.password
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,
                                  envelope: Any) -> str:
                raw = bytes(envelope.original_content or envelope.content)
                login = session.auth_data.login.decode() if isinstance(
                    session.auth_data, LoginPassword) else None
                with receiver.cond:
                    receiver.messages.append(Mail(
                        envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(raw),
                        raw, bool(session.ssl), login, time.monotonic()))
                    receiver.cond.notify_all()
                return "250 OK"

        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=free_port(), tls_context=context,
            require_starttls=True, authenticator=authenticator, auth_required=True,
            auth_require_tls=True)
        self.controller.start()
        self.port = int(self.controller.port)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.cond.wait(max(0.01, deadline - time.monotonic()))
            return list(self.messages)

    def close(self) -> None:
        self.controller.stop()
