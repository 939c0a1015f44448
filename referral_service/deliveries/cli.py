"""`spis deliveries list|retry|purge`: the operator's view of the delivery rows. Ids, kinds,
statuses and SPIS's own short reasons only: no notification body, endpoint or patient data."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.deliveries import sending_repository as repository
from referral_service.deliveries.models import (
    Delivery,
    DeliveryStatus,
    SubscriptionStatus,
)
from referral_service.jobs.service import JobName, send_after_commit
from referral_service.kit.clock import as_utc, utcnow

commands = CommandGroup()


def delivery_json(delivery: Delivery) -> dict[str, object]:
    return {
        "seq": delivery.seq,
        "id": delivery.id,
        "subscription": delivery.subscription_id,
        "kind": delivery.kind.value,
        "event_number": delivery.event_number,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": (
            _iso(delivery.next_attempt_at) if delivery.status is DeliveryStatus.PENDING else None
        ),
    }


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="seconds")


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        choices=[s.value for s in DeliveryStatus],
        help="only deliveries in this status (default: any)",
    )
    parser.add_argument(
        "--subscription", help="only this subscription's deliveries, by id (default: all)"
    )
    parser.add_argument("--limit", type=int, default=50, help="at most this many, newest first")


@commands("deliveries", "list", help="list notification deliveries", configure=_list_arguments)
def deliveries_list(args: argparse.Namespace, invocation: Invocation) -> object:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1")
    with invocation.unit_of_work() as session:
        found = repository.listed(
            session,
            status=DeliveryStatus(args.status) if args.status else None,
            subscription_id=args.subscription,
            limit=args.limit,
        )
        return [delivery_json(delivery) for delivery in found]


def _retry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "delivery", nargs="?", help="the dead-letter delivery's id (required unless --subscription)"
    )
    parser.add_argument(
        "--subscription",
        help="every dead-letter delivery of this subscription, by id (required unless a "
        "delivery id is given)",
    )


@commands(
    "deliveries",
    "retry",
    help="send dead-letter deliveries again now (attempts reset); a subscription in `error` "
    "sends again",
    configure=_retry_arguments,
)
def deliveries_retry(args: argparse.Namespace, invocation: Invocation) -> object:
    if (args.delivery is None) == (args.subscription is None):
        raise CommandError("name a delivery id, or --subscription with a subscription id")
    with invocation.unit_of_work() as session:
        if args.delivery is not None:
            subscription_id, dead = _one_dead_letter(session, args.delivery)
        else:
            subscription_id = args.subscription
            _check_subscription(session, subscription_id)
            dead = repository.dead_letters(session, subscription_id)
        now = utcnow()
        for delivery in dead:
            _reset(delivery, now)
        session.flush()
        status = _reopen(session, subscription_id, now)
        send_after_commit(session, JobName.DELIVER, subscription_id)
        return {
            "subscription": subscription_id,
            "subscription_status": status.value,
            "retried": [delivery.id for delivery in dead],
        }


def _one_dead_letter(session: Session, delivery_id: str) -> tuple[str, list[Delivery]]:
    delivery = repository.delivery_for_update(session, delivery_id)
    if delivery is None:
        raise CommandError(f"no delivery with id {delivery_id} (see `spis deliveries list`)")
    if delivery.status is not DeliveryStatus.DEAD:
        raise CommandError(
            f"delivery {delivery_id} is {delivery.status.value}: only dead-letter deliveries "
            "are retried"
        )
    _check_subscription(session, delivery.subscription_id)
    return delivery.subscription_id, [delivery]


def _check_subscription(session: Session, subscription_id: str) -> None:
    sub = repository.subscription_for_update(session, subscription_id)
    if sub is None:
        raise CommandError(f"no subscription with id {subscription_id}")
    if sub.status is SubscriptionStatus.OFF:
        raise CommandError(
            f"subscription {subscription_id} is off: nothing would be sent (its owner must "
            "create a new one)"
        )


def _reset(delivery: Delivery, now: datetime) -> None:
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.retried_at = now  # a fresh retry window, from now


def _reopen(session: Session, subscription_id: str, now: datetime) -> SubscriptionStatus:
    """An `error` subscription sends again: `requested` while its handshake is still to be
    delivered, else `active`."""
    status = (
        SubscriptionStatus.REQUESTED
        if repository.has_pending_handshake(session, subscription_id)
        else SubscriptionStatus.ACTIVE
    )
    repository.reopen(session, subscription_id, status, now)
    sub = repository.subscription(session, subscription_id)
    assert sub is not None
    return sub.status


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        type=int,
        default=30,
        metavar="DAYS",
        help="delete delivered, cancelled and dead-letter deliveries older than this many days",
    )


@commands(
    "deliveries",
    "purge",
    help="delete finished deliveries (never pending ones) older than --older-than days",
    configure=_purge_arguments,
)
def deliveries_purge(args: argparse.Namespace, invocation: Invocation) -> object:
    if args.older_than < 0:
        raise CommandError("--older-than must be 0 or more days")
    with invocation.unit_of_work() as session:
        purged = repository.purge(session, utcnow() - timedelta(days=args.older_than))
        return {"purged": purged, "older_than_days": args.older_than}
