"""`spis health api|worker|beat`: exit status for container health checks."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.health.probes import ProbeFailed, probe_api, probe_beat, probe_worker

commands = CommandGroup()


def _health_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000/readyz", help="the readiness URL to call"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


@commands(
    "health",
    "api",
    help="exit 0 when the API answers /readyz with 200",
    configure=_health_api_arguments,
)
def health_api(args: argparse.Namespace, invocation: Invocation) -> object:
    return _probe(lambda: probe_api(args.url, args.timeout))


def _health_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


@commands(
    "health",
    "worker",
    help="exit 0 when this host's `spis worker` answers a ping through the broker",
    configure=_health_worker_arguments,
)
def health_worker(args: argparse.Namespace, invocation: Invocation) -> object:
    return _probe(lambda: probe_worker(invocation.settings, args.timeout))


def _health_beat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-age",
        type=float,
        default=120.0,
        help="the oldest heartbeat, in seconds, that still counts as healthy",
    )


@commands(
    "health",
    "beat",
    help="exit 0 when `spis beat` touched its heartbeat file recently",
    configure=_health_beat_arguments,
)
def health_beat(args: argparse.Namespace, invocation: Invocation) -> object:
    return _probe(lambda: probe_beat(invocation.settings, args.max_age))


def _probe(probe: Callable[[], object]) -> object:
    try:
        return probe()
    except ProbeFailed as exc:
        raise CommandError(str(exc)) from None
