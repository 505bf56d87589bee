"""Passwords out of every message: a storage URL's password is found from the URL's own
structure and each spelling of it is replaced wherever it is printed."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, quote_plus, unquote

__all__ = ["forget_secrets", "redact", "redact_url", "remember_secrets", "url_password"]

_REDACTED = "***"

# scheme://user:PASSWORD@host — the password may itself contain unencoded '@', ':' or '/', so
# it runs up to the LAST '@' before the URL ends (whitespace, a quote, the next "://" or the end).
# Over-redacting a malformed URL is fine; leaking part of a password is not.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*:)"
    r"(?P<password>(?:(?!://)[^\s'\"])*?)"
    r"(?=@(?:(?!://)[^@\s'\"])*(?:://|[\s'\"]|$))"
)
# password=secret, password='two words' (libpq DSN), ?password=secret&… (URL query),
# PGPASSWORD=secret (environment dumps).
_KEYWORD_PASSWORD = re.compile(
    r"(?P<prefix>\b(?:pg)?password\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|[^\s&;,'\")]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Replaces every password in ``text`` with ``***``.

    Handles URLs (``scheme://user:PASSWORD@host``) and keyword forms (``password=PASSWORD`` in
    a libpq DSN or a URL query, ``PGPASSWORD=…``). Use it on every message and log line that
    may contain a storage URL.

    Args:
        text: Any text, e.g. an error message that quotes a URL.

    Returns:
        The text with each password replaced by ``***``; everything else unchanged.

    Example:
        >>> redact("cannot reach postgresql://tuner:s3cret@db:5432/hls")
        'cannot reach postgresql://tuner:***@db:5432/hls'
    """
    # Every password of a URL this process has parsed, in each spelling it may be printed in,
    # is replaced wherever it appears; the patterns below catch URLs never parsed here.
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    text = _URL_PASSWORD.sub(_keep_placeholder, text)
    return _KEYWORD_PASSWORD.sub(_keep_placeholder, text)


def _keep_placeholder(match: re.Match[str]) -> str:
    # The allowed forms spell out "USER:PASSWORD@HOST"; that placeholder is no secret.
    if match["password"] == "PASSWORD":
        return match[0]
    return match["prefix"] + _REDACTED


_SECRETS: set[str] = set()


def url_password(url: str) -> str | None:
    """The password of ``url`` as written (still percent-encoded), found from the URL's own
    structure: the user information runs from "://" to the last "@", the password from its
    first ":". Works where a strict parser would fail (an unencoded ":", "/" or "@")."""
    if "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    if "@" not in rest:
        return None
    userinfo = rest.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def remember_secrets(url: str) -> None:
    """Records each spelling of the URL's passwords (in the user information or a
    ``password=`` query parameter) so `redact` replaces them in every later message."""
    found = [url_password(url)]
    query = url.split("?", 1)[1] if "?" in url else ""
    found += [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() == "password"]
    found += [m["password"] for m in _KEYWORD_PASSWORD.finditer(url)]
    for raw in found:
        if not raw:
            continue
        decoded = unquote(raw)
        for spelling in (raw, decoded, quote(decoded, safe=""), quote_plus(decoded)):
            if spelling.strip():
                _SECRETS.add(spelling)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, found from the URL's structure.

    Example:
        >>> redact_url("postgresql://tuner:two words@db/hls")
        'postgresql://tuner:***@db/hls'
    """
    remember_secrets(url)
    password = url_password(url)
    if password:
        head, tail = url.split("://", 1)
        user, rest = tail.split(":", 1)
        url = f"{head}://{user}:{_REDACTED}{rest[len(password) :]}"
    return redact(url)


def forget_secrets() -> None:
    """Forgets the passwords `remember_secrets` recorded (a long-lived process that is done
    with a storage, or a test)."""
    _SECRETS.clear()
