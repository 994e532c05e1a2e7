"""The "Team mode (PostgreSQL)" section of BENCHMARKS.md, from ``res['team']``.

``section`` is what ``report.markdown`` appends when the run measured the team
group; ``splice`` puts a fresh section into an existing BENCHMARKS.md in place
of the old one (``python -m benchmarks.run --only team --splice``), so the
group can be re-measured without re-running every other group.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks.report import OPS

TITLE = "## Team mode (PostgreSQL)"
#: The report's method section: a new team section goes just before it.
METHOD = "\n## How it was measured"
#: Issue 13's targets: per operation beyond the KDF, against the file backend, and
#: commit -> visible on another machine.
OP_LIMIT_S, OP_RATIO, NOTIFY_P95_S = 0.050, 2.0, 0.250


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def _median(stats: dict[str, Any] | None) -> float | None:
    return None if not stats else stats.get("median")


def _spread(stats: dict[str, Any] | None) -> str:
    if not stats or not stats.get("n"):
        return ""
    return f"{stats['min'] * 1000:.1f}–{stats['max'] * 1000:.1f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def section(res: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    team = res["team"]
    pg, pg_off, files = (team.get(k, {}) for k in ("ops_pg", "ops_pg_nofsync", "ops_file"))
    server, move, notify = team.get("server", {}), team.get("move", {}), team.get("notify", {})
    load, mem = team.get("load", {}), team.get("memory", {})
    targets: list[tuple[str, bool | None]] = []
    md = [TITLE, "",
          f"Measured {machine.get('date', '?')} on {machine.get('cpu', '?')}, "
          f"{machine.get('cores', '?')}, git {machine.get('git', '?')}; "
          f"{machine.get('load', '')}.", "",
          f"PostgreSQL {server.get('server_version', '?')} started by the benchmark with the "
          "tests' launcher (tests/servers.py: 127.0.0.1, scram-sha-256, passwords from a "
          "pgpass file); statement logging off and shared_buffers "
          f"{server.get('shared_buffers', '?')} for the run. The launcher runs with fsync, "
          "synchronous_commit and full_page_writes **off**; the operations are measured that "
          "way once (last column), then the server is switched to **fsync="
          f"{server.get('fsync', '?')}, synchronous_commit={server.get('synchronous_commit', '?')}"
          f", full_page_writes={server.get('full_page_writes', '?')}** for every other figure "
          "here. Client and server share the machine's 2 cores.", ""]
    sc = team.get("scale") or {"credentials": 10_000, "operators": 25, "audit_entries": 10**6}
    big = (f"{sc['credentials']:,} credentials x {sc['operators']} operators x "
           f"{sc['audit_entries']:,} entries")
    md += [f"### Operations, {big} with history", "",
           f"The ops step (section 3) in the same run on the vault moved into the database and "
           f"on a copy of the same directory vault: medians of {_n(pg)} runs (min–max in ms), "
           "each a core call with sessions already unlocked, so no Argon2id inside (unlock "
           f"is timed apart). Targets: ≤ {OP_LIMIT_S * 1000:.0f} ms beyond the KDF and "
           f"≤ {OP_RATIO:g}x the file backend.", "",
           "| operation | file backend | PostgreSQL | ratio | ≤ 50 ms | ≤ 2x file | "
           "PostgreSQL, fsync off |",
           "|---|---:|---:|---:|---|---|---:|"]
    for op in OPS:
        f, p = _median(files.get("times", {}).get(op)), _median(pg.get("times", {}).get(op))
        ratio = p / f if p is not None and f else None
        fast = None if p is None else p <= OP_LIMIT_S
        close = None if ratio is None else ratio <= OP_RATIO
        targets += [(f"{op} ≤ 50 ms", fast), (f"{op} ≤ 2x file", close)]
        off = pg_off.get("times", {}).get(op)
        md.append(f"| {op} | {_ms(f)} ({_spread(files.get('times', {}).get(op))}) | {_ms(p)} "
                  f"({_spread(pg.get('times', {}).get(op))}) | "
                  f"{'n/a' if ratio is None else f'{ratio:.2f}x'} | {_verdict(fast)} | "
                  f"{_verdict(close)} | {_ms(_median(off))} |")
    for label, key in (("unlock, Argon2id", "argon2id_s"),
                       ("unlock beyond Argon2id", "unlock_beyond_kdf_s")):
        md.append(f"| {label} | {_ms(_median(files.get(key)))} | {_ms(_median(pg.get(key)))} "
                  f"| | | | {_ms(_median(pg_off.get(key)))} |")
    md += ["", "### Moving in, and a new client", "",
           "| figure | value |", "|---|---:|",
           f"| `glasskey migrate --to URL` of {move.get('entries', 0):,} entries and "
           f"{move.get('documents', 0):,} documents (copy, then every link and signature "
           f"verified in the database) | {move.get('move_s', 0):.1f} s, peak "
           f"{move.get('move_peak_rss_mib', 0):.0f} MiB |",
           f"| a new client's first full verification against the database | "
           f"{move.get('first_verify_s', 0):.1f} s |",
           *([f"| (a client's first verification of the directory vault, for comparison) | "
              f"{move['source_verify_s']:.1f} s |"] if move.get("source_verify_s") else []),
           f"| database size after the move | {move.get('db_bytes', 0) / 2**20:.0f} MiB |", ""]
    p95 = notify.get("p95_s")
    targets.append(("commit -> visible p95 < 250 ms", None if p95 is None else
                    p95 < NOTIFY_P95_S and not notify.get("missed")))
    delay = notify.get("delay_s", {})
    md += ["### Approval committed on machine B, visible on machine A", "",
           f"Two processes (own HOME and state dir each) on the {big} database vault: A "
           "requests, then waits in `store.wait_for_change` (LISTEN/NOTIFY) and re-reads the "
           "request until it shows approved; B approves. Both read `time.time()`; B's instant "
           "is taken right after the COMMIT of its approval returned (the store's post-commit "
           "step). "
           f"{notify.get('trials', 0)} trials, {notify.get('missed', 0)} missed (10 s timeout): "
           f"**p50 {_ms(_median(delay))}, p95 {_ms(p95)}**, max {_ms(delay.get('max'))} "
           f"(median wake-ups per trial {notify.get('wakeups_median')}). Target p95 < 250 ms: "
           f"{_verdict(targets[-1][1])}.", ""]
    correct = (load.get("log_ok") and load.get("lost_updates") == 0
               and load.get("double_reveals") == 0 and load.get("overlapping_checkouts") == 0
               and not load.get("unapproved_reveals"))
    targets.append(("concurrent run: no lost update, no double redemption", bool(correct)
                    if load else None))
    refused = ", ".join(f"{k} {v}" for k, v in sorted(load.get("refused", {}).items()))
    md += [f"### {load.get('clients', 0)} concurrent clients, "
           f"{load.get('window_s', load.get('seconds', 0)):.0f} s", "",
           f"A modest vault made for the run ({load.get('credentials', 0):,} credentials x "
           f"{load.get('operators', 0)} operators, empty history) with the **weak test KDF** "
           "(GLASSKEY_INSECURE_FAST_KDF=1) so that Argon2id does not dominate; each client a "
           "process with its own HOME and state dir, requesting a random credential, "
           "approving as a second operator, revealing and checking in, in a loop; rates "
           f"over the {load.get('seconds', 0):.1f} s from the common start to the last "
           "client's last checkout.", "",
           "| figure | value |", "|---|---:|",
           f"| completed checkouts | {load.get('completed', 0):,} "
           f"({load.get('checkouts_per_s', 0):.2f}/s) |",
           f"| commits (audited transactions) | {load.get('commits', 0):,} "
           f"({load.get('commits_per_s', 0):.1f}/s) |",
           f"| refusals (credential taken, busy, ...) | {load.get('refusals', 0):,}"
           f"{': ' + refused if refused else ''} |"]
    for op in OPS:
        md.append(f"| {op} p50 / p95 | {_ms(load.get('p50_s', {}).get(op))} / "
                  f"{_ms(load.get('p95_s', {}).get(op))} |")
    md += [f"| audit log afterwards | {load.get('log_entries', 0):,} entries, verifies: "
           f"{load.get('log_ok')} ({load.get('verify_s', 0):.1f} s) |",
           f"| lost updates (client-reported successes missing from the log) | "
           f"{load.get('lost_updates', '?')} of {load.get('reported_successes', 0):,} |",
           f"| double redemptions (a request revealed twice / a credential revealed under two "
           f"open checkouts) | {load.get('double_reveals', '?')} / "
           f"{load.get('overlapping_checkouts', '?')} |",
           f"| reveals in the log without an approval before them | "
           f"{load.get('unapproved_reveals', '?')} |", ""]
    rss = load.get("client_peak_rss_mib", {})
    md += ["### Peak memory per client", "",
           "Peak resident set of one process: VmHWM, which is ru_maxrss without the "
           "parent's size that Linux carries across fork+exec (benchmarks/common.py). The "
           "reveal runs as its own `glasskey reveal` process; each concurrent client "
           "reports its own at the end.", "",
           "| process | file backend | PostgreSQL |", "|---|---:|---:|",
           f"| `glasskey reveal` on the {big} vault (a client that has verified it "
           f"before) | {mem.get('file', {}).get('peak_rss_mib', 0):.0f} MiB "
           f"({_median(mem.get('file', {}).get('reveal_cli_s')) or 0:.2f} s) | "
           f"{mem.get('postgres', {}).get('peak_rss_mib', 0):.0f} MiB "
           f"({_median(mem.get('postgres', {}).get('reveal_cli_s')) or 0:.2f} s) |",
           f"| one of the {load.get('clients', 0)} concurrent clients (max / median) | | "
           f"{rss.get('max', 0):.0f} / {rss.get('median', 0):.0f} MiB |", ""]
    met = [t for t, ok in targets if ok]
    missed = [t for t, ok in targets if ok is False]
    md.insert(4, f"Targets: {len(met)} met, {len(missed)} missed"
              f"{' (' + '; '.join(missed) + ')' if missed else ''}.")
    md.insert(5, "")
    return md


def _n(stats_doc: dict[str, Any]) -> int:
    return int(stats_doc.get("times", {}).get("request", {}).get("n", 0))


def splice(path: Path, res: dict[str, Any], machine: dict[str, Any]) -> None:
    """Replace the team section of ``path`` (or add it before the method section)."""
    text = path.read_text() if path.exists() else ""
    block = "\n".join(section(res, machine)).rstrip("\n") + "\n"
    old = re.compile(re.escape(TITLE) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if old.search(text):
        text = old.sub(lambda _m: block + "\n", text, count=1)
    elif METHOD in text:
        text = text.replace(METHOD, "\n" + block + METHOD, 1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
