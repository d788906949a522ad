"""Errors raised by the store; the CLI turns each into a one-line message and exit code 2."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class UnknownIdError(StoreError, LookupError):
    """A case, alert or run id that the store does not hold."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else ""


class TransitionError(StoreError, ValueError):
    """A case change the workflow does not allow (bad status change, editing a closed case)."""
