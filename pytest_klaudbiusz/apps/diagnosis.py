"""What an app's output says about why a stage failed, so the verdict names the real cause.

Pure functions over log text: a package registry that could not be reached (the
machine's fault, not the app's), and a server that listens on a port other than
the one it was given (the usual reason a working server looks dead).
"""

from __future__ import annotations

import re

# npm/pnpm/yarn print Node's error codes; bun names the failure before "downloading".
_UNREACHABLE = re.compile(
    r"\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b"
    r"|\b(ConnectionRefused|ConnectionClosed|DNSResolveFailed|Timeout|NetworkUnreachable)"
    r" downloading\b"
)
_LISTENING = re.compile(
    r"(?:listen(?:ing)?|running|started|serving|ready)\b[^\n]{0,60}?"
    r"(?:\bport\b\s*[:=]?\s*|https?://[\w.\-\[\]]+:|\blocalhost:|0\.0\.0\.0:|127\.0\.0\.1:)"
    r"(\d{2,5})\b",
    re.IGNORECASE,
)


def registry_unreachable(log_text: str) -> str | None:
    """The network error of an install that could not reach its package registry, or None.

    A package that does not exist (404) or a stale lockfile is the app's failure and
    is not matched here.
    """
    match = _UNREACHABLE.search(log_text)
    return (match.group(1) or match.group(2)) if match else None


def listening_elsewhere(log_text: str, port: int) -> int | None:
    """The port the app's log says it listens on, when that is not the port it was given."""
    ports = [int(m.group(1)) for m in _LISTENING.finditer(log_text)]
    return next((p for p in ports if p != port), None) if port not in ports else None
