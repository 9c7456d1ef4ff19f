"""The one mapping from domain errors to gRPC status codes, and the decorator
that applies it to every servicer method. Anything unexpected is logged with its
traceback and answered INTERNAL with a message: a client never sees UNKNOWN.
A request that does not decode as protobuf never reaches a method: the server's
interceptor (DecodeErrors) answers it INVALID_ARGUMENT, where grpc would say UNKNOWN."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
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
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
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


def compute_error(code: int, message: str) -> errors.XrollupError:
    """The domain error for a status code value and message (a batch result passed
    on): the first class STATUS_TABLE maps to it, so it maps back to the same code."""
    for cls, status in STATUS_TABLE:
        if int(status.value[0]) == code:
            return cls(message)
    return errors.XrollupError(message)


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


class _Undecodable:
    """What a request deserializer returns instead of raising."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as e:  # DecodeError, or whatever else a parser raises
            return _Undecodable(f"request does not decode: {e}")

    return deserialize


class DecodeErrors(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answer requests that do not decode INVALID_ARGUMENT with a message.

    grpc.aio calls a method's request deserializer before any servicer code runs
    and answers its DecodeError UNKNOWN. This wraps every unary-request method
    (every method of ours, and health) once: the deserializer returns a marker
    instead of raising and the method aborts on it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Any] = {}  # grpc.RpcMethodHandler by method

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method = details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        wrapped = _wrap_handler(handler)
        if wrapped is not None:
            self._handlers[method] = wrapped
            return wrapped
        return handler


def _wrap_handler(handler: Any) -> Any:
    """`handler` with a tolerant deserializer and a behavior that aborts on a
    marker, or None when it takes a request stream (none of ours does)."""
    if handler is None or handler.request_deserializer is None or handler.request_streaming:
        return None
    deserialize = _tolerant(handler.request_deserializer)
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_behavior, deserialize, handler.response_serializer
        )
    stream = handler.unary_stream
    if stream is None:
        return None
    if inspect.isasyncgenfunction(stream):

        async def stream_generator(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            async for item in stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            stream_generator, deserialize, handler.response_serializer
        )

    async def stream_writer(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        return await stream(request, context)

    return grpc.unary_stream_rpc_method_handler(
        stream_writer, deserialize, handler.response_serializer
    )
