"""`python -m market_surveillance.main`: the demo pipeline (generate → detect → store → evaluate)."""

from __future__ import annotations

from market_surveillance.demo import run_demo

if __name__ == "__main__":
    run_demo()
