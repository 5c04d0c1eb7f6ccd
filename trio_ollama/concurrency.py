"""Structured-concurrency edges: nurseries wrap what their tasks raise in exception groups, even
a single exception. At the boundary of a context manager or a task that a caller sees, one
exception should come out as itself, so that `except LoadError` (or a test's
`pytest.raises(ValueError)`) works on `open_runner`, `open_scheduler` and their kin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def sole_exception(exc: BaseException) -> BaseException:
    """The one exception inside nested groups of one; `exc` itself if it is not such a group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextmanager
def unwrap_single() -> Iterator[None]:
    """Re-raise a group of exactly one exception (at any depth) as that exception.

    Groups of several stay groups: two things went wrong, and hiding one would be a lie.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        exc = sole_exception(group)
        if exc is group:
            raise
        # Keep the exception's own cause; the group around it is only nursery plumbing.
        raise exc from exc.__cause__
