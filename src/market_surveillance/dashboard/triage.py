"""Case triage widget (ipywidgets) over the alert and case store.

Every action — open a case from selected alerts, assign, comment, change status, close — is one call to
:class:`market_surveillance.store.Store`, which validates it (workflow transitions, closing needs a reason)
and writes the audit row. The widget holds no case or alert state of its own beyond *which* case is on
screen: the alert list is re-read from the store whenever the filters change or an action succeeds, and the
case panel (case + audit history) is re-read after every action, so what the analyst sees is what the store
holds — and what any other analyst sees.

The handlers (``on_filter``, ``on_open_case``, ``on_add_alerts``, ``on_pick_case``, ``on_assign``, ``on_comment``,
``on_set_status``, ``on_close``) take the triggering event as their only argument and may be called directly
(the tests do).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd

from market_surveillance.enums import CasePriority, CaseStatus

__all__ = ["TriageWidget"]

ALL = "(all)"
NEW = "new"  # status filter: alerts in no case yet (the store's NEW)
_CLOSE_AS = ("false_positive", "reported")
_ACTIVE = tuple(s.value for s in CaseStatus if not s.value.startswith("closed"))


def _options(values: pd.Series) -> list[str]:
    return [ALL, *sorted({str(v) for v in values.dropna()})]


class TriageWidget:
    """Filter alerts, open a case from the selected ones, then assign, comment, change status and close.

    Parameters
    ----------
    store
        A :class:`market_surveillance.store.Store`; every read and write goes through it.
    actor
        Who acts, recorded in every audit row (editable in the widget). No default: on SQLite actions are
        refused until it is filled in; on PostgreSQL an empty box means the database session user.

    Attributes
    ----------
    case_id
        The case on screen (None until one is opened or picked).
    widget
        The ipywidgets container (the object itself displays it in a notebook).
    """

    def __init__(self, store: Any, *, actor: str | None = None):
        self.store = store
        self.case_id: str | None = None
        everything = store.alerts().to_pandas()
        wide = w.Layout(width="95%")
        self.actor = w.Text(value=actor or "", placeholder="your name (required)", description="actor")
        self.rule = w.Dropdown(options=_options(everything["rule_name"]), description="rule")
        self.typology = w.Dropdown(options=_options(everything["typology"]), description="typology")
        self.asset = w.Dropdown(options=_options(everything["asset"]), description="asset")
        self.alert_status = w.Dropdown(
            options=[ALL, NEW, *(s.value for s in CaseStatus)], description="in case"
        )
        self.min_score = w.FloatText(value=0.0, description="min score")
        self.selection = w.SelectMultiple(options=[], rows=10, description="alerts", layout=wide)
        self.title = w.Text(placeholder="case title", description="title", layout=w.Layout(width="60%"))
        self.priority = w.Dropdown(
            options=[p.value for p in CasePriority], value=CasePriority.MEDIUM.value, description="priority"
        )
        self.open_button = w.Button(description="Open case", button_style="primary")
        self.add_button = w.Button(description="Add to case")
        self.case_pick = w.Dropdown(options=[], description="case")
        self.assignee = w.Text(placeholder="analyst id", description="assignee")
        self.assign_button = w.Button(description="Assign")
        self.comment_text = w.Textarea(
            placeholder="comment (also the reason recorded with a status change; required to close)",
            description="comment",
            layout=w.Layout(width="60%"),
        )
        self.comment_button = w.Button(description="Comment")
        self.status = w.Dropdown(options=_ACTIVE, description="status")
        self.status_button = w.Button(description="Set status")
        self.resolution = w.Dropdown(options=_CLOSE_AS, description="close as")
        self.close_button = w.Button(description="Close case", button_style="warning")
        self.message = w.HTML()
        self.case_view = w.HTML()

        for control in (self.rule, self.typology, self.asset, self.alert_status, self.min_score):
            control.observe(self.on_filter, names="value")
        self.case_pick.observe(self.on_pick_case, names="value")
        buttons: list[tuple[w.Button, Callable[[Any], None]]] = [
            (self.open_button, self.on_open_case),
            (self.add_button, self.on_add_alerts),
            (self.assign_button, self.on_assign),
            (self.comment_button, self.on_comment),
            (self.status_button, self.on_set_status),
            (self.close_button, self.on_close),
        ]
        for button, handler in buttons:
            button.on_click(handler)
        self.widget = w.VBox(
            [
                w.HTML("<b>Alerts</b> (from the store)"),
                w.HBox([self.rule, self.typology, self.asset]),
                w.HBox([self.alert_status, self.min_score, self.actor]),
                self.selection,
                w.HBox([self.title, self.priority, self.open_button, self.add_button]),
                w.HTML("<b>Case</b>"),
                self.case_pick,
                w.HBox([self.assignee, self.assign_button]),
                w.HBox([self.comment_text, self.comment_button]),
                w.HBox([self.status, self.status_button, self.resolution, self.close_button]),
                self.message,
                self.case_view,
            ]
        )
        self.on_filter()
        self._refresh_cases()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- reads -----------------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """Alerts passing the filters, read from the store now, highest score first.

        Rule, asset and case status are store-side filters; typology and minimum score apply to the result.
        """
        kw: dict[str, Any] = {}
        if self.rule.value != ALL:
            kw["rule"] = self.rule.value
        if self.asset.value != ALL:
            kw["asset"] = self.asset.value
        if self.alert_status.value != ALL:
            kw["status"] = self.alert_status.value
        a = self.store.alerts(**kw).to_pandas()
        if self.typology.value != ALL:
            a = a[a["typology"] == self.typology.value]
        a = a[a["score"] >= float(self.min_score.value or 0.0)]
        return a.sort_values(["score", "alert_id"], ascending=[False, True], kind="stable")

    def on_filter(self, change: Any = None) -> None:
        """Re-read the alert list from the store (selections still listed are kept)."""
        rows = self.filtered()
        keep = set(self.selection.value)
        options = []
        for r in rows.itertuples():
            cases = f" [{', '.join(r.case_ids)}]" if r.case_ids is not None and len(r.case_ids) else ""
            label = (
                f"{r.alert_id[:10]} {r.rule_name} {r.asset or '-'}@{r.venue or '-'} "
                f"{pd.Timestamp(r.window_start):%m-%d %H:%M:%S} score={r.score:.3g}{cases}"
            )
            options.append((label, r.alert_id))
        self.selection.options = options
        self.selection.value = tuple(v for _, v in options if v in keep)

    def _refresh_cases(self) -> None:
        cases = self.store.cases()
        options = [(f"{c.case_id} {c.status} {c.title[:40]}", c.case_id) for c in cases]
        self.case_pick.unobserve(self.on_pick_case, names="value")
        self.case_pick.options = options
        self.case_pick.value = self.case_id if self.case_id in {c.case_id for c in cases} else None
        self.case_pick.observe(self.on_pick_case, names="value")

    def refresh_case(self) -> None:
        """Re-read the case on screen and its audit history from the store."""
        if self.case_id is None:
            self.case_view.value = ""
            return
        case = self.store.case(self.case_id)
        history = pd.DataFrame(
            [
                {
                    "at": e.at,
                    "actor": e.actor,
                    "action": e.action,
                    "field": e.field,
                    "old": e.old,
                    "new": e.new,
                    "comment": e.comment,
                }
                for e in self.store.history(self.case_id)
            ]
        )
        head = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in (
                ("case", case.case_id),
                ("title", case.title),
                ("status", case.status),
                ("priority", case.priority),
                ("assignee", case.assignee or "—"),
                ("alerts", ", ".join(case.alert_ids)),
            )
        )
        self.case_view.value = f"<table>{head}</table><b>audit trail</b>" + history.to_html(
            index=False, border=0, escape=True
        )

    # -- actions: each is one store call ---------------------------------------------------------
    def _say(self, text: str, *, error: bool = False) -> None:
        color = "#b00" if error else "#060"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _actor(self) -> str | None:
        # no made-up default: an empty box is None, which the store refuses on SQLite ("an actor is
        # required") and turns into the database session user on PostgreSQL
        return self.actor.value.strip() or None

    def _act(self, what: str, call: Callable[[], Any]) -> bool:
        """Run one store call; a refused action is shown to the analyst instead of raising in the callback."""
        try:
            call()
        except Exception as exc:  # the store's validation message is what the analyst needs to read
            self._say(f"{what} refused: {exc}", error=True)
            return False
        self._say(f"{what}: done")
        self.refresh_case()
        self._refresh_cases()
        self.on_filter()
        return True

    def _need_case(self) -> bool:
        if self.case_id is None:
            self._say("open or pick a case first", error=True)
        return self.case_id is not None

    def _comment(self) -> str | None:
        return self.comment_text.value.strip() or None

    def on_open_case(self, event: Any = None) -> None:
        """Open a case on the selected alerts (title defaults to the first alert)."""
        alert_ids = list(self.selection.value)
        if not alert_ids:
            self._say("select at least one alert", error=True)
            return
        title = self.title.value.strip() or f"{len(alert_ids)} alert(s) from {alert_ids[0][:10]}"
        opened: list[str] = []

        def call() -> None:
            opened.append(
                self.store.open_case(
                    title,
                    alert_ids,
                    self._actor(),
                    priority=self.priority.value,
                    comment=self._comment(),
                )
            )
            self.case_id = opened[0]

        if self._act(f"open case on {len(alert_ids)} alert(s)", call):
            self.title.value = self.comment_text.value = ""

    def on_add_alerts(self, event: Any = None) -> None:
        """Attach the selected alerts to the case on screen."""
        alert_ids = list(self.selection.value)
        if not alert_ids:
            self._say("select at least one alert", error=True)
        elif self._need_case():
            case_id = self.case_id
            self._act(
                f"add {len(alert_ids)} alert(s)",
                lambda: self.store.add_alerts(case_id, alert_ids, self._actor(), self._comment()),
            )

    def on_pick_case(self, change: Any = None) -> None:
        """Show another stored case."""
        self.case_id = self.case_pick.value
        self.refresh_case()

    def on_assign(self, event: Any = None) -> None:
        if self._need_case():
            case_id = self.case_id
            self._act(
                "assign",
                lambda: self.store.assign(
                    case_id, self.assignee.value.strip(), self._actor(), self._comment()
                ),
            )

    def on_comment(self, event: Any = None) -> None:
        if self._need_case():
            case_id, text = self.case_id, self.comment_text.value
            if self._act("comment", lambda: self.store.comment(case_id, text, self._actor())):
                self.comment_text.value = ""

    def on_set_status(self, event: Any = None) -> None:
        if self._need_case():
            case_id, status = self.case_id, self.status.value
            if self._act(
                f"status → {status}",
                lambda: self.store.set_status(case_id, status, self._actor(), self._comment()),
            ):
                self.comment_text.value = ""

    def on_close(self, event: Any = None) -> None:
        """Close as false positive or reported; the comment box holds the (required) reason."""
        if self._need_case():
            case_id, resolution = self.case_id, self.resolution.value
            if self._act(
                f"close as {resolution}",
                lambda: self.store.close(case_id, resolution, self._actor(), self.comment_text.value),
            ):
                self.comment_text.value = ""
