"""The GP system's receiving end in the demo: it subscribes to its referrals' Task changes and to
what time banks share back, and SPIS pushes each notification to it, signed and encrypted, as it
happens. The receiver is the one `spis receive` runs (transit/receive_server.py), here on a
thread of the demo on 127.0.0.1, with its own system registered for the practice: a signing key
for its tokens and an encryption key for the notifications.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from joserfc.jwk import ECKey

from fhir_adapters.codes import (
    BACKPORT_PAYLOAD_CONTENT,
    JOSE,
    SDOH_TASK_TOPIC,
    SHARED_BACK_TOPIC,
)
from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.db import opened, unit_of_work
from referral_service.deliveries.topics import TOPICS
from referral_service.demo.setup import System
from referral_service.demo.smart_client import SmartClient, load_or_create_key, public_jwks
from referral_service.demo.story import Narrator, ok, wait_for
from referral_service.kit.jwe_keys import ECDH_ES_A256KW
from referral_service.transit.endpoints import JWKS_PATH
from referral_service.transit.receive_server import Receiver, ReceiverServer, SpisKeys
from referral_service.transit.receiver import PrivateKey

STATE_KEY = "practice-notifications"


@dataclass
class Inbox:
    """What the GP system's receiver printed, one line per notification, in arrival order."""

    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def taken(self) -> list[str]:
        with self.lock:
            return list(self.lines)


@dataclass
class GpReceiver:
    client: SmartClient
    server: ReceiverServer
    inbox: Inbox

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/spis/notifications"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(settings: Settings, base: str, practice: System) -> GpReceiver:
    """Register (once) the practice's receiving system, and start its receiver."""
    folder = settings.var_dir / "demo"
    signing = load_or_create_key(folder / "practice-notifications.private.jwk")
    sealing = load_or_create_key(folder / "practice-notifications.enc.private.jwk")
    client_id = _registered(settings, practice, signing, sealing)
    inbox = Inbox()
    keys: list[PrivateKey] = [ECKey.import_key(sealing.as_dict(private=True, kid=_kid(sealing)))]
    receiver = Receiver(SpisKeys(f"{base}{JWKS_PATH}"), keys, say=inbox.say)
    server = ReceiverServer(("127.0.0.1", 0), receiver)
    threading.Thread(target=server.serve_forever, name="gp-receiver", daemon=True).start()
    return GpReceiver(SmartClient(base, client_id, signing), server, inbox)


def _kid(key: ECKey) -> str:
    return f"{key.thumbprint()}-enc"


def _registered(settings: Settings, practice: System, signing: ECKey, sealing: ECKey) -> str:
    state_file = settings.var_dir / "demo" / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    known = state.get(STATE_KEY)
    if known and known.get("org_id") == practice.org_id:
        return str(known["client_id"])
    jwks = public_jwks(signing)
    jwks["keys"].append(
        sealing.as_dict(private=False, kid=_kid(sealing), use="enc", alg=ECDH_ES_A256KW)
    )
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        client = register_client(
            session, practice.org_id, jwks, None, name=f"{practice.name} notifications"
        )
        client_id = client.id
    state[STATE_KEY] = {"org_id": practice.org_id, "client_id": client_id}
    state_file.write_text(json.dumps(state, indent=2))
    return client_id


def subscribe(narrator: Narrator, gp: GpReceiver) -> None:
    with narrator.step("GP system: subscribes to its referrals and to what comes back") as say:
        # An earlier run's subscriptions point at a receiver that has gone: remove them.
        earlier = ok(gp.client.fhir("GET", "Subscription")).get("entry", [])
        for entry in earlier:
            gone = gp.client.fhir("DELETE", f"Subscription/{entry['resource']['id']}")
            if gone.status_code >= 400:
                ok(gone)
        if earlier:
            say(f"removed {len(earlier)} subscriptions left by an earlier run (DELETE)")
        for topic, content, what in (
            (SDOH_TASK_TOPIC, "id-only", "referral Task changes, id-only"),
            (SHARED_BACK_TOPIC, "full-resource", "shared back, full resources"),
        ):
            body = {
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "File what happens to our social prescribing referrals",
                "criteria": topic,
                "channel": {
                    "type": "rest-hook",
                    "endpoint": gp.url,
                    "payload": JOSE,
                    "_payload": {
                        "extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": content}]
                    },
                },
            }
            made = ok(gp.client.fhir("POST", "Subscription", body))
            say(f"Subscription/{made['id']} ({what}): {made['status']}")
        wait_for(lambda: gp.inbox.taken().count("handshake") >= 2, "the two handshakes")
        say(f"both handshakes arrived at {gp.url}, signed by SPIS and encrypted to the GP system")


def report(narrator: Narrator, gp: GpReceiver, quiet_s: float = 2.0) -> None:
    """Once the notifications stop coming for `quiet_s` (the worker has caught up), print them."""
    with narrator.step("GP system: the notifications SPIS pushed to it") as say:
        wait_for(lambda: _events(gp) > 0, "the first event notification")
        seen, still_since = len(gp.inbox.taken()), time.monotonic()
        deadline = still_since + 30
        while time.monotonic() - still_since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.2)
            if (now_seen := len(gp.inbox.taken())) != seen:
                seen, still_since = now_seen, time.monotonic()
        for line in gp.inbox.taken():
            say(_short(line, gp.client.base_url))
        say(
            f"{_events(gp)} events; each verified (webhook signature by SPIS's published key), "
            "decrypted with the GP system's own key, its number checked for gaps"
        )


def _short(line: str, base: str) -> str:
    """`spis receive`'s line with topic names for their canonical URLs and local references."""
    for url, topic in TOPICS.items():
        line = line.replace(url, f"[{topic.name}]")
    return line.replace(f"{base}/fhir/", "")


def _events(gp: GpReceiver) -> int:
    return sum(line.startswith(("event #", "gap:")) for line in gp.inbox.taken())
