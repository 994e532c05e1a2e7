"""Checkouts: ``request`` (and ``request list|clear``), ``approve``, ``deny``, ``cancel``,
``reveal`` and ``extend``.

Every name or id is looked up before anyone authenticates: a typo is refused before a
TOTP code is spent on it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from glasskey.core.api import Checkout, Session, cap, cap_all, iso, parse_duration
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import emit, note, out_json, show
from glasskey.tui.cli.parser import Commands, nonblank
from glasskey.tui.cli.render import checkout_line


def request_list(ctx: Ctx, *, include_closed: bool, follow: bool = False) -> int:
    if follow:
        from glasskey.tui.cli.follow import follow_requests

        return follow_requests(ctx, include_closed=include_closed)
    items = ctx.vault.checkouts(open_only=not include_closed)
    now = ctx.vault.now()
    empty = () if items else ("no checkouts" if include_closed else "no open checkouts",)
    show(ctx.json, [c.to_public(now) for c in items],
         *(checkout_line(c, now) for c in items), *empty)
    return 0


def request_clear(ctx: Ctx, *, requester: str, reason: str) -> int:
    """An admin closes every open, unrevealed request of ``requester`` (a flood)."""
    session = authenticate(ctx)
    closed, skipped = ctx.vault.clear_requests(session, requester, reason)
    show(ctx.json, {"requester": requester, "closed": closed, "skipped": skipped},
         f"{len(closed)} request(s) of {requester} closed"
         + (f"; {len(skipped)} revealed checkout(s) left to check-in" if skipped else ""))
    return 0


def request_ask(ctx: Ctx, *, cred: str | None, cred_opt: str | None, reason: str | None,
                ticket: str | None, duration: str) -> int:
    cred_name = cred_opt or cred or ""  # argparse lets exactly one of them through
    ctx.vault.credential(cred_name)  # a typo is refused before a TOTP code is spent
    cap_all(reason=reason, ticket=ticket)
    seconds = parse_duration(duration)
    session = authenticate(ctx)
    req = ctx.vault.request(session, cred_name, reason or "", ticket or "", seconds)
    show(ctx.json, {"id": req.id, "state": req.state, "credential": req.cred_name,
                    "needed_approvals": req.needed}, req.id)
    return 0


def _request_action(ctx: Ctx, request: str, act: Callable[[Session], Checkout],
                    done: Callable[[Checkout], str]) -> int:
    """approve / deny / cancel: authenticate, act, print the checkout or a line."""
    ctx.vault.checkout(request)  # an unknown id is refused before a TOTP code is spent
    req = act(authenticate(ctx))
    if ctx.json:
        out_json(req.to_public(ctx.vault.now()))
    else:
        emit(done(req))
    return 0


def approve(ctx: Ctx, *, request: str) -> int:
    return _request_action(
        ctx, request, lambda s: ctx.vault.approve(s, request),
        lambda r: f"{r.id} {r.state} ({len(r.approvals)}/{r.needed} approval(s))")


def deny(ctx: Ctx, *, request: str, reason: str) -> int:
    cap(reason, "deny reason")
    return _request_action(ctx, request, lambda s: ctx.vault.deny(s, request, reason),
                           lambda r: f"{r.id} denied")


def cancel(ctx: Ctx, *, request: str) -> int:
    return _request_action(ctx, request, lambda s: ctx.vault.cancel(s, request),
                           lambda r: f"{r.id} cancelled")


def reveal(ctx: Ctx, *, request: str, again: bool) -> int:
    ctx.vault.checkout(request)
    session = authenticate(ctx)
    # --again: the holder, re-authenticated, during their own lease (checkout.redisplayed).
    secret = ctx.vault.redisplay(session, request) if again \
        else ctx.vault.reveal(session, request)
    req = ctx.vault.checkout(request)
    if ctx.json:
        out_json({"id": req.id, "credential": req.cred_name, "secret": secret.reveal(),
                  "lease_expires": iso(req.lease_expires or 0)})
    else:
        sys.stdout.write(secret.reveal() + "\n")  # the secret, verbatim: it is the point
        if sys.stderr.isatty():
            note(f"lease ends {iso(req.lease_expires or 0)}; check in with "
                 f"'glasskey checkin {req.id}'")
    sys.stdout.flush()
    return 0


def extend(ctx: Ctx, *, request: str, by: str) -> int:
    ctx.vault.checkout(request)
    extra = parse_duration(by)
    session = authenticate(ctx)
    co = ctx.vault.extend_lease(session, request, extra)
    if ctx.json:
        out_json(co.to_public(ctx.vault.now()))
    else:
        emit(f"{co.id} lease extended to {iso(co.lease_expires or 0)}")
    return 0


def add_request_parser(cmds: Commands) -> None:
    p = cmds.command("request", cmds.actor, handler=request_ask)
    named = p.add_mutually_exclusive_group(required=True)  # name the credential once
    named.add_argument("cred", metavar="CRED|list|clear", nargs="?",
                       help="the credential, 'list' to list checkouts, or 'clear' to close a "
                       "requester's flood (admin)")
    named.add_argument("--cred", dest="cred_opt", metavar="NAME",
                       help="the credential, named explicitly (any name, even 'list')")
    p.add_argument("--reason", help="why (required)")
    p.add_argument("--ticket", help="the incident or change reference (required)")
    p.add_argument("--duration", required=True,
                   help="lease length (required): 90s, 30m, 1h30m, 2h")
    r = cmds.route(p, "list", handler=request_list, help="list the open checkouts")
    r.add_argument("--all", dest="include_closed", action="store_true",
                   help="closed ones too")
    r.add_argument("--follow", action="store_true",
                   help="keep going: print each change as it happens (pushed by a "
                   "PostgreSQL vault, polled on a directory) until Ctrl-C; with --json, "
                   "one JSON object per line")
    r = cmds.route(p, "clear", cmds.actor, handler=request_clear,
                   help="an admin closes every open, unrevealed request of a requester")
    r.add_argument("--requester", required=True, help="whose open requests to close (required)")
    r.add_argument("--reason", required=True, type=nonblank, help="why (required)")


def add_request_id_parser(name: str, handler: Callable[..., int]) -> Callable[[Commands], None]:
    def add(cmds: Commands) -> None:
        p = cmds.command(name, cmds.actor, handler=handler)
        p.add_argument("request", metavar="REQ", help="the request id")
        if name == "reveal":
            p.add_argument("--again", action="store_true", help="the holder, during their own "
                           "lease: show it again (audited as a re-display, not a release)")
        elif name == "extend":
            p.add_argument("--by", required=True, metavar="DURATION",
                           help="how much longer (required): 90s, 30m, 1h30m, 2h")
        elif name == "deny":
            p.add_argument("--reason", required=True,
                           help="why (required; the requester sees it)")
    return add


PARSERS = {"request": add_request_parser,
           **{name: add_request_id_parser(name, handler) for name, handler in (
               ("approve", approve), ("cancel", cancel), ("reveal", reveal),
               ("extend", extend), ("deny", deny))}}
