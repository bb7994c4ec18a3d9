"""The one settings loader (core/config.py): defaults < YAML < environment < overrides,
list fields from comma-separated variables, and errors that name field, value and source.
Pure functions: no servers needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from homeport.core.config import SettingsError
from homeport.core.settings import Settings
from homeport.router.settings import load_settings


def test_each_source_overrides_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("region: eu-west\npartitions: 8\nconcurrency: 32\n")
    env = {"HOMEPORT_PARTITIONS": "4", "HOMEPORT_CONCURRENCY": "64"}

    s = Settings.load(path, env, concurrency=128)

    assert (s.region, s.partitions, s.concurrency) == ("eu-west", 4, 128)
    assert Settings.load(None, {}).region == "us-east"  # the default
    assert Settings.load(None, {"HOMEPORT_CONFIG": str(path)}).partitions == 8


def test_list_settings_split_at_commas_and_scalars_do_not() -> None:
    env = {"HOMEPORT_GATEWAY_TOKENS": "t1,t2,", "HOMEPORT_GATEWAY_LISTEN": "127.0.0.1:7000"}

    g = load_settings(env=env)

    assert g.tokens == ("t1", "t2")
    assert g.listen == "127.0.0.1:7000"
    assert g.admin_tokens == ()


def test_a_bad_environment_value_names_field_value_and_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(None, {"HOMEPORT_PARTITIONS": "many"})
    msg = str(caught.value)
    assert "partitions" in msg and "'many'" in msg and "HOMEPORT_PARTITIONS" in msg


def test_an_unknown_yaml_setting_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("regoin: eu-west\n")
    with pytest.raises(SettingsError) as caught:
        Settings.load(path, {})
    msg = str(caught.value)
    assert "regoin" in msg and "unknown setting" in msg and "region" in msg


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("- region\n- eu-west\n")
    with pytest.raises(SettingsError, match="mapping"):
        Settings.load(path, {})


def test_gateway_rules_across_fields_are_checked() -> None:
    with pytest.raises(SettingsError, match="tls_cert and tls_key go together"):
        load_settings(env={"HOMEPORT_GATEWAY_TLS_CERT": "/x.pem"})
