"""The report's rules: the thresholds its judgements use, in one place to tune."""

from __future__ import annotations

DAY = 86400.0

#: Segregation of duties: a pair (approver -> requester) is flagged "dominant"
#: when it occurs at least this many times in the period ...
SOD_MIN_COUNT = 3
#: ... and accounts for more than this share of the requester's approvals.
SOD_SHARE = 0.5
#: Emergency-kit uses need this many distinct reviewers (DESIGN.md).
EMERGENCY_REVIEWS = 2
#: Default age after which an unreviewed finished item is overdue.
REVIEW_DUE = 7 * DAY
#: Rotation-age buckets (days) for the credentials table.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 7 d", 7.0), ("7-30 d", 30.0), ("30-90 d", 90.0), ("> 90 d", float("inf")),
)
#: Rows shown per long table in the Markdown/HTML renderings (JSON has all).
MAX_ROWS = 2000
