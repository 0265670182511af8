"""`rexec tokens` and `rexec keys`: credentials made with a kind (docs/security.md), and the
SDK's `kind=`, against a real hub."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from client.sdk import AsyncClient
from tests.client.conftest import Cli
from tests.support import Api, Hub


async def test_tokens_and_keys_with_a_kind(
    signed_in: Cli, chub: Hub, alice: Api, tmp_path: Path
) -> None:
    cli = signed_in
    made = json.loads(await cli.ok("tokens", "create", "me", "--kind", "person", "--json"))
    assert made["kind"] == "person" and made["token"].startswith("rx_")
    bare = (await cli.ok("tokens", "create", "bot")).strip()
    assert bare.startswith("rx_")  # just the token, for scripts
    listed = json.loads(await cli.ok("tokens", "ls", "--json"))["tokens"]
    assert sorted((t["name"], t["kind"]) for t in listed) == [("bot", "agent"), ("me", "person")]
    assert f"{made['id']}  person" in await cli.ok("tokens", "ls")
    assert made["id"] in await cli.ok("tokens", "revoke", made["id"])

    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    out = await cli.ok("keys", "add", "laptop", str(key.with_suffix(".pub")), "--kind", "person")
    key_id, kind, fingerprint = out.split()
    assert key_id.startswith("key_") and kind == "person" and fingerprint.startswith("SHA256:")
    assert f"{key_id}  person" in await cli.ok("keys", "ls")

    async with AsyncClient(chub.url, token=alice.token) as sdk:
        token = await sdk.tokens.create("sdk", kind="person")
        assert token.kind == "person"
        assert (await sdk.tokens.create("sdk-ai")).kind == "agent"
        assert {k.kind for k in await sdk.keys.list()} == {"person"}
