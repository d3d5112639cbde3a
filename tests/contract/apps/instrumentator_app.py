"""A FastAPI app instrumented with prometheus-fastapi-instrumentator only, with the status label
added to its latency histogram (what the error-ratio rule needs)."""

from fastapi import FastAPI, Response
from prometheus_fastapi_instrumentator import Instrumentator, metrics

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict:
    return {"id": item_id}


@app.get("/boom")
async def boom() -> Response:
    return Response("failed\n", status_code=500)


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


Instrumentator().add(metrics.latency(should_include_status=True)).instrument(app).expose(app)
