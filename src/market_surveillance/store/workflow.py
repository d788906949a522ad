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
from market_surveillance.store.errors import TransitionError

TRANSITIONS: dict[S, frozenset[S]] = {
    S.OPEN: frozenset({S.INVESTIGATING, S.ESCALATED, S.CLOSED_FALSE_POSITIVE}),
    S.INVESTIGATING: frozenset({S.OPEN, S.ESCALATED, S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED}),
    S.ESCALATED: frozenset({S.INVESTIGATING, S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED}),
    S.CLOSED_FALSE_POSITIVE: frozenset({S.INVESTIGATING}),
    S.CLOSED_REPORTED: frozenset(),
}

CLOSED: frozenset[S] = frozenset({S.CLOSED_FALSE_POSITIVE, S.CLOSED_REPORTED})


def parse_status(value: str) -> S:
    """A :class:`CaseStatus` from its value, with a clear error listing the valid ones."""
    try:
        return S(value)
    except ValueError:
        raise ValueError(
            f"unknown case status {value!r}: use one of {', '.join(s.value for s in S)}"
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
