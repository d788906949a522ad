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

from market_surveillance.dashboard.queue import alert_label, fmt_ts, queue, queue_priority, tidy_frame
from market_surveillance.enums import CasePriority, CaseStatus

__all__ = ["TriageWidget"]

ALL = "(all)"
NEW = "new"  # status filter: alerts in no case yet (the store's NEW)
_CLOSE_AS = ("false_positive", "reported")
_ACTIVE = tuple(s.value for s in CaseStatus if not s.value.startswith("closed"))


def _options(values: pd.Series) -> list[str]:
    return [ALL, *sorted({str(v) for v in values.dropna()})]


def _next_statuses(status: str) -> list[str]:
    """The case's status first, then the statuses it may move to (closing has its own button)."""
    from market_surveillance.store.workflow import TRANSITIONS, parse_status

    allowed = TRANSITIONS[parse_status(status)]
    return [status, *(s for s in _ACTIVE if s != status and CaseStatus(s) in allowed)]


def _reason_options() -> list[tuple[str, str]]:
    """Verdict reason codes of the store (``enums.VerdictReason``) when it has them, else none to pick."""
    from market_surveillance import enums

    codes = getattr(enums, "VerdictReason", None)
    return [("(reason code)", ""), *((c.value.replace("_", " "), c.value) for c in codes or ())]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    import inspect

    return name in inspect.signature(fn).parameters


def _classed(widget: w.DOMWidget, name: str) -> w.DOMWidget:
    """Tag a control with a stable CSS class (``ms-<name>``): what the browser test and styles select on."""
    widget.add_class(f"ms-{name}")
    return widget


class TriageWidget:
    """Filter alerts, open a case from the selected ones, then assign, comment, change status and close.

    Parameters
    ----------
    store
        A :class:`market_surveillance.store.Store`; every read and write goes through it.
    actor
        Who acts, recorded in every audit row (editable in the widget). No default: on SQLite actions are
        refused until it is filled in; on PostgreSQL an empty box means the database session user.
    run
        The run (:func:`market_surveillance.dashboard.load_run`) whose tables the drill-down reads; without
        it the widget is the queue and the case panel only.

    Attributes
    ----------
    case_id
        The case on screen (None until one is opened or picked).
    widget
        The ipywidgets container (the object itself displays it in a notebook).
    """

    def __init__(self, store: Any, *, actor: str | None = None, run: Any | None = None):
        self.store = store
        self.run = run
        self.case_id: str | None = None
        self.focus_id: str | None = None
        self.figures: dict[str, Any] = {}
        self.tables: dict[str, pd.DataFrame] = {}
        everything = store.alerts().to_pandas()
        wide = w.Layout(width="98%")
        self.actor = _classed(
            w.Text(value=actor or "", placeholder="your name (required)", description="actor"), "actor"
        )
        self.rule = _classed(
            w.Dropdown(options=_options(everything["rule_name"]), description="rule"), "rule"
        )
        self.typology = w.Dropdown(options=_options(everything["typology"]), description="typology")
        self.asset = w.Dropdown(options=_options(everything["asset"]), description="asset")
        self.alert_status = _classed(
            w.Dropdown(options=[ALL, NEW, *(s.value for s in CaseStatus)], description="in case"), "in-case"
        )
        self.min_score = w.FloatText(value=0.0, description="min score")
        self.selection = _classed(
            w.SelectMultiple(options=[], rows=12, description="queue", layout=wide), "queue"
        )
        # free text is sent to the kernel once, when the box loses focus: a model update per keystroke is
        # throttled by ipywidgets and can reach the kernel after the button click that should use it
        self.title = _classed(
            w.Text(
                placeholder="case title",
                description="title",
                layout=w.Layout(width="60%"),
                continuous_update=False,
            ),
            "title",
        )
        self.priority = w.Dropdown(
            options=[p.value for p in CasePriority], value=CasePriority.MEDIUM.value, description="priority"
        )
        self.open_button = _classed(w.Button(description="Open case", button_style="primary"), "open")
        self.add_button = _classed(w.Button(description="Add to case"), "add")
        # wide enough for "C-xxxx · closed_false_positive · title": the status must never be cut off
        self.case_pick = _classed(w.Dropdown(options=[], description="case", layout=wide), "case")
        self.assignee = w.Text(placeholder="analyst id", description="assignee")
        self.assign_button = _classed(w.Button(description="Assign"), "assign")
        self.comment_text = _classed(
            w.Textarea(
                placeholder="comment (also the reason recorded with a status change; required to close)",
                description="comment",
                layout=w.Layout(width="60%"),
                continuous_update=False,
            ),
            "comment",
        )
        self.comment_button = _classed(w.Button(description="Comment"), "comment-button")
        self.status = _classed(w.Dropdown(options=_ACTIVE, description="status"), "status")
        self.status_button = _classed(w.Button(description="Set status"), "set-status")
        self.resolution = _classed(w.Dropdown(options=_CLOSE_AS, description="close as"), "resolution")
        # reason code recorded with the verdict on close, when the store keeps verdicts
        self.reason = _classed(w.Dropdown(options=_reason_options(), description="reason"), "reason")
        self.close_button = _classed(w.Button(description="Close case", button_style="warning"), "close")
        self.message = _classed(w.HTML(), "message")
        self.case_view = _classed(w.HTML(), "case-view")
        # drill-down of the alert in focus (the last one clicked in the queue)
        self.alert_view = _classed(w.HTML(), "alert-view")
        self.drill_out = _classed(w.Output(), "drill")
        self.evidence_view = _classed(w.HTML(), "evidence")
        self.replay_out = _classed(w.Output(), "replay")
        self.accounts_view = _classed(w.HTML(), "accounts")

        for control in (self.rule, self.typology, self.asset, self.alert_status, self.min_score):
            control.observe(self.on_filter, names="value")
        self.case_pick.observe(self.on_pick_case, names="value")
        self.selection.observe(self.on_select, names="value")
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
        drill = []
        if run is not None:
            drill = [
                w.HTML("<b>Alert in focus</b> (click an alert in the queue)"),
                self.alert_view,
                self.drill_out,
                w.HTML("<b>Evidence</b>"),
                self.evidence_view,
                w.HTML("<b>Order-book replay</b> (slider: any moment of the alert window)"),
                self.replay_out,
                w.HTML("<b>Accounts</b>"),
                self.accounts_view,
            ]
        self.widget = _classed(
            w.VBox(
                [
                    w.HTML("<b>Alert queue</b> (from the store, highest priority first)"),
                    w.HBox([self.rule, self.typology, self.asset]),
                    w.HBox([self.alert_status, self.min_score, self.actor]),
                    self.selection,
                    w.HBox([self.title, self.priority, self.open_button, self.add_button]),
                    w.HTML("<b>Case</b>"),
                    self.case_pick,
                    w.HBox([self.assignee, self.assign_button]),
                    w.HBox([self.comment_text, self.comment_button]),
                    w.HBox([self.status, self.status_button]),
                    w.HBox([self.resolution, self.reason, self.close_button]),
                    self.message,
                    self.case_view,
                    *drill,
                ]
            ),
            "triage",
        )
        self.on_filter()
        self._refresh_cases()
        if run is not None and self.selection.options:  # open on the top of the queue
            self.selection.value = (self.selection.options[0][1],)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- reads -----------------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """Alerts passing the filters, read from the store now, in queue order (highest priority first;
        muted alerts left out), with their 0–100 ``priority``.

        Rule, asset and case status are store-side filters; typology and minimum score apply to the result.
        Priority is computed over every stored alert (a percentile needs the rule's whole history).
        """
        kw: dict[str, Any] = {}
        if self.rule.value != ALL:
            kw["rule"] = self.rule.value
        if self.asset.value != ALL:
            kw["asset"] = self.asset.value
        if self.alert_status.value != ALL:
            kw["status"] = self.alert_status.value
        everything = self.store.alerts().to_pandas()
        prio = dict(zip(everything["alert_id"], queue_priority(everything), strict=True))
        a = self.store.alerts(**kw).to_pandas() if kw else everything
        a = a.assign(priority=a["alert_id"].map(prio))
        if self.typology.value != ALL:
            a = a[a["typology"] == self.typology.value]
        a = a[a["score"] >= float(self.min_score.value or 0.0)]
        return queue(a)

    def on_filter(self, change: Any = None) -> None:
        """Re-read the alert list from the store (selections still listed are kept)."""
        rows = self.filtered()
        keep = set(self.selection.value)
        options = [(alert_label(r), r.alert_id) for r in rows.itertuples()]
        self.selection.unobserve(self.on_select, names="value")
        try:
            self.selection.options = options
            self.selection.value = tuple(v for _, v in options if v in keep)
        finally:
            self.selection.observe(self.on_select, names="value")

    # -- drill-down ------------------------------------------------------------------------------
    def on_select(self, change: Any = None) -> None:
        """Focus the alert just clicked (the newest in the selection) and redraw its drill-down."""
        now = tuple(self.selection.value)
        before = tuple(change["old"]) if isinstance(change, dict) and "old" in change else ()
        added = [x for x in now if x not in before]
        focus = added[-1] if added else (now[0] if now else None)
        if focus is not None and focus != self.focus_id:
            self.show_alert(focus)

    def show_alert(self, alert_id: str) -> None:
        """Redraw the drill-down for one alert: summary, charts on one time axis, evidence tables, the book
        replay and the account panel. Needs the run (``TriageWidget(store, run=load_run(...))``)."""
        self.focus_id = alert_id
        if self.run is None:
            return
        from market_surveillance.dashboard.drill import (
            account_panel,
            book_replay_figure,
            drilldown_figure,
            evidence_orders,
            evidence_trades,
        )
        from market_surveillance.dashboard.plots import alert_summary

        got = self.store.alerts(alert_ids=[alert_id]).to_pandas()
        if got.empty:
            self._say(f"alert {alert_id} is not in the store", error=True)
            return
        alert = got.iloc[0]
        try:
            tables = self.run.tables
            self.figures = {"drilldown": drilldown_figure(alert, self.run.trades, self.run.orders)}
            if self.run.orders is not None:
                self.figures["replay"] = book_replay_figure(alert, self.run.orders)
            self.tables = {
                "evidence_trades": evidence_trades(alert, self.run.trades),
                "evidence_orders": evidence_orders(alert, self.run.orders),
                **account_panel(alert, tables, self.store),
            }
        except Exception as exc:  # a data problem must be shown, not kill the widget's callback
            self._say(f"drill-down of {alert_id} failed: {exc}", error=True)
            return
        summary = alert_summary(alert)
        summary["priority"] = dict(zip(got["alert_id"], queue_priority(got), strict=True)).get(alert_id)
        self.alert_view.value = _html_table(
            pd.DataFrame({"field": summary.index, "value": summary.to_numpy()}), f"alert {alert_id}"
        )
        self.evidence_view.value = _html_table(
            self.tables["evidence_trades"], "evidence trades", ms=("ts",)
        ) + _html_table(self.tables["evidence_orders"], "evidence order events", ms=("ts",))
        self.accounts_view.value = "".join(
            _html_table(self.tables[k], label, ms=("ts",))
            for k, label in (
                ("profile", "profile"),
                ("counterparties", "counterparties (±1 day)"),
                ("recent", "recent trades"),
                ("other_alerts", "other alerts of these accounts"),
                ("cases", "cases of this alert and those"),
            )
        )
        _show(self.drill_out, self.figures.get("drilldown"))
        _show(self.replay_out, self.figures.get("replay"))

    def _refresh_cases(self) -> None:
        cases = self.store.cases()
        options = [(f"{c.case_id} · {c.status} · {c.title[:60]}", c.case_id) for c in cases]
        self.case_pick.unobserve(self.on_pick_case, names="value")
        self.case_pick.options = options
        self.case_pick.value = self.case_id if self.case_id in {c.case_id for c in cases} else None
        self.case_pick.observe(self.on_pick_case, names="value")

    def refresh_case(self) -> None:
        """Re-read the case on screen and its audit history from the store; the status control shows the
        case's status as stored and the statuses it may move to."""
        if self.case_id is None:
            self.case_view.value = ""
            return
        case = self.store.case(self.case_id)
        self.status.options = _next_statuses(str(case.status))
        self.status.value = str(case.status)
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
            ],
            columns=["at", "actor", "action", "field", "old", "new", "comment"],
        )
        history["at"] = history["at"].map(fmt_ts)
        head = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in (
                ("case", case.case_id),
                ("title", case.title),
                ("status", case.status),
                ("priority", case.priority),
                ("assignee", case.assignee or "—"),
                ("created", fmt_ts(case.created)),
                ("updated", fmt_ts(case.updated)),
                ("alerts", ", ".join(case.alert_ids)),
            )
        )
        self.case_view.value = f"<table>{head}</table>" + _html_table(history, "audit trail")

    # -- actions: each is one store call ---------------------------------------------------------
    def _say(self, text: str, *, error: bool = False) -> None:
        color = "#b00" if error else "#060"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _actor(self) -> str | None:
        # no made-up default: an empty box is None, which the store refuses on SQLite and turns into the
        # database session user on PostgreSQL
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
            kw = (
                {"reason": self.reason.value}
                if self.reason.value and _accepts(self.store.close, "reason")
                else {}
            )
            if self._act(
                f"close as {resolution}",
                lambda: self.store.close(case_id, resolution, self._actor(), self.comment_text.value, **kw),
            ):
                self.comment_text.value = ""


def _html_table(df: pd.DataFrame, caption: str, *, ms: tuple[str, ...] = ()) -> str:
    """A compact HTML table for the widget: missing values as —, timestamps to the second (``ms`` columns
    to the millisecond), floats to 4 significant figures."""
    if df is None or df.empty:
        return f"<p><i>{html.escape(caption)}: none</i></p>"
    body = tidy_frame(df, ms_cols=ms).to_html(index=False, border=0, escape=True)
    return (
        f"<div style='max-height:320px;overflow:auto'><b>{html.escape(caption)}</b> ({len(df)}){body}</div>"
    )


def _show(out: w.Output, fig: Any) -> None:
    """Replace what an Output widget shows by one plotly figure.

    The mime bundle is built here and stored in the widget's own state (``outputs``), so it renders in the
    browser and can be checked without a frontend. (``display(fig)`` would not do: plotly figures display
    themselves into the *cell*, not into the Output widget, when called from a widget callback.)
    """
    import plotly.io as pio

    if fig is None:
        out.outputs = ()
        return
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig)
    title = fig.layout.title.text or "plotly figure"
    out.outputs = ({"output_type": "display_data", "data": {**bundle, "text/plain": title}, "metadata": {}},)
