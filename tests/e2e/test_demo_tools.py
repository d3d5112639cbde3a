"""The demo's load generator and webhook receiver on their own (no stack, fast)."""

from __future__ import annotations

import json
import threading

import loadgen
import pytest
import servers
from webhook import WebhookReceiver


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://192.0.2.7/", "ftp://127.0.0.1/"])
def test_load_generator_refuses_anything_but_loopback(url: str) -> None:
    with pytest.raises(ValueError):
        loadgen.require_loopback(url)


def test_load_generator_is_bounded_by_request_count() -> None:
    receiver = WebhookReceiver().start()  # any local HTTP server will do as a target
    try:
        stats = loadgen.run(receiver.url, rps=200, duration=30, max_requests=25, workers=3,
                            stop=threading.Event())
    finally:
        receiver.stop()
    assert stats.sent == 25


def test_webhook_receiver_records_each_alert_with_its_receiver() -> None:
    receiver = WebhookReceiver().start()
    payload = {"alerts": [{"status": "firing", "labels": {
        "alertname": "HttpLatencyP99High", "service": "a", "signal": "latency",
        "severity": "critical"}}]}
    try:
        status, _ = servers.post(receiver.url + "/page", json.dumps(payload).encode())
    finally:
        receiver.stop()
    assert status == 200
    [entry] = receiver.received
    assert (entry.receiver, entry.status, entry.key()) == ("page", "firing",
                                                          ("a", "latency", "critical"))


def test_a_repeated_notification_counts_as_duplicate_a_changed_one_does_not() -> None:
    """What test_ha counts: the same group re-sent with the same alerts and nothing changed
    in between is a duplicate (two un-deduplicated peers, or replicas whose alerts differ by
    a label); the group re-sent because an alert resolved, or fired again after resolving,
    is not."""
    import chain

    receiver = WebhookReceiver().start()
    labels = {"alertname": "HttpErrorRatioHigh", "service": "a", "signal": "errors",
              "severity": "critical"}

    def send(status: str) -> None:
        body = {"groupKey": "{}/{severity=\"critical\"}:{alertname=\"HttpErrorRatioHigh\"}",
                "alerts": [{"status": status, "labels": labels}]}
        assert servers.post(receiver.url + "/page", json.dumps(body).encode())[0] == 200

    try:
        send("firing")
        send("resolved")
        assert chain.duplicates(receiver, 0) == []
        send("firing")
        send("firing")
    finally:
        receiver.stop()
    key = ("a", "errors", "critical")
    assert chain.count(receiver, 0, key, "firing") == 3
    [(_, receiver_name, _, alerts)] = chain.duplicates(receiver, 0)  # the 4th, not the 3rd
    assert (receiver_name, alerts) == ("page", frozenset({(key, "firing")}))
    assert "page   a/errors/critical resolved" in chain.timeline(receiver, 0)
