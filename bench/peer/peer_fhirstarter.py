# The peer SPIS's intake is compared with (bench/api.py): fhirstarter (canvas-medical, on PyPI;
# FastAPI + fhir.resources R4B), serving ServiceRequest create and search from an in-memory dict.
# Copied, unchanged below this header, from /work/shared/bench/peer_fhirstarter.py, the side-by-side harness given to
# the project for its benchmarks. It runs in its own venv (bench/.peer-venv, made by the bench):
#     uvicorn peer_fhirstarter:app --workers 2 --port <port> --no-access-log   (from bench/peer/)
"""Peer: fhirstarter (FastAPI + fhir.resources) with an in-memory dict store; ServiceRequest create + search."""
import os
os.environ.setdefault("FHIR_SEQUENCE", "R4B")
from uuid import uuid4
import orjson
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.bundle import Bundle
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext

app = FHIRStarter(title="peer")
DB: dict[str, str] = {}
BY_SUBJECT: dict[str, list[str]] = {}
provider = FHIRProvider()

@provider.create(ServiceRequest)
async def sr_create(context: InteractionContext, resource: ServiceRequest) -> str:
    id_ = str(uuid4()); resource.id = id_
    DB[id_] = resource.model_dump_json()
    BY_SUBJECT.setdefault(resource.subject.reference, []).append(id_)
    return id_

@provider.search_type(ServiceRequest)
async def sr_search(context: InteractionContext, subject: str | None) -> Bundle:
    ids = BY_SUBJECT.get(subject or "", [])[:20]
    return Bundle.model_validate({"type": "searchset", "total": len(ids),
                                  "entry": [{"resource": orjson.loads(DB[i])} for i in ids] or None})

app.add_providers(provider)
