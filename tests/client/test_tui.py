"""`rex` driven by Textual's Pilot against a real hub: the lists show live objects,
and create and delete reach the hub."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from client.sdk import AsyncClient
from client.tui import ConfirmScreen, CreateContainerScreen, RexApp
from tests.client.conftest import EMAIL, PASSWORD, Agent
from tests.support import Api, Hub, wait_for


def keys(app: RexApp, name: str) -> list[str]:
    table: DataTable[Any] = app.table(name)
    return [str(k.value) for k in table.rows]


def cells(app: RexApp, name: str, key: str) -> list[str]:
    return [str(c) for c in app.table(name).get_row(key)]


async def until(pilot: Pilot[None], condition: Any, what: str, timeout: float = 20) -> Any:
    async def check() -> Any:
        await pilot.pause()
        value = condition()
        return await value if asyncio.iscoroutine(value) else value

    return await wait_for(check, timeout, what=what)


async def test_rex_lists_creates_and_deletes(
    chub: Hub, alice: Api, container: str, agent: Agent
) -> None:
    client = AsyncClient(chub.url)
    await client.login(EMAIL, PASSWORD)
    async with await client.attach(container) as term:  # a session for the third list
        await term.send(b"exit 0\n")
        await asyncio.wait_for(term.wait(), 15)
    session_id = term.session_id

    app = RexApp(client, interval=0.3)
    async with app.run_test(size=(150, 40)) as pilot:
        await until(pilot, lambda: container in keys(app, "containers"), "the container listed")
        assert cells(app, "containers", container)[1:4] == ["sandbox", "rexec/busybox:1", "running"]
        await until(
            pilot,
            lambda: (
                agent.id in keys(app, "agents") and cells(app, "agents", agent.id)[4].endswith("%")
            ),
            "the agent listed with its metrics",
        )
        assert cells(app, "agents", agent.id)[3] == "online"
        await until(pilot, lambda: session_id in keys(app, "sessions"), "the session listed")
        assert cells(app, "sessions", session_id)[1] == container

        # Create: the dialog, a name, Enter; the hub has it and so does the list.
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CreateContainerScreen), "the dialog")
        await pilot.press("tab", *"tuibox", "enter")

        async def created() -> str | None:
            listed = (await alice.ok("GET", "/api/containers"))["containers"]
            return next((c["id"] for c in listed if c["name"] == "tuibox"), None)

        new_id = await until(pilot, created, "the container created on the hub")
        await until(pilot, lambda: new_id in keys(app, "containers"), "the new container listed")

        # Delete it: select its row, d, confirm with y.
        table = app.table("containers")
        table.focus()
        table.move_cursor(row=table.get_row_index(new_id))
        await pilot.pause()
        assert app.selected("containers") == new_id
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")

        async def deleted() -> bool:
            listed = (await alice.ok("GET", "/api/containers"))["containers"]
            return all(c["id"] != new_id for c in listed)

        await until(pilot, deleted, "the container deleted on the hub")
        await until(pilot, lambda: new_id not in keys(app, "containers"), "it gone from the list")
        assert container in keys(app, "containers")

        # Declining a delete changes nothing.
        table.move_cursor(row=table.get_row_index(container))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert [c["id"] for c in (await alice.ok("GET", "/api/containers"))["containers"]] == [
            container
        ]

        # An agent goes away from the hub: the live list follows.
        await alice.ok("DELETE", f"/api/agents/{agent.id}", status=204)
        await until(pilot, lambda: agent.id not in keys(app, "agents"), "the agent gone")
