"""bind the tenant into sealed values, retire data keys, per-tenant NHS-number blind index

- `data_key.retired_at`: set when re-encryption has left nothing under a key (keys/service.py).
- `resource_version.org_id`: the resource's tenant, copied from `resource`; sealed bodies are bound
  to it. Values sealed earlier (format 1) still open with their old associated data until
  re-encryption (`spis keys rotate`) re-seals them as format 2.
- NHS-number index values are re-keyed per tenant in place: the new value is the tenant key's
  HMAC of the old one (kit/crypto.tenant_blind_index), so no NHS number is needed, only
  SPIS_BLIND_INDEX_KEY, read from the settings of the process running `spis migrate` (and only
  when there are values to re-key).

Revision ID: 20261128_0008
Revises: 20261125_0007
Create Date: 2026-11-28 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261128_0008"
down_revision = "20261125_0007"
branch_labels = None
depends_on = None

# Frozen here: the values this revision re-keys were written with these.
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
NHS_NUMBER_INDEX = "nhs-number"


def upgrade() -> None:
    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("org_id", sa.String(length=36), nullable=True))
    op.execute(
        "UPDATE resource_version SET org_id = "
        "(SELECT resource.org_id FROM resource WHERE resource.id = resource_version.resource_id)"
    )
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.alter_column("org_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_resource_version_org_id_organisation"),
            "organisation",
            ["org_id"],
            ["id"],
        )

    _rekey_nhs_number_index()


def _rekey_nhs_number_index() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT search_index.id, search_index.value, resource.org_id FROM search_index "
            "JOIN resource ON resource.id = search_index.resource_id "
            "WHERE search_index.name = 'identifier' AND search_index.system = :system "
            "AND search_index.value IS NOT NULL"
        ),
        {"system": NHS_NUMBER_SYSTEM},
    ).all()
    if not rows:
        return
    from referral_service.config import get_settings
    from referral_service.kit.crypto import blind_index, tenant_key

    key = get_settings().blind_index_key.get_secret_value().encode()
    update = sa.text("UPDATE search_index SET value = :value WHERE id = :id")
    for row_id, value, org_id in rows:
        rekeyed = blind_index(tenant_key(key, org_id), NHS_NUMBER_INDEX, value)
        connection.execute(update, {"id": row_id, "value": rekeyed})


def downgrade() -> None:
    # The per-tenant index values cannot be turned back (HMAC); a downgrade loses NHS-number
    # search until the resources are written again.
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_resource_version_org_id_organisation"), type_="foreignkey"
        )
        batch_op.drop_column("org_id")

    with op.batch_alter_table("data_key", schema=None) as batch_op:
        batch_op.drop_column("retired_at")
