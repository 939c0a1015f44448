"""Each role's start page, its name on screen, and the links in its navigation.

A new page for a role adds its link to NAV here; base.html shows the viewer's links and marks the
current one.
"""

from __future__ import annotations

from dataclasses import dataclass

from referral_service.people.models import Role

# The first page after signing in; a role's pages live under it.
START_PAGES: dict[Role, str] = {
    Role.BROKER: "/broker",
    Role.PRACTICE: "/practice",
    Role.ANALYST: "/analyst",
}

ROLE_LABELS: dict[Role, str] = {
    Role.BROKER: "Time bank broker",
    Role.PRACTICE: "Practice staff",
    Role.ANALYST: "Health board analyst",
}


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    href: str


NAV: dict[Role, list[Link]] = {
    Role.BROKER: [
        Link("Referrals", START_PAGES[Role.BROKER]),
        Link("Members", "/broker/members"),
        Link("Exchanges", "/broker/exchanges"),
    ],
    Role.PRACTICE: [
        Link("Referrals", START_PAGES[Role.PRACTICE]),
        Link("New referral", "/practice/referrals/new"),
    ],
    Role.ANALYST: [Link("Outcome figures", START_PAGES[Role.ANALYST])],
}
