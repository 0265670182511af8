"""`rex`: a terminal UI over the SDK (Textual).

Four live lists (containers, agents with their metrics, sessions, and the queue of AI
commands waiting for approval) refreshed every few seconds by one exclusive worker,
so a slow hub never freezes the screen; create, delete, approve, reject, connect and
play run in workers or, for connect and play, with the UI suspended while this
terminal is attached to the session, then back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    Static,
    TabbedContent,
    TabPane,
)

from client.attach import attach_target, write_all
from client.config import ClientSettings, CredentialsFile, resolve_hub
from client.errors import NotFound, NotSignedIn, RexecError
from client.models import Agent, Approval, Container, Session
from client.output import agent_metrics, ago, one_line_cmd, session_duration, size
from client.player import parse_cast, play
from client.sdk import AsyncClient

REFRESH_SECONDS = 2.0
TABLES = ("containers", "agents", "sessions", "approvals")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    image: str | None
    name: str | None


class CreateContainerScreen(ModalScreen[CreateRequest | None]):
    """Image and name for a new container."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    CreateContainerScreen { align: center middle; }
    CreateContainerScreen > Vertical {
        width: 60; height: auto; border: thick $primary; padding: 1 2; background: $surface;
    }
    CreateContainerScreen Horizontal { height: auto; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New container")
            yield Input(placeholder="image (default: the hub's)", id="image")
            yield Input(placeholder="name (optional)", id="name")
            with Horizontal():
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        image = self.query_one("#image", Input).value.strip() or None
        name = self.query_one("#name", Input).value.strip() or None
        self.dismiss(CreateRequest(image, name))

    @on(Input.Submitted)
    def submitted(self) -> None:
        self._submit()

    @on(Button.Pressed, "#create")
    def create(self) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; height: auto; border: thick $warning; padding: 1 2; background: $surface;
    }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextScreen(ModalScreen[str | None]):
    """One line of text (a reason, an edited command); Enter submits, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > Vertical {
        width: 80; height: auto; border: thick $primary; padding: 1 2; background: $surface;
    }
    """

    def __init__(self, prompt: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.prompt = prompt
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.prompt)
            yield Input(value=self.value, placeholder=self.placeholder, id="text")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def container_row(c: Container) -> tuple[str, ...]:
    return (c.id, c.name or "-", c.image, c.status, ago(c.created_at), ago(c.expires_at))


def agent_row(a: Agent) -> tuple[str, ...]:
    return (
        a.id,
        a.name or "-",
        a.hostname or "-",
        a.status,
        *agent_metrics(a.metrics),
        ago(a.last_seen),
    )


def session_row(s: Session) -> tuple[str, ...]:
    recording = size(s.recording.bytes) if s.recording.available else "-"
    return (s.id, s.target, s.status, ago(s.started_at), session_duration(s), recording)


def approval_row(a: Approval) -> tuple[str, ...]:
    return (a.id, a.target, ago(a.created_at), one_line_cmd(a.command), a.reason or "-")


COLUMNS = {
    "containers": ("ID", "NAME", "IMAGE", "STATUS", "CREATED", "EXPIRES"),
    "agents": ("ID", "NAME", "HOST", "STATUS", "CPU", "MEM", "DISK", "LOAD", "SEEN"),
    "sessions": ("ID", "TARGET", "STATUS", "STARTED", "DURATION", "RECORDING"),
    "approvals": ("ID", "TARGET", "ASKED", "COMMAND", "WHY HELD"),
}


class RexApp(App[None]):
    """The `rex` application; give it a client of the hub."""

    TITLE = "rex"
    CSS = """
    #status { height: 1; padding: 0 1; color: $text-muted; }
    TabbedContent { height: 1fr; }
    DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('containers')", "Containers", show=False),
        Binding("2", "show('agents')", "Agents", show=False),
        Binding("3", "show('sessions')", "Sessions", show=False),
        Binding("4", "show('approvals')", "Approvals", show=False),
        Binding("a", "approve", "Approve"),
        Binding("e", "approve_edited", "Edit & approve", show=False),
        Binding("x", "reject", "Reject"),
        Binding("c", "create", "Create container"),
        Binding("d", "delete", "Delete / end"),
        Binding("t", "connect", "Connect"),
        Binding("p", "play", "Play recording"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: AsyncClient, *, interval: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.client = client
        self.interval = interval
        self.containers: list[Container] = []
        self.agents: list[Agent] = []
        self.sessions: list[Session] = []
        self.approvals: list[Approval] = []
        self.sessions_error: str | None = None
        self.refreshes = 0  # completed refreshes, for whoever waits on fresh data

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="containers-tab"):
            with TabPane("Containers", id="containers-tab"):
                yield DataTable(id="containers", cursor_type="row", zebra_stripes=True)
            with TabPane("Agents", id="agents-tab"):
                yield DataTable(id="agents", cursor_type="row", zebra_stripes=True)
            with TabPane("Sessions", id="sessions-tab"):
                yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
            with TabPane("Approvals", id="approvals-tab"):
                yield DataTable(id="approvals", cursor_type="row", zebra_stripes=True)
        yield Static(f"hub {self.client.hub}", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.client.hub
        for name in TABLES:
            self.table(name).add_columns(*COLUMNS[name])
        self.refresh_lists()
        self.set_interval(self.interval, self._tick)

    async def on_unmount(self) -> None:
        await self.client.close()

    def table(self, name: str) -> DataTable[str]:
        return self.query_one(f"#{name}", DataTable)

    def status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- lists -------------------------------------------------------------------

    def action_show(self, name: str) -> None:
        self.query_one(TabbedContent).active = f"{name}-tab"
        self.table(name).focus()

    def action_refresh(self) -> None:
        self.refresh_lists()

    def _tick(self) -> None:
        # A hub slower than the interval must not have each refresh cancel the last.
        if not any(w.group == "refresh" and w.is_running for w in self.workers):
            self.refresh_lists()

    @work(exclusive=True, group="refresh")
    async def refresh_lists(self) -> None:
        containers, agents, sessions, approvals = await asyncio.gather(
            self.client.containers.list(),
            self.client.agents.list(),
            self.client.sessions.list(),
            self.client.approvals.list("pending"),
            return_exceptions=True,
        )
        problems: list[str] = []
        if isinstance(containers, BaseException):
            problems.append(_describe(containers))
        else:
            self.containers = containers
            self._fill("containers", [(c.id, container_row(c)) for c in containers])
        if isinstance(agents, BaseException):
            problems.append(_describe(agents))
        else:
            self.agents = agents
            self._fill("agents", [(a.id, agent_row(a)) for a in agents])
        if isinstance(sessions, NotFound):
            self.sessions_error = "this hub does not list sessions"
        elif isinstance(sessions, BaseException):
            problems.append(_describe(sessions))
        else:
            self.sessions_error = None
            self.sessions = sessions
            self._fill("sessions", [(s.id, session_row(s)) for s in sessions])
        if isinstance(approvals, BaseException):
            if not isinstance(approvals, NotFound):  # a hub without supervision
                problems.append(_describe(approvals))
        else:
            self.approvals = approvals
            self._fill("approvals", [(a.id, approval_row(a)) for a in approvals])
            tab = self.query_one(TabbedContent).get_tab("approvals-tab")
            tab.label = f"Approvals ({len(approvals)})" if approvals else "Approvals"
        counts = f"{len(self.containers)} containers, {len(self.agents)} agents"
        counts += f", {len(self.sessions)} sessions" if self.sessions_error is None else ""
        counts += f", {len(self.approvals)} waiting for approval" if self.approvals else ""
        self.status(f"hub {self.client.hub} - " + ("; ".join(problems) or counts))
        self.refreshes += 1

    def _fill(self, name: str, rows: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """Replace a table's rows, keeping the cursor on the same object when it stays."""
        table = self.table(name)
        keep = self.selected(name)
        table.clear()
        for key, row in rows:
            table.add_row(*row, key=key)
        if keep is not None and keep in {key for key, _ in rows}:
            table.move_cursor(row=table.get_row_index(keep))

    def selected(self, name: str) -> str | None:
        table = self.table(name)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(row_key.value) if row_key.value is not None else None

    def active(self) -> str:
        tab = self.query_one(TabbedContent).active
        return tab.removesuffix("-tab") or "containers"

    # -- create and delete ---------------------------------------------------------

    def action_create(self) -> None:
        self.push_screen(CreateContainerScreen(), self._create_chosen)

    def _create_chosen(self, request: CreateRequest | None) -> None:
        if request is not None:
            self.create_container(request)

    @work(group="changes")
    async def create_container(self, request: CreateRequest) -> None:
        self.status(f"creating a container ({request.image or 'default image'})...")
        try:
            container = await self.client.containers.create(image=request.image, name=request.name)
        except RexecError as err:
            self.notify(_describe(err), title="Create failed", severity="error")
            return
        self.notify(f"{container.id} is {container.status}", title="Container created")
        self.refresh_lists()

    def action_delete(self) -> None:
        kind = self.active()
        if kind == "approvals":
            self.action_reject()
            return
        target = self.selected(kind)
        if target is None:
            return
        verb = "End session" if kind == "sessions" else "Delete"

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.delete_object(kind, target)

        self.push_screen(ConfirmScreen(f"{verb} {target}?"), confirmed)

    @work(group="changes")
    async def delete_object(self, kind: str, target: str) -> None:
        try:
            if kind == "containers":
                await self.client.containers.delete(target)
            elif kind == "agents":
                await self.client.agents.delete(target)
            else:
                await self.client.sessions.end(target)
        except RexecError as err:
            self.notify(_describe(err), title="Delete failed", severity="error")
            return
        self.notify(f"{target} removed" if kind != "sessions" else f"{target} ended")
        self.refresh_lists()

    # -- approvals ---------------------------------------------------------------

    def _chosen_approval(self) -> Approval | None:
        if self.active() != "approvals":
            self.notify("Choose a command on the Approvals tab (4).", severity="warning")
            return None
        chosen = self.selected("approvals")
        return next((a for a in self.approvals if a.id == chosen), None)

    def action_approve(self) -> None:
        approval = self._chosen_approval()
        if approval is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.decide(approval.id, approve=True)

        self.push_screen(ConfirmScreen(f"Run on {approval.target}?\n{approval.command}"), confirmed)

    def action_approve_edited(self) -> None:
        approval = self._chosen_approval()
        if approval is None:
            return

        def edited(command: str | None) -> None:
            if command and command.strip():
                self.decide(approval.id, approve=True, cmd=command)

        self.push_screen(TextScreen("Run this instead:", approval.command), edited)

    def action_reject(self) -> None:
        approval = self._chosen_approval()
        if approval is None:
            return

        def reasoned(reason: str | None) -> None:
            if reason is not None:
                self.decide(approval.id, approve=False, reason=reason.strip() or None)

        self.push_screen(
            TextScreen(f"Reject: {approval.command}", placeholder="reason (optional)"), reasoned
        )

    @work(group="changes")
    async def decide(
        self, approval_id: str, *, approve: bool, cmd: str | None = None, reason: str | None = None
    ) -> None:
        try:
            if approve:
                done = await self.client.approvals.approve(approval_id, cmd=cmd)
            else:
                done = await self.client.approvals.reject(approval_id, reason=reason)
        except RexecError as err:
            self.notify(_describe(err), title="Decision failed", severity="error")
            return
        self.notify(f"{done.id} {done.status}", title="Approvals")
        self.refresh_lists()

    # -- connect and play ----------------------------------------------------------

    async def action_connect(self) -> None:
        kind = self.active()
        selected = self.selected(kind)
        if selected is None:
            return
        target, session = selected, None
        if kind == "approvals":  # watch it run: join its session (or open one on its target)
            held = next((a for a in self.approvals if a.id == selected), None)
            if held is None:
                return
            target, session = held.target, held.session
        if kind == "sessions":
            chosen = next((s for s in self.sessions if s.id == selected), None)
            if chosen is None or not chosen.live:
                self.notify("Only a live session can be joined.", severity="warning")
                return
            target, session = chosen.target, chosen.id
        message = ""
        try:
            with self.suspend():
                try:
                    session_id, outcome = await attach_target(self.client, target, session=session)
                except RexecError as err:
                    message = _describe(err)
                else:
                    message = (
                        f"detached from {session_id}"
                        if outcome.detached
                        else f"{session_id} exited with {outcome.exit_code}"
                    )
        except SuspendNotSupported:
            message = "connect needs a real terminal"
        self.notify(message, title=target)
        self.refresh_lists()

    async def action_play(self) -> None:
        if self.active() != "sessions":
            self.notify("Choose a session on the Sessions tab to play.", severity="warning")
            return
        session_id = self.selected("sessions")
        if session_id is None:
            return
        try:
            recording = parse_cast(await self.client.sessions.recording(session_id))
        except RexecError as err:
            self.notify(_describe(err), title="Play failed", severity="error")
            return
        try:
            with self.suspend():
                await play(recording, lambda data: write_all(sys.stdout.fileno(), data))
                write_all(sys.stdout.fileno(), b"\r\n[end of recording: press Enter]")
                await asyncio.to_thread(sys.stdin.readline)
        except SuspendNotSupported:
            self.notify("play needs a real terminal", severity="warning")


def _describe(err: BaseException) -> str:
    if isinstance(err, RexecError):
        return " ".join(err.message.split()) + (f" ({err.code})" if err.code else "")
    return f"{type(err).__name__}: {err}"


def main(argv: Sequence[str] | None = None) -> None:
    """The `rex` entry point."""
    parser = argparse.ArgumentParser(prog="rex", description="Rexec in a terminal UI.")
    parser.add_argument("--hub", metavar="URL", help="the hub (default: as for rexec)")
    parser.add_argument(
        "--interval", type=float, default=REFRESH_SECONDS, help="seconds between refreshes"
    )
    args = parser.parse_args(argv)
    settings = ClientSettings()
    file = CredentialsFile(settings.config_dir)
    try:
        hub = resolve_hub(args.hub, settings, file)
    except ValueError as exc:
        parser.error(str(exc))
    client: AsyncClient
    if settings.token:
        client = AsyncClient(hub, token=settings.token)
    else:
        store = file.store(hub)
        if store.load() is None:
            err = NotSignedIn(f"Not signed in to {hub}: run `rexec login` first.")
            print(f"rex: {_describe(err)}", file=sys.stderr)
            sys.exit(3)
        client = AsyncClient(hub, store=store)
    RexApp(client, interval=args.interval).run()
