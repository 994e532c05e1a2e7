"""The custody review report: who held what, when, why, who approved, was it
rotated, was it reviewed, and is the log intact.

The **audit log is the source of truth**: the report is built from one pass
over ``audit.jsonl`` (after ``verify_audit`` has checked the chain), plus the
vault's read views for each credential's *current* status. Nothing in the log
is a secret value (DESIGN.md), and the report adds none.

Period semantics (docs/reports.md):

* an item belongs to the period ``[since, until]`` when something happened to
  it inside the period (a checkout requested or held in it, an onboarding
  secret issued/shown/activated/expired in it, an emergency use in it, ...);
* its *follow-ups* (rotation outcome, reviews) are read from the whole log as
  it stands when the report is built, so a report generated after the period
  shows the reviews recorded since. The report names the audit head (seq and
  line hash) it read, which pins exactly what it is a function of.

Entry points::

    report = build_custody_report(vault, since, until)
    text = render_markdown(report) | render_html(report) | render_json(report)
    attestation_id = ReportService.for_vault(vault).attest(session, text, "md", since, until)
    check = verify_report(vault, text)

The package, in reading order: ``records`` and ``model`` (the dataclasses),
``values`` (lenient field readers), ``collect`` (folding entries), ``stream``
(reading the log fast), ``analyse`` and ``findings``, ``controls``, ``build``
(assembling a report), ``rows`` (cells shared by the renderings), ``render``
(Markdown, JSON), ``html_page`` (HTML and the SVG timeline), ``attest`` and
``verify``. The report reads the vault only through its public API
(``audit_batches``, ``audit_lines``, the store's ``unverified_meta``).
"""

from glasskey.core.report import records
from glasskey.core.report.analyse import _pairs, _rotation_for
from glasskey.core.report.attest import ReportService, attest, find_attestations, report_sha256
from glasskey.core.report.build import build_custody_report
from glasskey.core.report.collect import _Collector
from glasskey.core.report.controls import NHI_TOP10, NOT_ADDRESSED, controls_mapping
from glasskey.core.report.html_page import EMERGENCY_COLOUR, render_html, timeline_svg
from glasskey.core.report.model import (
    REPORT_FORMAT,
    REPORT_VERSION,
    AuditStatus,
    ControlRow,
    CustodyReport,
    Finding,
    Summary,
)
from glasskey.core.report.records import *  # noqa: F403 (the record types: records.__all__)
from glasskey.core.report.render import _md, render_json, render_markdown
from glasskey.core.report.rows import SECTIONS, _outcome
from glasskey.core.report.rules import (
    AGE_BUCKETS,
    DAY,
    EMERGENCY_REVIEWS,
    MAX_ROWS,
    REVIEW_DUE,
    SOD_MIN_COUNT,
    SOD_SHARE,
)
from glasskey.core.report.stream import _read_log
from glasskey.core.report.values import _ts, parse_date
from glasskey.core.report.verify import ReportCheck, verify_report

# The underscored names are internals that tests and benchmarks reach for: they
# predate the package and stay importable from it. The record types are added
# from ``records.__all__``, so they are listed in one place.
__all__ = [
    "AGE_BUCKETS",
    "DAY",
    "EMERGENCY_COLOUR",
    "EMERGENCY_REVIEWS",
    "MAX_ROWS",
    "NHI_TOP10",
    "NOT_ADDRESSED",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "REVIEW_DUE",
    "SECTIONS",
    "SOD_MIN_COUNT",
    "SOD_SHARE",
    "AuditStatus",
    "ControlRow",
    "CustodyReport",
    "Finding",
    "ReportCheck",
    "ReportService",
    "Summary",
    "_Collector",
    "_md",
    "_outcome",
    "_pairs",
    "_read_log",
    "_rotation_for",
    "_ts",
    "attest",
    "build_custody_report",
    "controls_mapping",
    "find_attestations",
    "parse_date",
    "render_html",
    "render_json",
    "render_markdown",
    "report_sha256",
    "timeline_svg",
    "verify_report",
]
__all__ += records.__all__
