"""The independent calculation against the product, on a population made through SPIS's real API
(`independent_population.py`: referrals backdated by the practices' own Tasks, routing's
rejections, time banks' declines and re-routing, enrolments, exchanges and reversals through the
ledger API, every instrument's questionnaires): the outcome rows the triggers' refresh jobs keep
equal the ones derived independently, and every published cell equals the independent figure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.outcomes import independent_product as product
from tests.outcomes.independent_compare import row_differences
from tests.outcomes.independent_datasets import Dataset, api_dataset
from tests.outcomes.independent_rows import derive


@pytest.fixture(scope="module")
def data(
    pg_engine: Engine, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dataset]:
    found = api_dataset(pg_engine, pg_url, Path(tmp_path_factory.mktemp("api")))
    yield found
    assert found.client is not None
    found.client.__exit__(None, None, None)


def test_the_rows_the_refresh_jobs_keep_equal_those_derived_from_the_raw_data(
    data: Dataset,
) -> None:
    derived = derive(data.raw, data.settings)
    mine = {name: getattr(derived, name) for name in product.TABLES}
    keys = {name: key for name, (_, key) in product.TABLES.items()}
    assert row_differences(mine, data.rows, keys) == []
    sizes = {name: len(frame) for name, frame in data.rows.items()}
    assert sizes["referrals"] == 60
    assert min(sizes.values()) > 5, sizes
