"""The floors of reads, search, intake and batch: what they cost on this machine without SPIS.

Plain FastAPI on uvicorn (the worker count of the bench, no access log, no middleware), psycopg's
async pool in autocommit, the same PostgreSQL database as the bench's SPIS server:
- GET /select/<id>: one prepared SELECT of the row's sealed body by primary key, sent back as it
  is. No token, no tenancy or consent check, no decryption, no audit. No read that does any of
  those through FastAPI and PostgreSQL on these cores can be faster.
- GET /audited/<id>: that SELECT, then one INSERT of a row naming it (an audit event reduced to
  its id and time), committed before the answer: a read with its audit written the plain way,
  one commit per read.
- GET /search/<type>: the search floor (`search`).
- POST /bundle: the write floor of a transaction or a batch Bundle (`write`).

Run by bench/floor_server.py for bench/api.py (the `*_floor*` phases) with FLOOR_DATABASE_URL,
a libpq URL of the bench's database, which has the `bench_floor_audit` and `bench_floor_resource`
tables the bench makes for it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import orjson
from fastapi import FastAPI, Request, Response
from psycopg_pool import AsyncConnectionPool

from fhir_adapters.parse import load_json, validate_resource

POOL = AsyncConnectionPool(
    os.environ["FLOOR_DATABASE_URL"],
    min_size=1,
    max_size=10,  # as many as SPIS's read pool (referral_service/db.py AsyncReads)
    open=False,
    kwargs={"autocommit": True},
)
SELECT = "SELECT body FROM resource WHERE id = %s"
INSERT = "INSERT INTO bench_floor_audit (resource_id, recorded) VALUES (%s, now())"
WRITE = "INSERT INTO bench_floor_resource (id, type, body) VALUES (%s, %s, %s)"
PAGE = 50
SEARCH = "SELECT id, body FROM bench_floor_resource WHERE type = %s ORDER BY id LIMIT %s"


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    await POOL.open(wait=True)
    yield
    await POOL.close()


app = FastAPI(lifespan=lifespan)


@app.get("/select/{rid}")
async def select(rid: str) -> Response:
    return await _read(rid, audited=False)


@app.get("/audited/{rid}")
async def audited(rid: str) -> Response:
    return await _read(rid, audited=True)


async def _read(rid: str, *, audited: bool) -> Response:
    async with POOL.connection() as conn:
        cursor = await conn.execute(SELECT, (rid,), prepare=True)
        row = await cursor.fetchone()
        if row is None:
            return Response(status_code=404)
        if audited:
            await conn.execute(INSERT, (rid,), prepare=True)
    return Response(bytes(row[0]), media_type="application/octet-stream")


@app.get("/search/{rtype}")
async def search(rtype: str) -> Response:
    """The search floor: one prepared SELECT of a page of stored JSON resources of a type (51
    rows, to know whether a next page exists) in primary-key order, sent back as a searchset
    Bundle, each body put in as it is stored (no parsing). No token, tenancy or consent check,
    no search index, decryption or audit."""
    async with POOL.connection() as conn:
        cursor = await conn.execute(SEARCH, (rtype, PAGE + 1), prepare=True)
        rows = await cursor.fetchall()
    entries = [
        {
            "fullUrl": f"{rtype}/{rid}",
            "resource": orjson.Fragment(bytes(body)),
            "search": {"mode": "match"},
        }
        for rid, body in rows[:PAGE]
    ]
    links = [{"relation": "self", "url": f"/search/{rtype}"}]
    if len(rows) > PAGE:
        links.append({"relation": "next", "url": f"/search/{rtype}?after={rows[PAGE - 1][0]}"})
    body = {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
    return Response(orjson.dumps(body), media_type="application/fhir+json")


@app.post("/bundle")
async def write(request: Request) -> Response:
    """The write floor: a transaction or batch Bundle (the intake's referral, the time bank's
    questionnaires) parsed and validated as SPIS validates it (`fhir_adapters.parse`, the
    validation floor's own calls), then each entry's resource stored as JSON in one transaction,
    committed before the answer of the same type. No token, consent, reference or resubmission
    check, no encryption, search index, derived Observation, audit or job."""
    bundle = load_json(await request.body())
    validate_resource(bundle, expected_type="Bundle")
    entries = [entry["resource"] for entry in bundle["entry"]]
    rows = [(str(uuid4()), r["resourceType"], orjson.dumps(r)) for r in entries]
    async with POOL.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(WRITE, rows)
    created = [{"response": {"status": "201 Created"}} for _ in rows]
    body = {"resourceType": "Bundle", "type": f"{bundle['type']}-response", "entry": created}
    return Response(orjson.dumps(body), media_type="application/fhir+json")
