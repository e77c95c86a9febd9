"""Which strings are cut out of everything an app prints before it is stored or shown.

Besides the secret values the app was given, the evaluator's own secret-looking
values (API keys, tokens, passwords, MLflow and cloud credentials), which the app was
never given but might still find (a sandbox that does not hold, ``--klaud-sandbox
none``), and the common encodings of all of them: base64 (at each of the three byte
alignments a secret can have inside a longer encoded text, standard and URL-safe
alphabets) and URL encoding.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

from pytest_klaudbiusz.apps.sandbox import is_secret

#: Secret-looking names besides ``sandbox.SECRET_PATTERNS``.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|CREDENTIAL", re.IGNORECASE)
#: Shorter values are not secrets worth the false matches (``true``, ``1``, a region name).
MIN_LENGTH = 8


def evaluator_secrets(environ: Mapping[str, str]) -> set[str]:
    """The evaluator's values under secret-looking names."""
    return {
        value
        for name, value in environ.items()
        if len(value) >= MIN_LENGTH and (is_secret(name) or _SECRET_NAME.search(name))
        and not name.startswith("KLAUD_")  # the plugin's own settings, not credentials
    }  # fmt: skip


def encodings(value: str) -> set[str]:
    """``value``'s base64 and URL-encoded forms, as they appear inside a longer text."""
    raw = value.encode()
    forms = {quote(value, safe=""), quote_plus(value, safe="")}
    for shift in range(3):  # what precedes the secret in the encoded text, modulo 3 bytes
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = -(-shift * 8 // 6)  # the first character made of the secret's bits alone
        end = (shift + len(raw)) * 8 // 6  # the last one, before any following bytes
        forms.add(encoded[start:end])
        forms.add(encoded[start:end].replace("+", "-").replace("/", "_"))
    forms.discard(value)
    return {f for f in forms if len(f) >= MIN_LENGTH}


def redaction_values(given: Iterable[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every string to redact, longest first (no partial leftovers of a longer one)."""
    values = set(given) | evaluator_secrets(environ)
    values |= {form for value in list(values) for form in encodings(value)}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))
