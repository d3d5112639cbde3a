"""The sample WSGI app plus what made workers hang at start: many label children created while
garbage collections run (the GC pause hook used to wait for the multiprocess lock)."""

import gc

from watchkeeper_exporters import JobMetrics
from wsgi_app import app  # noqa: F401 - served by gunicorn

gc.set_threshold(50)
JOBS = [JobMetrics(f"boot{i}") for i in range(2000)]
