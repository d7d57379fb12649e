"""Keeping secrets out of log lines: known secret values, and SAS signatures in any URL."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"
# SAS signature and account keys, wherever they appear (scriptUri query strings, error messages).
_PATTERNS = [
    re.compile(r"(?i)(\bsig=)[^&\s\"']+"),
    re.compile(r"(?i)(AccountKey=)[^;\s\"']+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s\"']+"),
]


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text
