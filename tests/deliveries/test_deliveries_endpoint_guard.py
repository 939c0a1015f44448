"""The SSRF guard on subscription endpoints (deliveries/endpoint_guard.py)."""

from __future__ import annotations

import pytest

from referral_service.config import Settings
from referral_service.deliveries.endpoint_guard import UnsafeEndpoint, check_endpoint


def _settings(**values: object) -> Settings:
    # model_copy skips validation: production's other demands (real secrets) are beside the point.
    return Settings().model_copy(update=values)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.9/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
    ],
)
def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeEndpoint, match="loopback, private or link-local"):
        check_endpoint(url, _settings())


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://example.org/x", "absolute https URL"),
        ("/relative", "absolute https URL"),
        ("https://user:pw@example.org/x", "user name or password"),
        ("https://example.org/x#frag", "fragment"),
        ("https://example.org:99999/x", "not a valid URL"),
        ("https://" + "a" * 2050 + ".org/", "longer than"),
    ],
)
def test_malformed_endpoints_name_the_rule(url: str, rule: str) -> None:
    with pytest.raises(UnsafeEndpoint, match=rule):
        check_endpoint(url, _settings(), resolve=False)


def test_production_needs_https_even_for_an_allowed_host() -> None:
    production = _settings(environment="production", delivery_allowed_hosts="receiver.internal")
    with pytest.raises(UnsafeEndpoint, match="must use https"):
        check_endpoint("http://receiver.internal/hook", production)
    check_endpoint("https://receiver.internal/hook", production)


def test_the_allow_list_admits_a_host_or_one_port_of_it() -> None:
    check_endpoint("http://127.0.0.1:9000/hook", _settings(delivery_allowed_hosts="127.0.0.1"))
    only_port = _settings(delivery_allowed_hosts=" 127.0.0.1:9000 , other")
    check_endpoint("http://127.0.0.1:9000/hook", only_port)
    with pytest.raises(UnsafeEndpoint):
        check_endpoint("http://127.0.0.1:9001/hook", only_port)


def test_http_is_allowed_outside_production_for_a_public_address() -> None:
    check_endpoint("http://8.8.8.8/hook", _settings(environment="development"))


def test_an_unresolvable_name_is_refused() -> None:
    with pytest.raises(UnsafeEndpoint, match="does not resolve"):
        check_endpoint("https://no-such-host.invalid/hook", _settings())
