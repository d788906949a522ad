"""Monitoring dashboard: plot helpers, run loader and the case triage widget used by the notebook."""

from market_surveillance.dashboard.data import RunData, load_run, run_paths
from market_surveillance.dashboard.plots import (
    aggressor_volume_figure,
    alert_counts_figure,
    alert_figures,
    alert_summary,
    imbalance_figure,
    pick_alert,
    price_figure,
    score_distribution_figure,
)
from market_surveillance.dashboard.triage import TriageWidget

__all__ = [
    "RunData",
    "TriageWidget",
    "aggressor_volume_figure",
    "alert_counts_figure",
    "alert_figures",
    "alert_summary",
    "imbalance_figure",
    "load_run",
    "pick_alert",
    "price_figure",
    "run_paths",
    "score_distribution_figure",
]
