# Types of the native line encoder (_lines.c); record.py documents and wraps it.
from collections.abc import Callable

from shadowlab.dataplane.observer import InvocationRecord

def encode_lines(
    records: list[InvocationRecord],
    capture_input: bool,
    capture_output: bool,
    types: dict[bytes | None, tuple[bool, str, str, str, str]],
    resolve: Callable[[bytes | None], tuple[bool, str, str, str, str]],
    /,
) -> tuple[bytes, int, int, int, int, int, int, int]: ...
