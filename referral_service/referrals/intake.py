"""What one intake works on: the practice's entries, each entry's target, and what the phases
learn on the way (`service.submit` runs them: targets → references → checks → writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from referral_service.context import Context
from referral_service.organisations.models import Organisation
from referral_service.store.models import StoredResource
from referral_service.store.service import Version
from referral_service.wellbeing import service as wellbeing

CREATABLE = frozenset(
    {"Patient", "Consent", "ServiceRequest", "Task", "Condition", "QuestionnaireResponse"}
)
UPDATABLE = frozenset({"Patient", "Consent", "ServiceRequest", "Task", "Condition"})
STORED_TYPES = CREATABLE | {"Observation", "Procedure"}


@dataclass(slots=True)
class Entry:
    method: Literal["POST", "PUT"]
    rtype: str
    resource: dict[str, Any]
    full_url: str | None = None
    rid: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None


@dataclass(slots=True)
class Outcome:
    created: bool
    version: Version
    note: str | None = None  # e.g. the referral Task SPIS created for a ServiceRequest


@dataclass(slots=True)
class Target:
    entry: Entry
    ref: str  # Type/id: the id assigned to a create, or the stored resource's
    existing: StoredResource | None = None  # PUT target, or the conditional-create match
    write: bool = True


@dataclass(slots=True)
class Intake:
    ctx: Context
    targets: list[Target] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # fullUrl -> Type/id
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # Type/id -> resource to write
    # ServiceRequests ("ServiceRequest/<id>") that got a referral Task in this intake, so SPIS adds
    # none and a second one is refused.
    with_task: set[str] = field(default_factory=set)
    scored: dict[str, wellbeing.ScoredResponse] = field(default_factory=dict)  # QR ref -> scores
    known_orgs: set[str] = field(default_factory=lambda: {"spis"})  # Organization ids seen to exist
    # Stored resources read by the checks (`targets.lookup`), by reference: nothing is written
    # before every check has passed, so a second read would find the same.
    read: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # Organisations read in this intake, kept: the identity map alone holds them weakly.
    organisations: dict[str, Organisation | None] = field(default_factory=dict)

    def creates(self, ref: str | None) -> bool:
        """Whether this intake creates `ref` (a new id: nothing stored refers to it yet)."""
        return any(t.ref == ref and t.write and t.existing is None for t in self.targets)
