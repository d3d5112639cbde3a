"""gunicorn settings for the sample WSGI app in multiprocess mode.

Start with PROMETHEUS_MULTIPROC_DIR pointing at an empty directory (wiped on each deploy).
``child_exit`` drops a dead worker's gauges and merges its counters into the archive files.
"""

from watchkeeper_exporters import child_exit  # noqa: F401 - gunicorn picks hooks up by name

workers = 2
bind = "127.0.0.1:8000"
