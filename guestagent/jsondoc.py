"""The one way a document from outside (a source, a hook, a drive) is parsed as JSON.

Bounded: at most `max_bytes` long and `MAX_DEPTH` levels of arrays/objects deep, measured
before parsing without recursion, so neither parsing nor anything that later serialises the
value (the source cache, the metadata digest) can hit Python's recursion limit. Strict: NaN,
Infinity and numbers that overflow a float are refused (JSON has none, and an infinite
interval or timeout breaks the loop). Every failure is one `DocumentError` (a ValueError)
whose text completes the sentence "not valid JSON: ...".
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
MAX_BYTES = 32 * 1024 * 1024

# A JSON string literal, escapes included (unrolled so a long string is one cheap match).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# What is left of a document once its strings are gone: brackets count +1/-1, the rest 0.
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class DocumentError(ValueError):
    """A document is not acceptable JSON; the message says why (for "not valid JSON: ...")."""


def depth(text: str) -> int:
    """How deep arrays and objects nest in the JSON `text` (0 for a scalar); no recursion.

    Brackets inside string literals do not count. On malformed text the figure may be too
    high, never too low, which only matters for text the parser refuses anyway.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[ord(c)] for c in brackets), default=0)


def loads(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `data` as strict JSON within the bounds; DocumentError saying what was wrong."""
    if len(data) > max_bytes:
        raise DocumentError(f"larger than {max_bytes} bytes")
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode(json.detect_encoding(data))
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        text = data
    deepest = depth(text)
    if deepest > max_depth:
        raise DocumentError(f"nested {deepest} levels deep; at most {max_depth} allowed")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except DocumentError:
        raise
    except ValueError as exc:  # JSONDecodeError, and int() refusing a huge literal
        raise DocumentError(str(exc)) from None
    except RecursionError:  # unreachable after the depth check; kept as a typed error anyway
        raise DocumentError(f"nested too deeply (more than {max_depth} levels)") from None


def _refuse_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not a JSON value")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise DocumentError(f"number {literal[:40]} is out of range")
    return value
