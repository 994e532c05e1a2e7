"""The post-use review queue.

Every exception that was used waits here until someone independent of it has
looked at it (not the holder, and not an approver of the checkout under
review: an approver reviewing their own approval is no second look):
finished checkouts, failed rotations, onboarding secrets (activated or
expired) and emergency-kit uses (which need two reviewers). Reviews are
signed audit entries; an item older than the policy age (default 7 days) is
flagged as overdue everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glasskey.core.context import Service
from glasskey.core.errors import PolicyError, UsageError
from glasskey.core.lookups import require_active
from glasskey.core.session import Session
from glasskey.core.storage.interface import Refused, Transaction
from glasskey.core.text import cap_all

REVIEW_MAX_AGE = 7 * 24 * 3600
OUTCOMES = ("ok", "concern")


@dataclass(frozen=True)
class ReviewItem:
    id: str
    kind: str  # checkout | rotation | onboarding | emergency
    subject: str
    holder: str
    since: float
    required: int
    reviews: tuple[dict[str, Any], ...]
    summary: str

    def overdue(self, now: float, max_age: float = REVIEW_MAX_AGE) -> bool:
        return now - self.since > max_age

    def to_public(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "subject": self.subject,
                "holder": self.holder, "since": self.since, "required": self.required,
                "reviews": list(self.reviews), "summary": self.summary,
                "overdue": self.overdue(now)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ReviewItem:
        return cls(doc["id"], doc["kind"], doc["subject"], doc.get("holder", ""),
                   float(doc["since"]), int(doc.get("required", 1)),
                   tuple(doc.get("reviews", [])), doc.get("summary", ""))


class ReviewService(Service):
    """The queue of used exceptions waiting for an independent look."""

    def queue(self, txn: Transaction, item_id: str, kind: str, subject: str,
                      holder: str, summary: str, required: int = 1) -> None:
        """Put an item in the queue (idempotent: a re-queued item keeps its reviews)."""
        if txn.table("reviews").get(item_id) is not None:
            return
        txn.table("reviews").put(item_id, {
            "id": item_id, "kind": kind, "subject": subject, "holder": holder,
            "since": self.now(), "required": required, "reviews": [], "summary": summary,
        })

    @staticmethod
    def _approvers_of(txn: Transaction, doc: dict[str, Any]) -> set[str]:
        """Who approved the request a review item is named after (none for a rotation)."""
        req = txn.table("requests").get(str(doc["id"]))
        names = {str(a.get("approver", "")) for a in (req or {}).get("approvals", [])}
        names.discard("")
        return names

    def review_queue(self) -> list[ReviewItem]:
        with self.store.read() as txn:
            docs = txn.table("reviews").values()
        return sorted((ReviewItem.from_doc(d) for d in docs), key=lambda r: (r.since, r.id))

    def review(self, session: Session, item_id: str, outcome: str, note: str) -> ReviewItem:
        """Record one reviewer's outcome; the item leaves the queue when enough agree."""
        if outcome not in OUTCOMES:
            raise UsageError("--outcome must be ok or concern")
        note = (note or "").strip()
        cap_all(note=note)
        if outcome == "concern" and not note:
            raise UsageError("a concern needs a note saying what is wrong (--note)")
        with self.store.transaction() as txn:
            require_active(txn, session, "approver")
            doc = txn.table("reviews").get(item_id)
            if doc is None:
                raise PolicyError(f"{item_id} is not waiting for review")
            if doc.get("holder") == session.name:
                txn.record(session.signer, "review.refused", item_id, {"why": "own-item"})
                raise Refused(PolicyError("you cannot review your own use; another approver "
                                          "must"))
            if session.name in self._approvers_of(txn, doc):
                txn.record(session.signer, "review.refused", item_id, {"why": "approved-it"})
                raise Refused(PolicyError("you approved this item; a reviewer must be "
                                          "independent of the holder and the approvers"))
            if any(r["by"] == session.name for r in doc["reviews"]):
                raise PolicyError("you have already reviewed this item")
            doc["reviews"].append({"by": session.name, "outcome": outcome, "note": note,
                                   "at": self.now()})
            done = len(doc["reviews"]) >= int(doc.get("required", 1))
            if done:
                txn.table("reviews").delete(item_id)
            else:
                txn.table("reviews").put(item_id, doc)
            if doc["kind"] in ("checkout", "onboarding", "emergency"):
                req = txn.table("requests").get(item_id)
                if req is not None:
                    req["review"] = {"status": ("concern" if any(
                        r["outcome"] == "concern" for r in doc["reviews"]) else "ok")
                        if done else "partial", "reviews": doc["reviews"]}
                    txn.table("requests").put(item_id, req)
            txn.record(session.signer, "review.recorded", item_id, {
                "kind": doc["kind"], "outcome": outcome, "note": note,
                "holder": doc.get("holder", ""), "subject": doc["subject"],
                "complete": done, "reviews": len(doc["reviews"]),
                "required": int(doc.get("required", 1)),
            })
            return ReviewItem.from_doc(doc)
