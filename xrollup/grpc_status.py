"""The one mapping from domain errors to gRPC status codes, and the decorator
that applies it to every servicer method. Anything unexpected is logged with its
traceback and answered INTERNAL with a message: a client never sees UNKNOWN."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import grpc
from grpc import aio

from xrollup import errors

log = logging.getLogger(__name__)

# Most specific first: the first class the error is an instance of wins.
STATUS_TABLE: tuple[tuple[type[errors.XrollupError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.BadSignature, grpc.StatusCode.UNAUTHENTICATED),
    (errors.NotAuthorized, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Refused, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Conflict, grpc.StatusCode.ABORTED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


def compute_status(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client gets for `err`."""
    for cls, code in STATUS_TABLE:
        if isinstance(err, cls):
            return code, str(err)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}: {err}"


def compute_status_value(err: BaseException) -> tuple[int, str]:
    """As compute_status, with the code as its integer value (for batch results)."""
    code, message = compute_status(err)
    return int(code.value[0]), message


F = TypeVar("F", bound=Callable[..., Any])


def _log_unexpected(name: str, err: BaseException) -> None:
    if not isinstance(err, errors.XrollupError):
        log.error("unexpected error in %s", name, exc_info=err)


def grpc_method(fn: F) -> F:
    """Wrap an async servicer method (unary or server-streaming) so domain errors
    become their status code and anything else becomes INTERNAL."""
    name = fn.__qualname__

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream_wrapper(
            self: Any, request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for item in fn(self, request, context):
                    yield item
            except aio.AbortError:
                raise
            except Exception as e:
                _log_unexpected(name, e)
                code, message = compute_status(e)
                await context.abort(code, message)

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    async def unary_wrapper(self: Any, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            coro: Coroutine[Any, Any, Any] = fn(self, request, context)
            return await coro
        except aio.AbortError:
            raise
        except Exception as e:
            _log_unexpected(name, e)
            code, message = compute_status(e)
            await context.abort(code, message)

    return unary_wrapper  # type: ignore[return-value]
