"""How fast is ``core.decide`` next to the same rules written on plain tuples?

The decision runs once per event, so its cost is the floor of the dispatcher's
throughput. This script builds a realistic mix of inputs ahead of time (per-kind,
global and default preference layers; silent rows; unknown channel names; a share
of cooldown hits), checks that ``core.decide`` and a hand-written plain-tuple version
(strings, ints for severity ranks and microseconds, tuples out) agree on every input,
then times both over the same inputs: best of five runs each.

With ``--rules`` the three rules of issue #13 are on in every policy (escalation past
the cooldown, quiet hours, digests): a share of users have quiet hours in zones without
daylight saving (so that the plain version can hold with a fixed offset), every last
notification has a severity, and some per-kind rows set the digest switch; the plain
version implements the same rules on ints.

    .venv/bin/python bench/decide.py [--n 200000] [--seed 20240501] [--rules]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import attrs
from returns.result import Result, Success

from tidings.core import Channel, Event, Plan, Policy, Preference, Severity, Skip, decide
from tidings.core.quiet_hours import QuietHours

TARGET_RATIO = 0.25
REPEATS = 5
POOL_SIZE = 20_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KINDS = ("burnout_overload", "deadline_missed", "weekly_digest", "mention", "quota_warning")
UNKNOWN_NAMES = ("sms", "push", "Email", "slack")

# --------------------------------------------------------------------- typed inputs

DecideArgs = tuple[
    Event,
    Preference | None,
    Preference | None,
    datetime | None,
    datetime,
    Policy,
    Severity | None,
    QuietHours | None,
]
# Zones without daylight saving, and their offsets in minutes, for the plain version.
FIXED_ZONES = {"UTC": 0, "Asia/Kolkata": 330, "Asia/Tokyo": 540, "America/Bogota": -300}
DAY_MINUTES = 1440

# ------------------------------------------------------------------ plain version
# A preference row: (channel names, min severity rank, digest switch).
PlainPreference = tuple[tuple[str, ...], int, bool | None]
# The policy: (default channel names, default min severity rank, cooldown in
# microseconds, escalate, hold critical, digests).
PlainPolicy = tuple[tuple[str, ...], int, int, bool, bool, bool]
# Quiet hours: (start minute, end minute, the zone's offset in minutes).
PlainQuiet = tuple[int, int, int]
# (kind, severity rank, per-kind row, global row, last sent (us), now (us), policy,
#  last severity rank, quiet hours)
PlainArgs = tuple[
    str,
    int,
    PlainPreference | None,
    PlainPreference | None,
    int | None,
    int,
    PlainPolicy,
    int | None,
    PlainQuiet | None,
]
# ("plan" or the skip reason, kind, severity rank, source, min rank, channels, ignored,
#  last sent (us) and cooldown end (us) for cooldown skips; escalated over (rank),
#  held for the digest, held until (us))
PlainOutcome = tuple[
    str,
    str,
    int,
    str,
    int,
    tuple[str, ...],
    tuple[str, ...],
    int | None,
    int | None,
    int | None,
    bool,
    int | None,
]

_PLAIN_KNOWN = frozenset(channel.value for channel in Channel)


def _plain_split(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    known: list[str] = []
    ignored: list[str] = []
    for name in names:
        if name in _PLAIN_KNOWN:
            if name not in known:
                known.append(name)
        elif name not in ignored:
            ignored.append(name)
    return tuple(known), tuple(ignored)


_US_PER_MINUTE = 60_000_000


def _plain_held_until(quiet: PlainQuiet, now_us: int) -> int | None:
    """Quiet hours in a zone of one fixed offset: wall minutes are linear in time."""
    start, end, offset = quiet
    wall_us = now_us + offset * _US_PER_MINUTE
    minute = (wall_us // _US_PER_MINUTE) % DAY_MINUTES
    if (minute - start) % DAY_MINUTES >= (end - start) % DAY_MINUTES:
        return None
    day_start = wall_us - (wall_us % (DAY_MINUTES * _US_PER_MINUTE))
    end_wall = day_start + end * _US_PER_MINUTE
    if end_wall <= wall_us:
        end_wall += DAY_MINUTES * _US_PER_MINUTE
    return end_wall - offset * _US_PER_MINUTE


def plain_decide(args: PlainArgs) -> PlainOutcome:
    """The rules of README.md "The rules", on strings, ints and tuples."""
    kind, severity, kind_row, global_row, last_us, now_us, policy, last_rank, quiet = args
    if kind_row is not None:
        channels, ignored = _plain_split(kind_row[0])
        minimum = kind_row[1]
        source = "kind"
    elif global_row is not None:
        channels, ignored = _plain_split(global_row[0])
        minimum = policy[1]
        source = "global"
    else:
        channels, ignored = policy[0], ()
        minimum = policy[1]
        source = "default"
    if severity < minimum:
        reason = "severity_below_minimum"
        return (reason, kind, severity, source, minimum, (), ignored, None, None, None, False, None)
    if not channels:
        return (
            ("no_channels", kind, severity, source, minimum, (), ignored)
            + (None,) * 3
            + (
                False,
                None,
            )
        )
    escalated = None
    if last_us is not None and now_us - last_us < policy[2]:
        if policy[3] and last_rank is not None and severity > last_rank:
            escalated = last_rank
        else:
            ends = last_us + policy[2]
            digest = kind_row[2] if kind_row is not None and kind_row[2] is not None else policy[5]
            return ("cooldown", kind, severity, source, minimum, (), ignored, last_us, ends,
                    None, digest, None)  # fmt: skip
    held = None
    held_channels = "email" in channels or "webhook" in channels
    if quiet is not None and held_channels and (severity < 2 or policy[4]):
        held = _plain_held_until(quiet, now_us)
    last = last_us if escalated is not None else None
    return ("plan", kind, severity, source, minimum, channels, ignored, last, None, escalated,
            False, held)  # fmt: skip


# ----------------------------------------------------------------------- inputs


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _channel_names(rng: random.Random) -> tuple[str, ...]:
    roll = rng.random()
    if roll < 0.06:
        return ()  # an explicitly silent row
    names = rng.sample(("in_app", "email", "webhook"), rng.randint(1, 3))
    if roll < 0.20:
        names.insert(rng.randrange(len(names) + 1), rng.choice(UNKNOWN_NAMES))
    if roll > 0.93:
        names.append(names[0])  # a repeat, as a hand-edited row might hold
    return tuple(names)


def _severity(rng: random.Random) -> Severity:
    return rng.choices(list(Severity), weights=(6, 3, 1))[0]


def _quiet_hours(rng: random.Random) -> QuietHours:
    start = rng.randrange(DAY_MINUTES)
    end = (start + rng.randint(60, 720)) % DAY_MINUTES
    return QuietHours(
        starts=clock(start // 60, start % 60),
        ends=clock(end // 60, end % 60),
        zone=ZoneInfo(rng.choice(list(FIXED_ZONES))),
    )


def build_pool(size: int, seed: int, *, rules: bool = False) -> list[DecideArgs]:
    """Distinct decision inputs: about 45% per-kind, 30% global, 25% default; with
    ``rules``, the three switches on, a fifth of users with quiet hours."""
    rng = random.Random(seed)
    policies: tuple[Policy, ...] = (
        Policy(),
        Policy(
            default_channels=(Channel.IN_APP, Channel.EMAIL),
            default_min_severity=Severity.WATCH,
            cooldown=timedelta(hours=6),
        ),
    )
    if rules:
        policies = tuple(
            attrs.evolve(policy, escalate_past_cooldown=True, digest_after_cooldown=True)
            for policy in policies
        )
    start = datetime(2024, 5, 1, tzinfo=UTC)
    pool: list[DecideArgs] = []
    for index in range(size):
        event = Event(
            event_id=f"evt-{index}",
            user_id=f"u{rng.randrange(5_000)}",
            kind=rng.choice(KINDS),
            severity=_severity(rng),
            title="A measure crossed its threshold",
            body="Details for the user.",
        )
        layer = rng.random()
        digest = rng.choice((None, None, True, False)) if rules else None
        kind_row = Preference(_channel_names(rng), _severity(rng), digest) if layer < 0.45 else None
        global_row = (
            Preference(_channel_names(rng), _severity(rng)) if 0.30 < layer < 0.75 else None
        )
        now = start + timedelta(seconds=index * 7, microseconds=rng.randrange(1_000_000))
        last = None if rng.random() < 0.35 else now - timedelta(seconds=rng.uniform(0, 172_800))
        last_severity = _severity(rng) if rules and last is not None else None
        quiet = _quiet_hours(rng) if rules and rng.random() < 0.2 else None
        pool.append(
            (event, kind_row, global_row, last, now, rng.choice(policies), last_severity, quiet)
        )
    return pool


def _plain_preference(row: Preference | None) -> PlainPreference | None:
    return None if row is None else (row.channels, row.min_severity.rank, row.digest)


def _plain_quiet(window: QuietHours | None) -> PlainQuiet | None:
    if window is None:
        return None
    start = window.starts.hour * 60 + window.starts.minute
    end = window.ends.hour * 60 + window.ends.minute
    return (start, end, FIXED_ZONES[window.zone_name])


def to_plain(args: DecideArgs) -> PlainArgs:
    event, kind_row, global_row, last, now, policy, last_severity, quiet = args
    return (
        event.kind,
        event.severity.rank,
        _plain_preference(kind_row),
        _plain_preference(global_row),
        None if last is None else _micros(last),
        _micros(now),
        (
            tuple(channel.value for channel in policy.default_channels),
            policy.default_min_severity.rank,
            policy.cooldown // timedelta(microseconds=1),
            policy.escalate_past_cooldown,
            policy.quiet_hours_hold_critical,
            policy.digest_after_cooldown,
        ),
        None if last_severity is None else last_severity.rank,
        _plain_quiet(quiet),
    )


# ------------------------------------------------------------------------ runs


def run_decide(inputs: Sequence[DecideArgs]) -> list[Result[Plan, Skip]]:
    return [
        decide(
            event,
            kind_preference=kind_row,
            global_preference=global_row,
            last_sent_at=last,
            now=now,
            policy=policy,
            last_severity=last_severity,
            quiet_hours=quiet,
        )
        for event, kind_row, global_row, last, now, policy, last_severity, quiet in inputs
    ]


def run_plain(inputs: Sequence[PlainArgs]) -> list[PlainOutcome]:
    return [plain_decide(args) for args in inputs]


def outcome_as_plain(result: Result[Plan, Skip]) -> PlainOutcome:
    if isinstance(result, Success):
        plan: Plan = result.unwrap()
        return (
            "plan",
            plan.kind,
            plan.severity.rank,
            plan.source.value,
            plan.min_severity.rank,
            tuple(channel.value for channel in plan.channels),
            plan.ignored_channels,
            None if plan.last_sent_at is None else _micros(plan.last_sent_at),
            None,
            None if plan.escalated_over is None else plan.escalated_over.rank,
            False,
            None if plan.hold is None else _micros(plan.hold.until),
        )
    skip: Skip = result.failure()
    return (
        skip.reason.value,
        skip.kind,
        skip.severity.rank,
        skip.source.value,
        skip.min_severity.rank,
        (),
        skip.ignored_channels,
        None if skip.last_sent_at is None else _micros(skip.last_sent_at),
        None if skip.cooldown_ends_at is None else _micros(skip.cooldown_ends_at),
        None,
        skip.held_for_digest,
        None,
    )


def check_agreement(
    decided: Sequence[Result[Plan, Skip]], planned: Sequence[PlainOutcome]
) -> Counter[str]:
    """Both versions must give the same decision, field for field, on every input."""
    as_plain = [outcome_as_plain(result) for result in decided]
    counts = Counter(outcome[0] for outcome in as_plain)
    plain_counts = Counter(outcome[0] for outcome in planned)
    if counts != plain_counts:
        raise SystemExit(f"decision counts differ: decide {counts} vs plain {plain_counts}")
    for index, (ours, theirs) in enumerate(zip(as_plain, planned, strict=True)):
        if ours != theirs:
            raise SystemExit(f"input {index} differs: decide {ours} vs plain {theirs}")
    return counts


def time_decide(inputs: Sequence[DecideArgs]) -> float:
    """Seconds for one pass; results are dropped, as the runner drops them once recorded."""
    started = time.perf_counter()
    for event, kind_row, global_row, last, now, policy, last_severity, quiet in inputs:
        decide(
            event,
            kind_preference=kind_row,
            global_preference=global_row,
            last_sent_at=last,
            now=now,
            policy=policy,
            last_severity=last_severity,
            quiet_hours=quiet,
        )
    return time.perf_counter() - started


def time_plain(inputs: Sequence[PlainArgs]) -> float:
    started = time.perf_counter()
    for args in inputs:
        plain_decide(args)
    return time.perf_counter() - started


def best_of(repeats: int, *runs: Callable[[], float]) -> list[float]:
    """Best time of each run over ``repeats`` rounds, interleaved so that drift in the
    machine's load hits every run alike; the collector is off while timing, as in timeit."""
    best = [float("inf")] * len(runs)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for index, run in enumerate(runs):
                best[index] = min(best[index], run())
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="decisions per timed run")
    parser.add_argument("--seed", type=int, default=20240501, help="seed for the input mix")
    parser.add_argument("--rules", action="store_true", help="escalation, quiet hours, digests on")
    options = parser.parse_args(argv)
    n: int = options.n
    if n < 1:
        parser.error("--n must be at least 1")

    pool = build_pool(min(n, POOL_SIZE), options.seed, rules=options.rules)
    inputs = [pool[index % len(pool)] for index in range(n)]
    plain_pool = [to_plain(args) for args in pool]
    plain_inputs = [plain_pool[index % len(plain_pool)] for index in range(n)]

    counts = check_agreement(run_decide(inputs), run_plain(plain_inputs))
    mix = ", ".join(f"{name} {count / n:.1%}" for name, count in sorted(counts.items()))
    print(f"inputs: {n} decisions over {len(pool)} distinct inputs; both agree on all: {mix}")

    decide_seconds, plain_seconds = best_of(
        REPEATS, lambda: time_decide(inputs), lambda: time_plain(plain_inputs)
    )
    decide_rate = n / decide_seconds
    plain_rate = n / plain_seconds
    ratio = decide_rate / plain_rate
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    best = f"best of {REPEATS}"
    print(f"core.decide:  {decide_rate:>11,.0f} decisions/s ({best}: {decide_seconds:.3f} s)")
    print(f"plain tuples: {plain_rate:>11,.0f} decisions/s ({best}: {plain_seconds:.3f} s)")
    print(f"ratio decide/plain: {ratio:.3f} ({verdict} the target of {TARGET_RATIO})")
    print()
    print("| decisions | core.decide (decisions/s) | plain tuples (decisions/s) | decide/plain |")
    print("|---:|---:|---:|---:|")
    print(f"| {n:,} | {decide_rate:,.0f} | {plain_rate:,.0f} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
