"""Per documented command: its one-line description and an example.

Shown by ``glasskey CMD --help``; the commands listed here are the ones shell
completion offers (glasskey.tui.cli.completion).
"""

from __future__ import annotations

#: Per command: a one-line description and an example, shown by ``glasskey CMD --help``.
DOCS: dict[str, tuple[str, str]] = {
    "init": ("Create a vault with its founding operators (at least two).",
             "glasskey init --operators-file ops.json --json"),
    "operator": ("List, add, suspend, reactivate or remove operators; change your own "
                 "passphrase (passwd) or TOTP key (totp-reset, countersigned).",
                 "glasskey operator add carol --roles approver --as bob --with alice"),
    "cred": ("Add, import or list credentials.",
             "glasskey cred add prod-db-root --connector postgres --target 'host=db1' --as bob"),
    "request": ("Ask to check out a credential; 'request list' lists checkouts ('request "
                "list --follow' keeps printing their changes). A credential literally named "
                "'list' is requested with --cred list (or: request -- list).",
                "glasskey request prod-db-root --reason 'primary down' --ticket INC-1 "
                "--duration 30m --as alice"),
    "approve": ("Countersign a request.", "glasskey approve r-1a2b3c --as bob"),
    "cancel": ("Withdraw a request before its secret is revealed.",
               "glasskey cancel r-1a2b3c --as alice"),
    "reveal": ("Show the secret of an approved checkout, once.",
               "glasskey reveal r-1a2b3c --as alice"),
    "extend": ("Lengthen your own lease, up to the credential's maximum (audited).",
               "glasskey extend r-1a2b3c --by 30m --as alice"),
    "checkin": ("End a checkout and rotate the credential.",
                "glasskey checkin r-1a2b3c --as alice"),
    "deny": ("Refuse a request, with a reason the requester sees.",
             "glasskey deny r-1a2b3c --reason 'use the read replica' --as bob"),
    "reconcile": ("Finish an interrupted or failed rotation (retry).",
                  "glasskey reconcile prod-db-root --as bob"),
    "apply": ("Manual targets: fetch the value to apply, then --confirm.",
              "glasskey apply hsm-admin --as bob && glasskey apply hsm-admin --confirm --as bob"),
    "review": ("Record a post-use review; 'review list' shows the queue.",
               "glasskey review v-1a2b3c --outcome ok --note 'matches INC-1' --as carol"),
    "onboard": ("One-time onboarding secrets: issue, activate, list.",
                "glasskey onboard issue --identity dave --reason 'new hire' --ticket HR-7 "
                "--channel 'in person' --as bob"),
    "kit": ("The emergency kit: issue (two operators), use, status.",
            "glasskey kit use prod-db-root --code-file - --reason 'nobody reachable' "
            "--ticket INC-1 --duration 30m --as alice"),
    "alerts": ("What needs attention now.", "glasskey alerts --json"),
    "audit": ("Verify, export or forward (syslog) the audit log.",
              "glasskey audit verify"),
    "report": ("Custody review report (md, html, json); --attest signs it off.",
               "glasskey report custody --since 2026-01-01 --format html --output r.html"),
    "demo": ("A throwaway demo vault, then the terminal UI.", "glasskey demo"),
    "completion": ("Print a shell completion script for bash, zsh or fish.",
                   "glasskey completion bash > /etc/bash_completion.d/glasskey"),
}
