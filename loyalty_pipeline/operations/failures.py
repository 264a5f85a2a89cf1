"""What a failed step or run tells ops: the messages of its error and of the errors that caused it.

Dagster wraps an exception raised in an asset as 'Error occurred while executing op "X":', the real
error being its cause (and that one may have causes of its own). Printing only the outer message hid
every cause that is not a `dg.Failure`. `error_messages` reads past Dagster's wrappers; it stops at a
`dg.Failure`, whose description is already written for ops (file, line, field where the input is at
fault).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
_QUALIFIED = re.compile(r"^[\w.]+\.(?=\w+: )")  # "_duckdb.IOException: …" → "IOException: …"


def error_messages(error: SerializableErrorInfo | None) -> list[str]:
    """`error`'s message and its causes', outermost first, without Dagster's wrappers."""
    messages: list[str] = []
    while error is not None:
        if error.cls_name not in _WRAPPERS:
            messages.append(_QUALIFIED.sub("", error.message.strip()))
        if error.cls_name == "Failure":
            messages[-1] = messages[-1].removeprefix("Failure: ")
            break
        error = error.cause or error.context
    return messages
