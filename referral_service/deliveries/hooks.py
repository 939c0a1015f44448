"""What deliveries does on session events: every commit's store changes become event rows for the
subscriptions that should hear of them (deliveries/events.py). Loaded by convention
(`kit.registry.load_hooks`), by `kit.changes` the first time a commit has changes, so every
process that writes registers it without importing it: the API, the worker, the CLI, the demo."""

from __future__ import annotations

from referral_service.deliveries import events
from referral_service.kit import changes

changes.on_commit(events.notify)
