"""Figures -> rows with targets -> a stdout table and BENCHMARKS.md."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPS = ("request", "approve", "reveal", "checkin")
OP_LIMIT_S = 0.050
OP_RATIO = 1.5


@dataclass
class Row:
    group: str
    name: str
    value: float | None  # in `unit`
    unit: str
    spread: str = ""
    target: str = ""
    limit: float | None = None  # pass when value <= limit (or >= when `at_least`)
    at_least: bool = False
    note: str = ""
    status_override: str | None = None

    @property
    def status(self) -> str:
        if self.status_override is not None:
            return self.status_override
        if self.limit is None:
            return "info" if self.value is not None else "n/a"
        if self.value is None or math.isnan(self.value):
            return "n/a"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "PASS" if ok else "MISS"

    @property
    def miss_by(self) -> str:
        if self.status != "MISS" or self.value is None or self.limit is None:
            return ""
        over = self.value - self.limit if not self.at_least else self.limit - self.value
        pct = 100.0 * over / self.limit if self.limit else float("inf")
        return f"{fmt(over, self.unit)} over ({pct:.0f}%)" if not self.at_least else \
            f"{fmt(over, self.unit)} short ({pct:.0f}%)"

    def shown(self) -> str:
        return fmt(self.value, self.unit)


#: Units whose precision drops once the number is large: (from, below it, from it on).
_SCALED_FORMATS = {
    "ms": (100, "{:.1f} ms", "{:.0f} ms"),
    "s": (100, "{:.2f} s", "{:.0f} s"),
    "us": (10, "{:.1f} µs", "{:.0f} µs"),
}
#: Units written one way whatever the number.
_FORMATS = {
    "MB/s": "{:.0f} MB/s",
    "MiB": "{:.0f} MiB",
    "x": "{:.2f}x",
    "kB": "{:.0f} kB",
    "MB": "{:.1f} MB",
    "": "{:,.0f}",
}


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in _SCALED_FORMATS:
        limit, small, large = _SCALED_FORMATS[unit]
        return (small if value < limit else large).format(value)
    if unit in _FORMATS:
        return _FORMATS[unit].format(value)
    return f"{value:g} {unit}"


def _scaled(stats: dict[str, Any] | None, factor: float) -> tuple[float | None, str]:
    """(median, "min–max (IQR a–b)") from a Stats doc, in the unit given by factor."""
    if not stats:
        return None, ""
    med = stats["median"] * factor
    spread = (f"{stats['min'] * factor:.3g}–{stats['max'] * factor:.3g}, "
              f"IQR {stats['q1'] * factor:.3g}–{stats['q3'] * factor:.3g}, n={stats['n']}")
    return med, spread


def build_rows(res: dict[str, Any], scale: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    n_creds = scale["credentials"]
    n_ops = scale["operators"]
    n_audit = scale["audit_entries"]
    big = f"{n_creds:,} creds x {n_ops} ops"

    fl = res.get("floors")
    if fl:
        g = "1. physical floors (same run)"
        kd = fl["kdf"]
        for key, name, unit, factor in (
            ("atomic_write_s", "atomic write+fsync of a 2 KiB file (fsutil.atomic_write)",
             "ms", 1e3),
            ("hpke_seal_s", "HPKE seal of one share (X25519, incl. key validation)", "us", 1e6),
            ("hpke_open_s", "HPKE open of one share", "us", 1e6),
            ("argon2id_s", f"Argon2id at the vault's parameters (m={kd['memory_kib']} KiB, "
             f"t={kd['iterations']}, p={kd['lanes']})", "ms", 1e3),
            ("ed25519_sign_s", "Ed25519 sign (core.crypto.sign)", "us", 1e6),
            ("ed25519_verify_s", "Ed25519 verify", "us", 1e6),
            ("ed25519_verify_nacl_s", "Ed25519 verify (libsodium via PyNaCl: the audit chain's)",
             "us", 1e6),
        ):
            v, sp = _scaled(fl.get(key), factor)
            rows.append(Row(g, name, v, unit, sp))
        for key, name in (("sha256_MBps", "SHA-256 throughput (64 MiB buffer)"),
                          ("json_lines_MBps", "json.loads of audit lines (~16 MB)"),
                          ("json_doc_MBps", "json.loads of one large document"),
                          ("canonical_lines_MBps",
                           "core.canonical.loads of audit lines (strict parser)")):
            v, sp = _scaled(fl.get(key), 1.0)
            rows.append(Row(g, name, v, "MB/s", sp))
    st = res.get("startup")
    if st:
        g = "1. physical floors (same run)"
        v, sp = _scaled(st.get("python_s"), 1e3)
        rows.append(Row(g, "python -c pass (interpreter start)", v, "ms", sp))
        v, sp = _scaled(st.get("import_cli_s"), 1e3)
        rows.append(Row(g, "python -c 'import glasskey.tui.cli' (CLI import cost)", v, "ms", sp))
        if st.get("textual_hello_s"):
            v, sp = _scaled(st["textual_hello_s"], 1e3)
            rows.append(Row(g, "Textual hello-world cold start to exit (headless)", v, "ms", sp))
        else:
            rows.append(Row(g, "Textual hello-world", None, "ms",
                            note=st.get("textual_error", "textual does not import")))

    imp = res.get("import")
    if imp:
        g = "2. building the large vault"
        rows.append(Row(g, f"cred import of {imp['imported']:,} (25 shares sealed each)"
                        if n_ops == 25 else f"cred import of {imp['imported']:,}",
                        imp["import_s"], "s", "1 run", "< 2 min", 120.0,
                        note=f"progress callback called {imp['progress_calls']:,} times"))
        rows.append(Row(g, "  peak memory, import", imp["import_peak_rss_mib"], "MiB"))
        rows.append(Row(g, f"found vault with {n_ops} operators (Argon2id wrap each)",
                        imp["found_s"], "s", "1 run"))
    meta = res.get("cache")
    if meta:
        g = "2. building the large vault"
        b = meta["build"]
        rows.append(Row(g, f"history: {b['history']['entries']:,} signed audit entries + "
                        f"{b['history']['requests']:,} closed requests (build, cached)",
                        b["history_s"], "s", f"built {meta['built']}"))
        rows.append(Row(g, "  audit.jsonl size", b["audit_bytes"] / 1e6, "MB"))
        rows.append(Row(g, "  tables/ size (every shard file)", b["tables_bytes"] / 1e6,
                        "MB"))
        rows.append(Row(g, "  vault.json size", b["vault_json_bytes"] / 1e3, "kB"))

    for key, label in (("ops_large_hist", f"{big}, {n_audit:,} audit, with checkout history"),
                       ("ops_large", f"{big}, {n_audit:,} audit, empty requests table"),
                       ("ops_small", f"small: 10 creds x {n_ops} ops")):
        o = res.get(key)
        if not o:
            continue
        g = f"3. per operation (core call, sessions unlocked): {label}"
        small = res.get("ops_small")
        for op in OPS:
            v, sp = _scaled(o["times"][op], 1e3)
            rows.append(Row(g, f"{op}", v, "ms", sp, "≤ 50 ms", OP_LIMIT_S * 1e3))
            if key != "ops_small" and small:
                ratio = o["times"][op]["median"] / small["times"][op]["median"]
                rows.append(Row(g, f"  {op} vs small vault", ratio, "x", "", "≤ 1.5x",
                                OP_RATIO))
        v, sp = _scaled(o["unlock_s"], 1e3)
        a, _ = _scaled(o["argon2id_s"], 1e3)
        rows.append(Row(g, "unlock (passphrase + TOTP), total", v, "ms", sp,
                        note=f"of which Argon2id {a:.0f} ms" if a is not None else ""))
        if o.get("unlock_beyond_kdf_s"):
            b, bsp = _scaled(o["unlock_beyond_kdf_s"], 1e3)
            rows.append(Row(g, "  unlock beyond its Argon2id", b, "ms", bsp, "≤ 50 ms",
                            OP_LIMIT_S * 1e3,
                            note=f"{o.get('unlock_fsyncs', 0):.0f} fsync calls"))
        rows.append(Row(g, "  peak memory", o["peak_rss_mib"], "MiB",
                        note=f"requests in table: {o['requests_in_table']:,}"))

    g = "3. reading, verifying, enrolling at scale"
    li = res.get("listing")
    if li:
        v, sp = _scaled(li["credentials_s"], 1e3)
        rows.append(Row(g, f"vault.credentials() of {li['count']:,}", v, "ms", sp, "< 1 s",
                        1000.0))
    cl = res.get("cli_large")
    if cl:
        v, sp = _scaled(cl["cred_list_s"], 1e3)
        rows.append(Row(g, f"glasskey cred list --json ({cl['cred_list_rows']:,} rows, "
                        "subprocess)", v, "ms", sp, "< 1 s", 1000.0))
        rows.append(Row(g, "  peak memory, cred list", cl["cred_list_peak_rss_mib"], "MiB"))
    ve = res.get("verify")
    if ve:
        v, sp = _scaled(ve["verify_s"], 1.0)
        rows.append(Row(g, f"audit verify of {ve['entries']:,} entries "
                        "(vault.verify_audit)", v, "s", sp, "< 10 s", 10.0,
                        status_override=None if ve["ok"] else "FAIL",
                        note="" if ve["ok"] else "the log did not verify"))
        rows.append(Row(g, "  peak memory, verify", ve["peak_rss_mib"], "MiB"))
        nacl = (res.get("floors") or {}).get("ed25519_verify_nacl_s")
        cores = (res.get("floors") or {}).get("cores") or 1
        if nacl and ve.get("signatures"):
            floor = ve["signatures"] * nacl["median"] / cores
            ratio = ve["verify_s"]["median"] / floor
            rows.append(Row(g, f"  full verify / ({ve['signatures']:,} signatures x one verify "
                            f"/ {cores} cores = {floor:.2f} s)", ratio, "x", "",
                            "<= 1.3x", 1.3))
        if ve.get("incremental_s"):
            v, sp = _scaled(ve["incremental_s"], 1.0)
            rows.append(Row(g, f"incremental verify of {ve['incremental_entries']:,} new "
                            "entries (from a client checkpoint)", v, "s", sp, "< 1 s", 1.0))
    if cl and "audit_verify_cli_s" in cl:
        rows.append(Row(g, "glasskey audit verify (CLI, 1 run)", cl["audit_verify_cli_s"], "s",
                        "1 run", "< 10 s", 10.0))
    rc = res.get("report")
    if rc:
        v, sp = _scaled(rc["report_s"], 1.0)
        rows.append(Row(g, f"custody report of one day of {rc['entries']:,} entries "
                        "(verify + stream + Markdown)", v, "s", sp, "< 5 s", 5.0,
                        status_override=None if rc["ok"] else "FAIL",
                        note=f"{rc['checkouts']:,} checkouts in the day; the report's own "
                        f"pass {rc['stream_s']:.2f} s, the audit verify it runs "
                        f"{rc['verify_s']:.2f} s"))
        rows.append(Row(g, "  peak memory, custody report", rc["peak_rss_mib"], "MiB", "",
                        "< 300 MB", 300e6 / 2**20))
    ao = res.get("add_operator")
    if ao:
        rows.append(Row(g, f"operator add: {ao['credentials']:,} creds, {ao['operators_before']}"
                        f" -> {ao['operators_before'] + 1} ops (one new share each)",
                        ao["seconds"], "s", "1 run", "< 30 s", 30.0,
                        note=f"progress callback called {ao['progress_calls']:,} times"))
        rows.append(Row(g, "  peak memory, operator add", ao["peak_rss_mib"], "MiB"))
    ro = res.get("remove_operator")
    if ro and ro.get("present"):
        rows.append(Row(g, f"operator remove: {ro['credentials']:,} creds, "
                        f"{ro['operators_before']} -> {ro['operators_before'] - 1} ops "
                        "(every DEK re-split)", ro["seconds"], "s", "1 run", "< 30 s", 30.0,
                        note=f"progress callback called {ro['progress_calls']:,} times"))
        rows.append(Row(g, "  peak memory, operator remove", ro["peak_rss_mib"], "MiB"))
    elif ro is not None:
        rows.append(Row(g, "operator remove (re-split every share)", None, "s", "", "< 30 s",
                        note=f"not measured: {ro.get('why')}", status_override="n/a"))
    tu = res.get("tui")
    if tu is not None:
        if tu.get("ok"):
            if tu.get("cold_start_s"):
                v, sp = _scaled(tu["cold_start_s"], 1e3)
                rows.append(Row(g, f"TUI cold start to first screen ({tu.get('screen')}), "
                                "new process, headless", v, "ms", sp, "< 1 s", 1000.0))
            if tu.get("cold_start_small_s"):
                v, sp = _scaled(tu["cold_start_small_s"], 1e3)
                rows.append(Row(g, "  the same in the 10-credential vault", v, "ms", sp))
            v, sp = _scaled(tu["first_screen_s"], 1e3)
            rows.append(Row(g, f"TUI first screen ({tu.get('screen')}), App.run_test",
                            v, "ms", sp, "< 1 s", 1000.0))
            if tu.get("dashboard_s"):
                v, sp = _scaled(tu["dashboard_s"], 1e3)
                rows.append(Row(g, f"TUI {tu.get('dashboard_screen')} of "
                                f"{tu.get('credentials', 0):,} credentials after unlock "
                                "(Argon2id excluded)", v, "ms", sp, "< 1 s", 1000.0))
            if tu.get("filter_s"):
                v, sp = _scaled(tu["filter_s"], 1e3)
                rows.append(Row(g, f"TUI filter of {tu.get('credentials', 0):,} credentials "
                                "(set the filter text -> table repainted)", v, "ms", sp,
                                "≤ 50 ms", 50.0))
            rows.append(Row(g, "  peak memory, TUI", tu["peak_rss_mib"], "MiB"))
        else:
            why = tu.get("why", "")
            rows.append(Row(g, "TUI first screen", None, "ms", "", "< 1 s",
                            note=("not measured (TUI not present)" if not tu.get("present")
                                  else "not measured (TUI failed)") + f": {why}",
                            status_override="n/a"))

    pe = res.get("peer")
    g = "4. peer: KeePassXC keepassxc-cli"
    cs = res.get("cli_small")
    if cl:
        v, sp = _scaled(cl["reveal_s"], 1e3)
        rows.append(Row(g, f"glasskey reveal REQ (CLI: start, unlock, sweep, reveal) at {big}",
                        v, "ms", sp, note="one Argon2id inside"))
        rows.append(Row(g, "  peak memory, CLI reveal", cl["reveal_peak_rss_mib"], "MiB"))
    if cs:
        v, sp = _scaled(cs["reveal_s"], 1e3)
        rows.append(Row(g, "glasskey reveal REQ (CLI) in the 10-credential vault", v, "ms", sp))
        v, sp = _scaled(cs["cred_list_s"], 1e3)
        rows.append(Row(g, "glasskey cred list --json in the 10-credential vault", v, "ms", sp))
    if pe and pe.get("ok"):
        v, sp = _scaled(pe["show_s"], 1e3)
        rows.append(Row(g, f"keepassxc-cli show (one entry of {pe['entries']:,})", v, "ms", sp,
                        note=pe["kdf_line"]))
        v1, sp1 = _scaled(pe["show_one_entry_db_s"], 1e3)
        rows.append(Row(g, "keepassxc-cli show (1-entry database)", v1, "ms", sp1))
        v2, sp2 = _scaled(pe["ls_s"], 1e3)
        rows.append(Row(g, f"keepassxc-cli ls ({pe['ls_count']:,} entries)", v2, "ms", sp2))
        if cl:
            r = cl["reveal_s"]["median"] / pe["show_s"]["median"]
            rows.append(Row(g, f"ratio: glasskey reveal / keepassxc-cli show (at {n_creds:,})",
                            r, "x"))
            r2 = cl["cred_list_s"]["median"] / pe["ls_s"]["median"]
            rows.append(Row(g, f"ratio: glasskey cred list / keepassxc-cli ls (at {n_creds:,})", r2,
                            "x", note="cred list needs no passphrase; ls runs Argon2id"))
    elif pe is not None:
        rows.append(Row(g, "keepassxc-cli", None, "ms", note=pe.get("why", "unavailable"),
                        status_override="n/a"))
    oc = res.get("outage")
    if oc:
        g = "outage loop: time to credential (file vault, machine time)"
        names = {"request": "request committed", "notified_http":
                 "  notification at the approver's client (webhook, separate process)",
                 "notified_smtp": "  notification at the SMTP server (STARTTLS + AUTH)",
                 "approve": "  approval committed by the approver's client",
                 "seen": "  approval seen by the requester (polling the change counter)",
                 "reveal": "  reveal", "total": "request -> secret in hand"}
        for key, label in names.items():
            st = oc["stages"][key]
            rows.append(Row(g, f"{label}, p50", st["p50_ms"], "ms",
                            f"p95 {st['p95_ms']:.1f} ms",
                            note=f"{oc['trials']} trials" if key == "total" else ""))
    return rows


def table(rows: list[Row]) -> str:
    out = []
    group = None
    w = max(len(r.name) for r in rows) if rows else 40
    w = min(w, 78)
    for r in rows:
        if r.group != group:
            group = r.group
            out.append("")
            out.append(group)
        name = r.name if len(r.name) <= w else r.name[: w - 1] + "…"
        line = f"  {name:<{w}} {r.shown():>12}  {r.target:>8}  {r.status:<5}"
        extra = r.miss_by or r.note
        if extra:
            line += f"  {extra}"
        out.append(line)
    return "\n".join(out)


def markdown(rows: list[Row], res: dict[str, Any], machine: dict[str, Any],
             scale: dict[str, Any], notes_path: Path | None) -> str:
    md: list[str] = []
    md.append("# glasskey benchmarks")
    md.append("")
    md.append(f"Written by `python -m benchmarks.run{' --quick' if scale['name'] == 'quick' else ''}`"
              f" (`make bench`) on {machine['date']}; scale: **{scale['name']}** — "
              f"{scale['credentials']:,} credentials x {scale['operators']} operators x "
              f"{scale['audit_entries']:,} audit entries; per-operation figures are medians "
              f"of {scale['runs']} runs (spread: min–max and interquartile range).")
    md.append("")
    md.append("## Machine")
    md.append("")
    for k in ("cpu", "cores", "ram", "disk", "kernel", "python", "cryptography", "openssl",
              "textual", "tinydb", "keepassxc", "git", "cache", "load", "elapsed"):
        if k in machine:
            md.append(f"- **{k}**: {machine[k]}")
    md.append("")
    misses = [r for r in rows if r.status in ("MISS", "FAIL")]
    passes = [r for r in rows if r.status == "PASS"]
    md.append("## Summary")
    md.append("")
    md.append("Why each miss happens and the core change that would close it: the last "
              "section. ")
    md.append("")
    md.append(f"{len(passes)} targets met, {len(misses)} missed"
              f"{', ' + str(sum(1 for r in rows if r.status == 'n/a' and r.target)) + ' not measured' if any(r.status == 'n/a' and r.target for r in rows) else ''}.")
    md.append("")
    if misses:
        md.append("| missed | figure | target | by |")
        md.append("|---|---:|---:|---|")
        for r in misses:
            md.append(f"| {r.group.split(':')[-1].strip()} — {r.name.strip()} | {r.shown()} | "
                      f"{r.target} | {r.miss_by} |")
        md.append("")
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            md.append(f"## {group}")
            md.append("")
            md.append("| figure | median | spread | target | status | note |")
            md.append("|---|---:|---|---:|---|---|")
        note = r.miss_by + ("; " if r.miss_by and r.note else "") + r.note
        md.append(f"| {r.name.strip()} | {r.shown()} | {r.spread} | {r.target} | {r.status} | "
                  f"{note} |")
        if group != (rows[rows.index(r) + 1].group if rows.index(r) + 1 < len(rows) else None):
            md.append("")
    md.extend(_breakdowns(res))
    md.extend(_experiments(res))
    if "team" in res:
        from benchmarks.team_report import section

        md.extend(section(res, machine))
    md.extend(_method(res, scale))
    if notes_path and notes_path.exists():
        md.append(fill(notes_path.read_text().rstrip(), res))
        md.append("")
    return "\n".join(md) + "\n"


_PLACEHOLDER = re.compile(r"\{\{(\w+):([^}]+)\}\}")


def fill(text: str, res: dict[str, Any]) -> str:
    """Replace ``{{fmt:path/to/value}}`` with this run's figure (see benchmarks/analysis.md).

    fmt: ms (seconds shown as ms), ms1 (one decimal), s (seconds, 2 decimals), s1,
    x (a ratio of two paths joined by ``;``), dms (their difference, in ms), n (an integer with separators),
    f1/f2/f3 (a plain number with that many decimals). A missing figure shows as "?".
    """
    def get(path: str) -> float | None:
        node: Any = res
        for part in path.strip().split("/"):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return float(node) if isinstance(node, int | float) else None

    def sub(m: re.Match[str]) -> str:
        kind, path = m.group(1), m.group(2)
        if kind in ("x", "dms"):
            a, b = (get(p) for p in path.split(";"))
            if a is None or b is None or (kind == "x" and not b):
                return "?"
            return f"{a / b:.1f}" if kind == "x" else f"{(a - b) * 1e3:.0f}"
        v = get(path)
        if v is None:
            return "?"
        return {"ms": f"{v * 1e3:.0f}", "ms1": f"{v * 1e3:.1f}", "s": f"{v:.2f}",
                "s1": f"{v:.1f}", "n": f"{v:,.0f}", "f1": f"{v:.1f}", "f2": f"{v:.2f}",
                "f3": f"{v:.3f}"}.get(kind, "?")

    return _PLACEHOLDER.sub(sub, text)


COMPONENTS = (
    ("state.read", "read + parse vault.json"),
    ("witness.check", "witness checkpoint check"),
    ("chain.catch-up+roster", "verify new audit entries (every signature) + roster/record check"),
    ("config.verify", "credential configuration signature check"),
    ("share-set.verify", "share-set signature check"),
    ("share-set.sign", "share-set signing"),
    ("shard.read+parse", "read + SHA-256 + strict-parse shard files"),
    ("commit.cpu", "serialise + hash shards and vault.json"),
    ("shard.write+fsync", "write + fsync new shard files"),
    ("audit.append+fsync", "append + fsync audit lines"),
    ("state.replace", "vault.json.bak + vault.json atomic writes + GC"),
    ("state.gc", "  of which: shard garbage collection"),
    ("witness.save", "witness checkpoint write (fsync)"),
    ("hpke.seal", "HPKE seal"),
    ("hpke.open", "HPKE open"),
    ("shamir.split", "Shamir split"),
    ("shamir.combine", "Shamir combine + commitment"),
    ("shamir.evaluate", "Shamir evaluate (new share)"),
    ("audit.sign", "build + sign audit entries"),
    ("connector.lookup", "connector registry lookup"),
    ("argon2id", "Argon2id"),
    ("os.fsync", "all fsync calls (time)"),
)


def _breakdowns(res: dict[str, Any]) -> list[str]:
    md: list[str] = []
    variants = [(k, lbl) for k, lbl in (("ops_large_hist", "large + history"),
                                          ("ops_large", "large"), ("ops_small", "small"))
                if res.get(k)]
    if not variants:
        return md
    md.append("## Where the time goes (per operation, median ms, inclusive components)")
    md.append("")
    md.append("Measured by wrapping core functions with timers (benchmarks/instrument.py); "
              "components nest, so rows do not add up to the total.")
    md.append("")
    header = "| component | " + " | ".join(f"{op} ({lbl})" for k, lbl in variants
                                           for op in OPS) + " |"
    md.append(header)
    md.append("|---|" + "---:|" * (len(variants) * len(OPS)))
    total = "| **total (median)** | " + " | ".join(
        f"**{res[k]['times'][op]['median'] * 1e3:.1f}**" for k, _ in variants for op in OPS) + " |"
    md.append(total)
    for comp, label in COMPONENTS:
        vals = [res[k]["breakdown"][op].get(comp) for k, _ in variants for op in OPS]
        if all(v is None or v < 5e-5 for v in vals):
            continue
        md.append(f"| {label} | " + " | ".join(
            "" if v is None else f"{v * 1e3:.1f}" for v in vals) + " |")
    counts = [res[k]["breakdown"][op].get("fsync.count") for k, _ in variants for op in OPS]
    if any(c for c in counts):
        md.append("| fsync calls (count) | " + " | ".join(
            "" if c is None else f"{c:.0f}" for c in counts) + " |")
    md.append("")
    sizes = res.get("ops_large_hist", {}).get("shard_bytes") or res.get(
        "ops_large", {}).get("shard_bytes")
    if sizes:
        md.append("Table files of the large vault: " + "; ".join(
            f"{t}: {d['shards']} shards, {d['total'] / 1e6:.1f} MB, median shard "
            f"{d['median'] / 1e3:.0f} kB" for t, d in sizes.items() if isinstance(d, dict))
            + f"; vault.json {sizes.get('vault.json', 0) / 1e3:.0f} kB.")
        md.append("")
    imp = res.get("import")
    ao = res.get("add_operator")
    ro = res.get("remove_operator")
    for title, doc, total_s in (("cred import", imp and imp.get("import_breakdown"),
                                 imp and imp.get("import_s")),
                                ("operator add", ao and ao.get("breakdown"),
                                 ao and ao.get("seconds")),
                                ("operator remove", ro and ro.get("breakdown"),
                                 ro and ro.get("seconds"))):
        if not doc:
            continue
        md.append(f"**{title}** ({total_s:.1f} s): " + ", ".join(
            f"{label.strip()} {doc[c]:.1f} s" for c, label in COMPONENTS
            if doc.get(c, 0) >= 0.1) + ".")
        md.append("")
    ve = res.get("verify")
    if ve and ve.get("components"):
        c = ve["components"]
        md.append(f"**audit verify** floors for {c['lines']:,} lines ({c['bytes'] / 1e6:.0f} MB), "
                  f"one core: read + split {c['read_split_s']:.2f} s, SHA-256 of every line "
                  f"{c['sha256_lines_s']:.2f} s, json.loads of every line "
                  f"{c['json_loads_lines_s']:.2f} s, core.canonical.loads of every line "
                  f"{c['canonical_loads_lines_s']:.2f} s (extrapolated from 200,000 lines).")
        md.append("")
    li = res.get("listing")
    if li and li.get("breakdown"):
        b = li["breakdown"]
        md.append(f"**vault.credentials()**: {li['credentials_s']['median'] * 1e3:.0f} ms, of "
                  f"which reading + strict-parsing the 64 credential shards "
                  f"{b.get('shard.read+parse', 0) * 1e3:.0f} ms.")
        md.append("")
    return md


def _experiments(res: dict[str, Any]) -> list[str]:
    ex = res.get("experiments")
    if not ex:
        return []
    md = ["## Prototypes of proposed core changes (benchmarks/experiments.py)", "",
          "Each re-implements one step the way a proposed change would, on the same cached "
          "vault, so the expected gain is a measurement.", ""]
    ve, v = ex.get("verify"), res.get("verify")
    if ve and v:
        md.append(f"- **audit verify fast pass** over {ve['entries']:,} entries: core "
                  f"{v['verify_s']['median']:.2f} s; same link checks with plain `json.loads` "
                  f"and a lean loop, one process {ve['json_loads_1proc_s']:.2f} s"
                  f" (ok={ve['json_loads_1proc_ok']}); split into chunks over 2 processes "
                  f"{ve['json_loads_2proc_s']:.2f} s (ok={ve['json_loads_2proc_ok']}).")
    pa = ex.get("parse", {})
    for table in ("requests", "sealed", "credentials", "vault.json"):
        d = pa.get(table)
        if not d:
            continue
        docs = f", {d['docs']:,} docs" if "docs" in d else ""
        dumps = f"; canonical.dumps {d['dumps_ms']:.1f} ms, SHA-256 {d['sha256_ms']:.2f} ms" \
            if "dumps_ms" in d else ""
        md.append(f"- **parse one {table} {'shard' if table != 'vault.json' else 'file'}** "
                  f"({d['bytes'] / 1e3:.0f} kB{docs}): core.canonical.loads "
                  f"{d['strict_parse_ms']:.1f} ms vs json.loads {d['json_loads_ms']:.1f} ms"
                  f"{dumps}.")
    fs = ex.get("fsync")
    if fs:
        md.append(f"- **durable writes**: atomic_write of 32 kB with directory fsync "
                  f"{fs['atomic_write_32k_ms']:.2f} ms, without directory fsync "
                  f"{fs['atomic_write_no_dirsync_ms']:.2f} ms; vault.json.bak as a hard link "
                  f"to the outgoing generation {fs['link_backup_ms']:.3f} ms; write + rename "
                  f"without fsync {fs['write_rename_no_fsync_ms']:.2f} ms.")
    for label, d in (ex.get("state") or {}).items():
        md.append(f"- **state reads, {label} vault** (vault.json {d['vault_json_bytes'] / 1e3:.0f} "
                  f"kB): `FileStore._read_state` {d['read_state_ms']:.2f} ms, `Store.seq()` (the "
                  f"TUI polls it every 0.5 s) {d['seq_ms']:.2f} ms, `os.stat` of vault.json "
                  f"{d['stat_us']:.0f} µs"
                  + (f"; `vault.alerts()` on a new Vault object (cold shard cache) "
                     f"{d['alerts_cold_ms']:.0f} ms" if "alerts_cold_ms" in d else "") + ".")
    se = ex.get("seal")
    if se:
        md.append(f"- **HPKE seal**: {se['seal_us']:.0f} µs with the recipient key validated "
                  f"on every call, {se['seal_prevalidated_us']:.0f} µs with it validated once "
                  f"(validation alone {se['validate_us']:.0f} µs); connector registry lookup "
                  f"(entry-point scan) {se['connector_lookup_ms']:.2f} ms per call.")
    md.append("")
    return md


def _method(res: dict[str, Any], scale: dict[str, Any]) -> list[str]:
    kd = (res.get("floors") or {}).get("kdf") or (res.get("cache") or {}).get("kdf") or {}
    return [
        "## How it was measured",
        "",
        "- Run with `make bench` (= `.venv/bin/python -m benchmarks.run`, the full scale, "
        "~7 min with a cached vault, ~10 min when it builds one); `--quick` is a ~1–2 min "
        "run at 1,000 credentials and 100,000 entries (written under benchmarks/.cache/); "
        "`--only NAME` runs one group (floors, import, verify, list, ops, operators, cli, peer, "
        "tui, experiments); `--rebuild` rebuilds the cached vaults; `--from-results` "
        "re-renders this file from the last run's figures; `--install-peer` apt-installs "
        "keepassxc when it is missing (Debian bookworm ships `keepassxc` 2.7.4; there is no "
        "`keepassxc-minimal` package there).",
        "- Every figure comes from this run; the physical floors were measured in the same "
        "run on the same machine, so the figures can be read against them.",
        "- Each measurement runs in its own process (`python -m benchmarks.worker STEP`), so "
        "the peak memory reported for a step is that step's own (VmHWM of the process; for "
        "CLI runs, of the glasskey process itself).",
        f"- The large vault is built through the core API: `initialise` with "
        f"{scale['operators']} operators whose keys are wrapped with Argon2id at the vault's "
        f"parameters (m={kd.get('memory_kib')} KiB, t={kd.get('iterations')}, "
        f"p={kd.get('lanes')}: "
        f"{'tiny test parameters, --quick only' if scale.get('fast_kdf') else 'kdf.calibrate(0.5) on this machine'}"
        "), then one "
        f"`import_credentials` of {scale['credentials']:,} credentials with real per-credential "
        "costs (a DEK, Shamir split, one HPKE seal per operator, a signed audit entry).",
        "- The audit log is then filled to the stated size with checkout cycles "
        "(requested, approved, revealed, checked-in, rotate.intent, rotate.commit; some "
        "denials and failed unlocks), each entry built by `core.audit.build_entry` and signed "
        "with the acting operator's real Ed25519 key; the matching closed requests go into "
        "the requests table, and the state's audit head is set in the same store transaction. "
        "The result passes `Vault.verify_audit`. The history does not re-seal credentials "
        "(each keeps the version it was imported with). Built once and cached in "
        "`benchmarks/.cache/` (reused while the schema and the builder are unchanged; the "
        "Machine section says whether the current core built it; `--rebuild` forces it).",
        "- Per-operation figures: `Vault.request/approve/reveal/checkin` with sessions already "
        "unlocked, on a private copy of the cached vault, each call with the store's "
        "parsed-shard cache emptied first (as in a fresh `glasskey` process); one warm-up "
        "cycle is discarded; a different credential each cycle. No Argon2id runs inside these "
        "calls, so \"beyond its Argon2id\" is the figure itself; unlock is measured "
        "separately and split by timing the Argon2id derivation inside it. Check-in includes "
        "the rotation (generated connector) it triggers.",
        "- \"With checkout history\" is the realistic vault (a million audit entries imply "
        "~160,000 closed requests); \"empty requests table\" is the same vault with its "
        "requests table dropped, as the brief's literal 10,000 x 25 x 1,000,000 build.",
        "- The CLI figures run `.venv/bin/glasskey` as a subprocess with the real clock; the "
        "reveal is of a request approved just before through the core API, so it includes "
        "process start, imports, unlock (Argon2id), the sweep and the reveal.",
        "- KeePassXC: the database is written by `benchmarks/kdbx.py` (KDBX 4, AES-256, "
        "Argon2id at the same m/t/p as the vault, gzip) because keepassxc-cli 2.7 cannot choose "
        "Argon2id itself; `keepassxc-cli show -s -a Password DB TITLE` reads the passphrase from "
        "stdin.",
        "",
    ]
