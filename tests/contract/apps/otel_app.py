"""A Starlette app instrumented with OpenTelemetry only (no watchkeeper exporter): the ASGI
instrumentation's HTTP metrics go through the OpenTelemetry SDK's Prometheus exporter.

Run with OTEL_SEMCONV_STABILITY_OPT_IN=http for the stable names (seconds histograms).
"""

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


async def item(request):
    return PlainTextResponse(f"item {request.path_params['item_id']}\n")


async def boom(request):
    return PlainTextResponse("failed\n", status_code=500)


async def health(request):
    return PlainTextResponse("ok\n")


class Exposition:
    """prometheus-client's ASGI app as an object, so Starlette's Route serves it as an app."""

    def __init__(self) -> None:
        self.app = make_asgi_app()

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


app = OpenTelemetryMiddleware(Starlette(routes=[
    Route("/items/{item_id}", item), Route("/boom", boom), Route("/health", health),
    Route("/metrics", Exposition()),
]))
