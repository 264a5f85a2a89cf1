"""The one secret scrubber: masks credentials in anything that came back from an API.

A server (or a proxy in front of it) may echo the request headers in an error message, in
`rejected_items[].errors`, in an HTML page or in a protocol error. Each client passes every answer
through `Scrubber` before anything else reads it (`ShopiMindClient._answer`, the pulls' `PullClient`,
and transport errors), so nothing built from an answer — delivery_state.error, sync_log, the
analysts' Parquet, an export pulled from a platform, run metadata, exceptions, logs — can carry a
secret. Each secret is masked as sent and in the forms an echo turns it into: JSON-escaped,
URL-encoded (either hex case, `+` for spaces).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

MASK = "***"
EXCERPT_CHARS = 200  # of an answer that is not what was expected, in error messages


def _forms(secret: str) -> set[str]:
    return {secret, secret.strip(), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            quote(secret, safe=""), quote(secret), quote_plus(secret)} - {""}


class Scrubber:
    def __init__(self, *secrets: str) -> None:
        forms = set().union(*(_forms(secret) for secret in secrets if secret))
        # Longest first, so that a form containing another is masked whole. IGNORECASE covers %2f/%2F;
        # masking a case variant of the key as well costs nothing.
        alternatives = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE) if alternatives else None

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern else value

    def json(self, value: Any) -> Any:
        """A parsed JSON document with every string (keys too) scrubbed; other values as they are."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    # -- where an API's answer enters the pipeline: parsed, then scrubbed whole --------------------------

    def body(self, response: httpx.Response) -> Any:
        """The answer's JSON, scrubbed (None: empty, not JSON or not UTF-8, or nested beyond reading)."""
        try:
            return self.json(json.loads(response.content)) if response.content.strip() else None
        except (ValueError, RecursionError):
            return None

    def excerpt(self, response: httpx.Response) -> str:
        """The start of the answer's text on one line, scrubbed: for a message about an unexpected answer."""
        text = " ".join(self.text(response.text).split())
        return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
