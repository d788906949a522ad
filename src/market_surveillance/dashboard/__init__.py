"""Monitoring dashboard: plot helpers, run loader, alert drill-down and the case triage widget used by the
notebook and by ``market-surveillance alerts report``."""

from market_surveillance.dashboard.data import RunData, load_run, run_paths
from market_surveillance.dashboard.drill import (
    account_panel,
    book_replay_figure,
    drilldown_figure,
    evidence_orders,
    evidence_trades,
)
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
from market_surveillance.dashboard.queue import fallback_priority, queue, queue_priority, tidy_frame
from market_surveillance.dashboard.triage import TriageWidget

__all__ = [
    "RunData",
    "TriageWidget",
    "account_panel",
    "aggressor_volume_figure",
    "alert_counts_figure",
    "alert_figures",
    "alert_summary",
    "book_replay_figure",
    "drilldown_figure",
    "evidence_orders",
    "evidence_trades",
    "fallback_priority",
    "imbalance_figure",
    "load_run",
    "pick_alert",
    "price_figure",
    "queue",
    "queue_priority",
    "run_paths",
    "score_distribution_figure",
    "tidy_frame",
]
