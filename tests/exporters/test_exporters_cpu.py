"""python_cpu_available_cores: the denominator of the CPU budget follows the cgroup limit."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry
from watchkeeper_exporters.runtime import RuntimeCollector, available_cores

AFFINITY = len(os.sched_getaffinity(0))


def test_cgroup_v2_quota_is_the_limit(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cores(str(tmp_path)) == 0.5


def test_cgroup_v1_quota_is_the_limit(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("25000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cores(str(tmp_path)) == 0.25


def test_no_limit_or_no_cgroup_means_the_cpus_it_may_run_on(tmp_path):
    assert available_cores(str(tmp_path)) == AFFINITY
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cores(str(tmp_path)) == AFFINITY
    (tmp_path / "cpu.max").write_text(f"{(AFFINITY + 8) * 100000} 100000\n")
    assert available_cores(str(tmp_path)) == AFFINITY  # a limit above the CPUs is no limit


def test_collector_exports_the_gauge():
    registry = CollectorRegistry()
    registry.register(RuntimeCollector())
    assert registry.get_sample_value("python_cpu_available_cores") == available_cores()
