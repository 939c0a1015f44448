"""Resources are kept as the validated JSON bytes we received (plus id and meta): reads serve these
bytes without re-validating. Searchable values live in `search_index` rows, one per value."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referral_service.kit.models import Base


class StoredResource(Base):
    __tablename__ = "resource"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime]
    # The tenant: the organisation whose data this is (the referring practice).
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    body: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_resource_type_org_updated", "type", "org_id", "last_updated"),
        # A search page's order (repository._page_order), walked either way (migration 0021).
        Index("ix_resource_type_updated", "type", "last_updated", "id"),
    )

    def __repr__(self) -> str:
        return f"StoredResource({self.type}/{self.id}, v{self.version_id})"


class ResourceVersion(Base):
    """Every superseded version: the current one is the `resource` row, and a version is written
    here when a newer one replaces it (repository.update_resource). vread and _history read
    both (repository.versions_of)."""

    __tablename__ = "resource_version"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime]
    # The resource's tenant, bound into the sealed body; reads require it to equal the resource's.
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # Never loaded; declared so the unit of work inserts resources before their versions and can
    # write a whole Bundle's rows in one statement per table.
    resource: Mapped[StoredResource] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"ResourceVersion({self.resource_id}, v{self.version_id})"


class SearchIndex(Base):
    """A resource's search values, one row each, keyed by the resource and the row's place among
    its rows. Written only by repository.py, in the statement that writes their resource (or
    right after its update), and no resource is ever deleted: no foreign key is checked row by
    row (migration 0026)."""

    __tablename__ = "search_index"

    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(255))
    value: Mapped[str | None] = mapped_column(String(255))
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]

    __table_args__ = (
        # resource_id last: each search parameter is a correlated EXISTS on this table, so one
        # index seek per candidate resource (without it SQLite scans every row with the value).
        # A resource's own rows are found through the primary key.
        Index("ix_search_index_lookup", "resource_type", "name", "value", "resource_id"),
    )

    def __repr__(self) -> str:
        return f"SearchIndex({self.resource_type}.{self.name})"


class ResourceGrant(Base):
    """Another organisation may read this resource: a time bank, for what was routed to it."""

    __tablename__ = "resource_grant"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    resource: Mapped[StoredResource] = relationship(lazy="raise")  # flush order only

    __table_args__ = (Index("ix_resource_grant_org", "org_id", "resource_id"),)

    def __repr__(self) -> str:
        return f"ResourceGrant({self.resource_id} -> {self.org_id})"
