"""Server-assigned ids are random UUIDs: they reveal neither order nor volume."""

from __future__ import annotations

import uuid
from typing import NewType

ResourceId = NewType("ResourceId", str)
OrgId = NewType("OrgId", str)
ClientId = NewType("ClientId", str)


def new_id() -> str:
    return str(uuid.uuid4())
