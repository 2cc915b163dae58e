"""mesh.config: environment parsing and the fail-fast message on a bad value."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mesh.config import ConfigError, RedisSettings, S3Settings, ServiceSettings, load_settings


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", env_file=".env", extra="ignore", validate_default=True)

    port: int = Field(29999, ge=0, le=65535)


def test_prefixed_environment_is_read(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PORT", "31000")
    monkeypatch.setenv("EXAMPLE_HOST", "127.0.0.1")
    settings = load_settings(ExampleSettings)
    assert (settings.host, settings.port) == ("127.0.0.1", 31000)


def test_every_bad_variable_is_named_with_its_value(monkeypatch):
    monkeypatch.setenv("EXAMPLE_PORT", "seventy")
    monkeypatch.setenv("EXAMPLE_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as caught:
        load_settings(ExampleSettings)
    message = str(caught.value)
    assert message.startswith("invalid configuration (ExampleSettings):")
    assert "EXAMPLE_PORT" in message and "'seventy'" in message
    assert "EXAMPLE_LOG_LEVEL" in message and "'LOUD'" in message
    assert isinstance(caught.value, SystemExit)


def test_s3_and_redis_settings_validate(monkeypatch):
    monkeypatch.setenv("S3_BUCKET", "Bad_Bucket")
    with pytest.raises(ConfigError, match="S3_BUCKET"):
        load_settings(S3Settings)
    monkeypatch.setenv("REDIS_URL", "http://localhost")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings(RedisSettings)
    monkeypatch.setenv("S3_BUCKET", "good-bucket")
    monkeypatch.setenv("S3_SECURE", "true")
    settings = load_settings(S3Settings)
    assert settings.bucket == "good-bucket" and settings.secure
    assert settings.presign_seconds == 6 * 3600
