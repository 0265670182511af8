"""A hostile agent for tests: a registered agent's real key and proof, then raw frames.

It speaks WebSocket over a plain socket (RFC 6455 framing is a few lines) so that a test
controls exactly what is sent and what is never read: a small receive buffer and no
reads let the hub's queue towards it fill, as a misbehaving agent's would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from typing import Any

from common.agentauth import generate_key, make_proof, public_openssh
from common.protocol import PROTOCOL_VERSIONS, Hello, Link, Message, Welcome, encode
from tests.support import Api


async def register(api: Api) -> tuple[str, Any]:
    """A new agent of the API's user; its id and private key."""
    token = (await api.ok("POST", "/api/agents/tokens", {"name": "raw"}, 201))["token"]
    key = generate_key()
    body = {"token": token, "name": "raw", "public_key": public_openssh(key)}
    agent = await api.ok("POST", "/api/agents/register", body, 201)
    return agent["id"], key


class RawAgent:
    """One WebSocket link to `/api/agents/{id}/ws`, frame by frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.link = Link("agent")
        self._buffer = b""
        self.close_code: int | None = None

    @classmethod
    async def connect(
        cls, port: int, agent_id: str, proof: str, *, rcvbuf: int | None = None
    ) -> tuple[int, RawAgent]:
        """The HTTP status of the upgrade and the link (usable when it is 101)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        if rcvbuf is not None:  # before connect, so the window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        agent = cls(sock)
        request = (
            f"GET /api/agents/{agent_id}/ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {proof}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        while b"\r\n\r\n" not in agent._buffer:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                break
            agent._buffer += chunk
        head, _, agent._buffer = agent._buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, agent

    @staticmethod
    def frame(payload: bytes, opcode: int = 0x2) -> bytes:
        """One masked client frame (a zero mask key: the payload goes as it is)."""
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        return head + b"\0\0\0\0" + payload

    async def send_raw(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def send(self, *messages: Message) -> None:
        """Frames encoded without the agent's Link checks (a hostile agent skips them)."""
        await self.send_raw(b"".join(self.frame(encode(m)) for m in messages))

    async def hello(self, channels: dict[int, int] | None = None) -> None:
        msg = Hello(PROTOCOL_VERSIONS, "raw-test", {}, channels or {})
        await self.send_raw(self.frame(self.link.send(msg)))

    async def _read(self, n: int) -> bytes:
        loop = asyncio.get_running_loop()
        while len(self._buffer) < n:
            chunk = await loop.sock_recv(self.sock, 1 << 20)
            if not chunk:
                raise ConnectionError("the hub closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    async def receive(self) -> tuple[int, bytes]:
        """The next frame from the hub: (opcode, payload). Answers WebSocket pings."""
        while True:
            b0, b1 = await self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self._read(8))
            payload = await self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping
                await self.send_raw(self.frame(payload, 0xA))
                continue
            if opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                with contextlib.suppress(OSError):  # the closing handshake, as a client does
                    await self.send_raw(self.frame(payload[:2], 0x8))
            return opcode, payload

    async def welcome(self) -> Welcome:
        opcode, payload = await self.receive()
        assert opcode == 0x2, (opcode, payload)
        msg = self.link.receive(payload)
        assert isinstance(msg, Welcome), msg
        return msg

    async def close_code_of_link(self, limit: int = 1_000_000) -> int:
        """Read (and drop) whatever the hub sent until its close frame; its code."""
        for _ in range(limit):
            opcode, _payload = await self.receive()
            if opcode == 0x8:
                assert self.close_code is not None
                return self.close_code
        raise AssertionError("no close frame")

    def close(self) -> None:
        self.sock.close()


def proof(agent_id: str, key: Any) -> str:
    return make_proof(agent_id, key)
