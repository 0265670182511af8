"""The asynchronous Python SDK: every call of API.md that a client makes, typed.

    async with AsyncClient("http://hub:8080") as rx:
        await rx.login("me@example.com", "secret")
        box = await rx.containers.create(image="busybox")
        result = await rx.containers.exec(box.id, ["sh", "-c", "echo hi"])
        async with await rx.attach(box.id, command="top -b -n1") as term:
            async for chunk in term:
                ...

Calls are grouped the way API.md groups them (`containers`, `agents`, `sessions`,
`tokens`, `keys`, `approvals`, `billing`); results are the dataclasses of
`client.models`; failures raise the typed errors of `client.errors`. The access token
is refreshed by the transport, and new credentials are written to the store given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self, Unpack
from urllib.parse import quote

from client.auth import Credentials, CredentialStore, MemoryStore
from client.errors import Conflict, NotFound, NotSignedIn, RexecError, UnexpectedAnswer
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
from client.terminal import Event, Terminal, Where, open_terminal
from client.transport import DEFAULT_TIMEOUT, Transport

Command = str | Sequence[str]


def _id(value: str) -> str:
    return quote(value, safe="")


def _object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise UnexpectedAnswer(f"The hub's answer for {what} is not a JSON object.")
    return body


def _items(body: Any, plural: str) -> list[Mapping[str, Any]]:
    items = _object(body, plural).get(plural)
    if not isinstance(items, list):
        raise UnexpectedAnswer(f"The hub's answer has no {plural!r} list.")
    return [item for item in items if isinstance(item, Mapping)]


def _drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def exec_body(
    cmd: Command,
    *,
    stdin: str | None,
    env: Mapping[str, str] | None,
    workdir: str | None,
    timeout: float | None,
    supervised: bool,
) -> dict[str, Any]:
    return _drop_none(
        cmd=cmd if isinstance(cmd, str) else list(cmd),
        stdin=stdin,
        env=dict(env) if env else None,
        workdir=workdir,
        timeout=timeout,
        supervised=supervised or None,
    )


def exec_answer(body: Any) -> ExecResult | Approval:
    """200 `{exit_code, ...}` or 202 `{approval: {...}}` (a supervised command waits)."""
    data = _object(body, "exec")
    approval = data.get("approval")
    if isinstance(approval, Mapping):
        return Approval.from_json(approval)
    return ExecResult.from_json(data)


class _Api:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class _Target(_Api):
    """What containers and agents share: running a command, and the AI policy."""

    _path: ClassVar[str]

    async def exec(
        self,
        target_id: str,
        cmd: Command,
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the command's limit, an API field
        supervised: bool = False,
    ) -> ExecResult | Approval:
        body = exec_body(
            cmd, stdin=stdin, env=env, workdir=workdir, timeout=timeout, supervised=supervised
        )
        http_timeout = (timeout or DEFAULT_TIMEOUT) + 30
        answer = await self._t.request(
            "POST", f"{self._path}/{_id(target_id)}/exec", body, limit=http_timeout
        )
        return exec_answer(answer)

    async def set_policy(
        self,
        target_id: str,
        mode: PolicyMode,
        *,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
    ) -> Policy:
        body = _drop_none(mode=mode, allow=allow and list(allow), deny=deny and list(deny))
        answer = await self._t.request("PUT", f"{self._path}/{_id(target_id)}/policy", body)
        return Policy.from_json(_object(answer, "policy"))

    async def get_policy(self, target_id: str) -> Policy:
        answer = await self._t.request("GET", f"{self._path}/{_id(target_id)}/policy")
        return Policy.from_json(_object(answer, "policy"))

    async def pause(self, target_id: str) -> Policy:
        """The kill switch: the target refuses AI commands until `resume`."""
        answer = await self._t.request("POST", f"{self._path}/{_id(target_id)}/policy/pause")
        return Policy.from_json(_object(answer, "policy"))

    async def resume(self, target_id: str) -> Policy:
        answer = await self._t.request("POST", f"{self._path}/{_id(target_id)}/policy/resume")
        return Policy.from_json(_object(answer, "policy"))


class Containers(_Target):
    """Hub-managed Docker sandboxes."""

    _path = "/api/containers"

    async def create(
        self,
        *,
        image: str | None = None,
        name: str | None = None,
        cpus: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
        ttl_seconds: int | None = None,
    ) -> Container:
        body = _drop_none(
            image=image,
            name=name,
            cpus=cpus,
            memory_mb=memory_mb,
            env=dict(env) if env else None,
            ttl_seconds=ttl_seconds,
        )
        return Container.from_json(
            _object(await self._t.request("POST", "/api/containers", body), "container")
        )

    async def list(self) -> list[Container]:
        body = await self._t.request("GET", "/api/containers")
        return [Container.from_json(c) for c in _items(body, "containers")]

    async def get(self, container_id: str) -> Container:
        body = await self._t.request("GET", f"/api/containers/{_id(container_id)}")
        return Container.from_json(_object(body, "container"))

    async def delete(self, container_id: str) -> None:
        await self._t.request("DELETE", f"/api/containers/{_id(container_id)}")


class Agents(_Target):
    """User servers that dial out to the hub."""

    _path = "/api/agents"

    async def create_token(
        self, *, name: str | None = None, expires_in: int | None = None
    ) -> AgentToken:
        body = _drop_none(name=name, expires_in=expires_in)
        answer = await self._t.request("POST", "/api/agents/tokens", body)
        return AgentToken.from_json(_object(answer, "agent token"))

    async def list(self) -> list[Agent]:
        body = await self._t.request("GET", "/api/agents")
        return [Agent.from_json(a) for a in _items(body, "agents")]

    async def get(self, agent_id: str) -> Agent:
        body = await self._t.request("GET", f"/api/agents/{_id(agent_id)}")
        return Agent.from_json(_object(body, "agent"))

    async def delete(self, agent_id: str) -> None:
        await self._t.request("DELETE", f"/api/agents/{_id(agent_id)}")


class Sessions(_Api):
    """Terminal sessions, their recordings and share links."""

    async def list(self) -> list[Session]:
        body = await self._t.request("GET", "/api/sessions")
        return [Session.from_json(s) for s in _items(body, "sessions")]

    async def get(self, session_id: str) -> Session:
        body = await self._t.request("GET", f"/api/sessions/{_id(session_id)}")
        return Session.from_json(_object(body, "session"))

    async def download_recording(
        self,
        session_id: str,
        write: Callable[[bytes], None],
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Stream the asciicast v2 recording into `write`; the number of bytes."""
        return await self._t.download(f"/api/sessions/{_id(session_id)}/recording", write, progress)

    async def recording(self, session_id: str) -> bytes:
        chunks: list[bytes] = []
        await self.download_recording(session_id, chunks.append)
        return b"".join(chunks)

    async def share(
        self,
        session_id: str,
        role: Role = "viewer",
        *,
        passcode: str | None = None,
        expires_in: int | None = None,
    ) -> Share:
        body = _drop_none(role=role, passcode=passcode, expires_in=expires_in)
        answer = await self._t.request("POST", f"/api/sessions/{_id(session_id)}/share", body)
        return Share.from_json(_object(answer, "share"))

    async def end(self, session_id: str) -> None:
        await self._t.request("DELETE", f"/api/sessions/{_id(session_id)}")


class ApiTokens(_Api):
    """API tokens (`rx_...`) for scripts and AI clients."""

    async def create(
        self,
        name: str,
        *,
        scopes: Sequence[str] | None = None,
        expires_in: int | None = None,
        kind: str | None = None,
    ) -> ApiToken:
        """`kind`: "agent" (the hub's default: always under the target's policy) or
        "person" (docs/security.md)."""
        body = _drop_none(
            name=name, scopes=scopes and list(scopes), expires_in=expires_in, kind=kind
        )
        answer = await self._t.request("POST", "/api/user/tokens", body)
        return ApiToken.from_json(_object(answer, "token"))

    async def list(self) -> list[ApiToken]:
        body = await self._t.request("GET", "/api/user/tokens")
        return [ApiToken.from_json(t) for t in _items(body, "tokens")]

    async def get(self, token_id: str) -> ApiToken:
        body = await self._t.request("GET", f"/api/user/tokens/{_id(token_id)}")
        return ApiToken.from_json(_object(body, "token"))

    async def revoke(self, token_id: str) -> None:
        await self._t.request("DELETE", f"/api/user/tokens/{_id(token_id)}")


class SshKeys(_Api):
    """Public keys for the SSH gateway."""

    async def add(self, name: str, public_key: str, *, kind: str | None = None) -> SshKey:
        """`kind`: "agent" (the hub's default) or "person", as for tokens."""
        body = _drop_none(name=name, public_key=public_key, kind=kind)
        return SshKey.from_json(
            _object(await self._t.request("POST", "/api/user/keys", body), "key")
        )

    async def list(self) -> list[SshKey]:
        body = await self._t.request("GET", "/api/user/keys")
        return [SshKey.from_json(k) for k in _items(body, "keys")]

    async def get(self, key_id: str) -> SshKey:
        body = await self._t.request("GET", f"/api/user/keys/{_id(key_id)}")
        return SshKey.from_json(_object(body, "key"))

    async def remove(self, key_id: str) -> None:
        await self._t.request("DELETE", f"/api/user/keys/{_id(key_id)}")


class Approvals(_Api):
    """Supervised AI commands waiting for a person."""

    async def list(self, status: str | None = "pending") -> list[Approval]:
        params = {"status": status} if status else None
        body = await self._t.request("GET", "/api/approvals", params=params)
        return [Approval.from_json(a) for a in _items(body, "approvals")]

    async def get(self, approval_id: str, *, wait: float | None = None) -> Approval:
        """With `wait`, the hub holds the answer up to that many seconds for a decision."""
        params = {"wait": str(int(wait))} if wait else None
        body = await self._t.request(
            "GET",
            f"/api/approvals/{_id(approval_id)}",
            params=params,
            limit=(wait or 0) + DEFAULT_TIMEOUT,
        )
        return Approval.from_json(_object(body, "approval"))

    async def wait(
        self, approval_id: str, *, at_most: float | None = None, poll: float = 30
    ) -> Approval:
        """Long-poll until the approval is decided (and, when approved, has its result),
        or `at_most` seconds have passed."""
        deadline = None if at_most is None else time.monotonic() + at_most
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            approval = await self.get(approval_id, wait=max(1.0, left))
            done = approval.status in ("rejected", "expired") or approval.result is not None
            if done or (deadline is not None and time.monotonic() >= deadline):
                return approval

    async def approve(self, approval_id: str, *, cmd: Command | None = None) -> Approval:
        body = _drop_none(cmd=cmd if cmd is None or isinstance(cmd, str) else list(cmd))
        answer = await self._t.request("POST", f"/api/approvals/{_id(approval_id)}/approve", body)
        return Approval.from_json(_object(answer, "approval"))

    async def reject(self, approval_id: str, *, reason: str | None = None) -> Approval:
        body = _drop_none(reason=reason)
        answer = await self._t.request("POST", f"/api/approvals/{_id(approval_id)}/reject", body)
        return Approval.from_json(_object(answer, "approval"))


class Billing(_Api):
    async def plans(self) -> list[Plan]:
        body = await self._t.request("GET", "/api/billing/plans")
        return [Plan.from_json(p) for p in _items(body, "plans")]

    async def subscribe(self, plan: str) -> Subscription:
        answer = await self._t.request("POST", "/api/billing/subscribe", {"plan": plan})
        return Subscription.from_json(_object(answer, "subscription"))

    async def usage(self) -> Usage:
        return Usage.from_json(_object(await self._t.request("GET", "/api/billing/usage"), "usage"))


class AsyncClient:
    """A client of one hub. Give it `token` (an API token or an access token), or
    `credentials`/`store` from an earlier sign-in, or call `login`."""

    def __init__(
        self,
        hub: str,
        *,
        token: str | None = None,
        credentials: Credentials | None = None,
        store: CredentialStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if store is None:
            if token is not None:
                credentials = Credentials(access_token=token)
            store = MemoryStore(credentials)
        self.transport = Transport(hub, store=store, timeout=timeout, clock=clock)
        self._clock = clock
        self.containers = Containers(self.transport)
        self.agents = Agents(self.transport)
        self.sessions = Sessions(self.transport)
        self.tokens = ApiTokens(self.transport)
        self.keys = SshKeys(self.transport)
        self.approvals = Approvals(self.transport)
        self.billing = Billing(self.transport)

    @property
    def hub(self) -> str:
        return self.transport.hub

    @property
    def credentials(self) -> Credentials | None:
        return self.transport.credentials

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    # -- accounts ----------------------------------------------------------------

    async def register(self, email: str, password: str, name: str | None = None) -> User:
        body = _drop_none(email=email, password=password, name=name)
        answer = _object(
            await self.transport.request("POST", "/api/register", body, auth=False), "register"
        )
        return User.from_json(_object(answer.get("user"), "user"))

    async def login(self, email: str, password: str, passcode: str | None = None) -> User:
        """Sign in; raises `PasscodeRequired` when the account needs its passcode."""
        body = _drop_none(email=email, password=password, passcode=passcode)
        answer = _object(
            await self.transport.request("POST", "/api/login", body, auth=False), "login"
        )
        self.transport.set_credentials(Credentials.from_login(answer, self._clock(), email=email))
        return User.from_json(_object(answer.get("user"), "user"))

    def use_token(self, token: str) -> None:
        """Authenticate with a bearer token from now on (an API token, `rx_...`)."""
        self.transport.set_credentials(Credentials(access_token=token))

    async def logout(self, *, everywhere: bool = False, revoke_tokens: bool = False) -> None:
        """Revoke this sign-in's refresh family and forget the credentials.
        `everywhere`: every sign-in of the account; `revoke_tokens` with it: its API
        tokens too (their live sockets close)."""
        creds = self.transport.credentials
        if creds is None:
            raise NotSignedIn(f"Not signed in to {self.hub}.")
        body: dict[str, Any] = {}
        if everywhere:
            body = {"everywhere": True, "revoke_tokens": revoke_tokens}
        try:
            if creds.refresh_token:
                body["refresh_token"] = creds.refresh_token
                await self.transport.request("POST", "/api/logout", body, auth=False)
            elif everywhere:  # an access or API token alone: it names the account
                await self.transport.request("POST", "/api/logout", body)
        finally:
            self.transport.set_credentials(None)

    async def user(self) -> User:
        return User.from_json(_object(await self.transport.request("GET", "/api/user"), "user"))

    async def passcode_setup(self) -> PasscodeSetup:
        answer = await self.transport.request("POST", "/api/user/passcode", {})
        return PasscodeSetup.from_json(_object(answer, "passcode"))

    async def passcode_confirm(self, code: str) -> list[str]:
        """Enable the passcode with a current code; the recovery codes (shown once)."""
        answer = _object(
            await self.transport.request("POST", "/api/user/passcode", {"code": code}), "passcode"
        )
        codes = answer.get("recovery_codes")
        return [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else []

    async def passcode_disable(self, code: str) -> None:
        """Turn the passcode off with a current code or a recovery code."""
        await self.transport.request("DELETE", "/api/user/passcode", {"code": code})

    # -- terminals ---------------------------------------------------------------

    async def resolve_target(self, target: str) -> str:
        """A container or agent id for an id or a name (ids pass through unchanged)."""
        if target.startswith(("ctr_", "agt_")):
            return target
        containers = await self.containers.list()
        agents = await self.agents.list()
        found = [c.id for c in containers if c.name == target]
        found += [a.id for a in agents if a.name == target]
        if not found:
            raise NotFound(f"No container or agent is named {target!r}.", code="target_not_found")
        if len(found) > 1:
            raise Conflict(
                f"{target!r} names several targets ({', '.join(found)}); use an id.",
                code="ambiguous_target",
            )
        return found[0]

    async def attach(
        self,
        target: str,
        *,
        on_event: Callable[[Event], None] | None = None,
        **where: Unpack[Where],
    ) -> Terminal:
        """Open a terminal session on a container or agent (or join one): `where` is
        `cols`, `rows`, `command`, `session`, `share`, `passcode` (API.md's query)."""
        return await open_terminal(self.transport, target, on_event, **where)

    async def run(
        self, target: str, command: str, *, cols: int = 80, rows: int = 24
    ) -> tuple[bytes, int | None]:
        """Run one command in a fresh terminal; its output and exit code."""
        out: list[bytes] = []
        async with await self.attach(target, cols=cols, rows=rows, command=command) as term:
            async for chunk in term:
                out.append(chunk)
        return b"".join(out), term.exit_code

    # -- operations --------------------------------------------------------------

    async def healthy(self) -> bool:
        """`GET /healthz` answered 2xx."""
        try:
            await self.transport.request("GET", "/healthz", auth=False)
        except RexecError:
            return False
        return True

    async def ready(self) -> bool:
        try:
            await self.transport.request("GET", "/readyz", auth=False)
        except RexecError:
            return False
        return True
