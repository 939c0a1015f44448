"""Outcome reports for health boards: `evaluate` (a Measure for a board and a period, every cell
through disclosure control, audited) and the programme cost a board enters for its social value
estimate. Never commits.

Who may: SPIS itself (the CLI, the demo) and a health board for its own area. Another board's
report is "not found", as any other tenant's data is; practices and time banks are refused.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Final

from sqlalchemy.orm import Session

from fhir_adapters.measures import (
    FUNNEL,
    MEASURES,
    SOCIAL_VALUE,
    WELLBEING,
    MeasureDefinition,
    Report,
    Stratifier,
)
from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind
from referral_service.context import Context
from referral_service.errors import Forbidden, Invalid, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import Organisation, OrgKind
from referral_service.outcomes import report_cache, social_value
from referral_service.outcomes import report_repository as repository
from referral_service.outcomes.disclosure import StratumKey, disclose
from referral_service.outcomes.figures import Scope, coproduction_raws, funnel_raws, wellbeing_raws

MAX_YEARS: Final = 5
NO_BOARD: Final = "No health board has this id"
FOCUS_RULE: Final = (
    "focus must be Organization/<id> of a practice or a time bank in the board's area"
)
_FOCUS = re.compile(r"^Organization/([A-Za-z0-9\-.]{1,64})$")
_ENTERED_BY = 80


def evaluate(
    ctx: Context,
    measure_id: str,
    period_start: date,
    period_end: date,
    board_id: str,
    focus: str | None = None,
) -> Report:
    """The Measure `measure_id` for `board_id` over [period_start, period_end] (inclusive, UTC),
    narrowed to `focus` ("Organization/<id>" of a practice or time bank in the board's area)."""
    board = _board(ctx, board_id)
    measure = MEASURES.get(measure_id)
    if measure is None:
        raise NotFound("No Measure has this id (see /fhir/Measure)")
    check_period(period_start, period_end)
    scope = Scope(
        ctx.session, ctx.settings, board.id, period_start, period_end, _focus(ctx, board, focus)
    )
    cells, assumptions = report_cache.report(
        scope, measure, focus, lambda: _computed(scope, measure)
    )
    audit.record_report(
        ctx,
        board_id=board.id,
        measure=measure.id,
        period_start=period_start,
        period_end=period_end,
        focus=focus,
    )
    return Report(
        measure=measure,
        board_id=board.id,
        board_name=board.name,
        period_start=period_start,
        period_end=period_end,
        generated_at=utcnow(),
        cells=cells,
        focus=focus,
        assumptions=assumptions,
    )


def keep_computed(ctx: Context, key: report_cache.CacheKey) -> bool:
    """Compute the cached report under `key` again if something it rests on has changed (for
    the workers: neither a pull nor audited); whether it was. Invalid or NotFound when the
    report could no longer be asked for (the board is gone, the focus left its area)."""
    board_id, measure_id, start, end, focus = key
    board, measure = _board(ctx, board_id), MEASURES.get(measure_id)
    if measure is None:
        raise NotFound("No Measure has this id (see /fhir/Measure)")
    scope = Scope(
        ctx.session, ctx.settings, board.id, start, end, _focus(ctx, board, focus or None)
    )
    computed = False

    def compute() -> report_cache.Computed:
        nonlocal computed
        computed = True
        return _computed(scope, measure)

    report_cache.report(scope, measure, focus or None, compute, pull=False)
    return computed


def _computed(scope: Scope, measure: MeasureDefinition) -> report_cache.Computed:
    """The report's published cells (and assumptions), from the outcome rows."""
    if measure is SOCIAL_VALUE:
        return social_value.cells(scope)
    if measure is FUNNEL:
        return disclose(measure, funnel_raws(scope)), ()
    if measure is WELLBEING:
        return disclose(measure, wellbeing_raws(scope)), ()
    return disclose(measure, coproduction_raws(scope)), ()


def set_programme_cost(
    ctx: Context,
    board_id: str,
    period_start: date,
    period_end: date,
    amount_pence: int,
    entered_by: str,
) -> None:
    """What the board's programme cost over exactly this period (replacing an earlier entry)."""
    board = _board(ctx, board_id)
    check_period(period_start, period_end)
    if not 0 < amount_pence <= MAX_SQL_INT:
        raise Invalid("The programme cost must be more than £0 and at most £21,474,836.47")
    if not entered_by.strip() or len(entered_by) > _ENTERED_BY:
        raise Invalid(f"entered_by must be 1 to {_ENTERED_BY} characters")
    repository.put_programme_cost(
        ctx.session, board.id, period_start, period_end, amount_pence, entered_by
    )
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.UPDATE,
        action=Action.UPDATE,
        entities=[f"Organization/{board.id}"],
        tenant=board.id,
        purpose=audit.FLOW_PURPOSE["secondary-use"],
        detail=f"programme cost {period_start.isoformat()}..{period_end.isoformat()}",
    )


def programme_cost(
    session: Session, board_id: str, period_start: date, period_end: date
) -> int | None:
    """The cost in pence the board entered for exactly this period, if any."""
    return repository.programme_cost(session, board_id, period_start, period_end)


def check_period(start: date, end: date) -> None:
    if end < start:
        raise Invalid("periodEnd is before periodStart")
    if end >= _years_after(start, MAX_YEARS):
        raise Invalid(f"A report covers at most {MAX_YEARS} years")


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28) + timedelta(days=1)


def _board(ctx: Context, board_id: str) -> Organisation:
    principal = ctx.principal
    if not principal.system:
        if principal.org_kind is not OrgKind.HEALTHBOARD:
            raise Forbidden("Outcome reports are for health boards")
        if principal.org_id != board_id:
            raise NotFound(NO_BOARD)
    board = organisations.get(ctx.session, board_id)
    if board is None or board.kind is not OrgKind.HEALTHBOARD:
        raise NotFound(NO_BOARD)
    return board


def _focus(ctx: Context, board: Organisation, focus: str | None) -> StratumKey | None:
    """The stratum a focused report is narrowed to: the practice's (ODS code) or the time
    bank's (its id)."""
    if focus is None:
        return None
    match = _FOCUS.match(focus)
    org = organisations.get(ctx.session, match.group(1)) if match else None
    if org is None or org.board_id != board.id:
        raise Invalid(FOCUS_RULE, expression=["focus"])
    if org.kind is OrgKind.PRACTICE:
        return (Stratifier.PRACTICE, org.ods_code or org.id)
    if org.kind is OrgKind.TIMEBANK:
        return (Stratifier.TIMEBANK, org.id)
    raise Invalid(FOCUS_RULE, expression=["focus"])
