"""Synthetic exchange with labelled manipulation scenarios."""

from market_surveillance.simulate.generate import generate_to_dir, simulate

__all__ = ["generate_to_dir", "simulate"]
