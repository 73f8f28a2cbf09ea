"""Brokers by URL: the registry, the spool as an Endpoint, and URLs in messages."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from letterlock import Topics, UsageError
from letterlock.core.topics import Dialect
from letterlock.transports import Ack, DeadLetter, DeadLetterReason, Endpoint, Spool
from letterlock.transports.urls import SCHEMES, Adapter, connect, redact


def test_a_spool_url_connects_to_a_spool_endpoint(tmp_path: Path) -> None:
    endpoint = connect(f"spool://{tmp_path}/spool.db")
    try:
        assert isinstance(endpoint, Spool)
        assert endpoint.path == tmp_path / "spool.db"
        assert endpoint.dialect is Dialect.AMQP
        _check_endpoint(endpoint)
    finally:
        endpoint.close()


def _check_endpoint(endpoint: Endpoint) -> None:
    subscription = endpoint.subscribe(Topics("orders.*"), group="billing")
    endpoint.publish("orders.eu", b"sealed bytes")  # waits in the group's queue
    [delivery] = list(subscription.deliveries(idle_timeout=0.05))
    assert (delivery.body, delivery.topic, delivery.queue) == (
        b"sealed bytes",
        "orders.eu",
        "billing",
    )
    endpoint.settle(delivery, DeadLetter(reason=DeadLetterReason.REJECTED))
    [dead] = endpoint.dead_letters("billing")
    assert (dead.body, dead.reason) == (b"sealed bytes", "rejected")
    assert endpoint.redrive("billing") == 1
    assert endpoint.dead_letters("billing") == []
    [again] = list(subscription.deliveries(idle_timeout=0.05))
    endpoint.settle(again, Ack())
    subscription.close()


def test_a_subscription_waits_for_its_idle_timeout_and_no_longer(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        subscription = spool.subscribe(Topics("#"), group="g")
        started = time.monotonic()
        assert list(subscription.deliveries(idle_timeout=0.3)) == []
        assert 0.3 <= time.monotonic() - started < 1.0


def test_a_second_subscribe_keeps_what_waits(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        endpoint: Endpoint = spool  # mypy checks that a Spool is an Endpoint
        endpoint.subscribe(Topics("a.#"), group="g").close()
        endpoint.publish("a.b", b"x")
        [delivery] = list(endpoint.subscribe(Topics("a.#"), group="g").deliveries(idle_timeout=0))
        assert delivery.body == b"x"


@pytest.mark.parametrize(
    "url",
    [
        "spool://host/x.db",
        "spool:",
        "spool:///x.db?mode=ro",
        "spool:///x.db#frag",
        "spool:///x.db?lease=abc",
        "spool:///x.db?lease=0",
        "spool:///x.db?lease=inf",
        "spool:///x.db?lease=nan",
        "spool:///x.db?lease=1&lease=2",
        "spool:///x.db?lease",
    ],
)
def test_malformed_spool_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError, match="spool"):
        Spool.from_url(url)


def test_a_spool_serves_amqp_patterns_only(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool, pytest.raises(UsageError, match="AMQP"):
        spool.subscribe(Topics.mqtt("a/+"), group="g")


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"letterlock knows spool://, amqp://") as caught:
        connect("kafka://user:secret@host:9092/")
    assert "secret" not in str(caught.value)


def test_a_missing_client_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ll_fake_adapter.py").write_text("import ll_not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(SCHEMES, "fake", Adapter("ll_fake_adapter", "FakeEndpoint", "fake"))
    with pytest.raises(UsageError, match=r"pip install 'letterlock\[fake\]'"):
        connect("fake://host/")
    sys.modules.pop("ll_fake_adapter", None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:***@127.0.0.1:5672/%2F"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("spool:///tmp/x.db", "spool:///tmp/x.db"),
    ],
)
def test_urls_appear_without_their_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_spool_url_sets_the_lease(tmp_path: Path) -> None:
    endpoint = connect(f"spool://{tmp_path}/spool.db?lease=2.5")
    try:
        assert isinstance(endpoint, Spool)
        assert endpoint.lease_seconds == 2.5
    finally:
        endpoint.close()
