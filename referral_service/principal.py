"""The authenticated caller, as every service and repository sees it."""

from __future__ import annotations

from dataclasses import dataclass

from referral_service.organisations.models import OrgKind

# SMART v1 suffixes, still sent by older clients, in v2 letters.
_V1_SUFFIXES = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    org_id: str
    org_kind: OrgKind
    scopes: frozenset[str]
    # SPIS itself, in background jobs: sees every tenant's rows, never issued to a client.
    system: bool = False

    @classmethod
    def spis(cls) -> Principal:
        return cls("spis", "spis", OrgKind.PLATFORM, frozenset(), system=True)

    def allows(self, resource_type: str, interaction: str) -> bool:
        """SMART v2 `system/<Type>.<cruds>` check: interaction is one of c, r, u, d, s."""
        for scope in self.scopes:
            prefix, _, rest = scope.partition("/")
            target, _, perms = rest.partition(".")
            perms = _V1_SUFFIXES.get(perms, perms)
            if prefix == "system" and target in (resource_type, "*") and interaction in perms:
                return True
        return False
