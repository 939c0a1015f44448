"""What one intake works on: the practice's entries, each entry's target, and what the phases
learn on the way (`service.submit` runs them: targets → references → checks → writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from referral_service.consent.service import Decisions
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
    # What SPIS wrote for this entry besides its own resource: the referral Task it added for a
    # ServiceRequest, a questionnaire's score Observations. Audited with the entry's write.
    derived: tuple[Version, ...] = ()

    def written(self) -> list[Version]:
        """Every version this entry wrote, for its write event: its own, then what SPIS added."""
        return [self.version, *self.derived]


@dataclass(slots=True)
class Target:
    entry: Entry
    ref: str  # Type/id: the id assigned to a create, or the stored resource's
    existing: StoredResource | None = None  # PUT target, or the conditional-create match
    write: bool = True
    # The resource's references once resolved (`targets.resolve_references`), for the checks
    # to use rather than walk the resource again; None until then.
    references: list[str] | None = None


@dataclass(slots=True)
class Shared:
    """Reads that consecutive entries of one batch share (`service.submit_entry`), so that a time
    bank's 100 questionnaires read their referral, patient and consent once, not 100 times.

    Only entries that cannot change what these answer share them: creates of a
    QuestionnaireResponse (with its score Observations), which no lookup, owner, organisation or
    consent decision depends on. Any other entry, whether it succeeds or fails, clears them first
    and after (`clear`). They are the caller's reads: one request, one principal."""

    read: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # Type/id -> the stored row's tenant
    organisations: dict[str, Organisation | None] = field(default_factory=dict)
    decisions: Decisions = field(default_factory=Decisions)

    def clear(self) -> None:
        self.read.clear()
        self.owners.clear()
        self.organisations.clear()
        self.decisions.clear()


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
    # The tenant of each stored resource in `read` (a questionnaire's scores belong to the
    # referral's owner).
    owners: dict[str, str] = field(default_factory=dict)
    # Organisations read in this intake, kept: the identity map alone holds them weakly.
    organisations: dict[str, Organisation | None] = field(default_factory=dict)
    # Consent decisions a batch's questionnaires share (each audited the first time it is used).
    # None in any other intake: its writes may change a Consent between two decisions.
    decisions: Decisions | None = None

    @classmethod
    def sharing(cls, ctx: Context, shared: Shared | None) -> Intake:
        if shared is None:
            return cls(ctx)
        return cls(
            ctx,
            read=shared.read,
            owners=shared.owners,
            organisations=shared.organisations,
            decisions=shared.decisions,
        )

    def creates(self, ref: str | None) -> bool:
        """Whether this intake creates `ref` (a new id: nothing stored refers to it yet)."""
        return any(t.ref == ref and t.write and t.existing is None for t in self.targets)
