"""A production install, proved: run by `make check-install` with the interpreter of a clean environment that holds
the package without its dev extras. Loads the definitions, then serves them with `dagster code-server` until a
gRPC health check answers SERVING. Exits 1, naming the step, when any of it fails (an undeclared runtime import
fails the first step)."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(step: str, detail: str) -> None:
    print(f"check-install FAILED at {step}:\n{detail[-4000:]}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    home = tempfile.mkdtemp(prefix="dagster-home-")
    env = {**os.environ, "DAGSTER_HOME": home, "CONSUMER_ASSETS_ROOT": tempfile.mkdtemp(prefix="root-")}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import consumer_assets.definitions as d; import consumer_assets, sys; print(consumer_assets.__file__, "
            "len(list(d.defs.assets or [])))",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if loaded.returncode:
        fail("loading consumer_assets.definitions", loaded.stderr)
    if "site-packages" not in loaded.stdout:
        fail(
            "loading consumer_assets.definitions",
            f"loaded from the source tree, not the installed package: {loaded.stdout}",
        )
    print(f"definitions load from the installed package ({loaded.stdout.strip()})")
    port = free_port()
    # env --default-signal: started from a script, dagster would inherit an ignored SIGTERM and outlive the check.
    server = subprocess.Popen(
        [
            "env",
            "--default-signal=INT,TERM",
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            "consumer_assets.definitions",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the server and the gRPC process it starts stop together
    )
    try:
        deadline, started = time.monotonic() + 180, time.monotonic()
        while True:
            if server.poll() is not None:
                fail("dagster code-server start", server.stdout.read())
            check = subprocess.run(
                [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                capture_output=True,
                text=True,
                env=env,
            )
            if check.returncode == 0:
                print(f"dagster code-server answers its gRPC health check after {time.monotonic() - started:.0f} s")
                break
            if time.monotonic() > deadline:
                fail("the code server's health check", check.stdout + check.stderr)
            time.sleep(2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


if __name__ == "__main__":
    main()
