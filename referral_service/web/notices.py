"""The one-line notices a page can show after a redirect: `see_other(url, notice="signed-out")`
adds `?notice=signed-out`, and the next page shows the text below in its status region.

Only codes travel in the URL, never text: nothing a link can inject, and no personal data in
addresses or logs. A new notice is a new entry here.
"""

from __future__ import annotations

NOTICES: dict[str, str] = {
    "signed-out": "You have signed out.",
    "session-ended": "Your session ended. Sign in again to carry on.",
    # The broker's referral pages (web/broker.py)
    "referral-accepted": "Referral accepted. The GP can see that your time bank has taken it.",
    "referral-declined": "Referral declined. The GP can read your reason.",
    "referral-on-hold": "Referral put on hold.",
    "referral-started": "Referral started.",
    "referral-completed": "Referral marked complete.",
    "referral-failed": "Referral marked failed.",
    "member-enrolled": "The person is now a member of your time bank.",
    # The broker's ledger pages (web/ledger.py, web/exchanges.py, web/questionnaires.py).
    "member-added": "Member added.",
    "membership-ended": "Membership ended. The member's history and balance are kept.",
    "exchange-recorded": "Exchange recorded.",
    "exchange-reversed": "Exchange reversed. The exchange and its reversal are both listed.",
    "questionnaire-saved": "Questionnaire saved. The scores are under Wellbeing.",
    # The practice's referrals (web/practice.py)
    "referral-sent": "Referral sent.",
    "referral-cancelled": "Referral cancelled.",
    # The analyst's pages (web/analyst.py)
    "programme-cost-saved": "Programme cost saved. The social value estimate below uses it.",
}
