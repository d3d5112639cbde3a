"""The shape of a signal: what one module declares so the registry can derive the rest.

A signal module exports one :class:`Signal`. From the registry of them,
:mod:`watchkeeper.spec` composes the spec model (each `Key` becomes a key of a section),
:mod:`watchkeeper.rules` the rule groups and promtool test scenarios (`build`), and
:mod:`watchkeeper.dashboards` the rows and panels (`charts`); :mod:`watchkeeper.naming`
links each alert to the chart naming it. Nothing else has to know the signal exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.model import Chart, Piece, Service


@dataclass(frozen=True)
class Key:
    """One spec key a signal reads: ``http.throughput`` is ``Key("http", "throughput", …)``.

    `section` is None for a key directly under the service (``caches``, ``jobs``). `type`
    is the pydantic input type (see :mod:`watchkeeper.budgets`); the resolved value is
    ``Service.budget(key.path)``.
    """

    section: str | None
    name: str
    type: Any
    description: str
    default: Any = None

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name


def _nothing(service: Service) -> list[Any]:
    return []


@dataclass(frozen=True)
class Signal:
    """Everything the registry needs from one signal module."""

    name: str  # the `signal` label of its alerts (runtime: one per gauge, e.g. memory)
    keys: tuple[Key, ...]
    build: Callable[[Service], list[Piece]]  # recordings, alerts and scenarios
    charts: Callable[[Service], list[Chart]] = _nothing  # dashboard panels
    # Metric keys the signal reads → default (Go/Prometheus conventional) name; the
    # language profiles and the spec's `metrics:` block may rename them.
    metrics: Mapping[str, str] = field(default_factory=dict)
    # Metrics a healthy instance exposes from start-up whatever its traffic, for the
    # budgets the service declares (ServiceMetricsAbsent watches them).
    exposed: Callable[[Service], list[str]] = _nothing
    # Validation across keys of one *input* service (pydantic model), run after its keys
    # validated: raise ValueError naming the key (an SLO that needs the `http` section).
    check: Callable[[Any], None] | None = None
    # Budgets (spec paths) `build` reads besides its own `keys` (the leak reads the runtime
    # counts' `leak` blocks); None: every budget. `parts.Parts` keys what `build` made by
    # exactly these and fails any other read, so a part is reused only for equal inputs.
    reads: tuple[str, ...] | None = ()
