"""``glasskey review``: post-use reviews of releases and emergency uses; ``review list``
shows what waits."""

from __future__ import annotations

from glasskey.core.api import PolicyError, cap_all
from glasskey.tui.cli.actor import Ctx, authenticate
from glasskey.tui.cli.output import show
from glasskey.tui.cli.parser import Commands
from glasskey.tui.cli.render import review_line


def review_list(ctx: Ctx) -> int:
    now = ctx.vault.now()
    items = ctx.vault.review_queue()
    show(ctx.json, [i.to_public(now) for i in items], *(review_line(i, now) for i in items),
         *(() if items else ("nothing waits for review",)))
    return 0


def review(ctx: Ctx, *, item: str, outcome: str, note: str | None) -> int:
    now = ctx.vault.now()
    cap_all(note=note)
    if item not in {i.id for i in ctx.vault.review_queue()}:
        # the core's own sentence, before a TOTP code is spent on it
        raise PolicyError(f"{item} is not waiting for review")
    session = authenticate(ctx)
    done = ctx.vault.review(session, item, outcome, note or "")
    left = done.required - len(done.reviews)
    show(ctx.json, done.to_public(now), f"{done.id} reviewed ({outcome})" + (
        f"; needs {left} more reviewer(s)" if left > 0 else ""))
    return 0


def add_review_parser(cmds: Commands) -> None:
    p = cmds.command("review", cmds.actor, handler=review)
    p.add_argument("item", metavar="ID|list")
    p.add_argument("--outcome", required=True, choices=["ok", "concern"],
                   help="required for a review")
    p.add_argument("--note", help="what you checked (required with 'concern')")
    cmds.route(p, "list", handler=review_list, help="what waits for review")


PARSERS = {"review": add_review_parser}
