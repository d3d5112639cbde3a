"""The signal registry: each module turns one kind of budget into rules and test scenarios.

A builder takes a resolved :class:`~watchkeeper.spec.Service` and returns the
:class:`~watchkeeper.model.Piece` objects it contributes (none when the service does not
declare that budget). Adding a signal is one module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from watchkeeper.model import Piece
from watchkeeper.signals import (
    absent,
    cache,
    db_latency,
    db_pool,
    errors,
    gc,
    latency,
    leak,
    runtime,
    slo,
)
from watchkeeper.spec import Service

Builder = Callable[[Service], list[Piece]]

BUILDERS: tuple[Builder, ...] = (
    latency.build,
    errors.build,
    db_latency.build,
    db_pool.build,
    cache.build,
    runtime.build,
    leak.build,
    gc.build,
    absent.build,
    slo.build,
)
