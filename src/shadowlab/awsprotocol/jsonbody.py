"""Reading a JSON 1.1 request body, whatever a client (or an attacker) puts in it.

Everything that makes a body unreadable is a SerializationException, the code AWS answers a
body it cannot deserialise with, and every message starts `Request body is not valid JSON:`:

- bytes that are not UTF-8 (AWS's JSON protocols are UTF-8 only), including a surrogate
  encoded directly in the bytes (CESU-8);
- JSON that does not parse, or holds NaN / Infinity (Python accepts them, JSON does not);
- a `\\uD800`-style escape that leaves a UTF-16 surrogate unpaired. The JSON grammar lets it
  through, but the string it denotes is not Unicode text: it cannot be encoded as UTF-8, so it
  could be neither stored nor echoed in a response. Coral's own deserialiser would hand Java an
  unpaired `char`, which then fails whatever the member's pattern says, or, for members
  without one, wherever it is next encoded. Refusing it here, at deserialisation, gives one
  answer for every member, map key and nesting level, patterned or not, sensitive or not;
- arrays and objects nested more than MAX_DEPTH levels deep.

The depth limit keeps every recursive walk that follows (validation, conversion, rendering a
value into an error message) far below Python's recursion limit. The deepest input shape in
the SageMaker model nests 10 levels (CreateAlgorithm; 7 for the operations shadowlab serves),
so 64 refuses nothing a real client sends. Parsing cannot overflow either: the C decoder
raises RecursionError near depth 1000, which is reported the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shadowlab.errors import SerializationException, excerpt

MAX_DEPTH = 64

_NOT_JSON = "Request body is not valid JSON"
# An escape of a UTF-16 surrogate, paired or not; a hint only (`\\ud800` is an escaped
# backslash followed by text), so the parsed strings are checked when it matches.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and AWS) do not.
    raise ValueError(f"{name} is not a valid JSON value")


def _too_deep() -> SerializationException:
    return SerializationException(
        f"{_NOT_JSON}: arrays and objects nest more than {MAX_DEPTH} levels deep"
    )


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `document` (itself 1).

    Level by level, without recursion (which would need the stack this protects), in
    comprehensions with exact type tests (json.loads builds plain dicts and lists): a 15 MB
    body of four million small lists takes ~0.3 s, a fifth of what parsing it took.
    """
    level = [document]
    for _ in range(limit):
        level = [
            child
            for value in level
            for child in (value.values() if type(value) is dict else value)
            if type(child) is list or type(child) is dict
        ]
        if not level:
            return False
    return True


def _unpaired_surrogate(document: Any) -> str | None:
    """The first unpaired surrogate in any string (key or value) of `document`, if any."""
    try:
        # C speed; the strict encoder fails exactly on unpaired surrogates.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return str(exc.object[exc.start])
    return None


def decode_object(body: bytes) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); SerializationException otherwise."""
    if not body.strip():
        return {}  # botocore sends `{}`, but an empty body means no parameters too
    try:
        # utf-8-sig: a leading byte-order mark is tolerated, as JSON parsers commonly do.
        text = body.decode("utf-8-sig")
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SerializationException(f"{_NOT_JSON}: {exc}") from None
    if isinstance(document, dict | list):
        # Fewer openers than the limit cannot nest deeper than it: most bodies stop here.
        openers = text.count("[") + text.count("{")
        if openers > MAX_DEPTH and _deeper_than(document, MAX_DEPTH):
            raise _too_deep()
    if _SURROGATE_ESCAPE.search(text):
        surrogate = _unpaired_surrogate(document)
        if surrogate is not None:
            raise SerializationException(
                f"{_NOT_JSON}: the escape \\u{ord(surrogate):04x} is an unpaired UTF-16 "
                "surrogate, which is not Unicode text"
            )
    if not isinstance(document, dict):
        if isinstance(document, list):
            kind = "an array"
        else:
            kind = f"the value {excerpt(json.dumps(document))}"
        raise SerializationException(f"Request body must be a JSON object, not {kind}")
    return document
