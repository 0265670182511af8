"""People in the loop from the client: the SDK's supervised exec and approvals, `rexec
approvals` as a real process, and the approvals queue in `rex` (Textual's Pilot)."""

from __future__ import annotations

import asyncio

from client.models import Approval, ExecResult
from client.sdk import AsyncClient
from client.tui import ConfirmScreen, RexApp, TextScreen
from tests.client.conftest import EMAIL, PASSWORD, Cli
from tests.client.test_tui import keys, until
from tests.support import Api, Hub


async def ai_client(chub: Hub, alice: Api) -> AsyncClient:
    token = (await alice.ok("POST", "/api/user/tokens", {"name": "ai"}, 201))["token"]
    return AsyncClient(chub.url, token=token)


async def test_sdk_supervised_exec_waits_for_the_cli_decision(
    chub: Hub, alice: Api, container: str, signed_in: Cli
) -> None:
    async with await ai_client(chub, alice) as ai:
        quick = await ai.containers.exec(container, "echo fine", supervised=True)
        assert isinstance(quick, ExecResult) and quick.stdout == "fine\n"
        held = await ai.containers.exec(container, "rm -rf /tmp/a && echo gone", supervised=True)
        assert isinstance(held, Approval) and held.status == "pending"

        listed = await signed_in.ok("approvals", "ls")
        assert held.id in listed and "rm -rf /tmp/a" in listed and "pending" in listed
        assert (await signed_in.ok("approvals", "ls", "-q")).split() == [held.id]
        waiting = asyncio.create_task(ai.approvals.wait(held.id, at_most=60))
        out = await signed_in.ok("approvals", "approve", held.id)
        assert out.startswith(f"{held.id} ")
        done = await asyncio.wait_for(waiting, 60)
        assert done.status == "completed" and done.result is not None
        assert done.result.exit_code == 0 and done.result.stdout == "gone\n"

        again = await ai.containers.exec(container, "rm -rf /tmp/b", supervised=True)
        assert isinstance(again, Approval)
        assert (await signed_in.ok("approvals", "reject", again.id, "--reason", "no")).split() == [
            again.id
        ]
        rejected = await ai.approvals.get(again.id)
        assert rejected.status == "rejected" and rejected.reason == "no"
        assert (await signed_in("approvals", "reject", again.id)).code == 1  # already decided

        # The kill switch, by name.
        assert (await signed_in.ok("approvals", "pause", "sandbox")).split() == ["sandbox"]
        policy = await signed_in.ok("approvals", "policy", container)
        assert "approve_risky" in policy and "AI paused" in policy
        refused = await signed_in("approvals", "policy", container, "--allow", "x")
        assert refused.code == 2
        await signed_in.ok("approvals", "resume", container)
        await signed_in.ok("approvals", "policy", container, "--mode", "approve_all")
        assert (await ai.containers.get_policy(container)).mode == "approve_all"
        assert (await ai.containers.get_policy(container)).paused is False


async def test_rex_approvals_queue_approve_edit_and_reject(
    chub: Hub, alice: Api, container: str
) -> None:
    person = AsyncClient(chub.url)
    await person.login(EMAIL, PASSWORD)
    async with await ai_client(chub, alice) as ai:
        first = await ai.containers.exec(container, "rm -rf /tmp/one", supervised=True)
        second = await ai.containers.exec(container, "rm -rf /tmp/two", supervised=True)
        third = await ai.containers.exec(container, "rm -rf /tmp/three", supervised=True)
        assert isinstance(first, Approval) and isinstance(second, Approval)
        assert isinstance(third, Approval)

        app = RexApp(person, interval=0.3)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(
                pilot,
                lambda: set(keys(app, "approvals")) == {first.id, second.id, third.id},
                "the queue listed",
            )
            await pilot.press("4")
            table = app.table("approvals")

            async def choose(approval_id: str) -> None:
                table.move_cursor(row=table.get_row_index(approval_id))
                await pilot.pause()
                assert app.selected("approvals") == approval_id

            await choose(first.id)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("y")
            done = await ai.approvals.wait(first.id, at_most=60)
            assert done.status == "completed" and done.result is not None

            await until(pilot, lambda: first.id not in keys(app, "approvals"), "it left")
            await choose(second.id)
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, TextScreen), "the editor")
            edit = app.screen.query_one("#text")
            edit.value = "echo edited"  # type: ignore[attr-defined]
            await pilot.press("enter")
            edited = await ai.approvals.wait(second.id, at_most=60)
            assert edited.cmd == "echo edited" and edited.original_cmd == "rm -rf /tmp/two"
            assert edited.result is not None and edited.result.stdout == "edited\n"

            await until(pilot, lambda: second.id not in keys(app, "approvals"), "it left")
            await choose(third.id)
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, TextScreen), "the reason")
            await pilot.press(*"nope", "enter")
            rejected = await ai.approvals.wait(third.id, at_most=30)
            assert rejected.status == "rejected" and rejected.reason == "nope"
            await until(pilot, lambda: keys(app, "approvals") == [], "the queue empty")
