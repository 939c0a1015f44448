"""The loop, told step by step: every call goes over HTTP with each system's own signed token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from referral_service.demo.payloads import referral_bundle, swemwbs
from referral_service.demo.smart_client import SmartClient
from referral_service.kit.refs import id_of

DEMO_NHS_NUMBER = "9990000018"  # NHS England's reserved test range
Say = Callable[[str], None]


class Narrator:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    @contextmanager
    def step(self, title: str) -> Iterator[Say]:
        self.done += 1
        started = time.perf_counter()
        print(f"[{self.done:>2}/{self.total}] {title}", flush=True)
        yield lambda line: print(f"        {line}", flush=True)
        print(f"        ({(time.perf_counter() - started) * 1000:.0f} ms)", flush=True)


def ok(response: Any) -> Any:
    if response.status_code >= 400:
        raise SystemExit(
            f"spis demo: {response.request.method} {response.request.url.path} "
            f"answered {response.status_code}: {response.text[:400]}"
        )
    return response.json()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise SystemExit(f"spis demo: gave up waiting for {what} after {timeout:.0f} s")


def inbox(broker: SmartClient, org_id: str, referral_task: str) -> list[dict[str, Any]]:
    found = ok(broker.fhir("GET", f"Task?owner=Organization/{org_id}&status=requested"))
    return [
        e["resource"]
        for e in found["entry"]
        if e["resource"]["partOf"][0]["reference"] == referral_task
    ]


def set_status(
    broker: SmartClient, task: dict[str, Any], status: str, reason: str | None = None
) -> dict[str, Any]:
    changed = {**task, "status": status}
    if reason:
        changed["statusReason"] = {"text": reason}
    return dict(
        ok(
            broker.fhir(
                "PUT", f"Task/{task['id']}", changed, **{"If-Match": task["meta"]["versionId"]}
            )
        )
    )


def refer(narrator: Narrator, gp: SmartClient, practice_id: str) -> tuple[str, str, str]:
    with narrator.step(
        "GP practice: signs an ES384 assertion, gets a 5-minute bearer token"
    ) as say:
        say(f"token valid for {gp.seconds_left()} s")
    referral_id = f"DEMO-{datetime.now(UTC):%Y%m%d%H%M%S}"
    bundle = referral_bundle(practice_id, DEMO_NHS_NUMBER, referral_id, now())
    with narrator.step(
        f"GP practice: sends referral {referral_id} (Patient + Consent + ServiceRequest)"
    ) as say:
        answer = ok(gp.fhir("POST", "", bundle))
        for entry in answer["entry"]:
            say(f"{entry['response']['status']:<12} {entry['response']['location']}")
        again = ok(gp.fhir("POST", "", bundle))
        say(
            "sent again after a timeout: "
            + ", ".join(e["response"]["status"] for e in again["entry"])
            + " (nothing duplicated)"
        )
    refs = ["/".join(e["response"]["location"].split("/")[:2]) for e in answer["entry"]]
    tasks = ok(gp.fhir("GET", f"Task?focus={refs[2]}"))
    return refs[0], refs[2], f"Task/{tasks['entry'][0]['resource']['id']}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def days_ago(days: int) -> date:
    return date.today() - timedelta(days=days)


def routing(
    narrator: Narrator,
    gp: SmartClient,
    first: SmartClient,
    first_id: str,
    second: SmartClient,
    second_id: str,
    referral_task: str,
) -> dict[str, Any]:
    with narrator.step(
        "SPIS worker: routes the referral (catchment SE6, befriending, spare capacity)"
    ) as say:
        [offered] = wait_for(lambda: inbox(first, first_id, referral_task), "routing")
        say(f"child Task/{offered['id']} is in {_name(first, first_id)}'s inbox")
    with narrator.step(f"{_name(first, first_id)}: declines, with a reason the GP will see") as say:
        set_status(first, offered, "rejected", "No befriending volunteers free until the spring")
        [offered] = wait_for(lambda: inbox(second, second_id, referral_task), "re-routing")
        say(f"re-routed: child Task/{offered['id']} is in {_name(second, second_id)}'s inbox")
        for name, reason in declines(gp, referral_task):
            say(f'the GP sees, searching Task?part-of={referral_task}: {name} declined: "{reason}"')
    with narrator.step(f"{_name(second, second_id)}: accepts") as say:
        accepted = set_status(second, offered, "accepted")
        say(f"child Task {accepted['status']}; the GP's referral Task follows")
    return accepted


def engagement(
    narrator: Narrator, broker: SmartClient, org_id: str, child: dict[str, Any]
) -> dict[str, str]:
    ledger = f"/timebanks/{org_id}"
    broker_name = _name(broker, org_id)
    with narrator.step(f"{broker_name} (broker): enrols the referred person as a member") as say:
        enrolled = ok(
            broker.api(
                "POST", f"{ledger}/enrolments", {"child_task_id": child["id"], "alias": "Alex"}
            )
        )
        say(
            f"member {enrolled['member']['id'][:8]}…, ProgramEnrollmentStatus {enrolled['observation']}"
        )
        child = ok(broker.fhir("GET", f"Task/{child['id']}"))
        set_status(broker, child, "in-progress")
    patient, filler = child["for"]["reference"], child["focus"]["reference"]
    with narrator.step(f"{broker_name}: records SWEMWBS at intake (items and answers)") as say:
        qr = ok(
            broker.fhir(
                "POST",
                "QuestionnaireResponse",
                swemwbs(patient, filler, [2, 2, 3, 2, 2, 3, 2], now()),
            )
        )
        say(f"QuestionnaireResponse/{qr['id']} scored by SPIS (raw 16 → metric 16.36)")
    members = {"alex": enrolled["member"]["id"]}
    with narrator.step(f"{broker_name}: records exchanges; Alex receives and gives time") as say:
        for alias in ("Maureen", "Dev"):
            members[alias.lower()] = ok(broker.api("POST", f"{ledger}/members", {"alias": alias}))[
                "id"
            ]
        for giver, receiver, minutes, category, ago in (
            ("maureen", "alex", 90, "befriending", 40),
            ("alex", "dev", 60, "gardening", 30),
            ("dev", "alex", 45, "digital-skills", 20),
            ("alex", "maureen", 120, "walking-group", 10),
        ):
            ok(
                broker.api(
                    "POST",
                    f"{ledger}/exchanges",
                    {
                        "giver_id": members[giver],
                        "receiver_id": members[receiver],
                        "minutes": minutes,
                        "date": days_ago(ago).isoformat(),
                        "category": category,
                    },
                )
            )
            say(f"{giver:>8} → {receiver:<8} {minutes:>4} min {category}")
        statement = ok(broker.api("GET", f"{ledger}/members/{members['alex']}"))
        say(
            f"Alex: gave {statement['given_minutes']} min, received {statement['received_minutes']} min, "
            f"{statement['partners']} partners, reciprocity {statement['indicators']['reciprocity']:.2f}"
        )
        say(reciprocity_in_words(statement["indicators"]["reciprocity"]))
    with narrator.step(f"{broker_name}: records SWEMWBS at follow-up, completes") as say:
        ok(
            broker.fhir(
                "POST",
                "QuestionnaireResponse",
                swemwbs(patient, filler, [4, 4, 4, 3, 4, 4, 4], now()),
            )
        )
        child = ok(broker.fhir("GET", f"Task/{child['id']}"))
        done = set_status(broker, child, "completed")
        say(f"child Task {done['status']}")
    return members


def gp_view(narrator: Narrator, gp: SmartClient, service_request: str, referral_task: str) -> None:
    with narrator.step("GP practice: what came back, found by search") as say:
        task = ok(gp.fhir("GET", referral_task))
        outputs = task.get("output", [])
        say(f"referral Task: {task['status']} with {len(outputs)} outputs, each one read:")
        for number, output in enumerate(outputs, start=1):
            kind = output["type"]["coding"][0]["code"]
            resource = ok(gp.fhir("GET", output["valueReference"]["reference"]))
            say(f"{number:>2}. {kind:<18} {describe(resource)}")
        scores = ok(
            gp.fhir(
                "GET",
                f"Observation?based-on={service_request}"
                "&code=http://snomed.info/sct|718466001&_sort=_lastUpdated",
            )
        )["entry"]
        values = [e["resource"]["valueQuantity"]["value"] for e in scores]
        if len(values) >= 2:
            change = values[-1] - values[0]
            say(
                f"SWEMWBS metric {values[0]:.2f} → {values[-1]:.2f} ({change:+.2f}; 3 points is a "
                f"meaningful change: {'yes' if abs(change) >= 3 else 'no'})"
            )


def declines(gp: SmartClient, referral_task: str) -> list[tuple[str, str]]:
    """What the practice sees of a decline: the child Tasks of its referral, with their reasons."""
    found = ok(gp.fhir("GET", f"Task?part-of={referral_task}&status=rejected"))
    return [
        (
            _name(gp, id_of(e["resource"]["owner"]["reference"])),
            e["resource"].get("statusReason", {}).get("text", "no reason given"),
        )
        for e in found["entry"]
    ]


def reciprocity_in_words(ratio: float) -> str:
    balance = (
        "about balanced"
        if 0.9 <= ratio <= 1.1
        else "more given than received"
        if ratio > 1
        else "more received than given"
    )
    return (
        f"(reciprocity {ratio:.2f} = minutes given ÷ minutes received: Alex gave {ratio:.2f} "
        f"minutes for every minute received; 1.00 is an even exchange, so {balance})"
    )


def describe(resource: dict[str, Any]) -> str:
    """One line for a Procedure or Observation the GP got back."""
    what = _text(resource.get("code", {}))
    if resource["resourceType"] == "Procedure":
        day = resource.get("performedPeriod", {}).get("start", "")
        note = (resource.get("note") or [{}])[0].get("text", "")
        return f"{resource['resourceType']} {what}, {day}: {note}"
    parts = [f"{_text(c['code'])}: {_value(c)}" for c in resource.get("component", [])]
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{resource['resourceType']} {what}: {_value(resource)}{detail}"


def _text(concept: dict[str, Any]) -> str:
    return str(concept.get("text") or (concept.get("coding") or [{}])[0].get("display", "?"))


def _value(element: dict[str, Any]) -> str:
    if "valueQuantity" in element:
        quantity = element["valueQuantity"]
        unit = str(quantity.get("unit", ""))
        return f"{quantity['value']:g} {'' if unit.startswith('{') else unit}".rstrip()
    if "valueCodeableConcept" in element:
        return _text(element["valueCodeableConcept"])
    return next((str(v) for k, v in element.items() if k.startswith("value")), "(no value)")


def _name(client: SmartClient, org_id: str) -> str:
    return str(ok(client.fhir("GET", f"Organization/{org_id}"))["name"])
