"""No storage password is ever printed: every path that formats a URL, every password shape."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.storage import describe, open_storage, redact, redact_url
from hls_tune.study.study import load_study
from tests.support.helpers import hls_tune

# Each password holds TOKEN somewhere among arbitrary printable characters; a message that
# shows the password, or the part of it around TOKEN, shows TOKEN.
TOKEN = "Kx7SECRETq9"
PRINTABLE = st.text(alphabet=string.printable, max_size=12)
PASSWORDS = st.builds(lambda a, b: a + TOKEN + b, PRINTABLE, PRINTABLE)


def _leaks(text: str) -> bool:
    return TOKEN in text or "SECRET" in text or quote(TOKEN) in text


def _message(url: str, action) -> str:
    """What the CLI prints for `action(url)`: its error text, redacted as the CLI redacts."""
    try:
        result = action(url)
    except (ConfigError, HlsTuneError) as error:
        return redact(str(error))
    return str(result)


def _url(template: str, password: str, encoded: bool) -> str:
    return template.format(pw=quote(password, safe="") if encoded else password)


TEMPLATES = [
    "postgresql://tuner:{pw}@db.invalid:5432/hls",
    "postgresql+psycopg://tuner:{pw}@db.invalid/hls?sslmode=disable",
    "postgres://tuner:{pw}@db.invalid:notaport/hls",
    "postgresql+asyncpg://tuner:{pw}@db.invalid/hls",
    "postgresql://tuner:{pw}@db.invalid",
    "sqlite://tuner:{pw}@host/x.db",
    "mysql://tuner:{pw}@db.invalid/hls",
    "grpc://tuner:{pw}@proxy.invalid:13000/path",
    "postgresql://db.invalid/hls?password={pw}",
]


@settings(max_examples=400, deadline=None)
@given(PASSWORDS, st.booleans(), st.sampled_from(TEMPLATES))
def test_no_error_or_description_shows_the_password(
    password: str, encoded: bool, template: str
) -> None:
    url = _url(template, password, encoded)
    for action in (describe, redact_url, redact):
        text = _message(url, action)
        assert not _leaks(text), (url, text)


@pytest.mark.postgres
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(PASSWORDS, st.booleans())
def test_opening_a_real_server_never_shows_the_password(
    postgres_url: str, password: str, encoded: bool
) -> None:
    real = make_url(postgres_url)
    template = f"postgresql://{real.username}:{{pw}}@{real.host}:{real.port}/{{db}}"
    for database in ("hls_tune_no_such_database", real.database):
        url = _url(template.replace("{db}", database), password, encoded)
        for action in (
            lambda u: open_storage(u),
            lambda u: open_storage(u, create=True),
            lambda u: load_study(u, "no-such-study"),
        ):
            text = _message(url, action)
            assert not _leaks(text), (url, text)


CLI_PASSWORDS = [
    f"two {TOKEN} words",
    f"pa%20{TOKEN}",
    f"a:{TOKEN}/b",
    f"{TOKEN}@x#y?z",
    f"'{TOKEN}\"\\",
    f"{TOKEN}:5432/db",
]


@pytest.mark.parametrize("password", CLI_PASSWORDS)
def test_commands_print_no_password_and_no_traceback(tmp_path: Path, password: str) -> None:
    url = f"postgresql://tuner:{password}@127.0.0.1:1/hls"
    commands = [
        ("study", "list", "--storage", url),
        ("study", "show", "x", "--storage", url),
        ("worker", "--study", "x", "--no-progress", "--checkpoint-dir", str(tmp_path)),
    ]
    for args in commands:
        result = hls_tune(*args, HLS_TUNE_STORAGE=url)
        output = result.stdout + result.stderr
        assert result.returncode in (1, 2), output
        assert "Traceback" not in output and len(result.stderr.strip().splitlines()) == 1, output
        assert not _leaks(output), output


def test_the_list_of_allowed_forms_is_not_redacted() -> None:
    with pytest.raises(ConfigError) as error:
        describe("nosuch://u:pw@h/db")
    message = redact(str(error.value))
    assert "postgresql://USER:PASSWORD@HOST" in message and "pw" not in message.split("got")[1]
