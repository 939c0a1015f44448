"""A FastAPI route class for the JSON API: a body with a repeated key is refused, not guessed at.

FastAPI parses JSON bodies with the standard library, which keeps the last of two equal keys, so
`{"minutes": 30, "minutes": 600}` would be read as 600 while a log or proxy reads 30. The body is
checked before FastAPI parses it (ledger bodies are a few hundred bytes: the second parse is
microseconds). /fhir bodies are parsed by `fhir_adapters.parse`, which does the same check.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from fhir_adapters.parse import DuplicateKeyError, loads_unique
from referral_service.errors import ServiceError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class UniqueKeysRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()  # cached on the request: FastAPI reads the same bytes
            if body:
                refuse_duplicate_keys(body)
            return await handler(request)

        return checked


def refuse_duplicate_keys(body: bytes) -> None:
    """400 for a JSON object with a repeated key; anything that is not JSON is left to FastAPI,
    which answers it as it always has."""
    try:
        loads_unique(body)
    except DuplicateKeyError as exc:
        raise ServiceError(exc.describe("The request body"), issue_code="structure") from None
    except ValueError:
        return
