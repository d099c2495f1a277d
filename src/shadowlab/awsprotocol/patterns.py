"""The model's `pattern` constraints, compiled once, with Java semantics where Python differs.

The patterns in botocore's models are Java regular expressions (AWS validates with Java). The
`regex` module understands almost all of them (`\\p{L}`, `\\p{Print}`, `\\z`, lookbehind); two
Java habits need translating so that we accept and reject exactly what AWS does:

* Java's POSIX classes (`\\p{Alnum}`, `\\p{Print}` ...) are US-ASCII only, while `regex` reads
  them as Unicode properties: `\\p{Alnum}` would accept `é`, which AWS rejects.
* Java strings are UTF-16, so a model writes the astral planes as surrogate pairs
  (`\\uD800\\uDC00-\\uDBFF\\uDFFF`); `regex` works on code points and refuses that range.
"""

from __future__ import annotations

import functools

import regex

# Java's US-ASCII POSIX classes, as the body of a character class.
_JAVA_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": r"!-/:-@\[-`{-~",
    "Graph": r"\x21-\x7E",
    "Print": r"\x20-\x7E",
    "Blank": r" \t",
    "Cntrl": r"\x00-\x1F\x7F",
    "XDigit": "0-9a-fA-F",
    "Space": r" \t\n\x0B\f\r",
}
_POSIX_CLASS = regex.compile(r"\\p\{(\w+)\}")
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.IGNORECASE)


def _code_point(match: regex.Match[str]) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


def _posix_to_ascii(pattern: str) -> str:
    """Replace Java POSIX classes by ASCII ranges, bracketed only outside a character class."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            match = _POSIX_CLASS.match(pattern, i)
            if match and match.group(1) in _JAVA_POSIX:
                body = _JAVA_POSIX[match.group(1)]
                out.append(body if in_class else f"[{body}]")
                i = match.end()
                continue
            out.append(pattern[i : i + 2])  # an escape: never opens or closes a class
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            # A `]` right after `[` or `[^` is a literal member, not the end of the class.
            for opening in ("[^]", "[]"):
                if pattern.startswith(opening, i):
                    out.append(opening)
                    i += len(opening)
                    break
            else:
                out.append(char)
                i += 1
            continue
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def to_python(pattern: str) -> str:
    """The model's Java pattern rewritten for the `regex` module (same strings accepted)."""
    return _posix_to_ascii(_SURROGATE_PAIR.sub(_code_point, pattern))


@functools.cache
def compiled(pattern: str) -> regex.Pattern[str]:
    """The compiled form of a model pattern; compiled on first use, then reused."""
    return regex.compile(to_python(pattern))


def matches(pattern: str, value: str) -> bool:
    """Whether the whole of `value` satisfies the model's pattern (Java `matches()` semantics)."""
    return compiled(pattern).fullmatch(value) is not None


# Where shadowlab accepts more than AWS on purpose (docs/compatibility.md lists each): a model's
# pattern widened by an alternative. Keyed by the shape's name *and* botocore's own pattern, so a
# botocore update that changes the pattern drops the extension instead of widening something new.
#
# `file:///abs/path` for model artifacts (ContainerDefinition.ModelDataUrl and
# S3ModelDataSource.S3Uri): a model directory or model.tar.gz on this machine, as the README
# documents. Absolute paths only: the server's working directory is no business of a caller's,
# so `file://relative` or `file:relative` stay refused, in AWS's words.
_MODEL_URL = "(https|s3)://([^/]+)/?(.*)"
_FILE_URL = "file:///.*"
EXTENSIONS: dict[tuple[str, str], str] = {
    ("Url", _MODEL_URL): f"{_MODEL_URL}|{_FILE_URL}",
    ("S3ModelUri", _MODEL_URL): f"{_MODEL_URL}|{_FILE_URL}",
}


def effective(shape_name: str, pattern: str) -> str:
    """The pattern shadowlab validates `shape_name` with: botocore's, or its documented
    extension."""
    return EXTENSIONS.get((shape_name, pattern), pattern)
