"""market-surveillance: detect crypto market manipulation on trades and order-book events."""

__version__ = "0.1.0"
