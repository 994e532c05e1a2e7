"""``glasskey request list --follow``: the checkout list, then every change as it happens.

The loop sleeps in ``wait_for_change``: on a database vault that is LISTEN/NOTIFY
(core/storage/postgres_listen.py), so another machine's commit wakes it within
milliseconds; on a directory vault it is a short poll of the change counter (a
stat). A wake-up carries no data: on every one the list is read again from the
vault, verified like any read, and compared with what was printed last, so a
lost or collapsed notification, or several commits in one wake-up, cost
nothing but time. Every few seconds it also looks without a wake-up, for
states that change with time alone (a lease running out).

Output: one line per checkout whose state changed, stamped with the time; under
``--json`` one JSON object per line (the checkout, as ``request list --json``
gives each). Lines pass through :func:`emit` (control characters escaped), so a
ticket someone typed never reaches the terminal as a control sequence. Ctrl-C
ends it with exit 0; a vault that stops verifying (exit 3) or that moved away
(exit 2) ends it with that error.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from glasskey.core.api import Checkout, NotFoundError, StorageError, iso
from glasskey.tui.cli.actor import Ctx
from glasskey.tui.cli.output import emit, isoize, note
from glasskey.tui.cli.prompts import interactive
from glasskey.tui.cli.render import checkout_line

#: Longest sleep without a wake-up: states that change with time alone show this late.
TICK = 2.0
#: A directory vault has no push: how often its change counter is read (a stat).
POLL = 0.1
#: After a failed read (the database restarting, say), wait this long before the next.
RETRY = 1.0


class Follower:
    """What was printed for each checkout, so that only changes are printed again."""

    def __init__(self, ctx: Ctx, include_closed: bool) -> None:
        self.ctx = ctx
        self.include_closed = include_closed
        self.shown: dict[str, str] = {}

    def look(self, *, first: bool = False) -> None:
        """Read the list and print what changed since the last look (all of it, the
        first time); a checkout that left the open list is printed as it ended."""
        vault = self.ctx.vault
        now = vault.now()
        items = {c.id: c for c in vault.checkouts(open_only=not self.include_closed)}
        for c in items.values():
            self._print_if_changed(c, now, stamp=not first)
        for rid in [r for r in self.shown if r not in items]:
            try:
                self._print_if_changed(vault.checkout(rid), now, stamp=not first)
            except NotFoundError:
                pass
            del self.shown[rid]
        if first and not items and not self.ctx.json:
            emit("no checkouts" if self.include_closed else "no open checkouts")
        sys.stdout.flush()

    def _print_if_changed(self, c: Checkout, now: float, *, stamp: bool) -> None:
        doc: dict[str, Any] = c.to_public(now)
        # What the output shows, less a running lease's countdown (a new line every
        # tick would bury the changes): the whole document under --json, else what
        # checkout_line renders.
        key = json.dumps(doc, sort_keys=True, default=str) if self.ctx.json else "\0".join(
            str(x) for x in (c.display_state(now), c.released, c.end_reason,
                             c.closed_reason, c.cred_name, c.requester, c.ticket))
        if self.shown.get(c.id) == key:
            return
        self.shown[c.id] = key
        if self.ctx.json:
            # json.dumps escapes every control character: the line is inert.
            sys.stdout.write(json.dumps(isoize(doc), sort_keys=True, default=str) + "\n")
        else:
            emit(f"{iso(now)}  {checkout_line(c, now)}" if stamp else checkout_line(c, now))


def follow_requests(ctx: Ctx, *, include_closed: bool) -> int:
    follower = Follower(ctx, include_closed)
    try:
        seen = ctx.vault.seq()  # before the read: a commit in between wakes the first wait
        follower.look(first=True)
        if interactive():
            note("following changes; Ctrl-C to stop")
        failing = stale = False
        while True:
            try:
                if not stale:
                    seen = ctx.vault.wait_for_change(seen, TICK, POLL)
                stale = True
                follower.look()
                stale = False
            except StorageError as exc:  # unreachable for now: say so once, keep trying
                if not failing:
                    note(f"glasskey: {exc} (still following)")
                failing = stale = True  # catch up with a full look once it answers
                time.sleep(RETRY)
                continue
            if failing:
                note("glasskey: the vault answers again")
                failing = False
    except KeyboardInterrupt:
        return 0
