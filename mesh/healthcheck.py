"""`python -m mesh.healthcheck HOST:PORT [SERVICE]`: exit 0 when the gRPC health check says SERVING.

Used by compose health checks, `vidaio-mesh health` and `up`, and whatever starts a service process and waits
for it (`wait_serving`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    """The status name (SERVING, NOT_SERVING, ...) or UNREACHABLE."""
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError as exc:
        return "UNKNOWN_SERVICE" if exc.code() == grpc.StatusCode.NOT_FOUND else "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class NotServing(Exception):
    """The service did not report SERVING in time, or `alive()` turned false first."""


def wait_serving(address: str, *, timeout: float, service: str = "", alive: Callable[[], bool] = lambda: True,
                 poll_seconds: float = 0.1) -> None:
    """Block until `address` reports SERVING. `alive` is asked between polls (e.g. "has the process not
    exited?"), so a service that dies while starting fails at once instead of after `timeout`."""
    deadline = time.monotonic() + timeout
    while check(address, service, timeout=1) != "SERVING":
        if not alive():
            raise NotServing(f"{address} stopped before it reported SERVING")
        if time.monotonic() > deadline:
            raise NotServing(f"{address} did not report SERVING within {timeout:g} s")
        time.sleep(poll_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("service", nargs="?", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    status = check(args.address, args.service, args.timeout)
    print(status)  # noqa: T201 - the command-line answer
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
