"""A real hub with its SSH gateway, a real agent process, the owner signed in, and her
credentials of both kinds: API tokens and SSH keys, a person's and an agent's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningAgent
from tests.ssh.conftest import Key, SshHub, agent, hub, make_key, owner
from tests.support import Api

__all__ = ["agent", "hub", "owner"]


@dataclass
class Credentials:
    """The owner's ways in: `person` is her sign-in (a JWT)."""

    person: Api
    person_token: Api
    agent_token: Api
    person_key: Key
    agent_key: Key


async def token(person: Api, kind: str | None, scopes: list[str] | None = None) -> Api:
    body: dict[str, object] = {"name": f"{kind or 'default'} token"}
    if kind is not None:
        body["kind"] = kind
    if scopes is not None:
        body["scopes"] = scopes
    made = await person.ok("POST", "/api/user/tokens", body, 201)
    assert made["kind"] == (kind or "agent"), made
    return Api(person.http, person.base, made["token"])


@pytest.fixture
async def creds(owner: Api, tmp_path: Path) -> Credentials:
    person_key, agent_key = make_key(tmp_path / "k" / "person"), make_key(tmp_path / "k" / "ai")
    await owner.ok(
        "POST",
        "/api/user/keys",
        {"name": "laptop", "public_key": person_key.public, "kind": "person"},
        201,
    )
    made = await owner.ok(
        "POST", "/api/user/keys", {"name": "ai", "public_key": agent_key.public}, 201
    )
    assert made["kind"] == "agent"  # the default
    return Credentials(
        owner, await token(owner, "person"), await token(owner, None), person_key, agent_key
    )


__all__ += ["Credentials", "RunningAgent", "SshHub", "creds", "token"]
