"""The time credit ledger (DESIGN §5): members, enrolment of referred people, offers and requests,
exchanges and what they add up to. Takes a Context whose principal is the time bank; never commits.

Balances are never stored or edited: every figure is a sum over the double-entry rows. Nothing is
edited away either: a mistaken exchange is undone by a reversing one (`reverse_exchange`), and an
ended membership keeps its history (`end_membership`). The broker's web pages and the JSON API
both call the functions named here, so every rule, the tenancy and the audit live below this
line, never in an endpoint or a page:

- `members.py`: joining (`add_member`, `enrol`), `get_member`, `member_for_task`,
  `end_membership`, offers and requests (`add_listing`, `listings`);
- `exchanges.py`: `record_exchange`, `reverse_exchange`, `exchanges` (newest first, paged);
- `figures.py`: `member_rows` (every member with balance, given, received, partners and
  reciprocity), `statement` (one member's account and lines), and the whole ledger for a
  download (`export_members`, `exchange_rows`; rendered by `export.py`);
- `common.py`: `Listed` (a list, and the rows left out because their sealed text did not open).
"""

from __future__ import annotations

from referral_service.ledger.common import Listed
from referral_service.ledger.exchanges import (
    NewExchange,
    RecordedExchange,
    exchanges,
    record_exchange,
    reverse_exchange,
)
from referral_service.ledger.figures import (
    ExchangeRow,
    MemberRow,
    Statement,
    StatementLine,
    exchange_rows,
    export_members,
    member_rows,
    members,
    statement,
)
from referral_service.ledger.members import (
    add_listing,
    add_member,
    end_membership,
    enrol,
    get_member,
    listings,
    member_for_task,
)

# The ledger's vocabulary for its callers (the JSON API, the broker's web pages).
__all__ = [
    "ExchangeRow",
    "Listed",
    "MemberRow",
    "NewExchange",
    "RecordedExchange",
    "Statement",
    "StatementLine",
    "add_listing",
    "add_member",
    "end_membership",
    "enrol",
    "exchange_rows",
    "exchanges",
    "export_members",
    "get_member",
    "listings",
    "member_for_task",
    "member_rows",
    "members",
    "record_exchange",
    "reverse_exchange",
    "statement",
]
