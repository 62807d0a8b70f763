"""SSH tunnels to databases behind a bastion host (asyncssh).

A tunnel is a local port on 127.0.0.1 forwarded through the bastion to the database, so any client
library (psycopg, PyMySQL, or one that opens its own connections from a URI) connects to it as if it were
the database. `open_forward` gives the (host, port) to connect to: the database itself when the config has
no tunnel.

Host keys: a `host_key_fingerprint` (`SHA256:...`, as `ssh-keygen -lf` prints it) in the tunnel config
pins the bastion's key, checked before any credential is sent. Without one the key is trusted on first
use: the caller stores the fingerprint it saw (`TunnelScope.host_keys`), which pins it from then on.

Within a `tunnel_scope()` (a sync job, one API call) one tunnel per bastion, user and database is opened,
reused by every connection, and closed when the scope ends; outside a scope each `open_forward` opens its
own tunnel and closes it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors.base import SourceError

if TYPE_CHECKING:
    import asyncssh

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
DEFAULT_SSH_PORT = 22
AUTH_METHODS = ("password", "keypair")  # what the embedded backend's tunnels support
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")


@dataclass(frozen=True)
class TunnelConfig:
    """The form's `ssh_tunnel` value, read: where the bastion is and how to sign in."""

    host: str
    port: int
    username: str
    method: str  # "password" | "keypair"
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)
    require_tls: bool = False
    host_key_fingerprint: str | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.private_key, self.passphrase) if s)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "********")
        return text


def _truthy(value: Any) -> bool:
    if isinstance(value, Mapping):
        value = value.get("enabled")
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def normalize_fingerprint(value: str) -> str:
    """`SHA256:<base64>` without padding, or a SourceError saying what a fingerprint looks like."""
    text = value.strip()
    if not text.startswith("SHA256:"):
        text = f"SHA256:{text}"
    if not _FINGERPRINT.match(text):
        raise SourceError(
            "SSH tunnel: the host key fingerprint must look like SHA256:<43 base64 characters>, "
            "as `ssh-keygen -lf <host key>.pub` prints it"
        )
    return text.rstrip("=")


def tunnel_config(config: Mapping[str, Any]) -> TunnelConfig | None:
    """The source's SSH tunnel, or None when it has none (or it is switched off)."""
    tunnel = config.get("ssh_tunnel")
    if not isinstance(tunnel, Mapping) or not _truthy(tunnel.get("enabled")):
        return None
    auth = tunnel.get("auth") or tunnel.get("auth_type") or {}
    if not isinstance(auth, Mapping):
        auth = {}
    host = str(tunnel.get("host") or "").strip()
    if not host:
        raise SourceError("SSH tunnel: the SSH host is missing")
    port_text = str(tunnel.get("port") or DEFAULT_SSH_PORT).strip()
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SourceError(f"SSH tunnel: the SSH port must be a number from 1 to 65535, got '{port_text}'")
    username = str(auth.get("username") or tunnel.get("username") or "").strip()
    if not username:
        raise SourceError("SSH tunnel: the SSH username is missing")
    password = str(auth.get("password") or "")
    private_key = str(auth.get("private_key") or "")
    method = str(auth.get("selection") or ("keypair" if private_key else "password"))
    if method not in AUTH_METHODS:
        raise SourceError(
            f"SSH tunnel: authentication '{method}' is not supported; use one of: {', '.join(AUTH_METHODS)}"
        )
    if method == "password" and not password:
        raise SourceError("SSH tunnel: the SSH password is missing")
    if method == "keypair" and not private_key.strip():
        raise SourceError("SSH tunnel: the private key is missing")
    pinned = str(tunnel.get("host_key_fingerprint") or "").strip()
    return TunnelConfig(
        host=host,
        port=int(port_text),
        username=username,
        method=method,
        password=password,
        private_key=private_key,
        passphrase=str(auth.get("passphrase") or ""),
        require_tls=_truthy(tunnel.get("require_tls")),
        host_key_fingerprint=normalize_fingerprint(pinned) if pinned else None,
    )


# --- one tunnel ------------------------------------------------------------------------------------------


@cache
def _client_class() -> Any:
    import asyncssh  # imported on first use: it takes a third of a second, too long for start-up

    class HostKeyCheckingClient(asyncssh.SSHClient):
        """Checks the bastion's host key against the pinned fingerprint (or records it, on first use)."""

        def __init__(self, pinned: str | None) -> None:
            self.pinned = pinned
            self.seen: str | None = None

        def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
            self.seen = key.get_fingerprint("sha256").rstrip("=")
            return self.pinned is None or self.seen == self.pinned

    return HostKeyCheckingClient


class Tunnel:
    """An SSH connection with a local port forwarded to `destination`, served by a child process.

    The forwarding runs in its own process (this module run as a script) so that it keeps moving bytes
    while a client library holds this process's GIL (connectorx does while it connects). The child gets
    the tunnel's settings on its stdin (never in its arguments or environment), answers one JSON line
    (`{"port", "fingerprint"}` or `{"error"}`), and exits when its stdin closes: at `close()`, or when
    this process dies.
    """

    def __init__(self, ssh: TunnelConfig, destination: tuple[str, int]) -> None:
        self.ssh = ssh
        self.destination = destination
        self.host_key_fingerprint: str | None = None
        self.local_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def open(self) -> Tunnel:
        request = {"ssh": dataclasses.asdict(self.ssh), "destination": list(self.destination)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            answer = self._read_answer(self._process.stdout, CONNECT_TIMEOUT_SECONDS * 3)
        except BaseException:
            self.close()
            raise
        if "error" in answer or not answer.get("port"):
            self.close()
            raise SourceError(
                self.ssh.scrub(str(answer.get("error") or "SSH tunnel: the tunnel did not start"))
            )
        self.local_port = int(answer["port"])
        self.host_key_fingerprint = answer.get("fingerprint")
        return self

    def _read_answer(self, stdout: Any, timeout: float) -> dict[str, Any]:
        lines: list[bytes] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines:
            raise SourceError(
                f"SSH tunnel: the SSH host {self.ssh.where} did not answer within {timeout:.0f} seconds"
            )
        try:
            answer = json.loads(lines[0] or b"{}")
        except ValueError:
            answer = {}
        return answer if isinstance(answer, dict) else {}

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(CONNECT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class _Forwarder:
    """The child process's side: connect, check the host key, forward, report."""

    def __init__(self, ssh: TunnelConfig, destination: tuple[str, int]) -> None:
        self.ssh = ssh
        self.destination = destination
        self.host_key_fingerprint: str | None = None
        self.local_port = 0
        self._connection: asyncssh.SSHClientConnection | None = None
        self._listener: asyncssh.SSHListener | None = None

    async def open(self) -> None:
        import asyncssh

        ssh = self.ssh
        client: Any = _client_class()(ssh.host_key_fingerprint)
        options: dict[str, Any] = {
            "username": ssh.username,
            "known_hosts": asyncssh.SSHKnownHosts(),  # empty: every key goes through the client's check
            "agent_path": None,
            "client_keys": [],
            "password": None,
            "preferred_auth": "password" if ssh.method == "password" else "publickey",
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "keepalive_interval": 30,
        }
        if ssh.method == "password":
            options["password"] = ssh.password
        else:
            options["client_keys"] = [self._private_key()]
        try:
            self._connection = await asyncssh.connect(
                ssh.host, ssh.port, client_factory=lambda: client, **options
            )
        except asyncssh.HostKeyNotVerifiable:
            raise SourceError(
                f"SSH tunnel: the host key of SSH host {ssh.where} is {client.seen}, not the pinned "
                f"{ssh.host_key_fingerprint}. If the server's key really changed, enter its new fingerprint"
            ) from None
        except asyncssh.PermissionDenied:
            how = "password" if ssh.method == "password" else "private key"
            raise SourceError(
                f"SSH tunnel: SSH host {ssh.where} refused the login of user '{ssh.username}' "
                f"with this {how}: check the username and {how}"
            ) from None
        except (TimeoutError, OSError) as error:
            reason = ssh.scrub(str(error) or type(error).__name__)
            raise SourceError(f"SSH tunnel: could not reach SSH host {ssh.where}: {reason}") from None
        except asyncssh.Error as error:
            raise SourceError(
                f"SSH tunnel: SSH host {ssh.where} closed the connection: {ssh.scrub(error.reason)}"
            ) from None
        self.host_key_fingerprint = client.seen
        host, port = self.destination
        # Reach the database once now, so a database the bastion cannot reach is named as such here
        # rather than surfacing later as a driver's "connection closed".
        try:
            _, writer = await self._connection.open_connection(host, port)
        except asyncssh.ChannelOpenError as error:
            raise SourceError(
                f"SSH tunnel: SSH host {ssh.where} could not reach the database at {host}:{port}: "
                f"{ssh.scrub(error.reason)}"
            ) from None
        writer.close()
        self._listener = await self._connection.forward_local_port("127.0.0.1", 0, host, port)
        self.local_port = self._listener.get_port()

    def _private_key(self) -> asyncssh.SSHKey:
        import asyncssh

        ssh = self.ssh
        key_text = ssh.private_key.strip() + "\n"
        try:
            return asyncssh.import_private_key(key_text, ssh.passphrase or None)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as error:
            reason = ssh.scrub(str(error))
            encrypted = isinstance(error, asyncssh.KeyEncryptionError) or any(
                word in reason.lower() for word in ("passphrase", "decrypt")
            )
            if encrypted and ssh.passphrase:
                raise SourceError("SSH tunnel: the private key's passphrase is wrong") from None
            if encrypted:
                raise SourceError("SSH tunnel: the private key is encrypted: enter its passphrase") from None
            raise SourceError(
                f"SSH tunnel: the private key could not be read ({reason}); paste the whole key, "
                "including its BEGIN and END lines"
            ) from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._connection is not None:
            self._connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.wait_closed(), CONNECT_TIMEOUT_SECONDS)


async def _serve(request: dict[str, Any]) -> None:
    ssh = TunnelConfig(**request["ssh"])
    host, port = request["destination"]
    forwarder = _Forwarder(ssh, (str(host), int(port)))
    try:
        await forwarder.open()
    except SourceError as error:
        _answer({"error": ssh.scrub(str(error))})
        await forwarder.close()
        return
    except Exception as error:  # anything unforeseen: its kind only, never its text
        _answer({"error": f"SSH tunnel: the tunnel to SSH host {ssh.where} failed ({type(error).__name__})"})
        await forwarder.close()
        return
    _answer({"port": forwarder.local_port, "fingerprint": forwarder.host_key_fingerprint})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)  # until stdin closes
    await forwarder.close()


def _answer(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


# --- scopes: one tunnel per job -------------------------------------------------------------------------


@dataclass
class TunnelScope:
    """The tunnels opened while a scope is active, and the bastion host keys they saw."""

    tunnels: dict[tuple[Any, ...], Tunnel] = field(default_factory=dict)
    host_keys: dict[tuple[str, int], str] = field(default_factory=dict)

    def close(self) -> None:
        for tunnel in self.tunnels.values():
            tunnel.close()
        self.tunnels.clear()


_scope: contextvars.ContextVar[TunnelScope | None] = contextvars.ContextVar("ssh_tunnel_scope", default=None)


@contextlib.contextmanager
def tunnel_scope() -> Iterator[TunnelScope]:
    """Share tunnels among the connections made inside; close them all on exit. Nested scopes share
    the outer one."""
    current = _scope.get()
    if current is not None:
        yield current
        return
    scope = TunnelScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        scope.close()


@contextlib.contextmanager
def open_forward(ssh: TunnelConfig | None, host: str, port: int) -> Iterator[tuple[str, int]]:
    """The (host, port) a client connects to for the database at host:port: through the SSH tunnel when
    there is one (127.0.0.1 and a local port), else the database itself."""
    if ssh is None:
        yield host, port
        return
    scope = _scope.get()
    key = (ssh.host, ssh.port, ssh.username, ssh.host_key_fingerprint, host, port)
    if scope is not None and key in scope.tunnels:
        yield "127.0.0.1", scope.tunnels[key].local_port
        return
    tunnel = Tunnel(ssh, (host, port)).open()
    if scope is not None:
        scope.tunnels[key] = tunnel
        if tunnel.host_key_fingerprint:
            scope.host_keys[(ssh.host, ssh.port)] = tunnel.host_key_fingerprint
        yield "127.0.0.1", tunnel.local_port
        return
    try:
        yield "127.0.0.1", tunnel.local_port
    finally:
        tunnel.close()


def pin_host_key(config: dict[str, Any], scope: TunnelScope) -> str | None:
    """Trust on first use: store the fingerprint the scope saw in a config whose tunnel pins none.
    Returns the config's (pinned or new) fingerprint."""
    tunnel = config.get("ssh_tunnel")
    if not isinstance(tunnel, dict) or not _truthy(tunnel.get("enabled")):
        return None
    if tunnel.get("host_key_fingerprint"):
        return str(tunnel["host_key_fingerprint"])
    port = str(tunnel.get("port") or DEFAULT_SSH_PORT).strip()
    seen = scope.host_keys.get((str(tunnel.get("host") or "").strip(), int(port) if port.isdigit() else 0))
    if seen:
        tunnel["host_key_fingerprint"] = seen
    return seen


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.stdin.buffer.readline())))
