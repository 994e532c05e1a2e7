"""Oversight: ``alerts``, ``audit verify|export|forward`` and ``report custody|verify``.

None of these needs an operator, except signing a report off (``report custody
--attest``): the audit log is verifiable by anyone who can read the vault directory.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from glasskey.core.api import UsageError, Vault, iso
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import emit, note, out_json, progress_printer, show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.render import show_alerts, verify_line


def alerts(ctx: Ctx) -> int:
    show_alerts(ctx.vault.alerts(), ctx.json)
    return 0


def audit_verify(ctx: Ctx, *, incremental: bool) -> int:
    result = ctx.vault.verify_audit(incremental=incremental,
                                    progress=progress_printer("verifying"))
    if ctx.json:
        out_json(result.to_doc())
    elif result.ok:
        emit(verify_line(result))
    if not result.ok:
        note(f"audit log FAILED verification at entry {result.first_bad}: {result.reason}")
        return 3
    return 0


def audit_log(vault: Vault) -> Iterator[bytes]:
    """The audit log's raw lines, streamed, for the exporters."""
    return vault.audit_lines()


def audit_export(ctx: Ctx, *, format: str | None, output: str | None) -> int:
    from glasskey.core.api import export, siem

    fmt = format or "jsonl"

    def write(out: TextIO) -> int:
        if fmt == "syslog":
            return siem.export_syslog(audit_log(ctx.vault), out)
        return export(audit_log(ctx.vault), fmt, out)

    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            n = write(fh)
        note(f"exported {n} entries to {output}")
    else:
        write(sys.stdout)
    return 0


def audit_forward(ctx: Ctx, *, to: str, protocol: str) -> int:
    from glasskey.core.api import siem

    host, sep, port = to.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError("--to wants HOST:PORT")
    fwd = siem.forward_new(ctx.vault, host, int(port), protocol)
    show(ctx.json, {"sent": fwd.sent, "first_seq": fwd.first_seq, "last_seq": fwd.last_seq},
         f"forwarded {fwd.sent} entr{'y' if fwd.sent == 1 else 'ies'}")
    return 0


def report_verify(ctx: Ctx, *, file: str) -> int:
    from glasskey.core.api import report

    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file} ({type(exc).__name__})") from None
    check = report.verify_report(ctx.vault, text, file)
    a = check.attestation
    show(ctx.json, {"ok": True, "attestation": a.id, "by": a.by, "at": iso(a.at),
                    "since": a.since, "until": a.until, "head_seq": a.entries,
                    "head_hash": a.head_hash, "sha256": check.sha256},
         f"{file} matches attestation {a.id}: signed off by {a.by} at "
         f"{iso(a.at)}, period {a.since} .. {a.until}, audit head seq {a.entries}"
         + (f" hash {a.head_hash[:16]}..." if a.head_hash else ""))
    return 0


def report_custody(ctx: Ctx, *, since: str, until: str | None, format: str,
                   output: str | None, attest: bool) -> int:
    from glasskey.core.api import report

    start = report.parse_date(since)
    end = report.parse_date(until, end=True) if until else None
    built = report.build_custody_report(ctx.vault, start, end)
    render = {"md": report.render_markdown, "html": report.render_html,
              "json": report.render_json}[format]
    text = render(built)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        note(f"custody report written to {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if attest:
        session = authenticate(ctx, sweep=False)
        att = report.attest(ctx.vault, session, text, format, start, built.until,
                            head_seq=built.audit.head_seq, head_hash=built.audit.head_hash)
        note(f"period signed off by {session.name} (attestation {att})")
    return 0 if built.audit.ok else 3


def add_alerts_parser(cmds: Commands) -> None:
    cmds.command("alerts", handler=alerts)


def add_audit_parsers(cmds: Commands) -> None:
    actions = cmds.actions(cmds.command("audit"))
    p = cmds.action(actions, "verify", handler=audit_verify,
                    help="check every link and signature of the audit log")
    p.add_argument("--incremental", action="store_true",
                   help="only the entries after this client's last verified head")
    p = cmds.action(actions, "export", handler=audit_export,
                    help="write the audit log as JSON lines, CSV or syslog lines")
    p.add_argument("--format", choices=["jsonl", "csv", "syslog"])
    p.add_argument("--output", metavar="PATH")
    p = cmds.action(actions, "forward", handler=audit_forward,
                    help="send the entries not yet forwarded to a syslog collector")
    p.add_argument("--to", required=True, metavar="HOST:PORT",
                   help="the syslog collector (required)")
    p.add_argument("--protocol", choices=["udp", "tcp"], default="udp")


def add_report_parsers(cmds: Commands) -> None:
    # dest "kind", not "action", as before: the label a lock holder shows stays "report"
    actions = cmds.actions(cmds.command("report"), dest="kind")
    p = cmds.action(actions, "custody", cmds.actor, handler=report_custody,
                    help="build a custody review report")
    p.add_argument("--since", required=True, metavar="DATE", help="YYYY-MM-DD (required)")
    p.add_argument("--until", metavar="DATE")
    p.add_argument("--format", choices=["md", "html", "json"], default="md")
    p.add_argument("--output", metavar="PATH")
    p.add_argument("--attest", action="store_true",
                   help="sign off the period as the reviewer (needs --as ...)")
    p = cmds.action(actions, "verify", handler=report_verify,
                    help="check a report file against its attestation")
    p.add_argument("file", metavar="FILE", help="the report file (written with --output)")


PARSERS = {"alerts": add_alerts_parser, "audit": add_audit_parsers,
           "report": add_report_parsers}
