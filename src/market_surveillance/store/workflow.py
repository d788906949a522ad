"""The case workflow: every allowed status change, in one place.

::

    open ──► investigating ──► escalated ──► closed_reported (final: a report was filed)
      │  ◄──      │  ◄──────────    │
      │           ▼                 ▼
      └────► closed_false_positive ◄┘   (may be reopened to investigating)

Closing as *reported* needs the case to have been investigated (from ``investigating`` or
``escalated``); a false positive may be closed straight from ``open`` (obvious noise). A filed report
is final; a false positive can be reopened when new evidence arrives.
"""

from __future__ import annotations

from market_surveillance.enums import CaseStatus as S
from market_surveillance.enums import Verdict as V  # noqa: N817
from market_surveillance.enums import VerdictReason as R
from market_surveillance.store.errors import TransitionError

TRANSITIONS: dict[S, frozenset[S]] = {
    S.OPEN: frozenset({S.INVESTIGATING, S.ESCALATED, S.CLOSED_FALSE_POSITIVE}),
    S.INVESTIGATING: frozenset({S.OPEN, S.ESCALATED, S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED}),
    S.ESCALATED: frozenset({S.INVESTIGATING, S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED}),
    S.CLOSED_FALSE_POSITIVE: frozenset({S.INVESTIGATING}),
    S.CLOSED_REPORTED: frozenset(),
}

CLOSED: frozenset[S] = frozenset({S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED})


#: the resolution words of ``cases close`` are accepted wherever a status is, so one vocabulary works everywhere
SHORT_STATUS: dict[str, S] = {"reported": S.CLOSED_REPORTED, "false_positive": S.CLOSED_FALSE_POSITIVE}


def parse_status(value: str) -> S:
    """A :class:`CaseStatus` from its value (or ``reported``/``false_positive``), with a clear error."""
    if value in SHORT_STATUS:
        return SHORT_STATUS[value]
    try:
        return S(value)
    except ValueError:
        raise ValueError(
            f"unknown case status {value!r}: use one of {', '.join(s.value for s in S)} "
            f"(closed_* may be written {' / '.join(SHORT_STATUS)})"
        ) from None


def check_transition(case_id: str, old: S | str, new: S | str) -> S:
    """Return ``new`` as a status if ``old → new`` is allowed, else raise :class:`TransitionError`."""
    old_s, new_s = parse_status(str(old)), parse_status(str(new))
    allowed = TRANSITIONS[old_s]
    if new_s not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none (final status)"
        raise TransitionError(
            f"case {case_id}: cannot go from {old_s.value} to {new_s.value}; allowed from {old_s.value}: {options}"
        )
    return new_s


# -- verdicts --------------------------------------------------------------------------------------

#: reason codes each verdict accepts
VERDICT_REASONS: dict[V, frozenset[R]] = {
    V.TRUE_POSITIVE: frozenset({R.STOR_FILED, R.CONFIRMED_INTERNAL, R.OTHER}),
    V.FALSE_POSITIVE: frozenset(
        {
            R.LEGITIMATE_MARKET_MAKING,
            R.HEDGING_OR_ARBITRAGE,
            R.KNOWN_BENIGN_PATTERN,
            R.DATA_QUALITY,
            R.THRESHOLD_TOO_SENSITIVE,
            R.DUPLICATE_ALERT,
            R.OTHER,
        }
    ),
}
#: the verdict an alert gets by default when its case closes with this status
DEFAULT_VERDICT: dict[S, V] = {S.CLOSED_REPORTED: V.TRUE_POSITIVE, S.CLOSED_FALSE_POSITIVE: V.FALSE_POSITIVE}


def parse_verdict(value: str, reason: str | None) -> tuple[V, R]:
    """``(verdict, reason)`` checked against :data:`VERDICT_REASONS`; short forms ``tp``/``fp`` accepted."""
    short = {"tp": V.TRUE_POSITIVE, "fp": V.FALSE_POSITIVE}
    try:
        verdict = short.get(value) or V(value)
    except ValueError:
        raise ValueError(
            f"unknown verdict {value!r}: use true_positive (tp) or false_positive (fp)"
        ) from None
    allowed = ", ".join(sorted(VERDICT_REASONS[verdict]))
    if not reason:
        raise ValueError(f"a {verdict.value} verdict needs a reason code: one of {allowed}")
    try:
        code = R(reason)
    except ValueError:
        code = None
    if code is None or code not in VERDICT_REASONS[verdict]:
        raise ValueError(f"reason {reason!r} does not fit a {verdict.value} verdict: use one of {allowed}")
    return verdict, code
