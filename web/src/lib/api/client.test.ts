import { describe, expect, it } from "vitest";
import { ApiError, RexecClient } from "./index";
import type { TokenPair } from "./types";

interface Call {
  method: string;
  url: string;
  auth: string | null;
  body: unknown;
  credentials: RequestCredentials | undefined;
}

type Route = (call: Call) => Response | Promise<Response>;

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
const error = (status: number, code: string, message = code, extra: Record<string, unknown> = {}) =>
  json(status, { error: { code, message, ...extra } });

const user = {
  id: "usr_1",
  email: "a@example.com",
  name: null,
  plan: "free",
  created_at: "2026-11-23T20:30:00Z",
  passcode_enabled: false,
};
const pair = (access: string, expiresIn = 900): TokenPair => ({
  access_token: access,
  refresh_token: "rt-not-for-the-browser",
  token_type: "Bearer",
  expires_in: expiresIn,
  user,
});

/** A stand-in for the hub's HTTP answers, recording every call the client makes. */
function hub(routes: Record<string, Route>) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const headers = new Headers(init?.headers);
    const call: Call = {
      method: init?.method ?? "GET",
      url: String(input),
      auth: headers.get("Authorization"),
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
      credentials: init?.credentials,
    };
    calls.push(call);
    const path = call.url.split("?")[0] ?? "";
    const route = routes[`${call.method} ${path}`];
    if (!route) return error(404, "not_found");
    return route(call);
  };
  return { calls, fetch: fetch as typeof globalThis.fetch };
}

describe("RexecClient sign-in", () => {
  it("keeps the access token in memory and sends it as a bearer token", async () => {
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "GET /api/containers": () => json(200, { containers: [] }),
    });
    const c = new RexecClient({ fetch: h.fetch });
    expect(c.signedIn).toBe(false);
    const u = await c.login("a@example.com", "pw-12345678");
    expect(u.id).toBe("usr_1");
    expect(c.signedIn).toBe(true);
    expect(await c.listContainers()).toEqual([]);
    expect(h.calls[0]).toMatchObject({ auth: null, body: { email: "a@example.com", password: "pw-12345678" } });
    expect(h.calls[1]?.auth).toBe("Bearer at-1");
    expect(h.calls.every((x) => x.credentials === "same-origin")).toBe(true);
  });

  it("sends the passcode only when there is one, and surfaces passcode_required", async () => {
    const h = hub({
      "POST /api/login": (call) =>
        (call.body as { passcode?: string }).passcode === "123456"
          ? json(200, pair("at-1"))
          : error(401, "passcode_required", "Enter the code."),
    });
    const c = new RexecClient({ fetch: h.fetch });
    const err = await c.login("a@example.com", "pw").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("passcode_required");
    expect((err as ApiError).status).toBe(401);
    await c.login("a@example.com", "pw", "123456");
    expect(h.calls[0]?.body).not.toHaveProperty("passcode");
    expect(h.calls[1]?.body).toMatchObject({ passcode: "123456" });
  });

  it("resumes from the refresh cookie: the body carries no refresh token", async () => {
    const h = hub({ "POST /api/refresh": () => json(200, pair("at-2")) });
    const c = new RexecClient({ fetch: h.fetch });
    expect((await c.resume())?.email).toBe("a@example.com");
    expect(h.calls[0]?.body).toEqual({});
    expect(h.calls[0]?.credentials).toBe("same-origin");
  });

  it("answers null when there is no cookie to resume from", async () => {
    const h = hub({ "POST /api/refresh": () => error(400, "invalid_request") });
    const c = new RexecClient({ fetch: h.fetch });
    expect(await c.resume()).toBeNull();
    expect(c.signedIn).toBe(false);
  });

  it("refreshes an expired access token once and retries the call", async () => {
    let access = "at-1";
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "POST /api/refresh": () => {
        access = "at-2";
        return json(200, pair("at-2"));
      },
      "GET /api/agents": (call) =>
        call.auth === `Bearer ${access}` && access === "at-2"
          ? json(200, { agents: [] })
          : error(401, "token_expired"),
    });
    const c = new RexecClient({ fetch: h.fetch });
    await c.login("a@example.com", "pw");
    expect(await c.listAgents()).toEqual([]);
    expect(h.calls.map((x) => `${x.method} ${x.url}`)).toEqual([
      "POST /api/login",
      "GET /api/agents",
      "POST /api/refresh",
      "GET /api/agents",
    ]);
  });

  it("spends the refresh cookie once when many calls expire together", async () => {
    let refreshes = 0;
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "POST /api/refresh": async () => {
        refreshes += 1;
        await new Promise((r) => setTimeout(r, 5));
        return json(200, pair("at-2"));
      },
      "GET /api/sessions": (call) =>
        call.auth === "Bearer at-2" ? json(200, { sessions: [] }) : error(401, "token_expired"),
    });
    const c = new RexecClient({ fetch: h.fetch });
    await c.login("a@example.com", "pw");
    await Promise.all([c.listSessions(), c.listSessions(), c.listSessions()]);
    expect(refreshes).toBe(1);
  });

  it("holds the cross-tab lock while refreshing", async () => {
    const held: string[] = [];
    const h = hub({ "POST /api/refresh": () => json(200, pair("at-2")) });
    const c = new RexecClient({
      fetch: h.fetch,
      lock: async (name, fn) => {
        held.push(name);
        return fn();
      },
    });
    await c.resume();
    expect(held).toEqual(["rexec-refresh"]);
  });

  it("refreshes ahead of expiry, before the call", async () => {
    let now = 0;
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1", 900)),
      "POST /api/refresh": () => json(200, pair("at-2", 900)),
      "GET /api/user": () => json(200, user),
    });
    const c = new RexecClient({ fetch: h.fetch, now: () => now });
    await c.login("a@example.com", "pw");
    now = 850_000; // 50 s before expiry
    await c.getUser();
    expect(h.calls.map((x) => x.url)).toEqual(["/api/login", "/api/refresh", "/api/user"]);
    expect(h.calls[2]?.auth).toBe("Bearer at-2");
  });

  it("tells the app when the sign-in ends by itself", async () => {
    let ended = 0;
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "POST /api/refresh": () => error(401, "token_reused"),
      "GET /api/user": () => error(401, "token_expired"),
    });
    const c = new RexecClient({ fetch: h.fetch, onSignedOut: () => (ended += 1) });
    await c.login("a@example.com", "pw");
    const err = (await c.getUser().catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("token_expired");
    expect(ended).toBe(1);
    expect(c.signedIn).toBe(false);
  });

  it("signs out: the hub clears the cookie, the client forgets the token", async () => {
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "POST /api/logout": () => json(204, null),
    });
    const c = new RexecClient({ fetch: h.fetch });
    await c.login("a@example.com", "pw");
    await c.logout();
    expect(c.signedIn).toBe(false);
    expect(c.user).toBeNull();
    expect(h.calls[1]).toMatchObject({ auth: "Bearer at-1", body: {} });
  });

  it("signs out everywhere, revoking API tokens only when asked", async () => {
    const h = hub({
      "POST /api/login": () => json(200, pair("at-1")),
      "POST /api/logout": () => json(204, null),
    });
    const c = new RexecClient({ fetch: h.fetch });
    await c.login("a@example.com", "pw");
    await c.logout({ everywhere: true });
    await c.login("a@example.com", "pw");
    await c.logout({ everywhere: true, revokeTokens: true });
    expect(h.calls[1]?.body).toEqual({ everywhere: true, revoke_tokens: false });
    expect(h.calls[3]?.body).toEqual({ everywhere: true, revoke_tokens: true });
  });
});

describe("RexecClient calls", () => {
  async function signedIn(routes: Record<string, Route>) {
    const h = hub({ "POST http://hub.test/api/login": () => json(200, pair("at-1")), ...routes });
    const c = new RexecClient({ fetch: h.fetch, base: "http://hub.test/" });
    await c.login("a@example.com", "pw");
    return { c, h };
  }

  it("turns API.md's error shape into an ApiError with its field and Retry-After", async () => {
    const { c } = await signedIn({
      "POST http://hub.test/api/containers": () =>
        error(400, "invalid_request", "image: not in catalog", { details: { field: "image" } }),
      "GET http://hub.test/api/agents": () =>
        json(429, { error: { code: "rate_limited", message: "slow down" } }, { "Retry-After": "7" }),
    });
    const bad = (await c.createContainer({ image: "nope" }).catch((e: unknown) => e)) as ApiError;
    expect([bad.status, bad.code, bad.field, bad.message]).toEqual([400, "invalid_request", "image", "image: not in catalog"]);
    const limited = (await c.listAgents().catch((e: unknown) => e)) as ApiError;
    expect([limited.code, limited.retryAfter]).toEqual(["rate_limited", 7]);
  });

  it("describes answers that are not the error shape by their status", async () => {
    const { c } = await signedIn({
      "GET http://hub.test/api/containers": () => new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }),
    });
    const err = (await c.listContainers().catch((e: unknown) => e)) as ApiError;
    expect([err.status, err.code]).toEqual([502, "http_502"]);
  });

  it("reports an unreachable hub as status 0", async () => {
    const c = new RexecClient({
      fetch: async () => {
        throw new TypeError("Failed to fetch");
      },
    });
    const err = (await c.login("a@example.com", "pw").catch((e: unknown) => e)) as ApiError;
    expect([err.status, err.code]).toEqual([0, "network_error"]);
  });

  it("escapes ids in paths and builds queries without empty values", async () => {
    const { c, h } = await signedIn({
      "DELETE http://hub.test/api/containers/ctr_a%2Fb": () => json(204, null),
      "GET http://hub.test/api/approvals": () => json(200, { approvals: [] }),
    });
    expect(await c.deleteContainer("ctr_a/b")).toBeUndefined();
    await c.listApprovals("pending");
    await c.listApprovals();
    expect(h.calls.slice(1).map((x) => x.url)).toEqual([
      "http://hub.test/api/containers/ctr_a%2Fb",
      "http://hub.test/api/approvals?status=pending",
      "http://hub.test/api/approvals",
    ]);
  });

  it("fetches a shared recording with the link, not the sign-in", async () => {
    const { c, h } = await signedIn({
      "GET http://hub.test/api/sessions/ses_1/recording": () =>
        new Response('{"version": 2}\n[0.1, "o", "hi"]\n', { headers: { "Content-Type": "application/x-asciicast" } }),
    });
    expect(await c.recording("ses_1", { token: "shr-tok", passcode: "1234" })).toContain('"version": 2');
    expect(h.calls[1]).toMatchObject({
      auth: null,
      url: "http://hub.test/api/sessions/ses_1/recording?share=shr-tok&passcode=1234",
    });
  });

  it("sends an edited command when approving, and nothing extra otherwise", async () => {
    const approval = { id: "apr_1", status: "approved" };
    const { c, h } = await signedIn({
      "POST http://hub.test/api/approvals/apr_1/approve": () => json(200, approval),
      "POST http://hub.test/api/approvals/apr_1/reject": () => json(200, approval),
    });
    await c.approve("apr_1", "ls -l");
    await c.approve("apr_1");
    await c.reject("apr_1", "too risky");
    expect(h.calls.slice(1).map((x) => x.body)).toEqual([{ cmd: "ls -l" }, {}, { reason: "too risky" }]);
  });
});
