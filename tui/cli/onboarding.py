"""``glasskey onboard``: one-time onboarding secrets, issued for a new identity,
activated (and so revoked) by their first use, or recorded as revoked by hand."""

from __future__ import annotations

from glasskey.core.api import cap_all, check_name, parse_duration
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import show
from glasskey.tui.cli.parser import Commands, nonblank
from glasskey.tui.cli.render import onboarding_line


def onboard_list(ctx: Ctx) -> int:
    now = ctx.vault.now()
    items = ctx.vault.onboarding_secrets()
    show(ctx.json, [c.to_public(now) for c in items], *(onboarding_line(c, now) for c in items))
    return 0


def onboard_issue(ctx: Ctx, *, identity: str, reason: str | None, ticket: str | None,
                  channel: str | None, expires: str | None, connector: str,
                  target: str | None, template: str | None) -> int:
    cap_all(identity=identity, reason=reason, ticket=ticket, channel=channel, target=target)
    check_name(identity, "identity")
    seconds = parse_duration(expires) if expires else 24 * 3600
    session = authenticate(ctx)
    co = ctx.vault.issue_onboarding(session, identity, reason or "", ticket or "",
                                    channel or "", seconds, connector, target,
                                    template=template)
    show(ctx.json, {"id": co.id, "credential": co.cred_name, "state": co.state}, co.id)
    return 0


def onboard_activate(ctx: Ctx, *, id: str) -> int:
    now = ctx.vault.now()
    ctx.vault.checkout(id)
    session = authenticate(ctx)
    co = ctx.vault.activate_onboarding(session, id)
    show(ctx.json, co.to_public(now), f"{co.id} activated and revoked")
    return 0


def onboard_revoke(ctx: Ctx, *, id: str, note: str) -> int:
    """An admin records a revocation done by hand, and says how."""
    session = authenticate(ctx)
    co = ctx.vault.revoke_onboarding_manually(session, id, note)
    show(ctx.json, co.to_public(ctx.vault.now()), f"{co.id} recorded as revoked by hand")
    return 0


def add_onboard_parsers(cmds: Commands) -> None:
    actions = cmds.actions(cmds.command("onboard"))
    p = cmds.action(actions, "issue", cmds.actor, handler=onboard_issue,
                    help="issue a one-time secret for a new identity")
    p.add_argument("--identity", required=True, help="who the secret is for (required)")
    p.add_argument("--reason", help="required")
    p.add_argument("--ticket", help="required")
    p.add_argument("--channel", help="how it will be delivered (required)")
    p.add_argument("--expires", help="validity (default 24h, at most 72h)")
    p.add_argument("--connector", default="generated", help="admins only")
    p.add_argument("--target", help="admins only")
    p.add_argument("--template", help="an onboarding template of the site policy")
    p = cmds.action(actions, "activate", cmds.actor, handler=onboard_activate,
                    help="activate an onboarding secret (it is revoked by its use)")
    p.add_argument("id", help="the onboarding id")
    p = cmds.action(actions, "revoke", cmds.actor, handler=onboard_revoke,
                    help="an admin records a revocation done by hand, and says how")
    p.add_argument("id", help="the onboarding id")
    p.add_argument("--manual", action="store_true", required=True,
                   help="record a revocation done by hand (required)")
    p.add_argument("--note", required=True, type=nonblank,
                   help="how it was revoked (required)")
    cmds.action(actions, "list", handler=onboard_list, help="list the onboarding secrets")


PARSERS = {"onboard": add_onboard_parsers}
