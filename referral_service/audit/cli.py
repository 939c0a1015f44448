"""`spis audit verify`: the handler behind the command (registered in referral_service/cli.py).

Progress goes to stderr so that stdout stays one JSON document.
"""

from __future__ import annotations

import sys

from referral_service.audit.service import verify
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker


def verify_command(settings: Settings, *, batch_size: int = 5000) -> dict[str, object]:
    """Walk the whole chain; {"ok", "checked", "first_bad_seq", "reason"}."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            result = verify(session, batch_size=batch_size, progress=_print_progress)
    finally:
        engine.dispose()
    return {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
    }


def _print_progress(checked: int, total: int) -> None:
    print(f"spis audit verify: {checked} of {total} rows checked", file=sys.stderr, flush=True)
