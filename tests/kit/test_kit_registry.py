"""Every models module is found by convention, so kit names no domain and none is forgotten."""

import json
import subprocess
import sys
import textwrap


def test_a_fresh_process_loads_every_table_and_sealed_column() -> None:
    # A fresh interpreter: in this one the tests have imported every model already.
    script = textwrap.dedent(
        """
        import json
        from referral_service.keys import sealed
        from referral_service.kit.models import Base
        columns = sorted(f"{m.__tablename__}.{a}" for m, a in sealed.columns())
        print(json.dumps([sorted(Base.metadata.tables), columns]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    tables, columns = json.loads(out)
    assert {"resource", "audit_event", "job", "ledger_member", "timebank_profile"} <= set(tables)
    assert columns == [
        "ledger_member.alias",
        "ledger_offer.description",
        "ledger_request.description",
        "person.totp_pending_secret",
        "person.totp_secret",
        "resource.body",
        "resource_version.body",
    ]
