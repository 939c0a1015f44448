"""search_index: no `patient` rows where they repeat `subject` (issue 12)

On Task, ServiceRequest, Observation, Procedure, Condition and QuestionnaireResponse the `patient`
search parameter reads the same element as `subject`, restricted to Patients: every `patient` row
repeated a `subject` row. A search or an `_include` by `patient` now reads
the `subject` rows whose value is a `Patient/` reference (fhir_adapters.search_params.stored_name),
and writes make no `patient` rows for these types: 200 of the 1,500 index rows of a time bank's
batch of 100 questionnaires. Consent keeps its own (`Consent.patient` has no `subject`). This
deletes the rows already stored; downgrade makes them again from the `subject` rows.

Revision ID: 20261202_0025
Revises: 20261202_0024
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20261202_0025"
down_revision = "20261202_0024"
branch_labels = None
depends_on = None

# The types whose `patient` is their `subject` (fhir_adapters.search_params._STORED_AS), as they
# are at this revision: a later change to that list needs a migration of its own.
TYPES = (
    "resource_type IN ('Condition', 'Observation', 'Procedure', 'QuestionnaireResponse',"
    " 'ServiceRequest', 'Task')"
)
COLUMNS = 'resource_id, resource_type, name, system, value, start, "end"'


def upgrade() -> None:
    op.execute("DELETE FROM search_index WHERE name = 'patient' AND " + TYPES)  # noqa: S608


def downgrade() -> None:
    op.execute(
        "INSERT INTO search_index (" + COLUMNS + ") SELECT"
        " resource_id, resource_type, 'patient', system, value, start, \"end\""
        " FROM search_index WHERE name = 'subject' AND value LIKE 'Patient/%' AND " + TYPES
    )
