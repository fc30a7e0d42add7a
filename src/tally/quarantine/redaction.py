"""Secrets out of refused inputs before the quarantine keeps them.

A refused callback, feed push or file line is kept so a person can read it, and what a
person can read must not let them act as a provider: Evolution's ``authToken`` (in the
query string) is enough to send credits, a session token to bet as a player, and a
signature or hash over a known body is an offline oracle for the provider's key. So every
value whose *name* says it carries a secret (token, signature, hash, password, secret,
API or private key, authorization, cookie) is replaced by ``[redacted]`` wherever it sits:
a header, the kept query string, a JSON or form-encoded payload, a file's header fields.

The names are matched, not the protocols: softswiss (``X-REQUEST-SIGN``), pragmatic
(``hash``, ``token``), hub88 (``X-Hub88-Signature``, ``token``), evolution (``authToken``),
feeds and file imports all go through the same rule, and a new protocol is covered as
long as its secrets are named like secrets. The rest of the payload is kept byte for
byte (a regex edit, not a re-serialisation), so a person still sees what was sent.

Pure: :func:`redact_refused` is the one function every quarantine store applies before
it keeps an entry (see ``storable_refused``), and the clean-up of rows kept before it
existed applies the same rule (:func:`redact_parts`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tally.quarantine.inputs import Refused

REDACTED = "[redacted]"

# A name carries a secret when it contains one of these (case-insensitive). Not a bare
# "key": feed events and file lines carry idempotency keys that a person needs to see.
_SECRET_NAME = re.compile(
    r"token|sign|hash|passw|secret|(?:api|private|access|signing|auth)[-_]?key"
    r"|authori[sz]ation|cookie|credential",
    re.IGNORECASE,
)
# "name": "value" or "name": 123 / true / null in JSON text (also inside a JSON string
# kept as a header, such as the query string).
_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"|[^\s,}\]]+)')
# name=value in a form body, a query string or a text line: the value runs to the next
# & ; " or space (past a comma: cutting a CSV line short beats keeping half a secret).
_FORM_PAIR = re.compile(r"(^|[?&;,\s])([^=&;?\s\"]+)=([^&;\s\"]*)")


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field called ``name`` carries a secret."""
    return _SECRET_NAME.search(name) is not None


def redact_text(text: str) -> str:
    """``text`` with the value of every secret-named JSON field or form parameter redacted."""

    def json_pair(m: re.Match[str]) -> str:
        if not is_secret_name(m.group(1)) or m.group(3) == f'"{REDACTED}"':
            return m.group(0)
        return f'"{m.group(1)}"{m.group(2)}"{REDACTED}"'

    def form_pair(m: re.Match[str]) -> str:
        if not is_secret_name(m.group(2)) or m.group(3) in ("", REDACTED):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}={REDACTED}"

    return _FORM_PAIR.sub(form_pair, _JSON_PAIR.sub(json_pair, text))


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Secret-named headers redacted whole; the others' text as :func:`redact_text`."""
    return {k: REDACTED if is_secret_name(k) and v else redact_text(v) for k, v in headers.items()}


# A kept CSV line's header row (see tally.ingest.files): its names say which fields to redact.
COLUMNS_HEADER = "x-tally-columns"


def redact_csv_line(line: str, columns: str) -> str:
    """A CSV line with the fields under secret-named columns redacted (the line is
    rewritten only when there are such fields)."""
    header = next(csv.reader([columns]), [])
    secret = [i for i, name in enumerate(header) if is_secret_name(name)]
    if not secret:
        return line
    row = next(csv.reader([line]), [])
    if not any(i < len(row) and row[i] for i in secret):
        return line
    for i in secret:
        if i < len(row) and row[i]:
            row[i] = REDACTED
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def redact_parts(
    detail: str, payload: str, headers: dict[str, str]
) -> tuple[str, str, dict[str, str]]:
    """A kept entry's detail, payload and headers with no secret left (the one rule)."""
    columns = headers.get(COLUMNS_HEADER)
    if columns:
        payload = redact_csv_line(payload, columns)
    return redact_text(detail), redact_text(payload), redact_headers(headers)


def redact_refused(r: Refused) -> Refused:
    """``r`` with no secret left in its payload, headers or detail: what may be kept."""
    detail, payload, headers = redact_parts(r.detail, r.payload, dict(r.headers))
    return replace(r, detail=detail, payload=payload, headers=headers)
