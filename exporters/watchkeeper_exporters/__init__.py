"""Exporters for watchkeeper: in-process instrumentation and a sidecar exporter."""
