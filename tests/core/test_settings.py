"""Numbers read from the environment: defaults, and one clear sentence for a value that is not a number."""

from __future__ import annotations

import pytest

from core import settings
from core.errors import SettingsError
from core.settings import env_number, hub_timeout, max_upload_bytes


def test_env_number_reads_a_number_and_defaults_when_unset_or_blank(monkeypatch):
    monkeypatch.delenv("CKA_LENS_TEST_NUMBER", raising=False)
    assert env_number("CKA_LENS_TEST_NUMBER", 7.0, "advice") == 7.0
    monkeypatch.setenv("CKA_LENS_TEST_NUMBER", "  ")
    assert env_number("CKA_LENS_TEST_NUMBER", 7.0, "advice") == 7.0
    monkeypatch.setenv("CKA_LENS_TEST_NUMBER", " 2.5 ")
    assert env_number("CKA_LENS_TEST_NUMBER", 7.0, "advice") == 2.5


def test_the_upload_limit_and_the_hub_timeout_name_a_bad_value(monkeypatch):
    monkeypatch.setenv("CKA_LENS_MAX_UPLOAD_MB", "lots")
    with pytest.raises(SettingsError) as error:
        max_upload_bytes()
    assert str(error.value) == "CKA_LENS_MAX_UPLOAD_MB='lots' is not a number; set it to megabytes, e.g. 1000."
    monkeypatch.setenv("CKA_LENS_HUB_TIMEOUT", "10s")
    with pytest.raises(SettingsError) as error:
        hub_timeout()
    assert str(error.value) == "CKA_LENS_HUB_TIMEOUT='10s' is not a number of seconds; set it to e.g. 10."


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("CKA_LENS_MAX_UPLOAD_MB", "2")
    assert max_upload_bytes() == 2_000_000
    monkeypatch.delenv("CKA_LENS_MAX_UPLOAD_MB")
    assert max_upload_bytes() == 500_000_000
    monkeypatch.setenv("CKA_LENS_HUB_TIMEOUT", "0")
    assert hub_timeout() == 10.0  # a non-positive timeout would never answer: the default instead
    monkeypatch.setenv("CKA_LENS_HUB_TIMEOUT", "3")
    assert hub_timeout() == 3.0


def test_the_floor_pairs_setting_takes_whole_numbers_from_one(monkeypatch):
    monkeypatch.delenv(settings.FLOOR_PAIRS, raising=False)
    assert settings.floor_pairs(8) == 8
    monkeypatch.setenv(settings.FLOOR_PAIRS, "3")
    assert settings.floor_pairs(8) == 3
    for bad in ("0", "2.5", "many"):
        monkeypatch.setenv(settings.FLOOR_PAIRS, bad)
        with pytest.raises(SettingsError, match="is not a number of init pairs"):
            settings.floor_pairs(8)
