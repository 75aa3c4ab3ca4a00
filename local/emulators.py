"""Start and stop the npm stand-ins for Azure: Azurite (queues, blobs) and cosmosdb-server.

Both listen on 127.0.0.1 only, on ports chosen free at start (another process may hold
Azurite's default ports), and are stopped by their process id. Used by the Makefile, the pytest
session fixture and the local runner.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "node_modules" / ".bin"

# Public, documented development keys of Azurite and the Cosmos emulator: not secrets.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"  # pragma: allowlist secret
    "K1SZFPTOtr/KBHBeksoGMGw=="  # pragma: allowlist secret
)
COSMOS_EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nD"  # pragma: allowlist secret
    "uVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="  # pragma: allowlist secret
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulators:
    blob_port: int
    queue_port: int
    cosmos_port: int
    pids: list[int]

    @property
    def storage_connection(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT};"
        )

    @property
    def cosmos_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.cosmos_port}"

    def app_settings(self) -> dict[str, str]:
        return {
            "STORAGE": self.storage_connection,
            "COSMOS_ENDPOINT": self.cosmos_endpoint,
            "COSMOS_KEY": COSMOS_EMULATOR_KEY,
            "COSMOS_VERIFY_TLS": "false",
        }


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before it was ready")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready on port {port} after {timeout:.0f}s")


def _require_npm_packages() -> None:
    for tool in ("azurite", "cosmosdb-server"):
        if not (BIN / tool).exists():
            raise RuntimeError(f"{tool} is not installed: run `npm ci` (make does this)")


def start(log_dir: Path | None = None, blob_dir: Path | None = None) -> Emulators:
    """`blob_dir`: keep Azurite's data in this folder instead of in memory (a large run's
    labels and invoices would not fit in memory)."""
    _require_npm_packages()
    blob, queue, table, cosmos = free_port(), free_port(), free_port(), free_port()
    log_dir = log_dir or ROOT / ".run"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        azurite = subprocess.Popen(  # noqa: S603 - fixed argv of a pinned npm tool
            [
                str(BIN / "azurite"),
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                *(["--location", str(blob_dir)] if blob_dir else ["--inMemoryPersistence"]),
                "--loose",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(blob),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(queue),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(table),
            ],
            stdout=open(log_dir / "azurite.log", "wb"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(azurite)
        node = shutil.which("node") or "node"
        cosmos_proc = subprocess.Popen(  # noqa: S603 - fixed argv of a pinned npm tool
            [
                node,
                str(ROOT / "local" / "cosmosdb-server.js"),
                "--host",
                "127.0.0.1",
                "--port",
                str(cosmos),
            ],
            stdout=open(log_dir / "cosmosdb-server.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(cosmos_proc)
        _wait_for_port(blob, azurite, "azurite blob")
        _wait_for_port(queue, azurite, "azurite queue")
        _wait_for_port(cosmos, cosmos_proc, "cosmosdb-server")
    except BaseException:
        stop_pids([p.pid for p in procs])
        raise
    return Emulators(blob, queue, cosmos, [p.pid for p in procs])


def stop_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for pid in pids:
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


@contextmanager
def running(log_dir: Path | None = None, blob_dir: Path | None = None) -> Iterator[Emulators]:
    emulators = start(log_dir, blob_dir)
    try:
        yield emulators
    finally:
        stop_pids(emulators.pids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop the local Azure stand-ins.")
    parser.add_argument("verb", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, default=ROOT / ".run" / "emulators.json")
    args = parser.parse_args(argv)
    if args.verb == "start":
        emulators = start()
        args.state.parent.mkdir(parents=True, exist_ok=True)
        args.state.write_text(json.dumps(asdict(emulators)))
        sys.stdout.write(json.dumps(emulators.app_settings(), indent=2) + "\n")
    elif args.state.exists():
        stop_pids(json.loads(args.state.read_text())["pids"])
        args.state.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
