"""Dashboards' JSON text (`grafana.to_text`, `grafana.render`): orjson calls back into Python
for each grafanalib object, and turns whatever that call raises into a TypeError. Ctrl-C
and SIGTERM land wherever Python code runs, so also there: they must still end the run as
an interruption (exit 130/143, one line), not as a TypeError's traceback (exit 1), which
is what an interrupted `generate` printed once in 30 tries (bench/interrupt.py)."""

from __future__ import annotations

import pytest
from grafanalib import core
from watchkeeper.cli import Terminated
from watchkeeper.dashboards import grafana


class _Interrupted:
    """A grafanalib-like node whose conversion is where the signal lands."""

    def __init__(self, raised: type[BaseException]) -> None:
        self.raised = raised

    def to_json_data(self) -> object:
        raise self.raised


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Terminated])
def test_a_signal_during_conversion_is_raised_as_itself(raised):
    with pytest.raises(raised):
        grafana.to_text({"panels": [core.Text(content="x"), _Interrupted(raised)]})


def test_a_signal_during_a_whole_dashboards_conversion_is_raised_as_itself():
    dashboard = core.Dashboard(title="t", panels=[core.Text(content="x")])
    dashboard.panels.append(_Interrupted(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        grafana.render(dashboard)


def test_an_object_that_cannot_be_written_is_still_a_type_error():
    """A bug (an object orjson cannot write, a conversion that fails) stays loud."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        grafana.to_text({"panel": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        grafana.to_text({"panel": _Interrupted(ValueError)})


def test_grafanalib_objects_are_written_without_their_unset_settings():
    text = grafana.to_text({"panel": core.Text(content="hello")})
    assert '"content": "hello"' in text and "null" not in text
