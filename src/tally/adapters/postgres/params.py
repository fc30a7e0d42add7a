"""Many values as one query parameter, written by orjson in C.

psycopg dumps a Python list as an array element by element in Python (about 1 µs an
element, with a regular expression per string to decide its quoting). A settlement batch
sends some 11,000 keys and a ledger batch some 16,000 account ids and 64,000 balance
figures, so that cost showed in every batch. Here the whole list goes as one JSON text,
which PostgreSQL unpacks: ``WHERE id = ANY(...)`` still probes the primary key's index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

# ``column = ANY_TEXTS`` with ``texts(values)`` as the parameter.
ANY_TEXTS = "ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
# ``FROM ROWS_OF AS v(...)``: one record per inner list of ``rows_of(...)``; the caller
# names and casts the fields as ``v.e->>0``, ``(v.e->>1)::bigint`` and so on.
ROWS_OF = "jsonb_array_elements(%s::jsonb)"


def texts(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def rows_of(rows: Sequence[Sequence[str | int | None] | dict[str, Any]]) -> str:
    """Rows as one JSON text: arrays for ``ROWS_OF``, objects for ``json_to_recordset``."""
    return orjson.dumps(rows).decode()
