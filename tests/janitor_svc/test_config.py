"""JANITOR_* settings: parsing, and a clear refusal to start on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from janitor_svc.config import JanitorSettings
from mesh.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_comma_separated_temp_dirs(monkeypatch):
    monkeypatch.setenv("JANITOR_TEMP_DIRS", "/tmp/a, /var/tmp/b")
    settings = load_settings(JanitorSettings)
    assert settings.port == 29117
    assert settings.max_delay_seconds == 30 * 24 * 3600
    assert settings.temp_dirs == [Path("/tmp/a"), Path("/var/tmp/b")]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("JANITOR_LEASE_SECONDS", "soon", "JANITOR_LEASE_SECONDS"),
    ("JANITOR_MAX_ATTEMPTS", "0", "JANITOR_MAX_ATTEMPTS"),
    ("JANITOR_PORT", "70000", "JANITOR_PORT"),
    ("JANITOR_TEMP_DIRS", "relative/dir", "must be absolute"),
])
def test_a_bad_value_names_the_variable(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(JanitorSettings)
    assert expected in str(caught.value)
    assert repr(value) in str(caught.value)


def test_the_service_refuses_to_start_on_a_bad_value():
    env = {**os.environ, "JANITOR_BACKOFF_SECONDS": "-1"}
    result = subprocess.run([sys.executable, "-m", "janitor_svc"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "JANITOR_BACKOFF_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
