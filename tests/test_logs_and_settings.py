"""Logs never carry a query string or a payload; production refuses weak secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from referral_service.config import Settings
from referral_service.logs import PathOnly, WithIds


def access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_access_log_keeps_the_path_and_drops_the_query() -> None:
    record = access_record("/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919")
    assert PathOnly().filter(record)
    line = record.getMessage()
    assert "9434765919" not in line
    assert '"GET /fhir/Patient HTTP/1.1" 200' in line


def test_spis_lines_carry_their_ids() -> None:
    record = logging.LogRecord("spis.jobs", logging.WARNING, __file__, 1, "job crashed", (), None)
    record.job_id = "j-1"
    record.error_type = "IntegrityError"
    line = WithIds("%(levelname)s %(name)s %(message)s").format(record)
    assert line == "WARNING spis.jobs job crashed error_type=IntegrityError job_id=j-1"


@pytest.mark.parametrize("name", ["token_secret", "blind_index_key", "kek"])
def test_production_refuses_short_or_missing_secrets(name: str, tmp_path: Path) -> None:
    strong = {"token_secret": "t" * 40, "blind_index_key": "b" * 40, "kek": "k" * 40}
    Settings(environment="production", var_dir=tmp_path, **strong)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=f"SPIS_{name.upper()}"):
        Settings(environment="production", var_dir=tmp_path, **{**strong, name: "short"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=f"SPIS_{name.upper()}"):
        Settings(environment="production", var_dir=tmp_path, **{**strong, name: ""})  # type: ignore[arg-type]
