"""A thin synchronous facade over `AsyncClient`, for scripts and notebooks.

    with Client("http://hub:8080", token="rx_...") as rx:
        box = rx.containers.create()
        print(rx.containers.exec(box.id, "uname -a"))

Each call runs the async call to completion on the facade's own event loop (an
`asyncio.Runner`), so it must not be used from inside a running event loop. Results
and errors are exactly those of the async client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar, Unpack

from client.auth import Credentials, CredentialStore
from client.models import (
    Agent,
    AgentToken,
    ApiToken,
    Approval,
    Container,
    ExecResult,
    PasscodeSetup,
    Plan,
    Policy,
    PolicyMode,
    Role,
    Session,
    Share,
    SshKey,
    Subscription,
    Usage,
    User,
)
from client.sdk import Agents, AsyncClient, Command, Containers
from client.terminal import Event, Terminal, Where
from client.transport import DEFAULT_TIMEOUT

T = TypeVar("T")


class _Runs:
    def __init__(self, runner: asyncio.Runner) -> None:
        self._runner = runner

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)


class SyncTerminal(_Runs):
    """A `Terminal` driven synchronously: iterate for output chunks."""

    def __init__(self, runner: asyncio.Runner, terminal: Terminal) -> None:
        super().__init__(runner)
        self.terminal = terminal

    @property
    def session_id(self) -> str:
        return self.terminal.session_id

    @property
    def exit_code(self) -> int | None:
        return self.terminal.exit_code

    def send(self, data: bytes) -> None:
        self._run(self.terminal.send(data))

    def resize(self, cols: int, rows: int) -> None:
        self._run(self.terminal.resize(cols, rows))

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self._run(self.terminal.__anext__())
            except StopAsyncIteration:
                return

    def wait(self) -> int | None:
        return self._run(self.terminal.wait())

    def close(self) -> None:
        self._run(self.terminal.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SyncTarget(_Runs):
    """What containers and agents share: running a command, and the AI policy."""

    _a: Containers | Agents

    def exec(
        self,
        target_id: str,
        cmd: Command,
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
        supervised: bool = False,
    ) -> ExecResult | Approval:
        return self._run(
            self._a.exec(
                target_id,
                cmd,
                stdin=stdin,
                env=env,
                workdir=workdir,
                timeout=timeout,
                supervised=supervised,
            )
        )

    def set_policy(
        self,
        target_id: str,
        mode: PolicyMode,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
    ) -> Policy:
        return self._run(self._a.set_policy(target_id, mode, allow=allow, deny=deny))

    def get_policy(self, target_id: str) -> Policy:
        return self._run(self._a.get_policy(target_id))

    def pause(self, target_id: str) -> Policy:
        return self._run(self._a.pause(target_id))

    def resume(self, target_id: str) -> Policy:
        return self._run(self._a.resume(target_id))


class SyncContainers(_SyncTarget):
    _a: Containers

    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.containers

    def create(
        self,
        *,
        image: str | None = None,
        name: str | None = None,
        cpus: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
        ttl_seconds: int | None = None,
    ) -> Container:
        return self._run(
            self._a.create(
                image=image,
                name=name,
                cpus=cpus,
                memory_mb=memory_mb,
                env=env,
                ttl_seconds=ttl_seconds,
            )
        )

    def list(self) -> list[Container]:
        return self._run(self._a.list())

    def get(self, container_id: str) -> Container:
        return self._run(self._a.get(container_id))

    def delete(self, container_id: str) -> None:
        self._run(self._a.delete(container_id))


class SyncAgents(_SyncTarget):
    _a: Agents

    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.agents

    def create_token(self, *, name: str | None = None, expires_in: int | None = None) -> AgentToken:
        return self._run(self._a.create_token(name=name, expires_in=expires_in))

    def list(self) -> list[Agent]:
        return self._run(self._a.list())

    def get(self, agent_id: str) -> Agent:
        return self._run(self._a.get(agent_id))

    def delete(self, agent_id: str) -> None:
        self._run(self._a.delete(agent_id))


class SyncSessions(_Runs):
    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.sessions

    def list(self) -> list[Session]:
        return self._run(self._a.list())

    def get(self, session_id: str) -> Session:
        return self._run(self._a.get(session_id))

    def recording(self, session_id: str) -> bytes:
        return self._run(self._a.recording(session_id))

    def download_recording(
        self,
        session_id: str,
        write: Callable[[bytes], None],
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        return self._run(self._a.download_recording(session_id, write, progress))

    def share(
        self,
        session_id: str,
        role: Role = "viewer",
        *,
        passcode: str | None = None,
        expires_in: int | None = None,
    ) -> Share:
        return self._run(self._a.share(session_id, role, passcode=passcode, expires_in=expires_in))

    def end(self, session_id: str) -> None:
        self._run(self._a.end(session_id))


class SyncTokens(_Runs):
    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.tokens

    def create(
        self, name: str, *, scopes: Sequence[str] | None = None, expires_in: int | None = None
    ) -> ApiToken:
        return self._run(self._a.create(name, scopes=scopes, expires_in=expires_in))

    def list(self) -> list[ApiToken]:
        return self._run(self._a.list())

    def get(self, token_id: str) -> ApiToken:
        return self._run(self._a.get(token_id))

    def revoke(self, token_id: str) -> None:
        self._run(self._a.revoke(token_id))


class SyncKeys(_Runs):
    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.keys

    def add(self, name: str, public_key: str) -> SshKey:
        return self._run(self._a.add(name, public_key))

    def list(self) -> list[SshKey]:
        return self._run(self._a.list())

    def get(self, key_id: str) -> SshKey:
        return self._run(self._a.get(key_id))

    def remove(self, key_id: str) -> None:
        self._run(self._a.remove(key_id))


class SyncApprovals(_Runs):
    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.approvals

    def list(self, status: str | None = "pending") -> list[Approval]:
        return self._run(self._a.list(status))

    def get(self, approval_id: str, *, wait: float | None = None) -> Approval:
        return self._run(self._a.get(approval_id, wait=wait))

    def wait(self, approval_id: str, *, at_most: float | None = None) -> Approval:
        return self._run(self._a.wait(approval_id, at_most=at_most))

    def approve(self, approval_id: str, *, cmd: Command | None = None) -> Approval:
        return self._run(self._a.approve(approval_id, cmd=cmd))

    def reject(self, approval_id: str, *, reason: str | None = None) -> Approval:
        return self._run(self._a.reject(approval_id, reason=reason))


class SyncBilling(_Runs):
    def __init__(self, runner: asyncio.Runner, client: AsyncClient) -> None:
        super().__init__(runner)
        self._a = client.billing

    def plans(self) -> list[Plan]:
        return self._run(self._a.plans())

    def subscribe(self, plan: str) -> Subscription:
        return self._run(self._a.subscribe(plan))

    def usage(self) -> Usage:
        return self._run(self._a.usage())


class Client(_Runs):
    """The synchronous client; same arguments as `AsyncClient`."""

    def __init__(
        self,
        hub: str,
        *,
        token: str | None = None,
        credentials: Credentials | None = None,
        store: CredentialStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(asyncio.Runner())
        self.aio = AsyncClient(
            hub, token=token, credentials=credentials, store=store, timeout=timeout
        )
        self.containers = SyncContainers(self._runner, self.aio)
        self.agents = SyncAgents(self._runner, self.aio)
        self.sessions = SyncSessions(self._runner, self.aio)
        self.tokens = SyncTokens(self._runner, self.aio)
        self.keys = SyncKeys(self._runner, self.aio)
        self.approvals = SyncApprovals(self._runner, self.aio)
        self.billing = SyncBilling(self._runner, self.aio)

    @property
    def hub(self) -> str:
        return self.aio.hub

    @property
    def credentials(self) -> Credentials | None:
        return self.aio.credentials

    def register(self, email: str, password: str, name: str | None = None) -> User:
        return self._run(self.aio.register(email, password, name))

    def login(self, email: str, password: str, passcode: str | None = None) -> User:
        return self._run(self.aio.login(email, password, passcode))

    def use_token(self, token: str) -> None:
        self.aio.use_token(token)

    def logout(self, *, everywhere: bool = False, revoke_tokens: bool = False) -> None:
        self._run(self.aio.logout(everywhere=everywhere, revoke_tokens=revoke_tokens))

    def user(self) -> User:
        return self._run(self.aio.user())

    def passcode_setup(self) -> PasscodeSetup:
        return self._run(self.aio.passcode_setup())

    def passcode_confirm(self, code: str) -> list[str]:
        return self._run(self.aio.passcode_confirm(code))

    def passcode_disable(self, code: str) -> None:
        self._run(self.aio.passcode_disable(code))

    def attach(
        self,
        target: str,
        *,
        on_event: Callable[[Event], None] | None = None,
        **where: Unpack[Where],
    ) -> SyncTerminal:
        terminal = self._run(self.aio.attach(target, on_event=on_event, **where))
        return SyncTerminal(self._runner, terminal)

    def run(
        self, target: str, command: str, *, cols: int = 80, rows: int = 24
    ) -> tuple[bytes, int | None]:
        return self._run(self.aio.run(target, command, cols=cols, rows=rows))

    def healthy(self) -> bool:
        return self._run(self.aio.healthy())

    def close(self) -> None:
        try:
            self._run(self.aio.close())
        finally:
            self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
