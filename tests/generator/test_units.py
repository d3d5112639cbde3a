"""Units: the strict grammar of budgets, Prometheus durations, and Go-identical humanizing."""

from __future__ import annotations

import pytest
from watchkeeper import units


@pytest.mark.parametrize(("text", "seconds"), [
    ("250us", 250e-6), ("50ms", 0.05), ("1s", 1.0), ("1.5s", 1.5), ("2m", 120.0),
    ("1h", 3600.0), (".5s", 0.5),
])
def test_durations_parse_to_seconds(text, seconds):
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["20 0ms", "200", 200, "5 m", "-1s", "0s", "1.5", "ms", True])
def test_bad_durations_are_refused(text):
    with pytest.raises(units.UnitError):
        units.parse_duration(text)


@pytest.mark.parametrize(("text", "fraction"), [
    ("80%", 0.8), ("0.1%", 0.001), (0.8, 0.8), ("0.25", 0.25), (1, 1.0), ("100%", 1.0),
])
def test_ratios(text, fraction):
    assert units.parse_ratio(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["80", 80, "-1%", "0%", "150%", "eighty", 0, None])
def test_bad_ratios_are_refused(text):
    with pytest.raises(units.UnitError):
        units.parse_ratio(text)


def test_bare_percentage_gets_a_hint():
    with pytest.raises(units.UnitError, match="did you mean '80%'"):
        units.parse_ratio(80)


@pytest.mark.parametrize(("text", "size"), [
    ("512MB", 512e6), ("512MiB", 512 * 2**20), ("2GiB", 2 * 2**30), ("1.5GB", 1.5e9),
])
def test_bytes_decimal_and_binary(text, size):
    assert units.parse_bytes(text) == size


@pytest.mark.parametrize("text", ["512", "512 MiB", "512mb", "-1MB", 0])
def test_bad_bytes_are_refused(text):
    with pytest.raises(units.UnitError):
        units.parse_bytes(text)


def test_unitless_size_is_refused_with_a_hint():
    """`memory: {warning: 512}` used to be 512 bytes; now it names the units to choose from."""
    with pytest.raises(units.UnitError, match=r"needs its unit, such as 512MiB .* or 512MB"):
        units.parse_bytes(512)


@pytest.mark.parametrize(("seconds", "text"), [
    (300, "5m"), (90, "1m30s"), (1.5, "1s500ms"), (0.25, "250ms"), (3600 * 4, "4h"),
    (86400 + 1, "1d1s"),
])
def test_prometheus_durations(seconds, text):
    assert units.prometheus_duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.22, "220ms"), (1.5, "1.5s"), (0, "0s"), (150, "2m 30s"), (0.000250, "250us"),
    (3725, "1h 2m 5s"),
])
def test_humanize_duration_matches_prometheus(value, text):
    # Expected strings follow Prometheus' template.go humanizeDuration.
    assert units.humanize_duration(value) == text


def test_humanize_percentage_and_bytes():
    assert units.humanize_percentage(0.0011) == "0.11%"
    assert units.humanize_percentage(0.45) == "45%"
    assert units.humanize_1024(512 * 2**20) == "512Mi"
    assert units.humanize(12000) == "12k"
    assert units.humanize(4500) == "4.5k"
