"""Mosquitto with carlink's accounts and ACL: config writer and a process runner for tests and benchmarks.

`carlink broker mosquitto-config DIR` writes the same files for an operator's own Mosquitto.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from carlink.gateway.credentials import GATEWAY_USER, car_password, gateway_password
from carlink.protocol.topics import Topics


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def password_line(username: str, password: str) -> str:
    """Mosquitto 2's PBKDF2-SHA512 format ($7$), as mosquitto_passwd writes it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"{username}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_config(directory: Path, *, secret: str, prefix: str, vins: Iterable[str], port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    topics = Topics(prefix)
    passwd = directory / "passwd"
    acl = directory / "acl"
    lines = [password_line(GATEWAY_USER, gateway_password(secret))]
    lines += [password_line(vin, car_password(secret, vin)) for vin in vins]
    passwd.write_text("\n".join(lines) + "\n")
    acl.write_text(
        f"user {GATEWAY_USER}\n"
        f"topic readwrite {prefix}/#\n"
        f"topic read $share/#\n\n"
        "# every other account is a car whose user name is its VIN\n"
        f"pattern read {topics.car_read_pattern()}\n"
        f"pattern write {topics.car_write_pattern()}\n"
    )
    for path in (passwd, acl):
        path.chmod(0o600)
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        # Run as whoever starts it: as root, Mosquitto would otherwise switch to 'mosquitto' and lose access.
        f"user {getpass.getuser()}\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        f"acl_file {acl}\n"
        # Without TCP_NODELAY every QoS 1 exchange waits for delayed ACKs (~90 ms instead of ~0.5 ms).
        "set_tcp_nodelay true\n"
        "persistence false\n"
        "max_queued_messages 10000\n"
        "max_inflight_messages 100\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )
    return conf


class MosquittoProcess:
    """A Mosquitto of our own on a free loopback port (the machine's :1883 runs Debian's defaults)."""

    def __init__(
        self, directory: Path, *, secret: str, prefix: str, vins: Iterable[str], port: int = 0
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.directory = directory
        self.secret = secret
        self.prefix = prefix
        self.port = port or _free_port()
        self.vins = list(vins)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = write_config(
            self.directory, secret=self.secret, prefix=self.prefix, vins=self.vins, port=self.port
        )
        log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        _wait_for_port(self.port, self.process)

    def add_vehicles(self, vins: Iterable[str]) -> None:
        """Writes the new accounts and has Mosquitto reload them (SIGHUP), without dropping connections."""
        self.vins.extend(vins)
        write_config(self.directory, secret=self.secret, prefix=self.prefix, vins=self.vins, port=self.port)
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port} within {timeout} s")


__all__ = ["MosquittoProcess", "mosquitto_binary", "password_line", "write_config"]
