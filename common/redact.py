"""Secrets out of everything that is kept: error text, notes, run configs and reports.

A server may echo the API key in an error, a base URL may carry credentials (`https://user:pass@host`,
`?api-key=…`), and the store is append-only: a secret that reaches it stays. So the client
redacts its errors, and the store redacts notes, problems and run configs before writing them.
Redacted: the values of the secrets in use (every key a client read, the credentials in its
base URL, and the value of any environment variable named like a key: `…_KEY`, `…_TOKEN`,
`…_SECRET`), strings that look like keys (`sk-…`, `hf_…`, `Bearer …`), URL userinfo, and query
parameters named like key/token/secret.

>>> redact("GET https://ann:pw@api.example.com/v1?api-key=abc123&mode=x failed: Bearer sk-live-0123456789")
'GET https://***@api.example.com/v1?api-key=***&mode=x failed: Bearer ***'
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

REDACTED = "***"
MIN_SECRET = 8  # shorter values are not treated as secrets (they would redact ordinary words)

_SECRET_NAME = r"[\w.-]*(?:key|token|secret|passw(?:or)?d|signature|credential|auth)[\w.-]*"
_SECRET_ENV = re.compile(r"(?i)(key|token|secret|passw(or)?d|credentials?)$")  # OPENAI_API_KEY, HF_TOKEN
_SECRET_VALUE = re.compile(rf"[^\s/]{{{MIN_SECRET},}}")  # opaque: a path or a sentence is no key
_PATTERNS = (
    # URL userinfo: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@"), rf"\1{REDACTED}@"),
    # query (or fragment) parameters named like secrets: ?api-key=…, &access_token=…
    (re.compile(rf"(?i)([?&#;]{_SECRET_NAME}=)[^&#\s\"'<>]*"), rf"\1{REDACTED}"),
    # "api_key": "…", token=…, Authorization: … in echoed requests and error bodies
    (
        re.compile(
            r"(?i)(\b(?:api[-_]?key|access[-_]?token|token|secret|password|authorization)\"?\s*[:=]\s*\"?)[^\"\s,;}&]+"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{6,}"), rf"\1 {REDACTED}"),
    # strings shaped like the keys of the common providers
    (
        re.compile(
            r"\b(?:sk|pk|rk)-[\w-]{8,}|\bhf_[A-Za-z0-9]{16,}|\bAIza[\w-]{20,}|\bgh[pousr]_[A-Za-z0-9]{20,}"
            r"|\bxox[abpr]-[\w-]{10,}|\bAKIA[0-9A-Z]{16}\b"
        ),
        REDACTED,
    ),
)
_KNOWN: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret this process uses (an API key read by a client), so that it is
    redacted wherever it turns up."""
    if value and len(value) >= MIN_SECRET:
        _KNOWN.add(value)


def register_url_secrets(url: str) -> None:
    """Remember the credentials a URL carries (its password, and query values named like
    secrets), so that a server echoing them is redacted too."""
    parts = urlsplit(url)
    register_secret(parts.password)
    for name, value in parse_qsl(parts.query):
        if re.fullmatch(_SECRET_NAME, name, re.I):
            register_secret(value)


def _secrets() -> list[str]:
    env = (v for k, v in os.environ.items() if _SECRET_ENV.search(k) and _SECRET_VALUE.fullmatch(v))
    return sorted(_KNOWN.union(env), key=len, reverse=True)  # longest first: a key inside another


def scrub(text: str) -> str:
    """`text` with the values of the secrets in use replaced; nothing else touched (for model
    replies, which may legitimately say "token=…")."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(text: str) -> str:
    """`text` with secrets, key-like strings, URL credentials and secret query parameters replaced."""
    text = scrub(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SECRET_KEY = re.compile(r"(?i)^(api[-_]?key|access[-_]?token|token|secret|client[-_]?secret|password|authorization)$")


def redact_config(value):
    """A config (or metrics) value with every string redacted, and the value of any key named
    like a secret (`api_key`, `token`, …) replaced outright. Variable *names* such as
    `api_key_env: OPENAI_API_KEY` are kept: they say where the key is, not what it is."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.match(k) and v else redact_config(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_config(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
