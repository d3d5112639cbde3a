"""The command as a user meets it: chunked queries, VictoriaMetrics, the report, bad input."""

from __future__ import annotations

import json

from backtest import history
from backtest.conftest import SPEC
from backtest.test_incidents import backtest, episodes_of
from servers import free_port
from watchkeeper.cli import main

STEP, FOR, KEEP = 60, 5 * 60, 5 * 60


def failure(capsys, *argv: str) -> str:
    code = main(["backtest", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_small_chunks_give_the_same_episodes(capsys, prometheus, start):
    whole = backtest(capsys, prometheus, start)
    chunked = backtest(capsys, prometheus, start, "--max-points", "7")
    assert chunked["episodes"] == whole["episodes"]
    assert len(whole["episodes"]) == len(history.INCIDENTS)


def test_victoriametrics_reports_the_same_incidents(capsys, victoria, start):
    """Same API, its own PromQL engine (rate() without extrapolation, its own lookback): the
    incidents are found with the same tolerance, and nothing else fires."""
    document = backtest(capsys, victoria, start)
    for incident in history.INCIDENTS:
        found = episodes_of(document, incident.alert, incident.severity)
        assert len(found) == 1, (incident, document["episodes"])
        began, ended = start + incident.start * 60, start + incident.end * 60
        hold = FOR
        keep = KEEP if incident.alert != "TargetDown" else 0
        assert began + hold - STEP <= found[0]["start"] <= began + hold + STEP, incident
        assert ended + keep - STEP <= found[0]["end"] <= ended + incident.lag * 60 + keep + STEP
    assert len(document["episodes"]) == len(history.INCIDENTS)


def test_report_folder(capsys, prometheus, start, tmp_path):
    out = tmp_path / "report"
    argv = ["backtest", str(SPEC), "--prometheus", prometheus, "--from", str(start + 600),
            "--to", str(start + 359 * 60), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'index.html'}" in printed and "MemoryHigh" in printed
    page = (out / "index.html").read_text()
    assert "<img src='checkout.png'" in page and "MemoryHigh" in page
    picture = (out / "checkout.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 20_000
    assert main(argv) == 0  # its own files: rewritten
    capsys.readouterr()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.html").write_text("mine")
    err = failure(capsys, *argv[1:-1], str(foreign))
    assert "index.html exists and was not written by watchkeeper backtest" in err
    assert (foreign / "index.html").read_text() == "mine"
    assert not (foreign / "checkout.png").exists()


def test_unreachable_server_is_named(capsys, start):
    port = free_port()
    err = failure(capsys, str(SPEC), "--prometheus", f"http://127.0.0.1:{port}", "--since",
                  "1h")
    assert f"cannot reach Prometheus at 127.0.0.1:{port}" in err


def test_wrong_url_is_a_clear_error(capsys, prometheus):
    err = failure(capsys, str(SPEC), "--prometheus", prometheus + "/not-here", "--since", "1h")
    assert "answered HTTP 404" in err


def test_empty_and_malformed_ranges(capsys, prometheus, start):
    err = failure(capsys, str(SPEC), "--prometheus", prometheus, "--from", str(start),
                  "--to", str(start + 30))
    assert "the range is empty" in err
    err = failure(capsys, str(SPEC), "--prometheus", prometheus, "--from", "yesterday")
    assert "--from expects RFC 3339" in err
    err = failure(capsys, str(SPEC), "--prometheus", prometheus, "--since", "7 days")
    assert "--since expects a duration" in err


def test_series_without_data_in_the_range(capsys, prometheus, start, tmp_path):
    spec = tmp_path / "payments.yaml"
    spec.write_text(SPEC.read_text().replace("checkout", "payments"))
    err = failure(capsys, str(spec), "--prometheus", prometheus, "--from", str(start + 600),
                  "--to", str(start + 3600))
    assert "`process_resident_memory_bytes` has no data for job=payments in this range" in err
    assert "`up` has no data for job=payments in this range" in err
    # The same service, but a week before its history began.
    err = failure(capsys, str(SPEC), "--prometheus", prometheus, "--from",
                  str(start - 7 * 86400), "--to", str(start - 6 * 86400))
    assert "`cache_hits_total` has no data for job=checkout in this range" in err


def test_rfc3339_and_since(capsys, prometheus, start):
    from datetime import UTC, datetime

    begin = datetime.fromtimestamp(start + 600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = datetime.fromtimestamp(start + 359 * 60, UTC).isoformat()
    assert main(["backtest", str(SPEC), "--prometheus", prometheus, "--from", begin, "--to",
                 end, "--json"]) == 0
    by_time = json.loads(capsys.readouterr().out)
    assert by_time["from"] == start + 600 and len(by_time["episodes"]) == len(history.INCIDENTS)
    assert main(["backtest", str(SPEC), "--prometheus", prometheus, "--to", end, "--since",
                 "349m", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == by_time["episodes"]


def test_service_filter(capsys, prometheus, start):
    document = backtest(capsys, prometheus, start, "--service", "checkout")
    assert len(document["episodes"]) == len(history.INCIDENTS)
    err = failure(capsys, str(SPEC), "--prometheus", prometheus, "--since", "1h",
                  "--service", "nope")
    assert "no service named nope in the spec (services: checkout)" in err


def test_text_table(capsys, prometheus, start):
    """Gauges make exact, hand-derived numbers: memory of i2 over budget from minute 60 to 100
    fires at 65 (for 5m) and resolves at 105 (keep_firing_for 5m): one 40m episode; target i2
    down from 300 to 320 fires at 305 and, without keep_firing_for, resolves at 320."""
    assert main(["backtest", str(SPEC), "--prometheus", prometheus, "--from", str(start + 600),
                 "--to", str(start + 359 * 60)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["ALERT", "SEVERITY", "SERVICE", "LABELS", "EPISODES"]
    table = {tuple(line.split()[:4]): line.split()[4:7] for line in lines[2:-1]}
    assert table[("MemoryHigh", "warning", "checkout", "instance=i2,job=checkout")] == \
        ["1", "40m", "40m"]
    assert table[("TargetDown", "warning", "checkout", "instance=i2,job=checkout")] == \
        ["1", "15m", "15m"]
    assert ("CacheHitRatioLow", "warning", "checkout", "cache=l1") not in table
    assert lines[-1] == "5 episode(s); 6 of 11 alert rules never fired in this range"
