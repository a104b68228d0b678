"""Is a run's worker process alive? Asked of runs that the default run launcher started as processes on this machine.

Dagster's run monitoring fails a run whose worker died only where the launcher can
see workers (Kubernetes, ECS); with the default launcher a run killed by SIGKILL or
the out-of-memory killer would stay STARTED until its ``dagster/max_runtime``.
"""

from __future__ import annotations

import psutil


def worker_alive(pid: int, started_at: float) -> bool:
    """False when no process has ``pid``, it is a zombie, or it started after the worker did (the pid was reused)."""
    try:
        process = psutil.Process(pid)
        return process.create_time() <= started_at + 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
