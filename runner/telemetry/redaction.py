"""URLs as a log line or the CLI may show them: where they lead, never what opens them.

A webhook URL can carry credentials in its userinfo (``https://user:pw@host``) or its
query (``?token=...``), and a database URL a password in either place. Operators copy
log lines and terminal output into tickets and chats, so tidings shows a URL as
``scheme://host[:port]/path`` only, and a database by its server, port and name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
"""A URL inside free text, up to the first space or quote."""


def shown_url(url: str) -> str:
    """``url`` as ``scheme://host[:port]/path``: no userinfo, query or fragment.

    Text that does not parse as a URL with a host shows as its scheme alone, since
    whatever it holds cannot be told apart from a credential.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _scheme_only(url)
    if not parts.scheme or not parts.hostname:
        return _scheme_only(url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}{parts.path}"


def _scheme_only(url: str) -> str:
    scheme, separator, _ = url.partition("://")
    return f"{scheme}://..." if separator and scheme.isalnum() else "(not a URL)"


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it shown as ``shown_url`` shows it."""
    if "://" not in text:
        return text
    return _URL.sub(lambda found: shown_url(found.group(0)), text)


def shown_database(url: str) -> str:
    """A database URL for a log line: SQLite and memory URLs as given (a path, no
    secret); PostgreSQL ones rebuilt from psycopg's own reading of the conninfo as
    server, port and database, so no userinfo and no ``?password=`` parameter appears."""
    if not url.startswith(("postgresql://", "postgres://")):
        return shown_url(url) if "@" in url or "?" in url else url
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://..."
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{host}{port}/{params.get('dbname') or ''}"


def scheme_of(url: str) -> str:
    """What an unsupported database URL is called in an error: its scheme, no more."""
    scheme, separator, _ = url.partition(":")
    if separator and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]{0,30}", scheme):
        return f"{scheme}:"
    return "(unrecognised)"
