"""The real `dagster-webserver` and `dagster-daemon` on 127.0.0.1, in a temp DAGSTER_HOME, for e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx

from loyalty_pipeline.operations.instance import DAGSTER_YAML
from loyalty_pipeline.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterServers:
    """Started processes are killed by their own process group (never by name) on exit."""

    def __init__(self, root: Path, env: dict[str, str], extra_yaml: str = ""):
        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        # The project's instance (pool limit 1, serial tag), plus what a test needs.
        (self.home / "dagster.yaml").write_text(DAGSTER_YAML + extra_yaml)
        # Create the instance's storage here, as `dagster dev` does before it starts its processes: the
        # daemon, the webserver and their code servers creating fresh sqlite storage at the same moment
        # can both stamp alembic_version ("more than one head present") and the location fails to load.
        dg.DagsterInstance.from_config(str(self.home)).dispose()
        self.env = {**os.environ, "DAGSTER_HOME": str(self.home), **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.root / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(args, cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_webserver(self, timeout_s: float = 180) -> None:
        self._start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.port),
                                  "-w", "workspace.yaml"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["webserver"].poll() is not None:
                raise RuntimeError(f"dagster-webserver exited:\n{self.log('webserver')}")
            try:
                data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { "
                                    "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    loaded = entries[0]["locationOrLoadError"]
                    if loaded["__typename"] == "PythonError":
                        raise RuntimeError(f"code location failed to load: {loaded['message']}")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"dagster-webserver not ready in {timeout_s}s:\n{self.log('webserver')}")

    def start_daemon(self) -> None:
        self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"])

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 60) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                              timeout=timeout_s)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def __enter__(self) -> DagsterServers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
