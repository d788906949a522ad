"""Case triage widget (ipywidgets) over the alert and case store.

Every action — open a case from selected alerts, assign, comment, change status, close — is one call to the
store API, which validates it and writes the audit row. The widget keeps no case state of its own beyond
*which* case is shown: after each action it re-reads the case and its history from the store, so what the
analyst sees is what the store holds (and what another analyst sees).

The handlers (``on_open_case``, ``on_assign``, ``on_comment``, ``on_set_status``, ``on_close``,
``on_filter``) take the clicked button as their only argument and may be called directly (tests do).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd

from market_surveillance.dashboard.plots import as_frame
from market_surveillance.enums import CaseStatus

__all__ = ["TriageWidget"]

ALL = "(all)"
_CLOSED = tuple(s.value for s in CaseStatus if s.value.startswith("closed"))
_OPEN = tuple(s.value for s in CaseStatus if not s.value.startswith("closed"))


def _options(values: pd.Series) -> list[str]:
    return [ALL, *sorted({str(v) for v in values.dropna()})]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class TriageWidget:
    """Filter alerts, open a case from the selected ones, then assign, comment, change status and close.

    Parameters
    ----------
    store
        A :class:`market_surveillance.store.Store` (every action goes through it).
    alerts
        Alerts to triage (``ALERT_SCHEMA``); default: ``store.alerts()``.
    actor
        Who acts, recorded in every audit row.
    """

    def __init__(self, store: Any, alerts: Any | None = None, *, actor: str = "analyst"):
        self.store = store
        self.case_id: str | None = None
        self.alerts = as_frame(alerts if alerts is not None else store.alerts()).reset_index(drop=True)
        lay = w.Layout(width="auto")
        self.actor = w.Text(value=actor, description="actor")
        self.rule = w.Dropdown(
            options=_options(self.alerts.get("rule_name", pd.Series())), description="rule"
        )
        self.typology = w.Dropdown(
            options=_options(self.alerts.get("typology", pd.Series())), description="typology"
        )
        self.asset = w.Dropdown(options=_options(self.alerts.get("asset", pd.Series())), description="asset")
        self.min_score = w.FloatText(value=0.0, description="min score")
        self.selection = w.SelectMultiple(
            options=[], rows=10, description="alerts", layout=w.Layout(width="95%")
        )
        self.title = w.Text(placeholder="case title", description="title", layout=lay)
        self.open_button = w.Button(description="Open case", button_style="primary")
        self.assignee = w.Text(placeholder="analyst id", description="assignee")
        self.assign_button = w.Button(description="Assign")
        self.comment_text = w.Textarea(placeholder="comment", description="comment", layout=lay)
        self.comment_button = w.Button(description="Comment")
        self.status = w.Dropdown(options=_OPEN, description="status")
        self.status_button = w.Button(description="Set status")
        self.resolution = w.Dropdown(options=_CLOSED, description="resolution")
        self.close_button = w.Button(description="Close case", button_style="warning")
        self.message = w.HTML()
        self.case_view = w.HTML()
        for control in (self.rule, self.typology, self.asset, self.min_score):
            control.observe(self.on_filter, names="value")
        handlers: list[tuple[w.Button, Callable[[Any], None]]] = [
            (self.open_button, self.on_open_case),
            (self.assign_button, self.on_assign),
            (self.comment_button, self.on_comment),
            (self.status_button, self.on_set_status),
            (self.close_button, self.on_close),
        ]
        for button, handler in handlers:
            button.on_click(handler)
        self.widget = w.VBox(
            [
                w.HTML("<b>Alerts</b>"),
                w.HBox([self.rule, self.typology]),
                w.HBox([self.asset, self.min_score, self.actor]),
                self.selection,
                w.HBox([self.title, self.open_button]),
                w.HTML("<b>Case</b>"),
                w.HBox([self.assignee, self.assign_button]),
                w.HBox([self.comment_text, self.comment_button]),
                w.HBox([self.status, self.status_button]),
                w.HBox([self.resolution, self.close_button]),
                self.message,
                self.case_view,
            ]
        )
        self.on_filter()

    # -- display -------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def filtered(self) -> pd.DataFrame:
        """The alerts passing the current filters, highest score first."""
        a = self.alerts
        keep = pd.Series(True, index=a.index)
        for col, control in (("rule_name", self.rule), ("typology", self.typology), ("asset", self.asset)):
            if control.value != ALL:
                keep &= a[col].astype(str) == control.value
        if len(a):
            keep &= a["score"] >= float(self.min_score.value or 0.0)
        return a[keep].sort_values(["score", "alert_id"], ascending=[False, True], kind="stable")

    def on_filter(self, change: Any = None) -> None:
        """Refresh the alert list from the filters (keeps still-visible selections)."""
        rows = self.filtered()
        keep = set(self.selection.value)
        self.selection.options = [
            (
                f"{r.alert_id[:10]} {r.rule_name} {r.asset or '-'} {r.venue or '-'} "
                f"{pd.Timestamp(r.window_start):%m-%d %H:%M:%S} score={r.score:.3g}",
                r.alert_id,
            )
            for r in rows.itertuples()
        ]
        self.selection.value = tuple(v for _, v in self.selection.options if v in keep)

    def _say(self, text: str, *, error: bool = False) -> None:
        color = "#b00" if error else "#060"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _act(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one store call; a refused action is shown to the analyst instead of raising in the callback."""
        try:
            result = call()
        except Exception as exc:  # the store's validation errors are the message the analyst needs
            self._say(f"{what} failed: {exc}", error=True)
            return None
        self._say(f"{what}: done")
        self.refresh_case()
        return result

    def _need_case(self) -> bool:
        if self.case_id is None:
            self._say("open a case first", error=True)
            return False
        return True

    # -- actions (each is one store call) ------------------------------------------------------
    def on_open_case(self, button: Any = None) -> None:
        alert_ids = list(self.selection.value)
        if not alert_ids:
            self._say("select at least one alert", error=True)
            return
        title = self.title.value.strip() or f"{len(alert_ids)} alert(s): {alert_ids[0][:10]}"
        case = self._act("open case", lambda: self.store.open_case(title, alert_ids, actor=self.actor.value))
        if case is not None:
            self.case_id = str(_get(case, "case_id", case))
            self.refresh_case()

    def on_assign(self, button: Any = None) -> None:
        if self._need_case():
            self._act(
                "assign",
                lambda: self.store.assign(self.case_id, self.assignee.value.strip(), actor=self.actor.value),
            )

    def on_comment(self, button: Any = None) -> None:
        if self._need_case():
            text = self.comment_text.value.strip()
            if not text:
                self._say("write a comment first", error=True)
                return
            if self._act("comment", lambda: self.store.comment(self.case_id, text, actor=self.actor.value)):
                self.comment_text.value = ""

    def on_set_status(self, button: Any = None) -> None:
        if self._need_case():
            self._act(
                f"status → {self.status.value}",
                lambda: self.store.set_status(self.case_id, self.status.value, actor=self.actor.value),
            )

    def on_close(self, button: Any = None) -> None:
        if self._need_case():
            self._act(
                f"close ({self.resolution.value})",
                lambda: self.store.close(self.case_id, self.resolution.value, actor=self.actor.value),
            )

    # -- view of the store ---------------------------------------------------------------------
    def refresh_case(self) -> None:
        """Re-read the shown case and its audit history from the store."""
        if self.case_id is None:
            self.case_view.value = ""
            return
        case = self.store.case(self.case_id)
        history = as_frame(self.store.history(self.case_id))
        fields = ("case_id", "title", "status", "assignee", "alert_ids")
        head = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(_get(case, k, '')))}</td></tr>"
            for k in fields
        )
        self.case_view.value = f"<table>{head}</table><b>history</b>" + history.to_html(
            index=False, max_rows=50, border=0, escape=True
        )
