"""Text every backend stores and compares alike (no NUL characters, no lone surrogates), and text
with its passwords hidden."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["nested_text_problem", "redact_secrets", "storable_text", "text_problem"]


def text_problem(value: str, limit: int) -> str | None:
    """What keeps ``value`` from being stored and compared alike on every backend, if anything:
    longer than ``limit``, a NUL character, or a lone surrogate (not valid Unicode)."""
    if len(value) > limit:
        return f"text of {len(value)} characters is longer than {limit}"
    if "\x00" in value:
        return "text must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text is not valid Unicode (lone surrogate)"
    return None


def nested_text_problem(value: Any, limit: int, _depth: int = 0) -> str | None:
    """:func:`text_problem` of the first bad string in ``value`` or in the lists, tuples, sets and
    mappings (keys too) it holds; other values are left to their codec."""
    if isinstance(value, str):
        return text_problem(value, limit)
    if _depth > 50:
        return None
    if isinstance(value, Mapping):
        items: Any = (item for pair in value.items() for item in pair)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        problem = nested_text_problem(item, limit, _depth + 1)
        if problem is not None:
            return problem
    return None


def storable_text(value: str) -> str:
    """``value`` with NUL characters and lone surrogates replaced by U+FFFD, for text the library
    produces itself from foreign input (an exception's message, a traceback)."""
    if text_problem(value, len(value)) is None:
        return value
    return _UNSTORABLE.sub("\ufffd", value)


# A Python str holds a surrogate code point only unpaired: pairs are decoded into one character.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def redact_secrets(text: str) -> str:
    """``text`` with every password it shows replaced by ``***``: the password of a URL in any
    position (``scheme://user:password@host``), and the values of ``password``, ``passwd`` and
    ``pwd`` keys (also ``sslpassword``, ``db_password``...) written ``key=value`` (URL query strings,
    libpq connection strings, keyword arguments; quoted or not) or ``'key': 'value'`` (dict reprs,
    JSON).

    For everything HiveMind shows or stores that may hold a connection string: error messages,
    tracebacks, log messages, reprs. It hides too much rather than too little: an unquoted value
    runs to the next whitespace (in a URL query string to the next ``&``), less closing
    punctuation."""
    if not text:
        return text
    text = _URL_USERINFO.sub(_hide_userinfo, text)
    text = _QUOTED_KEY.sub(lambda match: f"{match['head']}{match['v']}{_HIDDEN}{match['v']}", text)
    return _KEYWORD.sub(_hide_keyword, text)


_HIDDEN = "***"
_KEYWORD_NAME = r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]*?(?:password|passwd|pwd)"
# The user name ends at : / ? # @; the password runs to the last @ of the authority, as urllib reads
# it. A password holding / ? or # that was not percent-encoded makes no valid URL but is hidden too
# (up to the last @ before whitespace), unless what follows the colon is a port.
_URL_USERINFO = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\[\]]*:)"
    r"(?:(?P<plain>[^\s/?#]*)@|(?!\d*(?:[/?#\s]|$))(?P<raw>\S*)@)"
)
_QUOTED_VALUE = r"(?P<v>['\"])(?P<quoted>(?:\\.|(?!(?P=v)).)*)(?P=v)"
# 'password': 'value', "password": "value"
_QUOTED_KEY = re.compile(
    rf"(?P<head>(?P<q>['\"]){_KEYWORD_NAME}(?P=q)\s*:\s*){_QUOTED_VALUE}", re.IGNORECASE | re.DOTALL
)
# Closing punctuation at the end of an unquoted value is taken as the text's, not the password's:
# "(password=x)", "password=x, host=h". (The last characters of a password ending in them show.)
_VALUE_END = r"[^\s&)\]}>,;:.'\"`]"
# password=value in a URL query string (after ? & or ;: the value ends at the next &); elsewhere
# password=value, password = 'value', password == "value" (a line of source in a traceback)
_KEYWORD = re.compile(
    rf"(?<=[?&;])(?P<query_key>{_KEYWORD_NAME}=)(?P<query_value>(?:[^\s&]*{_VALUE_END})?)"
    rf"|(?P<key>{_KEYWORD_NAME}\s*==?\s*)(?:{_QUOTED_VALUE}|\S*{_VALUE_END})",
    re.IGNORECASE | re.DOTALL,
)


def _hide_userinfo(match: re.Match[str]) -> str:
    password = match["plain"] if match["plain"] is not None else match["raw"]
    return f"{match['head']}{_HIDDEN if password else ''}@"


def _hide_keyword(match: re.Match[str]) -> str:
    if match["query_key"] is not None:
        return f"{match['query_key']}{_HIDDEN}" if match["query_value"] else match[0]
    quote = match["v"] or ""
    return f"{match['key']}{quote}{_HIDDEN}{quote}"
