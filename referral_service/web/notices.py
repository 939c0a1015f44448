"""The one-line notices a page can show after a redirect: `see_other(url, notice="signed-out")`
adds `?notice=signed-out`, and the next page shows the text below in its status region.

Only codes travel in the URL, never text: nothing a link can inject, and no personal data in
addresses or logs. A new notice is a new entry here.
"""

from __future__ import annotations

NOTICES: dict[str, str] = {
    "signed-out": "You have signed out.",
    "session-ended": "Your session ended. Sign in again to carry on.",
    # The practice's referrals (web/practice.py)
    "referral-sent": "Referral sent",
    "referral-cancelled": "Referral cancelled",
}
