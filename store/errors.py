"""Store errors, said briefly and sorted: is the store unreachable, or is the data at fault?"""

from __future__ import annotations

import struct


class StoreConfigError(ValueError):
    """The store cannot be used as configured (a malformed URL, a chDB directory in use)."""


def short_error(exc: BaseException) -> str:
    """The first lines of an error, without the server's stack trace."""
    text = str(exc).split("Stack trace")[0]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:300]}"


_DATA_ERROR_CODES = ("CANNOT_PARSE", "TYPE_MISMATCH", "INCORRECT_DATA", "Code: 6.", "Code: 53.")


def is_data_error(exc: BaseException) -> bool:
    """Whether the data itself was refused (retrying cannot help), not the store unreachable."""
    if isinstance(exc, TypeError | ValueError | OverflowError | struct.error):
        return True
    return any(code in str(exc) for code in _DATA_ERROR_CODES)
