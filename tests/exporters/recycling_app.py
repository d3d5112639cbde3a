"""The sample WSGI app plus what made workers hang at start: many label children created while
garbage collections run (the GC pause hook used to wait for the multiprocess lock).

Each answer names the worker that served it (``X-Worker-Pid``), so a failed request in the
recycling test can be matched with gunicorn's log of worker starts and exits.
"""

import gc
import os

from watchkeeper_exporters import JobMetrics
from wsgi_app import app as _app

gc.set_threshold(50)
JOBS = [JobMetrics(f"boot{i}") for i in range(2000)]

def app(environ, start_response):
    """The sample app, its answers tagged with this worker's pid."""
    def tagged(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return _app(environ, tagged)
