"""Helpers for the dashboard charts signals declare (plain data; dashboards/ renders them)."""

from __future__ import annotations

from watchkeeper.model import Chart, Query, Row, Thresholds
from watchkeeper.signals.threshold import Unit

INSTANCE = "=~$instance"  # matcher value of the dashboard's instance variable


def budget_text(budget: Thresholds, unit: Unit, alert: str) -> str:
    """Why the lines are where they are: the budget, in the spec's own terms."""
    side = "below" if budget.lower_is_worse else "above"
    parts = [f"{sev} {side} {unit.render(value)}" for sev, value in budget.severities()]
    return f"Budget: {', '.join(parts)} (alert {alert}). Lines: yellow warning, red critical."


def budget_chart(row: Row, slot: int, title: str, unit: Unit, description: str,
                 queries: tuple[Query, ...], budget: Thresholds, alert: str, stat: str,
                 *, alerts: tuple[str, ...] = (), match: tuple[tuple[str, str], ...] = (),
                 ) -> Chart:
    """A panel drawing one budget, explaining `alert` (and `alerts`)."""
    return Chart(row, slot, title, unit.grafana,
                 description + budget_text(budget, unit, alert), queries, budget, stat,
                 alerts=(alert, *alerts), match=match)
