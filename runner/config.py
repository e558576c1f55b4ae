"""Settings for a tidings process, from defaults, a TOML file, the environment, flags.

Later sources win: a flag beats ``TIDINGS_*`` in the environment, which beats the
file. Every value is checked here, once, so a typo fails at start-up with the name
of the setting rather than later in the loop.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from tidings.adapters.channels.addresses import IPNetwork, parse_allowed_networks
from tidings.adapters.channels.smtp_config import (
    SmtpConfig,
    checked_ca_file,
    smtp_config_from_environment,
)
from tidings.core import Channel, Policy, Severity
from tidings.core.records import DEFAULT_LEASE
from tidings.core.retry import DEFAULT_RETRY_SCHEDULE

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
"""Comfortably above the largest valid event as JSON escapes it: a 64 KiB body of
control characters takes six times that (``\\u0001``), a 64 KiB payload at most three
(``\\u00e9`` for the two bytes of "é"): under 600 KiB."""

DEFAULT_DATABASE_URL = "sqlite:///tidings.db"


@attrs.frozen(kw_only=True)
class DispatchOptions:
    """How hard to work. Defaults are the README's ("How it runs").

    ``workers`` is how many lanes to run, at most what the store allows;
    ``batch_size`` is the events one transaction decides, and what each lane holds in
    memory at most. A batch shares one commit and one read of its keys' inputs, so a
    PostgreSQL runner and its server do less work per event the larger it is: on the
    bench, a third less at 1000 than at 256, and a tenth less again at 2000.

    ``deliveries_in_hand`` is how many deliveries of each channel the runner holds
    claimed at most (sending or waiting for one of the ``sends_per_channel`` slots; by
    default two rounds of sends); the rest wait unclaimed in the outbox for whichever
    runner has room. ``lease`` is how long the store's delivery claims last (the same
    setting the store is opened with): claims are renewed every third of it, and a send
    starts only on a claim renewed within the last half of it. ``shutdown_grace`` is how
    long a stopping runner lets its sends in flight finish.
    """

    workers: int = 4
    batch_size: int = 2000
    poll_interval: float = 0.5
    sends_per_channel: int = 32
    deliveries_in_hand: int = attrs.field(
        default=attrs.Factory(lambda options: 2 * options.sends_per_channel, takes_self=True)
    )
    lease: timedelta = DEFAULT_LEASE
    send_timeout: float = 60.0
    shutdown_grace: float = 30.0
    retry_schedule: tuple[timedelta, ...] = DEFAULT_RETRY_SCHEDULE
    retention: timedelta | None = None
    """Remove what no promise needs once older than this (``core.ports.Retention``):
    a running dispatcher applies it on its own, at start and then every quarter of it
    (every 10 minutes at most). None (the default): keep everything."""

    @property
    def renew_interval(self) -> float:
        """Renew well before expiry: a live runner must never look dead."""
        return self.lease.total_seconds() / 3


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@attrs.frozen(kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    policy: Policy = attrs.Factory(Policy)
    dispatch: DispatchOptions = attrs.Factory(DispatchOptions)
    lease: timedelta = DEFAULT_LEASE
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """The longest line ``tidings enqueue`` reads; a longer one is skipped unread."""
    pool_size: int = 8
    """The most PostgreSQL connections a process's pool opens (it keeps one while idle;
    a runner's listening connection comes on top). A runner runs at most ``pool_size``
    - 2 lanes: two connections stay for deliveries and renewals."""
    smtp: SmtpConfig | None = None
    webhook_allowed_networks: tuple[IPNetwork, ...] = ()
    webhook_ca_file: str | None = None
    """A PEM file of CAs trusted for HTTPS webhooks besides the default ones."""


_ENVIRONMENT = {
    "TIDINGS_DATABASE_URL": "database_url",
    "TIDINGS_WORKERS": "workers",
    "TIDINGS_BATCH_SIZE": "batch_size",
    "TIDINGS_MAX_LINE_BYTES": "max_line_bytes",
    "TIDINGS_POOL_SIZE": "pool_size",
    "TIDINGS_POLL_INTERVAL": "poll_interval",
    "TIDINGS_LEASE_SECONDS": "lease_seconds",
    "TIDINGS_COOLDOWN_SECONDS": "cooldown_seconds",
    "TIDINGS_DEFAULT_CHANNELS": "default_channels",
    "TIDINGS_DEFAULT_MIN_SEVERITY": "default_min_severity",
    "TIDINGS_ESCALATE_PAST_COOLDOWN": "escalate_past_cooldown",
    "TIDINGS_QUIET_HOURS_HOLD_CRITICAL": "quiet_hours_hold_critical",
    "TIDINGS_DIGEST_AFTER_COOLDOWN": "digest_after_cooldown",
    "TIDINGS_SENDS_PER_CHANNEL": "sends_per_channel",
    "TIDINGS_DELIVERIES_IN_HAND": "deliveries_in_hand",
    "TIDINGS_SHUTDOWN_GRACE": "shutdown_grace",
    "TIDINGS_WEBHOOK_ALLOWED_NETWORKS": "webhook_allowed_networks",
    "TIDINGS_WEBHOOK_CA_FILE": "webhook_ca_file",
    "TIDINGS_RETENTION": "retention",
}


def _positive_int(name: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, got {number}")
    return number


def _positive_float(name: str, value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be above 0, got {number}")
    return number


_DURATION = re.compile(r"\s*([0-9]{1,12})\s*([smhdw])\s*")
_DURATION_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_LONGEST = timedelta(days=36500)
DURATION_FORMS = "a duration such as 90d, 2w, 12h, 30m or 3600s"


def parse_duration(text: str) -> timedelta:
    """``90d``, ``2w``, ``12h``, ``30m`` or ``3600s``: above zero, at most a century.
    ValueError naming the forms otherwise (the caller names the setting or flag)."""
    found = _DURATION.fullmatch(text)
    count = int(found[1]) if found else 0
    if found is None or not 0 < count <= _LONGEST // _DURATION_UNITS[found[2]]:
        raise ValueError(f"expected {DURATION_FORMS} (at most 36500d), got {text!r}")
    return count * _DURATION_UNITS[found[2]]


_OFF = frozenset({"off", "none", "false", ""})


def _retention(value: object) -> timedelta | None:
    """The ``retention`` setting: a duration (TOML may give whole seconds), or off."""
    if value is False:
        return None
    text = f"{value}s" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    if text.strip().lower() in _OFF:
        return None
    try:
        return parse_duration(text)
    except ValueError:
        raise ConfigError(
            f"retention must be {DURATION_FORMS} (at most 36500d), or off; got {value!r}"
        ) from None


def _channels(name: str, value: object) -> tuple[Channel, ...]:
    names = value if isinstance(value, list) else str(value).split(",")
    try:
        return tuple(Channel(str(item).strip().lower()) for item in names if str(item).strip())
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _switch(name: str, value: object) -> bool:
    """A TOML boolean, or its spelling in an environment variable."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{name} must be true or false, got {value!r}")


POLICY_SWITCHES = ("escalate_past_cooldown", "quiet_hours_hold_critical", "digest_after_cooldown")
"""Settings that are ``Policy`` fields of the same name, each on or off."""


def _severity(name: str, value: object) -> Severity:
    try:
        return Severity(str(value).strip().lower())
    except ValueError:
        raise ConfigError(f"{name} must be info, watch or critical, got {value!r}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    return dict(data.get("tidings", data))


def load_settings(
    flags: Mapping[str, object],
    environ: Mapping[str, str] = os.environ,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources into checked Settings. ``flags`` holds only flags given."""
    raw: dict[str, object] = {}
    file_name = config_file or (
        Path(environ["TIDINGS_CONFIG"]) if "TIDINGS_CONFIG" in environ else None
    )
    if file_name is not None:
        raw.update(_read_file(file_name))
    raw.update({key: environ[var] for var, key in _ENVIRONMENT.items() if var in environ})
    raw.update({key: value for key, value in flags.items() if value is not None})
    unknown = sorted(set(raw) - set(_ENVIRONMENT.values()))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        smtp = smtp_config_from_environment(environ)
        networks = parse_allowed_networks(str(raw.get("webhook_allowed_networks", "")))
        ca_file = checked_ca_file(str(raw.get("webhook_ca_file", "")).strip(), "webhook_ca_file")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return attrs.evolve(
        _settings(raw), smtp=smtp, webhook_allowed_networks=networks, webhook_ca_file=ca_file
    )


def _settings(raw: Mapping[str, object]) -> Settings:
    defaults = Settings()
    policy = defaults.policy
    options = defaults.dispatch
    if "cooldown_seconds" in raw:
        seconds = _positive_float("cooldown_seconds", raw["cooldown_seconds"])
        policy = attrs.evolve(policy, cooldown=timedelta(seconds=seconds))
    if "default_channels" in raw:
        channels = _channels("default_channels", raw["default_channels"])
        policy = attrs.evolve(policy, default_channels=channels)
    if "default_min_severity" in raw:
        severity = _severity("default_min_severity", raw["default_min_severity"])
        policy = attrs.evolve(policy, default_min_severity=severity)

    def switch(name: str, default: bool) -> bool:
        return _switch(name, raw[name]) if name in raw else default

    policy = attrs.evolve(
        policy,
        escalate_past_cooldown=switch("escalate_past_cooldown", policy.escalate_past_cooldown),
        quiet_hours_hold_critical=switch(
            "quiet_hours_hold_critical", policy.quiet_hours_hold_critical
        ),
        digest_after_cooldown=switch("digest_after_cooldown", policy.digest_after_cooldown),
    )
    if "workers" in raw:
        options = attrs.evolve(options, workers=_positive_int("workers", raw["workers"]))
    if "sends_per_channel" in raw:
        sends = _positive_int("sends_per_channel", raw["sends_per_channel"])
        options = attrs.evolve(options, sends_per_channel=sends)
    in_hand = raw.get("deliveries_in_hand", 2 * options.sends_per_channel)
    grace = raw.get("shutdown_grace", options.shutdown_grace)
    options = attrs.evolve(
        options,
        deliveries_in_hand=_positive_int("deliveries_in_hand", in_hand),
        shutdown_grace=_positive_float("shutdown_grace", grace),
    )
    if "batch_size" in raw:
        size = _positive_int("batch_size", raw["batch_size"])
        options = attrs.evolve(options, batch_size=size)
    if "poll_interval" in raw:
        interval = _positive_float("poll_interval", raw["poll_interval"])
        options = attrs.evolve(options, poll_interval=interval)
    lease = defaults.lease
    if "lease_seconds" in raw:
        lease = timedelta(seconds=_positive_float("lease_seconds", raw["lease_seconds"]))
    options = attrs.evolve(options, lease=lease, retention=_retention(raw.get("retention", "off")))
    return Settings(
        database_url=str(raw.get("database_url", defaults.database_url)),
        policy=policy,
        dispatch=options,
        lease=lease,
        max_line_bytes=_positive_int(
            "max_line_bytes", raw.get("max_line_bytes", DEFAULT_MAX_LINE_BYTES)
        ),
        pool_size=_positive_int("pool_size", raw.get("pool_size", defaults.pool_size)),
    )


_POLICY_SETTINGS = {
    "cooldown_seconds": "cooldown",
    "default_channels": "default_channels",
    "default_min_severity": "default_min_severity",
    **{name: name for name in POLICY_SWITCHES},
}


def load_policy(path: Path, base: Policy) -> Policy:
    """A policy from a TOML file of policy settings only, for what-if replays: the
    settings it gives replace ``base``'s, checked as in a config file; the rest stay."""
    raw = _read_file(path)
    unknown = sorted(set(raw) - set(_POLICY_SETTINGS))
    if unknown:
        raise ConfigError(
            f"policy file {path}: unknown setting(s): {', '.join(unknown)}"
            f" (expected {', '.join(_POLICY_SETTINGS)})"
        )
    try:
        parsed = _settings(raw).policy
    except ConfigError as error:
        raise ConfigError(f"policy file {path}: {error}") from None
    given = {field: getattr(parsed, field) for key, field in _POLICY_SETTINGS.items() if key in raw}
    return attrs.evolve(base, **given)
