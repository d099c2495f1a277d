"""`load_settings`: defaults, then SHADOWLAB_* variables, then flags; a bad value is one line
that names the variable or flag as the user wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shadowlab.settings import Settings, SettingsError, load_settings


def refusal(overrides: dict[str, Any] | None = None, **environ: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides, environ)
    return str(caught.value)


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings(environ={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 7070
    assert settings.hosting == "process"
    assert settings.log_level == "info"
    assert settings.credentials_file is None
    assert settings.allow_unsigned is False
    assert settings.worker_max_address_space_mb == 0
    # Workers run elsewhere: the data dir is absolute, though its default is relative.
    assert settings.data_dir == Path(".shadowlab").resolve()
    assert Settings().data_dir == Path(".shadowlab")


def test_settings_itself_never_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHADOWLAB_PORT", "abc")
    assert Settings().port == 7070
    assert load_settings(environ={}).port == 7070  # the mapping given, not os.environ
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == "SHADOWLAB_PORT: 'abc' is not an integer"


def test_environment_values_are_parsed_by_type() -> None:
    settings = load_settings(
        environ={
            "SHADOWLAB_PORT": "8080",
            "SHADOWLAB_MIRROR_TIMEOUT": "0.25",
            "SHADOWLAB_ALLOW_UNSIGNED": "yes",
            "SHADOWLAB_CREDENTIALS_FILE": "keys.ini",
            "SHADOWLAB_DATA_DIR": "state",
            "SHADOWLAB_DATABASE_URL": "postgresql://db/x",
            "SHADOWLAB_HOSTING": "none",
            "SHADOWLAB_LOG_LEVEL": "WARNING",  # as logging spells it
            "SHADOWLAB_BODY_MIN_RATE": "0",  # 0: no minimum rate
        }
    )
    assert settings.port == 8080
    assert settings.mirror_timeout == 0.25
    assert settings.allow_unsigned is True
    assert settings.credentials_file == Path("keys.ini")
    assert settings.data_dir == Path("state").resolve()
    assert settings.sqlalchemy_url == "postgresql+psycopg://db/x"
    assert settings.hosting == "none"
    assert settings.log_level == "warning"
    assert settings.body_min_rate == 0


@pytest.mark.parametrize("raw", ["0", "false", "no", "off"])
def test_false_booleans(raw: str) -> None:
    assert load_settings(environ={"SHADOWLAB_ALLOW_UNSIGNED": raw}).allow_unsigned is False


def test_empty_variables_mean_the_default_and_unknown_ones_are_ignored() -> None:
    # Workers and containers read SHADOWLAB_* variables of their own.
    settings = load_settings(
        environ={
            "SHADOWLAB_PORT": "",
            "SHADOWLAB_WORKER_MAX_QUEUE": "5",
            "SHADOWLAB_UPSTREAM_URL": "http://127.0.0.1:9000",
            "OTHER": "x",
        }
    )
    assert settings.port == 7070


def test_flags_win_over_the_environment_and_none_means_not_given() -> None:
    settings = load_settings(
        {"port": "9090", "host": None, "data_dir": "flagged", "allow_unsigned": True},
        {"SHADOWLAB_PORT": "8080", "SHADOWLAB_HOST": "0.0.0.0", "SHADOWLAB_DATA_DIR": "env"},
    )
    assert settings.port == 9090
    assert settings.host == "0.0.0.0"
    assert settings.data_dir == Path("flagged").resolve()
    assert settings.allow_unsigned is True


def test_a_good_flag_hides_a_bad_variable_for_the_same_setting() -> None:
    assert load_settings({"port": 1234}, {"SHADOWLAB_PORT": "abc"}).port == 1234


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("HOSTING", "proces", "SHADOWLAB_HOSTING: 'proces' is not one of: process, none"),
        (
            "LOG_LEVEL",
            "LOUD",
            "SHADOWLAB_LOG_LEVEL: 'LOUD' is not one of: debug, info, warning, error",
        ),
        ("PORT", "abc", "SHADOWLAB_PORT: 'abc' is not an integer"),
        ("PORT", "70000", "SHADOWLAB_PORT: '70000' must be at most 65535"),
        ("PORT", "-1", "SHADOWLAB_PORT: '-1' must be at least 0"),
        ("MAX_INSTANCES", "1.5", "SHADOWLAB_MAX_INSTANCES: '1.5' is not an integer"),
        ("MAX_INSTANCES", "0", "SHADOWLAB_MAX_INSTANCES: '0' must be at least 1"),
        ("MIRROR_TIMEOUT", "soon", "SHADOWLAB_MIRROR_TIMEOUT: 'soon' is not a number"),
        ("MIRROR_TIMEOUT", "0", "SHADOWLAB_MIRROR_TIMEOUT: '0' must be greater than 0"),
        ("HEAD_TIMEOUT", "inf", "SHADOWLAB_HEAD_TIMEOUT: 'inf' is not a finite number"),
        (
            "RECONCILE_INTERVAL",
            "-0.5",
            "SHADOWLAB_RECONCILE_INTERVAL: '-0.5' must be greater than 0",
        ),
        (
            "WORKER_MAX_ADDRESS_SPACE_MB",
            "-1",
            "SHADOWLAB_WORKER_MAX_ADDRESS_SPACE_MB: '-1' must be at least 0",
        ),
        (
            "ALLOW_UNSIGNED",
            "maybe",
            "SHADOWLAB_ALLOW_UNSIGNED: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)",
        ),
        ("ACCOUNT_ID", "12345", "SHADOWLAB_ACCOUNT_ID: '12345' is not a 12-digit AWS account id"),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(variable: str, raw: str, message: str) -> None:
    assert refusal(**{f"SHADOWLAB_{variable}": raw}) == message


def test_the_variable_is_named_as_the_user_spelled_it() -> None:
    assert refusal(shadowlab_port="x") == "shadowlab_port: 'x' is not an integer"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": "abc"}, "--port: 'abc' is not an integer"),
        ({"port": 65536}, "--port: 65536 must be at most 65535"),
        ({"hosting": "proces"}, "--hosting: 'proces' is not one of: process, none"),
        ({"log_level": "loud"}, "--log-level: 'loud' is not one of: debug, info, warning, error"),
        (
            {"account_id": "abcdefghijkl"},
            "--account-id: 'abcdefghijkl' is not a 12-digit AWS account id",
        ),
        ({"no_such_setting": 1}, "--no-such-setting: 1 is not a setting"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(overrides: dict[str, Any], message: str) -> None:
    assert refusal(overrides) == message


def test_several_bad_values_give_one_self_contained_line_each() -> None:
    lines = refusal({"hosting": "x"}, SHADOWLAB_PORT="abc", SHADOWLAB_MIRROR_TIMEOUT="0").split(
        "\n"
    )
    assert lines == [
        "SHADOWLAB_PORT: 'abc' is not an integer",
        "SHADOWLAB_MIRROR_TIMEOUT: '0' must be greater than 0",
        "--hosting: 'x' is not one of: process, none",
    ]


def test_a_value_with_a_newline_stays_on_one_line() -> None:
    message = refusal(SHADOWLAB_PORT="1\n2")
    assert message == "SHADOWLAB_PORT: '1\\n2' is not an integer"
    assert "\n" not in message
