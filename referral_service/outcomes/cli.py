"""`spis outcomes ...`: keeping the outcome rows whole, and the figures boards enter."""

from __future__ import annotations

from referral_service.commands import CommandGroup

commands = CommandGroup()
