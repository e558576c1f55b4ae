"""``tidings run`` delivering for real: SMTP to an aiosmtpd server and signed webhooks to
a loopback receiver, configured the way an operator would, through the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.smtp_server import Mailbox, StartServer
from tests.webhook_receiver import SECRET, Receiver
from tidings.adapters.channels.addresses import AddressGuard, parse_allowed_networks
from tidings.adapters.channels.webhook import WebhookSender
from tidings.adapters.memory import MemoryStore
from tidings.core import Channel, Event, Preference, Severity, decide_with
from tidings.core.records import DeliveryStatus, RecipientChange
from tidings.runner.cli import main
from tidings.runner.dispatch.dispatcher import Dispatcher
from tidings.runner.dispatch.senders import default_senders
from tidings.testing import FakeClock


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.start()
    try:
        yield found
    finally:
        found.stop()


def cli(database: str, *argv: str) -> int:
    return main(["--database", database, *argv])


def configure(
    monkeypatch: pytest.MonkeyPatch, smtp_port: int, allowed: str, database: str, url: str
) -> None:
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(smtp_port))
    monkeypatch.setenv("SMTP_TLS_MODE", "none")
    monkeypatch.setenv("SMTP_FROM_ADDRESS", "tidings@example.com")
    monkeypatch.setenv("TIDINGS_WEBHOOK_ALLOWED_NETWORKS", allowed)
    assert cli(database, "migrate") == 0
    assert (
        cli(database, "prefs", "set", "ana", "overload", "--channels", "in_app,email,webhook") == 0
    )
    assert cli(
        database, "recipients", "set", "ana", "--email", "ana@example.com",
        "--webhook-url", url, "--webhook-secret", SECRET,
    ) == 0  # fmt: skip
    assert cli(
        database, "send", "--user", "ana", "--kind", "overload", "--severity", "critical",
        "--title", "Overload", "--body", "Hours crossed 60", "--event-id", "e1",
    ) == 0  # fmt: skip


def test_run_delivers_email_and_signed_webhooks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_smtp_server: StartServer,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    box = Mailbox()
    port = start_smtp_server(box)
    database = f"sqlite:///{tmp_path / 'tidings.db'}"
    configure(monkeypatch, port, "127.0.0.0/8", database, receiver.url("/ok"))
    caplog.set_level(logging.DEBUG)

    assert cli(database, "run", "--until-idle") == 0
    capsys.readouterr()
    assert cli(database, "--json", "deliveries") == 0
    deliveries = {d["channel"]: d for d in json.loads(capsys.readouterr().out)}

    assert {channel: d["status"] for channel, d in deliveries.items()} == {
        "in_app": "delivered",
        "email": "delivered",
        "webhook": "delivered",
    }
    [received] = box.received
    message = received.message
    assert message["Subject"] == "Overload"
    assert message["Message-ID"] == f"<{deliveries['email']['delivery_id']}@example.com>"
    [request] = receiver.received
    assert request.verified is not None
    assert request.headers["webhook-id"] == deliveries["webhook"]["delivery_id"]

    assert cli(database, "--json", "inbox", "ana") == 0
    [notification] = json.loads(capsys.readouterr().out)["notifications"]
    # in the order the channels succeeded
    assert sorted(notification["dispatched_via"]) == ["email", "in_app", "webhook"]

    assert cli(database, "--json", "explain", "e1") == 0
    explained = capsys.readouterr().out
    secret_body = SECRET.removeprefix("whsec_")
    for text in [explained, *(record.getMessage() for record in caplog.records)]:
        assert secret_body not in text
        assert request.headers["webhook-signature"] not in text


def test_webhooks_to_loopback_are_refused_without_an_allow_list(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_smtp_server: StartServer,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = start_smtp_server(Mailbox())
    database = f"sqlite:///{tmp_path / 'tidings.db'}"
    configure(monkeypatch, port, "", database, receiver.url("/ok", host="localhost"))

    assert cli(database, "run", "--until-idle") == 0
    capsys.readouterr()
    assert cli(database, "--json", "deliveries", "--status", "dead") == 0
    [dead] = json.loads(capsys.readouterr().out)

    assert dead["channel"] == "webhook"
    assert dead["last_error"].startswith("destination refused: ")
    assert receiver.received == []


def test_a_crash_between_send_and_settle_resends_with_the_same_id(receiver: Receiver) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = MemoryStore(clock=clock, lease=timedelta(seconds=10))
    guard = AddressGuard(parse_allowed_networks("127.0.0.0/8"))

    async def scenario() -> None:
        await store.set_preference("ana", "overload", Preference(("webhook",), Severity.INFO))
        await store.update_recipient(
            RecipientChange(user_id="ana", webhook_url=receiver.url("/ok"), webhook_secret=SECRET)
        )
        event = Event(
            event_id="e1", user_id="ana", kind="overload", severity=Severity.WATCH,
            title="Overload", body="b",
        )  # fmt: skip
        await store.enqueue([event])
        # The first runner records, sends, and dies before it can settle.
        [recorded] = (await store.decide_claimable("doomed", 10, decide_with)).recorded
        [job] = recorded.jobs
        sender = WebhookSender(store, guard, clock=clock)
        await sender.send(job)
        await sender.aclose()

        clock.advance(timedelta(seconds=11))  # its delivery lease runs out
        senders = {**default_senders(), Channel.WEBHOOK: WebhookSender(store, guard, clock=clock)}
        await Dispatcher(store, senders, worker_id="heir", clock=clock).run(until_idle=True)
        [delivery] = await store.deliveries()
        assert delivery.status is DeliveryStatus.DELIVERED
        assert delivery.attempts == 1

    asyncio.run(scenario())
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.verified == second.verified
