"""Reading a JSON document from an image or a layout (index.json, manifests, configs): hostile input is bad JSON.

Python's parser recurses once per nesting level and raises RecursionError on a deeply nested document (a thousand
`[`); here that is a ValueError like any other malformed JSON, so every reader's "not valid JSON" path reports it
as bad input instead of a crash.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: bytes | str) -> Any:
    """json.loads; a document nested too deep for the parser is a ValueError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep to read") from None
