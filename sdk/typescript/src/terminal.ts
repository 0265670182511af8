/**
 * The terminal socket (`WS /ws/terminal/{id}`): its URL, its typed messages, and a
 * connection that resumes the same session by itself after the network drops.
 *
 * The connection counts every output byte from the offset the hub names in its
 * `{"type":"session"}` message, and reconnects with `?session=...&offset=N`, so the
 * hub sends exactly the bytes after the last one shown: nothing lost, nothing doubled
 * (docs/sessions.md). A close that says access ended (4401, 4403, 4404) is final.
 */

import type { Approval, Participant, Role } from "./types.js";

export type ServerMessage =
  | { type: "session"; id: string; role: Role; offset: number }
  | { type: "participants"; participants: Participant[] }
  | { type: "exit"; code: number }
  | { type: "error"; code: string; message: string }
  | { type: "skipped"; bytes: number }
  | { type: "resize"; cols: number; rows: number }
  | { type: "approval"; approval: Approval };

export interface TerminalQuery {
  session?: string | null;
  offset?: number | null;
  share?: string | null;
  cols?: number;
  rows?: number;
  command?: string | null;
}

/** The credentials of a terminal socket: never in its URL (URLs end up in logs). */
export interface TerminalCredentials {
  token?: string | null;
  passcode?: string | null;
}

/** ws(s)://host/ws/terminal/{target}?... for a page served from `origin`: where the
 * session is, never who is asking (see `terminalProtocols`). */
export function terminalUrl(origin: string, target: string, q: TerminalQuery): string {
  const url = new URL(`/ws/terminal/${encodeURIComponent(target)}`, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const set = (k: string, v: string | number | null | undefined) => {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  };
  set("share", q.share);
  set("session", q.session);
  set("offset", q.offset);
  set("cols", q.cols);
  set("rows", q.rows);
  set("command", q.command);
  return url.toString();
}

function base64url(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The subprotocols the socket offers: `rexec`, the access token as `rexec.bearer.<token>`
 * and a share's passcode as `rexec.passcode.<base64url>`. A browser cannot set headers on
 * a WebSocket; subprotocols are the header it can set, and the hub answers `rexec`.
 * A share link's socket carries no token (a guest is nobody's sign-in).
 */
export function terminalProtocols(c: TerminalCredentials & { share?: string | null }): string[] {
  const offered = ["rexec"];
  if (!c.share && c.token) offered.push(`rexec.bearer.${c.token}`);
  if (c.share && c.passcode) offered.push(`rexec.passcode.${base64url(c.passcode)}`);
  return offered;
}

const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const str = (v: unknown): v is string => typeof v === "string";

/** A server text frame as a typed message; null for anything this client does not know. */
export function parseServerMessage(text: string): ServerMessage | null {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return null;
  }
  if (!data || typeof data !== "object") return null;
  const m = data as Record<string, unknown>;
  switch (m["type"]) {
    case "session":
      if (str(m["id"]) && str(m["role"]) && num(m["offset"])) {
        return { type: "session", id: m["id"], role: m["role"] as Role, offset: m["offset"] };
      }
      return null;
    case "participants":
      return Array.isArray(m["participants"])
        ? { type: "participants", participants: m["participants"] as Participant[] }
        : null;
    case "exit":
      return num(m["code"]) ? { type: "exit", code: m["code"] } : { type: "exit", code: -1 };
    case "error":
      return {
        type: "error",
        code: str(m["code"]) ? m["code"] : "error",
        message: str(m["message"]) ? m["message"] : "",
      };
    case "skipped":
      return num(m["bytes"]) ? { type: "skipped", bytes: m["bytes"] } : null;
    case "resize":
      return num(m["cols"]) && num(m["rows"]) ? { type: "resize", cols: m["cols"], rows: m["rows"] } : null;
    case "approval": {
      const a = m["approval"] as Record<string, unknown> | undefined;
      return a && str(a["id"]) && str(a["status"]) ? { type: "approval", approval: a as unknown as Approval } : null;
    }
    default:
      return null;
  }
}

/** Delay before reconnect attempt `attempt` (0-based): 0.25 s doubling to 8 s, with jitter. */
export function backoff(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(8000, 250 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + random() * 0.5));
}

/** Close codes after which reconnecting cannot help. */
export function isFinalClose(code: number): boolean {
  return code === 1000 || code === 4401 || code === 4403 || code === 4404 || code === 4400 || code === 4409;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "ended" | "failed";

/** What a failed attempt means, when the socket closed before it opened (browsers hide
 * the HTTP refusal): the app asks the API whether the session is still there. */
export type Probe = () => Promise<"retry" | "ended" | "failed">;

export interface WebSocketLike {
  binaryType: string;
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
}

export interface ConnectionOptions {
  origin: string;
  target: string;
  /** A fresh access token for each attempt (null: none, as for share links). */
  token?: () => Promise<string | null>;
  share?: string | null;
  passcode?: string | null;
  /** Join this live session instead of opening a new one. */
  session?: string | null;
  /** With `session`: resume from this output offset (the hub sends the bytes after it)
   * instead of the recent screen. */
  offset?: number | null;
  command?: string | null;
  size?: () => { cols: number; rows: number };
  onData: (data: Uint8Array) => void;
  onMessage?: (msg: ServerMessage) => void;
  onState?: (state: ConnectionState, detail: { attempt: number; reason?: string }) => void;
  probe?: Probe;
  /** Give up reconnecting after this long without an open socket (the hub's grace). */
  giveUpAfterMs?: number;
  WebSocket?: new (url: string, protocols?: string[]) => WebSocketLike;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  now?: () => number;
}

const encoder = new TextEncoder();

export class TerminalConnection {
  state: ConnectionState = "connecting";
  sessionId: string | null;
  role: Role | null = null;
  /** The offset of the next output byte this client expects. */
  offset: number | null = null;
  exitCode: number | null = null;
  lastError: { code: string; message: string } | null = null;
  attempt = 0;
  private ws: WebSocketLike | null = null;
  private timer: unknown = null;
  private closedByUser = false;
  private lostAt: number | null = null;
  private readonly o: ConnectionOptions;
  private readonly Ws: new (url: string, protocols?: string[]) => WebSocketLike;

  constructor(options: ConnectionOptions) {
    this.o = options;
    this.sessionId = options.session ?? null;
    this.offset = options.session ? (options.offset ?? null) : null;
    this.Ws =
      options.WebSocket ??
      (globalThis.WebSocket as unknown as new (url: string, protocols?: string[]) => WebSocketLike);
  }

  /** Open the first socket. */
  start(): void {
    void this.connect();
  }

  /** Keystrokes (a string is sent as UTF-8). Dropped while the socket is down. */
  send(data: string | Uint8Array): boolean {
    if (!this.ws || this.ws.readyState !== 1 || this.state !== "open") return false;
    this.ws.send(typeof data === "string" ? encoder.encode(data) : data);
    return true;
  }

  resize(cols: number, rows: number): void {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /** Try again now (the banner's button) instead of waiting for the backoff. */
  retryNow(): void {
    if (this.state !== "reconnecting") return;
    this.clearTimer();
    void this.connect();
  }

  /** Leave the session (it lives on for the hub's grace period). */
  close(): void {
    this.closedByUser = true;
    this.clearTimer();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "closed");
  }

  private setState(state: ConnectionState, reason?: string): void {
    this.state = state;
    this.o.onState?.(state, { attempt: this.attempt, reason });
  }

  private clearTimer(): void {
    if (this.timer !== null) (this.o.clearTimeout ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
    this.timer = null;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private async connect(): Promise<void> {
    if (this.closedByUser) return;
    const token = this.o.share ? null : ((await this.o.token?.()) ?? null);
    if (this.closedByUser) return;
    const size = this.o.size?.();
    const url = terminalUrl(this.o.origin, this.o.target, {
      share: this.o.share,
      session: this.sessionId,
      offset: this.sessionId !== null ? this.offset : null,
      cols: size?.cols,
      rows: size?.rows,
      command: this.sessionId ? null : this.o.command,
    });
    let opened = false;
    const ws = new this.Ws(url, terminalProtocols({ token, share: this.o.share, passcode: this.o.passcode }));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === "string") this.onText(ev.data);
      else this.onBinary(ev.data);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      void this.onClose(ev.code, ev.reason, opened);
    };
  }

  private onText(text: string): void {
    const msg = parseServerMessage(text);
    if (!msg) return;
    if (msg.type === "session") {
      this.sessionId = msg.id;
      this.role = msg.role;
      this.offset = msg.offset;
      this.attempt = 0;
      this.lostAt = null;
      this.setState("open");
    } else if (msg.type === "exit") {
      this.exitCode = msg.code;
    } else if (msg.type === "error") {
      this.lastError = { code: msg.code, message: msg.message };
    } else if (msg.type === "skipped" && this.offset !== null) {
      this.offset += msg.bytes; // those bytes were dropped for this viewer, not owed
    }
    this.o.onMessage?.(msg);
  }

  private onBinary(data: unknown): void {
    const bytes =
      data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : null;
    if (!bytes) return;
    if (this.offset !== null) this.offset += bytes.byteLength;
    this.o.onData(bytes);
  }

  private async onClose(code: number, reason: string, opened: boolean): Promise<void> {
    if (this.closedByUser) return;
    if (this.exitCode !== null) return this.setState("ended", `exited with code ${this.exitCode}`);
    if (isFinalClose(code)) {
      return this.setState(code === 1000 ? "ended" : "failed", this.lastError?.message || reason || `closed (${code})`);
    }
    if (!opened && this.o.probe) {
      let verdict: "retry" | "ended" | "failed" = "retry";
      try {
        verdict = await this.o.probe();
      } catch {
        verdict = "retry";
      }
      if (verdict !== "retry") {
        return this.setState(verdict, verdict === "ended" ? "the session has ended" : "the terminal could not be opened");
      }
    }
    this.lostAt ??= this.now();
    if (this.now() - this.lostAt > (this.o.giveUpAfterMs ?? 600_000)) {
      return this.setState("failed", "the hub could not be reached for too long");
    }
    this.setState("reconnecting", reason || "connection lost");
    const delay = backoff(this.attempt);
    this.attempt += 1;
    this.timer = (this.o.setTimeout ?? setTimeout)(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }
}
