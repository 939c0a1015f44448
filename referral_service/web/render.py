"""Rendering pages: the one Jinja2 environment, and `render` / `see_other` for every page.

Templates are read from the installed package (PackageLoader), so a wheel install works the same as
a checkout. Autoescaping is on for everything, and a name a template uses but was not given is an
error (StrictUndefined) rather than an empty string on screen.

Every page gets, besides its own context:
- `viewer`: the signed-in person (web.security.Viewer), or None;
- `csrf_token`: for the hidden field of every POST form (see web/csrf.py);
- `current_path`, `nav` (the viewer's links, web/nav.py) and `role_label`;
- `notices`: one-line messages for the status region (the page's own, plus `?notice=` codes);
- `errors` (field name → message) and `form_error`, empty unless the page passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse, RedirectResponse

from referral_service.web.csrf import finish_response, form_csrf_token
from referral_service.web.headers import headers_for
from referral_service.web.nav import NAV, ROLE_LABELS
from referral_service.web.notices import NOTICES
from referral_service.web.security import Viewer

environment = Environment(
    loader=PackageLoader("referral_service.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    page = {**_common(request), **(context or {})}
    page["notices"] = [*_url_notices(request), *(context or {}).get("notices", ())]
    html = environment.get_template(template).render(page)
    response = HTMLResponse(html, status_code=status, headers=headers_for(request.url.path))
    finish_response(request, response)
    return response


def see_other(url: str, *, notice: str | None = None) -> RedirectResponse:
    """303 to a local URL, e.g. after a form is handled (so a reload does not post it again).
    `notice` is a code from web/notices.py that the next page shows."""
    if notice is not None:
        if notice not in NOTICES:
            raise KeyError(f"unknown notice {notice!r}: add it to web/notices.py")
        url = f"{url}{'&' if '?' in url else '?'}{urlencode({'notice': notice})}"
    return RedirectResponse(url, status_code=303)


def _common(request: Request) -> dict[str, Any]:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    return {
        "viewer": viewer,
        "csrf_token": form_csrf_token(request),
        "current_path": request.url.path,
        "nav": NAV.get(viewer.role, []) if viewer else [],
        "role_label": ROLE_LABELS[viewer.role] if viewer else "",
        "errors": {},
        "form_error": None,
    }


def _url_notices(request: Request) -> list[str]:
    code = request.query_params.get("notice")
    return [NOTICES[code]] if code in NOTICES else []
