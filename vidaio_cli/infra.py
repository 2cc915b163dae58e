"""`vidaio-mesh up` (the whole mesh on this machine) and `vidaio-mesh health` (gRPC health of every service).

`up` starts a real Valkey and a real SeaweedFS S3 (or uses the operator's Redis and S3, see `stores`), then
the services as child processes of a small supervisor that restarts a crashed child, prints a health table,
and on Ctrl-C or SIGTERM stops every child (its whole process group) and removes the data directory unless
it was given (--data-dir, reused by the next `up`) or --keep-data. Later services join by adding a `Child`
to `mesh_children`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from mesh.config import ConfigError
from mesh.healthcheck import NotServing, check, wait_serving
from vidaio_cli.stores import StackSettings, StoreError, Stores

if TYPE_CHECKING:
    from vidaio_cli.mesh_stack import ChainGateway

console = Console()

DEFAULT_ADDRESSES = {"janitor": ("JANITOR_ADDR", "127.0.0.1:29117", "mesh.v1.Janitor"),
                     "upscaler": ("UPSCALER_ADDR", "127.0.0.1:29115", "mesh.v1.Upscaler"),
                     "compressor": ("COMPRESSOR_ADDR", "127.0.0.1:29116", "mesh.v1.Compressor")}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor itself is killed, so nothing is orphaned."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised service process, healthy when its gRPC health check says SERVING."""

    name: str
    argv: list[str]
    env: dict[str, str]
    address: str
    grpc_service: str
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float) -> None:
        """SIGTERM the child's process group, then SIGKILL what is left after `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Supervisor:
    """Starts children and restarts a crashed one with a doubling delay (at most `max_delay` seconds)."""

    children: list[Child]
    max_delay: float = 30.0
    stop_timeout: float = 15.0

    def start(self) -> None:
        for child in self.children:
            child.start()

    def tend(self) -> list[str]:
        """Restart children that exited; returns a line for each restart."""
        events = []
        now = time.monotonic()
        for child in self.children:
            if child.alive() or now < child.next_start:
                continue
            code = child.process.returncode if child.process else None
            if child.next_start == 0.0:
                delay = min(2.0 ** child.restarts, self.max_delay)
                child.next_start = now + delay
                events.append(f"{child.name} exited with code {code}; restarting in {delay:.0f} s "
                              f"(log: {child.log_path})")
                continue
            child.restarts += 1
            child.next_start = 0.0
            child.start()
            events.append(f"{child.name} restarted (restart #{child.restarts})")
        return events

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(self.stop_timeout)


def mesh_children(python: str, env: dict[str, str], host: str, janitor_port: int, data_dir: Path,
                  chain: ChainGateway | None = None) -> list[Child]:
    """The services `up` runs, in start order; `chain` puts the gateway on the operator's network."""
    from vidaio_cli.mesh_stack import service_children  # late: mesh_stack builds on this module

    janitor_env = {**env, "JANITOR_HOST": host, "JANITOR_PORT": str(janitor_port),
                   "JANITOR_TEMP_DIRS": str(data_dir / "work")}
    return [Child("janitor", [python, "-m", "janitor_svc"], janitor_env, f"{host}:{janitor_port}",
                  "mesh.v1.Janitor", data_dir / "logs" / "janitor.log"),
            *service_children(python, env, host, f"{host}:{janitor_port}", data_dir, chain)]


class StartAborted(Exception):
    """A stop was requested before every service was up."""


def _wait_serving(children: list[Child], timeout: float, stopping: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            wait_serving(child.address, service=child.grpc_service, timeout=deadline - time.monotonic(),
                         alive=lambda child=child: child.alive() and not stopping(), poll_seconds=0.2)
        except NotServing:
            if stopping():
                raise StartAborted("stopped before the services were ready") from None
            if not child.alive():
                tail = child.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{child.name} exited with code {child.process.returncode}:\n{tail}") from None
            raise TimeoutError(f"{child.name} did not report SERVING within {timeout:.0f} s") from None


def _status_style(status: str) -> str:
    return f"[green]{status}[/]" if status == "SERVING" else f"[red]{status}[/]"


def _up_table(stores: Stores, children: list[Child], network: str) -> Table:
    table = Table(title=f"vidaio-mesh ({network} network)")
    for column in ("component", "address", "pid", "status"):
        table.add_column(column)
    for name, address, status in stores.rows():
        table.add_row(name, address, "", _status_style(status))
    for child in children:
        pid = str(child.process.pid) if child.process else ""
        table.add_row(child.name, child.address, pid, _status_style(check(child.address, child.grpc_service)))
    return table


def up(
    host: str = typer.Option("127.0.0.1", help="address the janitor, upscaler and compressor bind (the gateway: "
                                               "GATEWAY_HOST in chain mode)"),
    janitor_port: int = typer.Option(29117, envvar="JANITOR_PORT", help="janitor gRPC port"),
    redis_port: int = typer.Option(0, help="embedded Valkey port (0 picks a free one)"),
    s3_port: int = typer.Option(0, help="embedded S3 port on loopback (0 picks a free one)"),
    s3_public_port: int = typer.Option(0, help="also serve the embedded S3 API on this port of every interface, "
                                               "for validators (the port S3_PUBLIC_ENDPOINT forwards to)"),
    data_dir: Path | None = typer.Option(None, help="where Valkey, S3, wallets and logs keep data; kept on exit "
                                                    "and reused by the next `up` (default: a new temp dir, "
                                                    "removed on exit)"),
    keep_data: bool = typer.Option(False, help="keep the temp data directory on exit"),
    ready_timeout: float = typer.Option(60.0, help="seconds to wait for every service to be SERVING"),
) -> None:
    """Run the mesh (Redis, S3, janitor, upscaler, compressor, gateway) supervised, until Ctrl-C or SIGTERM.

    Local mode unless GATEWAY_NETWORK names a chain; REDIS_URL / S3_ENDPOINT replace the embedded stores.
    """
    from vidaio_cli.mesh_stack import ChainGateway, service_addresses

    root = data_dir.resolve() if data_dir else Path(tempfile.mkdtemp(prefix="vidaio-mesh-"))
    try:
        settings = StackSettings()
        chain = ChainGateway.load(service_addresses(dict(os.environ), host)) if settings.chain_mode else None
        stores = Stores(settings, root, redis_port=redis_port, s3_port=s3_port, s3_public_port=s3_public_port)
    except (ValidationError, ConfigError, FileNotFoundError, StoreError) as exc:
        reason = str(exc)
        if isinstance(exc, ValidationError):  # each problem named, no value echoed: REDIS_URL may hold a password
            reason = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        console.print(f"[red]vidaio-mesh up: bad settings:[/] {reason}")
        if data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
        raise typer.Exit(2) from None
    # A plain list, not a threading.Event: Event.set() from a signal handler can deadlock against wait().
    stop_requested: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
    (root / "work").mkdir(parents=True, exist_ok=True)
    supervisor: Supervisor | None = None
    exit_code = 0
    try:
        with console.status("starting the stores"):
            stores.start()
        env = {**os.environ, **stores.env()}
        supervisor = Supervisor(mesh_children(sys.executable, env, host, janitor_port, root, chain))
        supervisor.start()
        with console.status("waiting for the services to report SERVING"):
            _wait_serving(supervisor.children, ready_timeout, stopping=lambda: bool(stop_requested))
        console.print(_up_table(stores, supervisor.children, settings.gateway_network))
        console.print(f"data and logs: {root}")
        if chain is None:
            console.print(f"a validator round against it: vidaio-mesh demo --use-running --mesh-dir {root}")
        else:
            console.print(f"serving netuid {chain.settings.netuid} on {chain.settings.network} as {chain.hotkey}")
        console.print("Ctrl-C stops everything.")
        while not stop_requested:
            time.sleep(0.5)
            for event in stores.tend() + supervisor.tend():
                console.print(f"[yellow]{event}[/]")
    except StartAborted:
        exit_code = 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        console.print(f"[red]vidaio-mesh up failed:[/] {exc}")
        exit_code = 1
    finally:
        console.print("stopping")
        if supervisor is not None:
            supervisor.stop()
        stores.stop()
        if data_dir is None and not keep_data:
            shutil.rmtree(root, ignore_errors=True)
    raise typer.Exit(exit_code)


def health(
    janitor: str = typer.Option(DEFAULT_ADDRESSES["janitor"][1], envvar="JANITOR_ADDR", help="janitor host:port"),
    upscaler: str = typer.Option(DEFAULT_ADDRESSES["upscaler"][1], envvar="UPSCALER_ADDR", help="upscaler host:port"),
    compressor: str = typer.Option(DEFAULT_ADDRESSES["compressor"][1], envvar="COMPRESSOR_ADDR",
                                   help="compressor host:port"),
    timeout: float = typer.Option(3.0, help="seconds per check"),
) -> None:
    """gRPC health of every configured service; exits 1 unless all are SERVING."""
    table = Table(title="vidaio-mesh health")
    for column in ("service", "address", "status"):
        table.add_column(column)
    statuses = []
    for name, address in (("janitor", janitor), ("upscaler", upscaler), ("compressor", compressor)):
        status = check(address, DEFAULT_ADDRESSES[name][2], timeout=timeout)
        statuses.append(status)
        table.add_row(name, address, _status_style(status))
    console.print(table)
    raise typer.Exit(0 if all(status == "SERVING" for status in statuses) else 1)


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(health)
