"""The README's spec example is the first spec a new user copies: it must validate as written."""

from __future__ import annotations

import re
from pathlib import Path

from watchkeeper.load import load_spec

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_spec_example_validates(tmp_path):
    block = re.search(r"## The spec\n\n```yaml\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its '## The spec' yaml example"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(block.group(1))
    spec = load_spec(spec_file)
    assert [service.name for service in spec.services] == ["checkout"]
