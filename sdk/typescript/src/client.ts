/**
 * `RexecClient`: the typed client of API.md, for browsers (the web app) and Node 20+.
 *
 * Tokens: the access token lives in this object only (memory). In a browser the refresh
 * token is the hub's HttpOnly cookie, which this code never sees: `resume()` and the
 * automatic refresh post to /api/refresh with no body and the browser adds the cookie.
 * Elsewhere (Node, no cookie jar) the client keeps the refresh token from the sign-in in
 * memory and sends it (`keepRefreshToken`). An API token (`rx_...`, option `token`) is
 * used as it is and never refreshed. A call answered 401 because the access token
 * expired is refreshed and tried once more.
 */

import { ApiError, errorFrom, networkError } from "./errors.js";
import {
  type ConnectionOptions,
  TerminalConnection,
} from "./terminal.js";
import type {
  Agent,
  AgentToken,
  ApiToken,
  ApiTokenCreated,
  Approval,
  ApprovalStatus,
  AuditEvent,
  CatalogImage,
  Container,
  CreateApiToken,
  CreateContainer,
  ExecAnswer,
  ExecOptions,
  PasscodeEnabled,
  PasscodeSetup,
  Plan,
  Policy,
  PolicyBody,
  Session,
  Share,
  ShareCreated,
  ShareInfo,
  ShareRequest,
  SshKey,
  SubscribeResult,
  TokenPair,
  Usage,
  User,
} from "./types.js";

type Fetch = typeof fetch;
/** Runs `fn` while holding a lock shared by every tab (the Web Locks API), so that two
 * tabs never spend the same refresh token (the hub would revoke the whole family). */
export type LockFn = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

export interface ClientOptions {
  /** The hub's URL; "" (default) for the page's own origin. */
  base?: string;
  fetch?: Fetch;
  lock?: LockFn;
  /** Told when the sign-in ends by itself (refresh refused), so the app can show sign-in. */
  onSignedOut?: () => void;
  /** Milliseconds since the epoch (tests move time). */
  now?: () => number;
  /** An API token (`rx_...`) to call with instead of signing in. */
  token?: string;
  /** Keep the refresh token of a sign-in in memory and send it to refresh (default: when
   * there is no `document`, i.e. outside a browser, which has the cookie instead). */
  keepRefreshToken?: boolean;
}

/** Where a command runs: a container or an agent (by id or by name). */
export type TargetKind = "containers" | "agents";

/** A terminal opened through the client: the connection options less what it knows. */
export type TerminalOptions = Omit<ConnectionOptions, "origin" | "target" | "token">;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  /** Send the access token (default true). */
  auth?: boolean;
}

const REFRESH_MARGIN_MS = 60_000;
const EXPIRED_CODES = new Set(["token_expired", "invalid_token"]);

function browserLock(): LockFn | undefined {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) return undefined;
  return (name, fn) => locks.request(name, fn);
}

export class RexecClient {
  readonly base: string;
  user: User | null = null;
  private readonly fetchFn: Fetch;
  private readonly lock: LockFn | undefined;
  private readonly onSignedOut: (() => void) | undefined;
  private readonly now: () => number;
  private accessToken: string | null = null;
  private refreshToken: string | null = null;
  private readonly keepRefresh: boolean;
  private readonly apiToken: string | null;
  private expiresAt = 0;
  private refreshing: Promise<boolean> | null = null;

  constructor(options: ClientOptions = {}) {
    this.base = (options.base ?? "").replace(/\/+$/, "");
    this.fetchFn = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.lock = options.lock ?? browserLock();
    this.onSignedOut = options.onSignedOut;
    this.now = options.now ?? (() => Date.now());
    this.apiToken = options.token ?? null;
    this.accessToken = this.apiToken;
    this.expiresAt = this.apiToken ? Number.POSITIVE_INFINITY : 0;
    this.keepRefresh = options.keepRefreshToken ?? typeof document === "undefined";
  }

  get signedIn(): boolean {
    return this.accessToken !== null;
  }

  // -- transport ------------------------------------------------------------

  url(path: string, query?: RequestOptions["query"]): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    }
    const qs = params.toString();
    return `${this.base}${path}${qs ? `?${qs}` : ""}`;
  }

  private async send(method: string, path: string, body: unknown, opts: RequestOptions, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers["Authorization"] = `Bearer ${token}`;
    try {
      return await this.fetchFn(this.url(path, opts.query), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (err) {
      throw networkError(err);
    }
  }

  /** The raw answer of an authenticated call, refreshed and retried once on expiry. */
  async raw(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
    const auth = opts.auth ?? true;
    let token = auth ? await this.freshToken() : null;
    let response = await this.send(method, path, body, opts, token);
    if (response.status === 401 && auth && token) {
      const err = await errorFrom(response.clone());
      if (EXPIRED_CODES.has(err.code) && (await this.refresh())) {
        token = this.accessToken;
        response = await this.send(method, path, body, opts, token);
      }
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  /** A JSON call; 204 answers `undefined`. */
  async request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const response = await this.raw(method, path, body, opts);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  // -- sign-in ----------------------------------------------------------------

  private adopt(pair: TokenPair): User {
    this.accessToken = pair.access_token;
    if (this.keepRefresh) this.refreshToken = pair.refresh_token;
    this.expiresAt = this.now() + pair.expires_in * 1000;
    this.user = pair.user;
    return pair.user;
  }

  private forget(): void {
    this.accessToken = null;
    this.refreshToken = null;
    this.expiresAt = 0;
    this.user = null;
  }

  async register(email: string, password: string, name?: string): Promise<User> {
    const body = name ? { email, password, name } : { email, password };
    const answer = await this.request<{ user: User }>("POST", "/api/register", body, { auth: false });
    return answer.user;
  }

  /** Sign in; the hub sets the refresh cookie. 401 `passcode_required` asks for the code. */
  async login(email: string, password: string, passcode?: string): Promise<User> {
    const body = passcode ? { email, password, passcode } : { email, password };
    const pair = await this.request<TokenPair>("POST", "/api/login", body, { auth: false });
    return this.adopt(pair);
  }

  /** Sign in again from the refresh cookie (a page load); null when there is none. */
  async resume(): Promise<User | null> {
    return (await this.refresh()) ? this.user : null;
  }

  /** Trade the refresh cookie for new tokens; one at a time, in this tab and across tabs. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      const run = () => this.doRefresh();
      this.refreshing = (this.lock ? this.lock("rexec-refresh", run) : run()).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    if (this.apiToken) return false; // an API token is not refreshed
    const had = this.accessToken !== null;
    const body = this.refreshToken ? { refresh_token: this.refreshToken } : {};
    let response: Response;
    try {
      response = await this.send("POST", "/api/refresh", body, {}, null);
    } catch {
      return false; // offline: keep what we have, a later call tries again
    }
    if (response.ok) {
      this.adopt((await response.json()) as TokenPair);
      return true;
    }
    if (response.status === 401 || response.status === 400) {
      this.forget();
      if (had) this.onSignedOut?.();
    }
    return false;
  }

  /** The access token, refreshed first when it is about to expire. */
  async freshToken(): Promise<string | null> {
    if (this.accessToken && this.now() > this.expiresAt - REFRESH_MARGIN_MS) await this.refresh();
    return this.accessToken;
  }

  /** Sign out: the hub revokes the cookie's refresh family and clears the cookie. */
  /**
   * Sign out: the hub revokes this sign-in's refresh family. `everywhere` ends every
   * sign-in of the person; with `revokeTokens` their API tokens (and the sockets opened
   * with them) end too (docs/security.md).
   */
  async logout(options: { everywhere?: boolean; revokeTokens?: boolean } = {}): Promise<void> {
    const body: Record<string, unknown> = this.refreshToken ? { refresh_token: this.refreshToken } : {};
    if (options.everywhere) Object.assign(body, { everywhere: true, revoke_tokens: !!options.revokeTokens });
    try {
      await this.send("POST", "/api/logout", body, {}, this.accessToken);
    } finally {
      this.forget();
    }
  }

  getUser(): Promise<User> {
    return this.request<User>("GET", "/api/user").then((user) => (this.user = user));
  }

  // -- account ----------------------------------------------------------------

  startPasscode(): Promise<PasscodeSetup> {
    return this.request("POST", "/api/user/passcode", {});
  }
  confirmPasscode(code: string): Promise<PasscodeEnabled> {
    return this.request("POST", "/api/user/passcode", { code });
  }
  disablePasscode(code: string): Promise<void> {
    return this.request("DELETE", "/api/user/passcode", { code });
  }
  newRecoveryCodes(code: string): Promise<{ recovery_codes: string[] }> {
    return this.request("POST", "/api/user/passcode/recovery-codes", { code });
  }

  async listTokens(): Promise<ApiToken[]> {
    return (await this.request<{ tokens: ApiToken[] }>("GET", "/api/user/tokens")).tokens;
  }
  createToken(body: CreateApiToken): Promise<ApiTokenCreated> {
    return this.request("POST", "/api/user/tokens", body);
  }
  revokeToken(id: string): Promise<void> {
    return this.request("DELETE", `/api/user/tokens/${encodeURIComponent(id)}`);
  }

  async listKeys(): Promise<SshKey[]> {
    return (await this.request<{ keys: SshKey[] }>("GET", "/api/user/keys")).keys;
  }
  addKey(name: string, publicKey: string): Promise<SshKey> {
    return this.request("POST", "/api/user/keys", { name, public_key: publicKey });
  }
  removeKey(id: string): Promise<void> {
    return this.request("DELETE", `/api/user/keys/${encodeURIComponent(id)}`);
  }

  async audit(limit = 50): Promise<AuditEvent[]> {
    return (await this.request<{ events: AuditEvent[] }>("GET", "/api/audit", undefined, { query: { limit } })).events;
  }

  // -- containers and agents ----------------------------------------------------

  async images(): Promise<CatalogImage[]> {
    return (await this.request<{ images: CatalogImage[] }>("GET", "/api/images")).images;
  }
  async listContainers(): Promise<Container[]> {
    return (await this.request<{ containers: Container[] }>("GET", "/api/containers")).containers;
  }
  getContainer(id: string): Promise<Container> {
    return this.request("GET", `/api/containers/${encodeURIComponent(id)}`);
  }
  createContainer(body: CreateContainer = {}): Promise<Container> {
    return this.request("POST", "/api/containers", body);
  }
  deleteContainer(id: string): Promise<void> {
    return this.request("DELETE", `/api/containers/${encodeURIComponent(id)}`);
  }

  async listAgents(): Promise<Agent[]> {
    return (await this.request<{ agents: Agent[] }>("GET", "/api/agents")).agents;
  }
  getAgent(id: string): Promise<Agent> {
    return this.request("GET", `/api/agents/${encodeURIComponent(id)}`);
  }
  deleteAgent(id: string): Promise<void> {
    return this.request("DELETE", `/api/agents/${encodeURIComponent(id)}`);
  }
  agentToken(name?: string, expiresIn?: number): Promise<AgentToken> {
    const body: Record<string, unknown> = {};
    if (name) body["name"] = name;
    if (expiresIn) body["expires_in"] = expiresIn;
    return this.request("POST", "/api/agents/tokens", body);
  }

  // -- exec and terminals ---------------------------------------------------------

  /** Run one command to completion on a container or agent (an id or a name): its exit
   * code and output, stdout and stderr apart. `cmd` is a shell line or an argv list.
   * Under a policy that holds it (`supervised: true`), the answer is `{approval}`. */
  exec(kind: TargetKind, target: string, cmd: string | string[], options: ExecOptions = {}): Promise<ExecAnswer> {
    return this.request("POST", `/api/${kind}/${encodeURIComponent(target)}/exec`, { cmd, ...options });
  }

  /** A terminal on a container or agent (an id or a name), or a live session joined
   * (`session`, `offset`) or a shared one (`share`, `passcode`). Call `start()` on it. */
  terminal(target: string, options: TerminalOptions): TerminalConnection {
    const origin = this.base || globalThis.location?.origin || "";
    return new TerminalConnection({
      ...options,
      origin,
      target,
      token: options.share ? undefined : () => this.freshToken(),
    });
  }

  // -- sessions ---------------------------------------------------------------

  async listSessions(): Promise<Session[]> {
    return (await this.request<{ sessions: Session[] }>("GET", "/api/sessions")).sessions;
  }
  getSession(id: string): Promise<Session> {
    return this.request("GET", `/api/sessions/${encodeURIComponent(id)}`);
  }
  endSession(id: string): Promise<void> {
    return this.request("DELETE", `/api/sessions/${encodeURIComponent(id)}`);
  }
  share(id: string, body: ShareRequest): Promise<ShareCreated> {
    return this.request("POST", `/api/sessions/${encodeURIComponent(id)}/share`, body);
  }
  async listShares(id: string): Promise<Share[]> {
    return (await this.request<{ shares: Share[] }>("GET", `/api/sessions/${encodeURIComponent(id)}/shares`)).shares;
  }
  revokeShare(id: string, shareId: string): Promise<void> {
    return this.request("DELETE", `/api/sessions/${encodeURIComponent(id)}/shares/${encodeURIComponent(shareId)}`);
  }
  /** What a share link opens; needs no sign-in (the link's token is the credential). */
  describeShare(token: string): Promise<ShareInfo> {
    return this.request("GET", `/api/shares/${encodeURIComponent(token)}`, undefined, { auth: false });
  }
  /** The asciicast v2 text of a session's recording (the owner's, or through a share). */
  async recording(id: string, share?: { token: string; passcode?: string }): Promise<string> {
    const path = `/api/sessions/${encodeURIComponent(id)}/recording`;
    const opts: RequestOptions = share
      ? { auth: false, query: { share: share.token, passcode: share.passcode } }
      : {};
    return (await this.raw("GET", path, undefined, opts)).text();
  }

  // -- supervised AI execution ---------------------------------------------------

  async listApprovals(status?: ApprovalStatus): Promise<Approval[]> {
    return (await this.request<{ approvals: Approval[] }>("GET", "/api/approvals", undefined, { query: { status } })).approvals;
  }
  approve(id: string, cmd?: string): Promise<Approval> {
    return this.request("POST", `/api/approvals/${encodeURIComponent(id)}/approve`, cmd ? { cmd } : {});
  }
  reject(id: string, reason?: string): Promise<Approval> {
    return this.request("POST", `/api/approvals/${encodeURIComponent(id)}/reject`, reason ? { reason } : {});
  }
  /** One approval; `wait` seconds long-polls until it is decided. */
  getApproval(id: string, wait?: number): Promise<Approval> {
    return this.request("GET", `/api/approvals/${encodeURIComponent(id)}`, undefined, { query: { wait } });
  }
  getPolicy(kind: TargetKind, target: string): Promise<Policy> {
    return this.request("GET", `/api/${kind}/${encodeURIComponent(target)}/policy`);
  }
  setPolicy(kind: TargetKind, target: string, body: PolicyBody): Promise<Policy> {
    return this.request("PUT", `/api/${kind}/${encodeURIComponent(target)}/policy`, body);
  }
  /** The kill switch: refuse (or allow again) every AI command on the target. */
  pause(kind: TargetKind, target: string, paused = true): Promise<Policy> {
    const verb = paused ? "pause" : "resume";
    return this.request("POST", `/api/${kind}/${encodeURIComponent(target)}/policy/${verb}`);
  }

  // -- billing ------------------------------------------------------------------

  async plans(): Promise<Plan[]> {
    return (await this.request<{ plans: Plan[] }>("GET", "/api/billing/plans")).plans;
  }
  usage(): Promise<Usage> {
    return this.request("GET", "/api/billing/usage");
  }
  subscribe(plan: string): Promise<SubscribeResult> {
    return this.request("POST", "/api/billing/subscribe", { plan });
  }
}

export { ApiError };
