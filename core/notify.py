"""Notifications: wake a person up and point them at their own glasskey client.

A notification carries **no authority and no secret**. In glasskey an approval
is the approver's key re-sealing a share; a chat message or an e-mail can only
tell the approver that a request waits and which command acts on it
(``glasskey approve REQ``). Nothing in a payload is believed by glasskey.

Where events come from
    Every write transaction lists the audit entries it recorded
    (``Transaction.recorded``). Once the transaction has committed *and the
    vault lock is released* (``Store.on_unlock``), the entries that matter are
    turned into payloads from a fixed list of fields of the signed entry and of
    the request it names. Audit details never hold a secret value, a share, a
    grant or a passphrase (SECURITY.md), and payloads copy only named fields, so
    nothing else can leak in by accident.

How they are delivered
    Just before the commit (``Store.before_commit``) the deliveries are written
    into the vault's queue, in the same commit as the events they announce:
    one record per delivery, keyed by its delivery id, so queueing twice is
    harmless and a process killed right after its commit loses none. After the
    commit, with the lock released, the committing process hands them to a
    background thread and returns at once: the commit is done and a secret (an
    emergency use) is not held back. The thread sends every channel in
    parallel within ``[notify] timeout`` seconds of wall-clock time (3 by
    default), then removes what went out and records why the rest did not (one
    short transaction); the interpreter waits for it at exit, so a CLI command
    lives at most that much longer. A record is left to its own process for a
    grace period (the timeout + 30 s); after that, and after each failure's
    back-off, every later authenticated command (its sweep) and ``glasskey
    relay`` deliver it. Delivery is at least once: a receiver may see a
    delivery id twice and should drop the second.

Failures in the audit log
    Only a few ``system`` events may be written unsigned, and a delivery
    failure is not one of them. A process with an unlocked operator records a
    signed ``notify.failed`` entry at once. ``glasskey relay`` runs with no
    operator unlocked (it holds no key); it marks the queued record
    ``audited: false``, and the next authenticated command records those
    failures, signed by its operator. ``alerts`` shows every queued delivery
    whether or not it is audited yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import ssl
import stat
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from glasskey.core import config, hooks
from glasskey.core.clock import iso
from glasskey.core.errors import GlasskeyError
from glasskey.core.storage.interface import Transaction

#: The meta-table document holding the delivery queue and the lease warnings sent.
OUTBOX = "notify_outbox"
#: Minutes before a lease ends that its holder is told.
LEASE_WARNING = 5 * 60
RETRY_FIRST = 30.0
RETRY_MAX = 900.0
#: Characters of user-typed text a payload keeps.
TEXT_CAP = 300

#: Audit events that notify, and who hears of them.
EVENTS: dict[str, str] = {
    "checkout.requested": "approver",
    "checkout.approved": "requester",
    "checkout.denied": "requester",
    "checkout.expired": "requester",
    "emergency.used": "approver",
    "rotate.failed": "approver",
    "lease.ending": "holder",
    "notify.test": "everyone",
}


# --------------------------------------------------------------------------- text hygiene
_INVISIBLE = {"\u2028", "\u2029", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c",
              "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\ufeff"}


def plain(value: Any, cap: int = TEXT_CAP) -> str:
    """One line of text: no control character (C0, C1, DEL, bidi, line separators),
    whitespace collapsed, at most ``cap`` characters. Safe in a mail header."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if ch in _INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(ch)
    flat = " ".join("".join(out).split())
    return flat if len(flat) <= cap else flat[:cap - 1] + "…"


#: Characters chat services give meaning to (mentions, links, markup) and the
#: look-alikes shown instead: ``@channel`` notifies nobody, ``[x](url)`` and
#: ``<url|x>`` are no links, a bare URL or domain is not linked.
_CHAT = str.maketrans({
    "@": "＠", "<": "‹", ">": "›", "&": "＆", "[": "［", "]": "］", "(": "（", ")": "）",
    "*": "∗", "_": "＿", "~": "～", "`": "ˋ", "|": "｜", "#": "＃", "!": "ǃ", ":": "꞉",
    ".": "․", "\\": "⧵",
})


def chat(value: Any, cap: int = TEXT_CAP) -> str:
    """``plain`` text that Slack, Teams and Mattermost render as nothing but text."""
    return plain(value, cap).translate(_CHAT)


# --------------------------------------------------------------------------- payloads
@dataclass(frozen=True)
class Delivery:
    """One event to one channel: what is sent, and its id for de-duplication."""

    id: str
    channel: str
    payload: dict[str, Any]


def delivery_id(vault_id: str, occurrence: str, channel: str) -> str:
    digest = hashlib.sha256(f"{vault_id}\x00{occurrence}\x00{channel}".encode()).hexdigest()
    return "n-" + digest[:24]


def _command_for(event: str, request: str, credential: str) -> str:
    return {
        "checkout.requested": f"glasskey approve {request}",
        "checkout.approved": f"glasskey reveal {request}",
        "checkout.denied": f"glasskey open {request}",
        "checkout.expired": f"glasskey open {request}",
        "emergency.used": "glasskey review list",
        "rotate.failed": f"glasskey reconcile {credential}",
        "lease.ending": f"glasskey checkin {request}",
        "notify.test": "glasskey alerts",
    }[event]


def build_payload(vault_id: str, event: str, *, request: str, credential: str,
                  requester: str, reason: str = "", ticket: str = "",
                  expires: float | None = None, actor: str = "", detail: str = "",
                  to: dict[str, str] | None = None, seq: int | None = None,
                  when: float | None = None) -> dict[str, Any]:
    """The payload of every channel, from named fields only (never a whole record)."""
    cmd_request = plain(request, 64)
    cmd_cred = plain(credential, 128)
    return {
        "type": "glasskey.notification", "version": 1, "event": event,
        "vault": vault_id, "seq": seq, "time": iso(when if when is not None else time.time()),
        "request": cmd_request, "credential": cmd_cred, "requester": plain(requester, 64),
        "actor": plain(actor, 64), "reason": plain(reason), "ticket": plain(ticket, 128),
        "detail": plain(detail), "expires": iso(expires) if expires else None,
        "command": _command_for(event, cmd_request, cmd_cred),
        "to": dict(to or {"role": EVENTS.get(event, "approver")}),
    }


def payload_from_entry(txn: Transaction, vault_id: str, event: str, subject: str,
                       details: dict[str, Any], actor: str, seq: int,
                       when: float) -> dict[str, Any] | None:
    """The payload for a recorded audit entry, or None when it does not notify."""
    if event not in EVENTS or event in ("lease.ending", "notify.test"):
        return None
    req: dict[str, Any] = {}
    if event == "rotate.failed":
        request = str(details.get("request") or "")
        credential = subject
    else:
        request = subject
        credential = str(details.get("credential", ""))
    if request:
        try:
            req = txn.table("requests").get(request) or {}
        except GlasskeyError:
            req = {}
    requester = str(req.get("requester") or details.get("requester") or
                    (actor if event in ("checkout.requested", "emergency.used") else ""))
    expires: float | None = None
    detail = ""
    if event == "checkout.requested":
        policy = req.get("policy") or {}
        expires = float(req.get("created", when)) + float(policy.get("request_ttl", 3600))
    elif event == "checkout.approved":
        expires = float(details.get("expires") or 0) or None
        detail = f"approved by {actor} ({details.get('approvals')} of {details.get('needed')})"
    elif event == "checkout.denied":
        detail = f"denied by {actor}: {details.get('reason', '')}"
    elif event == "checkout.expired":
        detail = f"expired at the {details.get('stage', 'request')} stage"
    elif event == "emergency.used":
        expires = float(details.get("lease_expires") or 0) or None
        detail = f"emergency kit {details.get('kit', '')} used by {actor}"
    elif event == "rotate.failed":
        detail = f"rotation failed: {details.get('error', '')}"
    if details.get("released"):
        detail += " (the approval was released: the credential is rotated)"
    role = EVENTS[event]
    to = {"operator": requester} if role == "requester" else {"role": role}
    return build_payload(
        vault_id, event, request=request, credential=credential or str(req.get("cred_name", "")),
        requester=requester, reason=str(req.get("reason") or details.get("reason") or ""),
        ticket=str(req.get("ticket") or details.get("ticket") or ""), expires=expires,
        actor=actor, detail=detail, to=to, seq=seq, when=when)


def summary(payload: dict[str, Any], text: Callable[[Any], str] = plain) -> str:
    """One human line (``text`` neutralises what users typed for the channel)."""
    event = payload["event"]
    head = {
        "checkout.requested": "Approval needed",
        "checkout.approved": "Request approved",
        "checkout.denied": "Request denied",
        "checkout.expired": "Request expired",
        "emergency.used": "EMERGENCY KIT USED",
        "rotate.failed": "ROTATION FAILED",
        "lease.ending": "Lease ends in 5 minutes",
        "notify.test": "glasskey test notification",
    }.get(event, event)
    parts = [f"glasskey: {head}"]
    if payload.get("credential"):
        parts.append(f"credential {text(payload['credential'])}")
    if payload.get("requester"):
        parts.append(f"requester {text(payload['requester'])}")
    if payload.get("reason"):
        parts.append(f"reason {text(payload['reason'])}")
    if payload.get("ticket"):
        parts.append(f"ticket {text(payload['ticket'])}")
    if payload.get("detail"):
        parts.append(text(payload["detail"]))
    if payload.get("expires"):
        parts.append(f"expires {payload['expires']}")
    return "; ".join(parts)


def render_webhook(payload: dict[str, Any], fmt: str) -> bytes:
    """The JSON body for the webhook's ``format``."""
    if fmt == "json":
        return json.dumps(payload, sort_keys=True).encode()
    # The command and the delivery id are ours (no user text): kept readable,
    # in a code span, so the person can paste the command.
    text = (f"{summary(payload, chat)}\nrun: `{payload['command']}`  "
            f"(delivery {payload['delivery_id']})")
    body: dict[str, Any] = {"text": text}
    if fmt == "mattermost":
        body["props"] = {"glasskey": {k: payload[k] for k in (
            "event", "request", "delivery_id", "seq", "vault")}}
    return json.dumps(body, sort_keys=True).encode()


def render_email(payload: dict[str, Any], sender: str, to: Iterable[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = plain(summary(payload), 200)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{payload['delivery_id']}@glasskey.invalid>"
    msg["X-Glasskey-Delivery"] = payload["delivery_id"]
    lines = [summary(payload), "", f"Run: {payload['command']}", ""]
    for key in ("event", "request", "credential", "requester", "reason", "ticket",
                "expires", "detail", "delivery_id"):
        lines.append(f"{key}: {plain(payload.get(key))}")
    lines += ["", "This message carries no authority: act only in your own glasskey client."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


# --------------------------------------------------------------------------- channels
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a webhook that redirects is a failed delivery, never followed


def send_webhook(url: str, body: bytes, ident: str, timeout: float) -> None:
    if not url.lower().startswith(("https://", "http://")):  # never file: or others
        raise DeliveryError("the webhook is not an http(s) URL")
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "User-Agent": "glasskey",
        "Idempotency-Key": ident, "X-Glasskey-Delivery": ident})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"the webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = getattr(exc, "reason", exc)
        raise DeliveryError(f"the webhook could not be reached ({type(why).__name__})") \
            from None
    if not 200 <= status < 300:
        raise DeliveryError(f"the webhook answered HTTP {status}")


def _password(path: os.PathLike[str] | str) -> str:
    """The SMTP password from the file the site protects (first line)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise DeliveryError(f"the SMTP password file cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise DeliveryError("the SMTP password file must be a regular file readable by "
                                "its owner only")
        return fh.read(4096).decode("utf-8", "replace").splitlines()[0] if st.st_size else ""


def send_email(settings: config.EmailSettings, login: config.SmtpLogin | None,
               msg: EmailMessage, timeout: float) -> None:
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            smtp.ehlo()
            tls = False
            if settings.starttls:
                context = ssl.create_default_context(
                    cafile=str(settings.cafile) if settings.cafile else None)
                smtp.starttls(context=context)
                smtp.ehlo()
                tls = True
            if login is not None and (login.host, login.port) == (settings.host,
                                                                    settings.port):
                if not tls:
                    raise DeliveryError("the SMTP password is sent only after STARTTLS")
                smtp.login(login.username, _password(login.password_file))
            smtp.send_message(msg)
    except DeliveryError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the mail server answered {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError, ValueError) as exc:
        raise DeliveryError(f"the mail server could not be used ({type(exc).__name__})") \
            from None


class DeliveryError(Exception):
    """A channel did not take a delivery; the message is short and secret-free."""


def recipients(settings: config.EmailSettings, to: dict[str, str]) -> tuple[str, ...]:
    if "operator" in to:
        own = settings.to_operator.get(to["operator"])
        return (own,) if own else settings.to_role.get("requester", ())
    role = to.get("role", "")
    if role == "everyone":
        return tuple(dict.fromkeys(a for addrs in settings.to_role.values() for a in addrs))
    return settings.to_role.get(role, ())


def deliveries_for(settings: config.NotifySettings, vault_id: str, occurrence: str,
                   payload: dict[str, Any]) -> list[Delivery]:
    """One delivery per configured channel that has someone to tell."""
    out = []
    for channel in settings.channels:
        if channel == "email" and settings.email is not None \
                and not recipients(settings.email, payload["to"]):
            continue
        ident = delivery_id(vault_id, occurrence, channel)
        out.append(Delivery(ident, channel, {**payload, "delivery_id": ident}))
    return out


def deliver_one(settings: config.NotifySettings, d: Delivery, timeout: float) -> None:
    """Send one delivery; raises DeliveryError with a short reason."""
    if d.channel == "webhook" and settings.webhook:
        send_webhook(settings.webhook, render_webhook(d.payload, settings.format), d.id,
                     timeout)
    elif d.channel == "command" and settings.command:
        why = hooks.run(settings.command, json.dumps(d.payload, sort_keys=True).encode(),
                        timeout=timeout)
        if why:
            raise DeliveryError(why)
    elif d.channel == "email" and settings.email is not None:
        to = recipients(settings.email, d.payload["to"])
        if not to:
            return
        try:
            login = config.site_policy().smtp_login
        except GlasskeyError as exc:
            raise DeliveryError(str(exc)) from None
        send_email(settings.email, login, render_email(d.payload, settings.email.sender, to),
                   timeout)
    else:
        raise DeliveryError(f"the {d.channel} channel is no longer configured")


def deliver_all(settings: config.NotifySettings, items: list[Delivery],
                budget: float | None = None) -> dict[str, str | None]:
    """Every delivery in parallel, all within ``budget`` seconds of wall-clock time.

    Returns delivery id -> None (delivered) or the reason it was not. A channel
    still running at the deadline counts as failed (it may still arrive: the
    retry makes it at least once, the delivery id lets the receiver drop it).
    """
    budget = settings.budget if budget is None else budget
    results: dict[str, str | None] = {}
    lock = threading.Lock()

    def run(d: Delivery) -> None:
        try:
            deliver_one(settings, d, budget)
            outcome: str | None = None
        except DeliveryError as exc:
            outcome = str(exc)
        except Exception as exc:  # a channel must never take the caller down
            outcome = f"internal error ({type(exc).__name__})"
        with lock:
            results[d.id] = outcome

    threads = [threading.Thread(target=run, args=(d,), daemon=True,
                                name=f"glasskey-notify-{d.channel}") for d in items]
    deadline = time.monotonic() + budget
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {d.id: results.get(d.id, f"the {d.channel} channel did not answer within "
                                         f"{budget:g} s") for d in items}
