"""Where SPIS may send a notification (security.md: server-side request forgery).

A subscription's endpoint is a URL chosen by a client: checked when the subscription is created
or changed, and again before every delivery (a name may resolve elsewhere by then). In production
it must be https; in every environment it must not resolve to a loopback, private, link-local,
multicast, reserved or unspecified address, unless its host (or host:port) is on
SPIS_DELIVERY_ALLOWED_HOSTS (tests, the demo, a receiver inside the operator's own network).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from referral_service.config import Settings
from referral_service.errors import Invalid

MAX_ENDPOINT_LENGTH = 2048


class UnsafeEndpoint(Invalid):
    """The endpoint is not one SPIS will send to. The message names the rule, not the address."""


def check_endpoint(url: str, settings: Settings, *, resolve: bool = True) -> None:
    """Raise UnsafeEndpoint unless SPIS may POST notifications to `url`. `resolve=False` skips
    the DNS lookup (the shape alone), for a caller that will resolve it later."""
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise UnsafeEndpoint(f"The endpoint is longer than {MAX_ENDPOINT_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeEndpoint("The endpoint is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeEndpoint("The endpoint must be an absolute https URL")
    if parts.scheme != "https" and settings.environment == "production":
        raise UnsafeEndpoint("The endpoint must use https")
    if parts.username or parts.password:
        raise UnsafeEndpoint("The endpoint must not carry a user name or password")
    if parts.fragment:
        raise UnsafeEndpoint("The endpoint must not have a fragment")
    allowed = settings.delivery_allowed_host_set
    if host in allowed or (port is not None and f"{host}:{port}" in allowed):
        return
    if not resolve:
        return
    for address in _addresses(host, port or (443 if parts.scheme == "https" else 80)):
        if _internal(address):
            raise UnsafeEndpoint(
                "The endpoint resolves to a loopback, private or link-local address; SPIS only "
                "sends to public addresses (an operator may allow a host: "
                "SPIS_DELIVERY_ALLOWED_HOSTS)"
            )


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeEndpoint("The endpoint's host name does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )
