"""Settings precedence (defaults < TOML < environment) and clear errors on bad values."""

import re
from pathlib import Path

import pytest

from callcore.config import Secret, load_settings
from callcore.errors import ConfigError


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callcore.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.web.host == "127.0.0.1"
    assert settings.web.port == 8080
    assert settings.language == "fr"
    assert settings.data_dir == Path("var")
    assert settings.embedded_database


def test_toml_overrides_defaults_and_environment_overrides_toml(tmp_path):
    path = write_toml(
        tmp_path,
        'language = "en"\ndata_dir = "/srv/cc"\n[web]\nport = 9000\nhost = "127.0.0.2"\n',
    )
    settings = load_settings(path, env={"CALLCORE_WEB_PORT": "9100"})
    assert settings.language == "en"
    assert settings.data_dir == Path("/srv/cc")
    assert settings.web.host == "127.0.0.2"
    assert settings.web.port == 9100


def test_callcore_toml_in_the_working_directory_is_read(tmp_path, monkeypatch):
    write_toml(tmp_path, "[web]\nport = 8181\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).web.port == 8181


def test_database_url_from_plain_or_prefixed_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plain = load_settings(env={"DATABASE_URL": "postgresql://a@h/db"})
    assert plain.database_url == Secret("postgresql://a@h/db")
    both = load_settings(
        env={"DATABASE_URL": "postgresql://a@h/db", "CALLCORE_DATABASE_URL": "postgresql://b@h/db"}
    )
    assert both.database_url == Secret("postgresql://b@h/db")
    assert not both.embedded_database
    assert load_settings(env={"CALLCORE_DATA": "/data"}).data_dir == Path("/data")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CALLCORE_WEB_PORT": "eighty"}, "web.port: expected an integer, got 'eighty'"),
        ({"CALLCORE_WEB_PORT": "70000"}, "web.port: 70000 is not a TCP port"),
        ({"CALLCORE_LANGUAGE": "de"}, "language: 'de' is not one of fr, en"),
        ({"CALLCORE_LOG_LEVEL": "LOUD"}, "log_level: 'LOUD' is not one of"),
    ],
)
def test_bad_environment_values_name_the_key(tmp_path, monkeypatch, env, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[web]\nport = "8080"\n', "web.port: expected an integer, got '8080'"),
        ("[web]\nport = true\n", "web.port: expected an integer, got True"),
        ("colour = 'blue'\n", "unknown setting colour"),
        ("[web]\nprot = 1\n", "unknown setting web.prot"),
        ("web = 3\n", "web: expected a table of settings"),
        ("language = 3\n", "language: expected a string, got int"),
        ("port = [", "is not valid TOML"),
    ],
)
def test_bad_toml_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write_toml(tmp_path, text), env={})


def test_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


def test_secrets_never_appear_in_repr_or_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        env={"DATABASE_URL": "postgresql://u:hunter2@h/db", "CALLCORE_SECRET_KEY": "s3cr3t-key"}
    )
    shown = repr(settings) + str(settings)
    assert "hunter2" not in shown
    assert "s3cr3t-key" not in shown
    assert settings.secret_key is not None
    assert settings.secret_key.value == "s3cr3t-key"


def test_telephony_sections_from_toml_and_environment(tmp_path):
    path = write_toml(
        tmp_path,
        "[agi]\nport = 4574\ncommand_timeout = 5\nallowed_clients = ['127.0.0.1', '10.0.0.0/8']\n"
        "[[ami.servers]]\nid = 'pbx1'\nusername = 'callcore'\nsecret = 's3cret'\n"
        "[[ami.servers]]\nid = 'pbx2'\nhost = '127.0.0.2'\nport = 5039\n"
        "username = 'cc'\nsecret = 'x'\n",
    )
    settings = load_settings(
        path, env={"CALLCORE_AGI_ENABLED": "off", "CALLCORE_AGI_ALLOWED_CLIENTS": "127.0.0.1, ::1"}
    )
    assert settings.agi.port == 4574
    assert settings.agi.command_timeout == 5.0
    assert settings.agi.enabled is False
    assert settings.agi.allowed_clients == ("127.0.0.1", "::1")
    assert [s.id for s in settings.ami.servers] == ["pbx1", "pbx2"]
    assert settings.ami.servers[1].port == 5039
    assert settings.ami.servers[0].secret == Secret("s3cret")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("", {"CALLCORE_AGI_ENABLED": "maybe"}, "agi.enabled: expected true or false"),
        ("", {"CALLCORE_AMI_SERVERS": "x"}, "ami.servers: can only be set in the TOML file"),
        ("", {"CALLCORE_AGI_ALLOWED_CLIENTS": "foo"}, "'foo' is not an IP address or network"),
        ("", {"CALLCORE_AGI_COMMAND_TIMEOUT": "-1"}, "agi.command_timeout: -1.0 must be greater"),
        ("[[ami.servers]]\nid = 'a'\nsecret = 's'\n", {}, r"ami.servers\[0\].username is required"),
        (
            "[[ami.servers]]\nid='a'\nusername='u'\nsecret='s'\n"
            "[[ami.servers]]\nid='a'\nusername='u'\nsecret='s'\n",
            {},
            "two servers share the id 'a'",
        ),
        ("[ami]\nservers = 'pbx'\n", {}, "ami.servers: expected a list"),
    ],
)
def test_bad_telephony_settings_name_the_key(tmp_path, text, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write_toml(tmp_path, text), env=env)


def test_webhook_allowed_hosts_from_the_environment(tmp_path):
    settings = load_settings(
        write_toml(tmp_path, ""),
        env={"CALLCORE_IVR_WEBHOOK_ALLOWED_HOSTS": "CRM.example.com, *.api.example.com, 10.0.0.5"},
    )
    assert settings.ivr.webhook_allowed_hosts == (
        "crm.example.com",
        "*.api.example.com",
        "10.0.0.5",
    )
    assert load_settings(write_toml(tmp_path, ""), env={}).ivr.webhook_allowed_hosts == ()


@pytest.mark.parametrize("host", ["https://crm.example.com", "*", "*.10.0.0.5", "crm_1", "a b"])
def test_a_webhook_allowed_host_that_is_no_host_is_refused_by_name(tmp_path, host):
    with pytest.raises(ConfigError, match=f"webhook_allowed_hosts: '{re.escape(host)}' is not"):
        load_settings(write_toml(tmp_path, f"[ivr]\nwebhook_allowed_hosts = ['{host}']\n"), env={})
