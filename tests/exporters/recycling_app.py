"""The sample WSGI app plus what made workers hang at start: many label children created while
garbage collections run (the GC pause hook used to wait for the multiprocess lock).

The start is the stress: once the app is loaded the GC thresholds are back to what they were
(with a threshold of 50 a scrape of this app's ~32,000 series takes ~3x as long, which on a
loaded machine outlasted gunicorn's worker timeout). Each worker logs when it has loaded the
app and tags its answers with its pid (``X-Worker-Pid``), so the recycling test can tell a
slow start from a hung one and match a failed request with gunicorn's log.
"""

import gc
import os
import sys

from watchkeeper_exporters import JobMetrics
from wsgi_app import app as _app

_thresholds = gc.get_threshold()
gc.set_threshold(50)
JOBS = [JobMetrics(f"boot{i}") for i in range(2000)]
gc.set_threshold(*_thresholds)
print(f"recycling_app: worker {os.getpid()} loaded the app", file=sys.stderr, flush=True)


def app(environ, start_response):
    """The sample app, its answers tagged with this worker's pid."""
    def tagged(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return _app(environ, tagged)
