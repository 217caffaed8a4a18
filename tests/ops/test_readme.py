"""The README's configuration table must name every environment variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_read_from_the_environment_is_documented() -> None:
    settings_text = (ROOT / "portal" / "settings.py").read_text()
    names = set(re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z_]+)"', settings_text))
    readme = (ROOT / "README.md").read_text()
    assert names, "no environment variables found in settings.py"
    undocumented = sorted(name for name in names if f"`{name}`" not in readme)
    assert undocumented == []
