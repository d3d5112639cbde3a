"""`watchkeeper test` and `check` start without the spec models, grafanalib or requests
(about 0.3 s of imports per invocation); the constants cli.py keeps to stay light agree
with the modules they stand for."""

from __future__ import annotations

import subprocess
import sys

from watchkeeper import cli, deploy
from watchkeeper.generate import OUTPUTS

HEAVY = ("pydantic", "grafanalib", "requests", "watchkeeper.spec", "watchkeeper.generate")


def test_light_constants_match_their_modules():
    assert tuple(OUTPUTS) == cli.OUTPUT_FOLDERS
    assert (cli.DEFAULT_FOLDER_UID, cli.DEFAULT_FOLDER_TITLE) == (
        deploy.DEFAULT_FOLDER_UID, deploy.DEFAULT_FOLDER_TITLE)


def test_test_command_imports_nothing_heavy(tmp_path):
    (tmp_path / "alerts").mkdir()  # no rule files: exits 2 after parsing and dispatch
    probe = ("import sys\nfrom watchkeeper import cli\n"
             f"code = cli.main(['test', {str(tmp_path)!r}])\n"
             f"print(code, [m for m in {HEAVY!r} if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr


def test_spec_errors_are_still_one_line_each_with_exit_2(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\nservices: []\nextra: 1\n")
    result = subprocess.run([sys.executable, "-m", "watchkeeper.cli", "validate", str(spec)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: {spec}:3: extra: unknown key 'extra'" in result.stderr
