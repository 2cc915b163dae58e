"""Domain errors, free of gRPC: each carries the *name* of the status its caller should see.

The gRPC edge (`mesh.rpc`) maps the name to a `grpc.StatusCode`; cores, the CLI and tests never need grpc
to raise or inspect one. The codes and their meaning are written in proto/mesh/v1/common.proto.
"""

from __future__ import annotations


class MeshError(Exception):
    """An expected failure with a status name and a message meant for the caller."""

    status = "INTERNAL"


class InvalidInput(MeshError):
    """The request or its source is unusable; retrying the same request fails again."""

    status = "INVALID_ARGUMENT"


class SourceNotFound(MeshError):
    status = "NOT_FOUND"


class SourceRefused(MeshError):
    """The source points where this service may not fetch from (SSRF guard)."""

    status = "PERMISSION_DENIED"


class Busy(MeshError):
    status = "RESOURCE_EXHAUSTED"


class GateFailed(MeshError):
    """The output would fail a validator gate; nothing was uploaded."""

    status = "FAILED_PRECONDITION"


class Misconfigured(MeshError):
    """The service's own deployment cannot do this (an engine or extra not installed, a bad model file):
    the operator must act, not the caller."""

    status = "FAILED_PRECONDITION"


class DependencyUnavailable(MeshError):
    """Object storage, Redis, the janitor or the source host is unreachable; safe to retry."""

    status = "UNAVAILABLE"


class DeadlineTooShort(MeshError):
    """Not even the fastest safe way to do the job fits in the time left."""

    status = "DEADLINE_EXCEEDED"
