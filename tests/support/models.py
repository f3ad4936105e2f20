"""Which model a test config names: tests that only need *a* real model pin the fastest one
(the packaged all-MiniLM-L6-v2), whatever the shipped default; tests of the multilingual model
name it themselves."""

from __future__ import annotations

from monitor.config import PACKAGED_MODEL


def pin_model(config_text: str, name: str = PACKAGED_MODEL) -> str:
    """``config_text`` with ``[model] name`` set to ``name`` (added to its [model] table, or as
    a new table at the end)."""
    if "[model]\n" in config_text:
        return config_text.replace("[model]\n", f'[model]\nname = "{name}"\n', 1)
    return f'{config_text}\n[model]\nname = "{name}"\n'
