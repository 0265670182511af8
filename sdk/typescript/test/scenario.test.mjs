// @rexec/sdk against a real hub (REXEC_HUB_URL, started by tests/sdk/test_sdks.py):
// the shared scenario of every SDK, then refresh, shares, approvals and billing.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { ApiError, RexecClient } from "../dist/index.js";

const BASE = process.env.REXEC_HUB_URL;
assert.ok(BASE, "REXEC_HUB_URL names the hub to test against");
const PASSWORD = "correct horse 1";
const decoder = new TextDecoder();

/** Wait for `check` to answer something truthy, polling; fail after `seconds`. */
async function waitFor(check, seconds, what) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A terminal that collects its output as text. */
function collect(client, target, options = {}) {
  const seen = { text: "", messages: [] };
  const conn = client.terminal(target, {
    ...options,
    onData: (bytes) => {
      seen.text += decoder.decode(bytes, { stream: true });
    },
    onMessage: (msg) => seen.messages.push(msg),
  });
  conn.start();
  return { conn, seen };
}

async function signedIn() {
  const email = `ts-${randomBytes(4).toString("hex")}@example.com`;
  const client = new RexecClient({ base: BASE });
  await client.register(email, PASSWORD);
  const user = await client.login(email, PASSWORD);
  assert.equal(user.email, email);
  return client;
}

test("the shared scenario: exec, terminal, detach, resume, recording", async () => {
  const client = await signedIn();
  const box = await client.createContainer({ name: "tsbox" });
  assert.match(box.id, /^ctr_/);
  assert.equal(box.status, "running");

  // By name, as every target; exit code and split output.
  const ran = await client.exec("containers", "tsbox", ["sh", "-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual([ran.exit_code, ran.stdout, ran.stderr], [3, "out\n", "err\n"]);

  const first = collect(client, box.id, { size: () => ({ cols: 80, rows: 24 }) });
  await waitFor(() => first.conn.state === "open", 30, "the terminal to open");
  const sessionId = first.conn.sessionId;
  assert.match(sessionId, /^ses_/);
  assert.equal(first.conn.role, "owner");
  first.conn.send("echo $((6*7))\n");
  await waitFor(() => /^42\r?$/m.test(first.seen.text), 20, "42 on the terminal");
  first.conn.resize(100, 30);
  first.conn.send("stty size\n");
  await waitFor(() => first.seen.text.includes("30 100"), 20, "the new size");

  // A viewer joins through a share link, with no sign-in of its own.
  const share = await client.share(sessionId, { role: "viewer" });
  const guest = new RexecClient({ base: BASE });
  const viewer = collect(guest, box.id, { share: share.share.token });
  await waitFor(() => viewer.conn.state === "open", 20, "the viewer to join");
  assert.equal(viewer.conn.role, "viewer");
  viewer.conn.close();

  // Detach, type meanwhile from nowhere, and resume from the offset: only what is new.
  first.conn.close();
  const offset = first.conn.offset;
  assert.ok(Number.isInteger(offset) && offset > 0);
  const again = collect(client, box.id, { session: sessionId, offset });
  await waitFor(() => again.conn.state === "open", 20, "the session to be rejoined");
  assert.equal(again.conn.sessionId, sessionId);
  assert.ok(!again.seen.text.includes("42"), "bytes before the offset are not sent again");
  again.conn.send("echo resumed-$((1+1))\n");
  await waitFor(() => again.seen.text.includes("resumed-2"), 20, "output after resuming");
  again.conn.send("exit 0\n");
  await waitFor(() => again.conn.state === "ended", 20, "the session to end");
  assert.equal(again.conn.exitCode, 0);

  const cast = await waitFor(async () => {
    const session = await client.getSession(sessionId);
    return session.recording.available ? client.recording(sessionId) : null;
  }, 30, "the recording");
  const [header, ...events] = cast.trim().split("\n");
  assert.equal(JSON.parse(header).version, 2);
  assert.ok(events.map((line) => JSON.parse(line)[2]).join("").includes("42"));
  await client.deleteContainer(box.id);
});

test("errors, refresh, approvals and billing", async () => {
  const client = await signedIn();
  await assert.rejects(
    client.exec("containers", "nothere", "true"),
    (err) => err instanceof ApiError && err.status === 404 && err.code === "container_not_found",
  );
  // The refresh token is kept outside a browser and rotates: calls go on working.
  assert.equal(await client.refresh(), true);
  assert.equal(await client.refresh(), true);
  assert.ok((await client.getUser()).email.endsWith("@example.com"));

  const plans = await client.plans();
  assert.ok(plans.length > 0 && plans.every((p) => typeof p.price_cents === "number"));
  const usage = await client.usage();
  assert.equal(typeof usage.usage.containers_running, "number");

  const box = await client.createContainer({ name: "held" });
  const policy = await client.setPolicy("containers", "held", { mode: "approve_all" });
  assert.equal(policy.mode, "approve_all");
  // An AI's API token (kind "agent", the default) runs under the policy; a person decides.
  const made = await client.createToken({ name: "ai", scopes: ["read", "exec"] });
  const ai = new RexecClient({ base: BASE, token: made.token });
  const held = await ai.exec("containers", box.id, "echo approved", { supervised: true });
  assert.ok("approval" in held, JSON.stringify(held));
  const pending = await client.listApprovals("pending");
  assert.deepEqual(pending.map((a) => a.id), [held.approval.id]);
  await client.approve(held.approval.id);
  const done = await ai.getApproval(held.approval.id, 30);
  assert.equal(done.status, "completed");
  assert.equal(done.result?.stdout, "approved\n");
  await client.deleteContainer(box.id);
  await client.logout();
  assert.equal(client.signedIn, false);
});
