"""Detection rules: one module per rule, registered in :mod:`market_surveillance.rules.registry`."""
