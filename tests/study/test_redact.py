"""hls_tune/study/redact.py: every password in a text is hidden, the rest kept."""

from __future__ import annotations

import pytest

from hls_tune.study.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql://tuner:s3cret@db.example:5432/hls",
            "postgresql://tuner:***@db.example:5432/hls",
        ),
        (  # unencoded special characters, '@' and '/' included
            "postgresql+psycopg://tuner:p@ss:w/rd!#$@db:5432/hls?sslmode=require",
            "postgresql+psycopg://tuner:***@db:5432/hls?sslmode=require",
        ),
        (  # percent-encoded, as SQLAlchemy renders it
            "postgresql://tuner:p%40ss%3Aw%2Frd@db/hls",
            "postgresql://tuner:***@db/hls",
        ),
        (  # nothing to hide
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "sqlite:////tmp/study.db and journal:study.log",
            "sqlite:////tmp/study.db and journal:study.log",
        ),
        (
            "host=db port=5432 user=tuner password=s3cret dbname=hls",
            "host=db port=5432 user=tuner password=*** dbname=hls",
        ),
        ("password = 'two words \\' quote' host=db", "password = *** host=db"),
        (
            "postgresql://db/hls?user=tuner&password=s3cret&x=1",
            "postgresql://db/hls?user=tuner&password=***&x=1",
        ),
        ("PGPASSWORD=s3cret psql -h db", "PGPASSWORD=*** psql -h db"),
        (
            "from 'postgresql://a:one@h1/d', to mysql://b:two@h2/d,grpc://c:three@h3:1 done",
            "from 'postgresql://a:***@h1/d', to mysql://b:***@h2/d,grpc://c:***@h3:1 done",
        ),
    ],
)
def test_redact_hides_every_password_and_keeps_the_rest(text, expected):
    redacted = redact(text)

    assert redacted == expected
    for secret in ("s3cret", "p@ss", "two words", "one@", "two@", "three@"):
        assert secret not in redacted
