"""PostgreSQL restarted under runners that are delivering: nothing is sent twice and the
outage costs no delivery attempt.

Three ``tidings run --until-idle`` processes drain events with an email each through a
real SMTP server while the server is restarted twice. Each runner renews its claims
first when the database is back (before it claims or settles anything), so no claim
lapses for want of a renewal and no other runner takes over a delivery it is
sending; a send or settle that found the database away is made again, never counted
as a failed attempt.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.adapters.test_postgres_shutdown import (
    SlowMailbox,
    email_deliveries,
    prepare,
    seconds_to_exit,
    start_runner,
    wait_until,
)
from tests.smtp_server import StartServer

EMAILS = 300


def restart_postgresql() -> None:
    version = next(Path("/etc/postgresql").iterdir()).name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )


def test_two_restarts_mid_drain_resend_nothing_and_cost_no_attempt(
    postgres_url: str,
    tmp_path: Path,
    start_smtp_server: StartServer,
    runners: list[subprocess.Popen[bytes]],
) -> None:
    prepare(postgres_url, EMAILS)
    mailbox = SlowMailbox(0.25)
    port = start_smtp_server(mailbox)
    log = tmp_path / "runners.log"
    # Four sends at once each: the drain lasts long enough for two restarts.
    runners.extend(
        start_runner(postgres_url, log, port, until_idle=True, sends=4, lease=10.0)
        for _ in range(3)
    )
    for received in (EMAILS // 6, EMAILS // 2):
        wait_until(lambda n=received: mailbox.total() >= n, f"{received} messages arrived")
        restart_postgresql()
    for runner in runners:
        seconds_to_exit(runner, log)

    deliveries = email_deliveries(postgres_url)
    assert len(deliveries) == EMAILS
    resent = {key: count for key, count in mailbox.counted.items() if count > 1}
    assert resent == {}
    assert set(mailbox.counted) == set(deliveries)
    assert set(deliveries.values()) == {("delivered", 1)}
