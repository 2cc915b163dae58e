"""Domain errors and their gRPC status codes (the error model written in proto/mesh/v1/common.proto)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)


class MeshError(Exception):
    """An expected failure with a status code and a message meant for the caller."""

    code = grpc.StatusCode.INTERNAL


class InvalidInput(MeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class SourceNotFound(MeshError):
    code = grpc.StatusCode.NOT_FOUND


class SourceRefused(MeshError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Busy(MeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class GateFailed(MeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DependencyUnavailable(MeshError):
    code = grpc.StatusCode.UNAVAILABLE


T = TypeVar("T")


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, MeshError):
        await context.abort(exc.code, str(exc))
    log.exception("unexpected error in %s", type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")


def unary_errors(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Map domain errors raised by a unary servicer method to gRPC statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status; abort raises
            await _abort(context, exc)
            raise

    return wrapper


def stream_errors(method: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    """Map domain errors raised by a server-streaming servicer method to gRPC statuses."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[T]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            await _abort(context, exc)

    return wrapper
