"""The web workspace: server-rendered pages for time bank brokers, practice staff and health-board
analysts (issue 9).

Part of the edge, like `fhir/`: the pages call the domain services directly with the signed-in
person's Principal, so consent, tenancy and audit apply exactly as they do over FHIR.

Adding a page (say, a broker's referral list):

1. a module here with `router = APIRouter()` and routes that take `viewer: Broker` (or
   `PracticeStaff`, `Analyst`; form fields as `FormText`: all in web/security.py), call the
   domain service with `viewer.context`, and answer `render(request, "broker/referrals.html",
   {...})` or, after a form, `see_other(url, notice="...")` (web/render.py, web/notices.py);
2. one `router.include_router(...)` line in web/router.py: that brings the CSRF check
   (web/csrf.py) on every form posted to it, the HTML error pages and the security headers;
3. a template under templates/ that extends "base.html" (fills `title` and `content`), with
   forms from "macros.html" (`ui.csrf_field(csrf_token)`, `ui.field(...)`,
   `ui.error_summary(errors)`); no inline script or style (the CSP refuses them);
4. its link in web/nav.py, and its tests in tests/web/ (tests/fixtures/web.py signs people in).

A service's NotFound becomes the one 404 page, any other refusal a page with its message.
"""
