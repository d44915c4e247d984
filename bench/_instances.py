"""A service's instances, started and stopped the way deploy/local/services.sh does (`make up
INSTANCES=N`): instance k runs `python -m services.<name>` on the service's port + 100*k in its
own session, output appended to .local/logs/<name>[-k].log, pid in .local/run/. And their
resident memory, sampled while a benchmark runs."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import REPO_ROOT, RUN_DIR

LOGS = REPO_ROOT / ".local" / "logs"
DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "courses": 8003, "subsidy": 8004, "reporting": 8005}


class Instances:
    def __init__(self, service: str) -> None:
        self.service = service
        self.base_port = int(os.environ.get(f"{service.upper()}_PORT", DEFAULT_PORTS[service]))
        self.command = [sys.executable, "-m", f"services.{service}"]

    def name(self, k: int) -> str:
        return self.service if k == 0 else f"{self.service}-{k}"

    def port(self, k: int) -> int:
        return self.base_port + 100 * k

    def url(self, k: int) -> str:
        return f"http://127.0.0.1:{self.port(k)}"

    def pid(self, k: int) -> int | None:
        """The pid of instance k if its pid file names a live process."""
        try:
            pid = int((RUN_DIR / f"{self.name(k)}.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def running(self, upto: int = 10) -> list[int]:
        return [k for k in range(upto) if self.pid(k) is not None]

    async def wait_healthy(self, k: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url(k)}/healthz")).status_code == 200:
                        return
                if self.pid(k) is None:
                    sys.exit(f"{self.name(k)} exited; see {LOGS / self.name(k)}.log")
                await asyncio.sleep(0.3)
        sys.exit(f"{self.name(k)} not healthy after {timeout:g} s; see {LOGS / self.name(k)}.log")

    async def start(self, k: int) -> None:
        if self.pid(k) is not None:
            return
        prefix = self.service.upper()
        env = {
            **os.environ,
            f"{prefix}_PORT": str(self.port(k)),
            # Every instance names instance 0's address (links in events stay stable), as services.sh does.
            f"{prefix}_PUBLIC_BASE_URL": os.environ.get(f"{prefix}_PUBLIC_BASE_URL", self.url(0)),
        }
        LOGS.mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        with (LOGS / f"{self.name(k)}.log").open("ab") as log:
            proc = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # as `setsid`: its own process group, which stop() signals
            )
        (RUN_DIR / f"{self.name(k)}.pid").write_text(f"{proc.pid}\n")

    async def stop(self, k: int) -> None:
        """TERM the instance's process group, KILL it after 20 s, remove the pid file (as services.sh)."""
        pid = self.pid(k)
        if pid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(pid, sig)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and _alive(pid):
                    await asyncio.sleep(0.2)
                if not _alive(pid):
                    break
        (RUN_DIR / f"{self.name(k)}.pid").unlink(missing_ok=True)

    async def run_exactly(self, count: int) -> None:
        """Instances 0..count-1 running and healthy, every other instance stopped."""
        for k in self.running():
            if k >= count:
                await self.stop(k)
        for k in range(count):
            await self.start(k)
        for k in range(count):
            await self.wait_healthy(k)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie (our own child that exited) counts as gone.
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def resident_bytes(pid: int) -> int | None:
    """VmRSS of a process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


@dataclass
class MemoryPeaks:
    """Peak resident memory of some processes, sampled every `every` seconds while running."""

    pids: dict[str, int]
    every: float = 0.25
    peaks: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            for name, pid in self.pids.items():
                if (rss := resident_bytes(pid)) is not None:
                    self.peaks[name] = max(self.peaks.get(name, 0), rss)
            await asyncio.sleep(self.every)

    def start(self) -> "MemoryPeaks":
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def line(self) -> str:
        return ",  ".join(f"{name} {rss / 2**20:.0f} MB" for name, rss in sorted(self.peaks.items()))


def instance_pids(instances: Instances, count: int) -> dict[str, int]:
    return {instances.name(k): pid for k in range(count) if (pid := instances.pid(k)) is not None}
