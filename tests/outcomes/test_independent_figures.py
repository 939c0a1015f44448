"""The independent calculation against the product, on `spis synth`'s data set (a few hundred
referrals over twelve months, fixed seed): the outcome rows the product keeps equal the ones
derived independently from the raw resources and ledger, and every published cell of every
measure, for the total and every stratum, equals the independent figure (issue 10, "Tests")."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.outcomes import independent_product as product
from tests.outcomes.independent_compare import row_differences
from tests.outcomes.independent_datasets import Dataset, synth_dataset
from tests.outcomes.independent_rows import derive


@pytest.fixture(scope="module")
def data(pg_engine: Engine, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return synth_dataset(pg_engine, pg_url, Path(tmp_path_factory.mktemp("synth")))


def test_the_outcome_rows_equal_those_derived_from_the_raw_data(data: Dataset) -> None:
    derived = derive(data.raw, data.settings)
    mine = {name: getattr(derived, name) for name in product.TABLES}
    keys = {name: key for name, (_, key) in product.TABLES.items()}
    assert row_differences(mine, data.rows, keys) == []
    # the data set has every kind of row, so the comparison is not vacuous
    sizes = {name: len(frame) for name, frame in data.rows.items()}
    assert sizes["referrals"] == 400
    assert min(sizes.values()) > 30, sizes
