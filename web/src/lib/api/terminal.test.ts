import { describe, expect, it } from "vitest";
import {
  TerminalConnection,
  backoff,
  isFinalClose,
  parseServerMessage,
  terminalProtocols,
  terminalUrl,
  type ConnectionState,
  type WebSocketLike,
} from "./terminal";

describe("terminalUrl", () => {
  it("uses wss for https pages and puts no credential in the URL", () => {
    const url = new URL(terminalUrl("https://hub.example", "ctr_1", { cols: 100, rows: 30 }));
    expect(url.protocol).toBe("wss:");
    expect(url.pathname).toBe("/ws/terminal/ctr_1");
    expect(Object.fromEntries(url.searchParams)).toEqual({ cols: "100", rows: "30" });
  });

  it("names the share link, never its passcode", () => {
    const url = new URL(terminalUrl("http://h:8080", "agt_1", { share: "s1" }));
    expect(url.protocol).toBe("ws:");
    expect(Object.fromEntries(url.searchParams)).toEqual({ share: "s1" });
  });

  it("keeps offset 0", () => {
    const url = new URL(terminalUrl("http://h", "ctr_1", { session: "ses_1", offset: 0 }));
    expect(url.searchParams.get("offset")).toBe("0");
  });
});

describe("terminalProtocols", () => {
  it("offers the token to the owner and the passcode (base64url) through a share", () => {
    expect(terminalProtocols({ token: "a.b-c_d" })).toEqual(["rexec", "rexec.bearer.a.b-c_d"]);
    expect(terminalProtocols({ token: "at", share: "s1", passcode: "p w/ö?" })).toEqual([
      "rexec",
      "rexec.passcode.cCB3L8O2Pw",
    ]);
    expect(terminalProtocols({ share: "s1" })).toEqual(["rexec"]);
  });
});

describe("parseServerMessage", () => {
  it("reads every message the hub sends", () => {
    expect(parseServerMessage('{"type":"session","id":"ses_1","role":"owner","offset":5}')).toEqual({
      type: "session",
      id: "ses_1",
      role: "owner",
      offset: 5,
    });
    expect(parseServerMessage('{"type":"exit","code":3}')).toEqual({ type: "exit", code: 3 });
    expect(parseServerMessage('{"type":"skipped","bytes":10}')).toEqual({ type: "skipped", bytes: 10 });
    expect(parseServerMessage('{"type":"participants","participants":[]}')).toEqual({ type: "participants", participants: [] });
    expect(parseServerMessage('{"type":"error","code":"access_ended","message":"Signed out."}')).toMatchObject({ code: "access_ended" });
    const approval = parseServerMessage('{"type":"approval","approval":{"id":"apr_1","status":"pending","cmd":"ls"}}');
    expect(approval?.type === "approval" && approval.approval.cmd).toBe("ls");
  });

  it("ignores what it does not know or cannot read", () => {
    expect(parseServerMessage("not json")).toBeNull();
    expect(parseServerMessage("[1]")).toBeNull();
    expect(parseServerMessage('{"type":"future"}')).toBeNull();
    expect(parseServerMessage('{"type":"session","id":"ses_1"}')).toBeNull();
  });
});

describe("backoff", () => {
  it("grows from a quarter second to at most 8 s (plus jitter)", () => {
    expect(backoff(0, () => 0.5)).toBe(250);
    expect(backoff(3, () => 0.5)).toBe(2000);
    expect(backoff(50, () => 0.5)).toBe(8000);
    expect(backoff(50, () => 1)).toBeLessThanOrEqual(10000);
  });

  it("knows which closes are final", () => {
    expect([1000, 4401, 4403, 4404].every(isFinalClose)).toBe(true);
    expect([1001, 1006, 4008].some(isFinalClose)).toBe(false);
  });
});

/** A socket the test drives by hand: it plays the hub's side. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  binaryType = "blob";
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: unknown[] = [];
  constructor(
    readonly url: string,
    readonly protocols: string[] = [],
  ) {
    FakeSocket.all.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  text(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
  bytes(s: string) {
    this.onmessage?.({ data: new TextEncoder().encode(s).buffer });
  }
  send(data: string | ArrayBufferLike | ArrayBufferView) {
    this.sent.push(data);
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function setup(extra: Partial<ConstructorParameters<typeof TerminalConnection>[0]> = {}) {
  FakeSocket.all = [];
  const timers: (() => void)[] = [];
  const output: string[] = [];
  const states: ConnectionState[] = [];
  const decoder = new TextDecoder();
  const conn = new TerminalConnection({
    origin: "http://hub.test",
    target: "ctr_1",
    token: async () => "at",
    size: () => ({ cols: 80, rows: 24 }),
    onData: (b) => output.push(decoder.decode(b)),
    onState: (s) => states.push(s),
    WebSocket: FakeSocket,
    setTimeout: (fn) => timers.push(fn),
    clearTimeout: () => {},
    ...extra,
  });
  const tick = () => new Promise((r) => setTimeout(r, 0));
  return { conn, timers, output, states, tick };
}

describe("TerminalConnection", () => {
  it("resumes the same session from the last byte it showed", async () => {
    const { conn, timers, output, states, tick } = setup();
    conn.start();
    await tick();
    const first = FakeSocket.all[0]!;
    expect(new URL(first.url).searchParams.get("session")).toBeNull();
    first.open();
    first.text({ type: "session", id: "ses_9", role: "owner", offset: 100 });
    first.bytes("hello ");
    first.bytes("wörld");
    expect(conn.offset).toBe(100 + 6 + 6);
    first.close(1006, "");
    expect(states.at(-1)).toBe("reconnecting");
    expect(conn.send("x")).toBe(false);
    timers.shift()!();
    await tick();
    const second = FakeSocket.all[1]!;
    const q = new URL(second.url).searchParams;
    expect([q.get("session"), q.get("offset"), q.get("token")]).toEqual(["ses_9", "112", null]);
    expect(second.protocols).toEqual(["rexec", "rexec.bearer.at"]);
    second.open();
    second.text({ type: "session", id: "ses_9", role: "owner", offset: 112 });
    second.bytes("!");
    expect(states.at(-1)).toBe("open");
    expect(output.join("")).toBe("hello wörld!");
    expect(conn.send("ls\r")).toBe(true);
    expect(second.sent[0]).toEqual(new TextEncoder().encode("ls\r"));
  });

  it("ends after the program exits, without reconnecting", async () => {
    const { conn, timers, states, tick } = setup();
    conn.start();
    await tick();
    const ws = FakeSocket.all[0]!;
    ws.open();
    ws.text({ type: "session", id: "ses_1", role: "owner", offset: 0 });
    ws.text({ type: "exit", code: 3 });
    ws.close(1000, "session ended");
    expect(states.at(-1)).toBe("ended");
    expect(conn.exitCode).toBe(3);
    expect(timers).toHaveLength(0);
  });

  it("stops when access ended", async () => {
    const { conn, timers, states, tick } = setup();
    conn.start();
    await tick();
    const ws = FakeSocket.all[0]!;
    ws.open();
    ws.text({ type: "session", id: "ses_1", role: "viewer", offset: 0 });
    ws.text({ type: "error", code: "access_ended", message: "The share was revoked." });
    ws.close(4403, "The share was revoked.");
    expect(states.at(-1)).toBe("failed");
    expect(conn.lastError?.message).toBe("The share was revoked.");
    expect(timers).toHaveLength(0);
  });

  it("asks the probe when a socket never opens, and ends if the session is gone", async () => {
    let asked = 0;
    const { conn, states, tick } = setup({
      session: "ses_1",
      probe: async () => {
        asked += 1;
        return "ended";
      },
    });
    conn.start();
    await tick();
    FakeSocket.all[0]!.close(1006, "");
    await tick();
    expect(asked).toBe(1);
    expect(states.at(-1)).toBe("ended");
  });

  it("counts skipped bytes for a viewer that fell behind", async () => {
    const { conn, tick } = setup({ share: "s1" });
    conn.start();
    await tick();
    const ws = FakeSocket.all[0]!;
    expect(new URL(ws.url).searchParams.get("token")).toBeNull();
    expect(ws.protocols).toEqual(["rexec"]);
    ws.open();
    ws.text({ type: "session", id: "ses_1", role: "viewer", offset: 0 });
    ws.text({ type: "skipped", bytes: 500 });
    ws.bytes("abc");
    expect(conn.offset).toBe(503);
  });

  it("gives up once the hub has been unreachable longer than its grace", async () => {
    let now = 0;
    const { conn, timers, states, tick } = setup({ now: () => now, giveUpAfterMs: 1000 });
    conn.start();
    await tick();
    FakeSocket.all[0]!.close(1006, "");
    now = 2000;
    timers.shift()!();
    await tick();
    FakeSocket.all[1]!.close(1006, "");
    expect(states.at(-1)).toBe("failed");
  });
});
