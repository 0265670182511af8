/** The names people gave their containers and servers, for pages that list sessions by
 * target: a name reads better than `ctr_...`/`agt_...`; a deleted target keeps its id. */

import { api } from "./app.svelte";

export async function targetNames(): Promise<Map<string, string>> {
  const [containers, agents] = await Promise.all([
    api.listContainers().catch(() => []),
    api.listAgents().catch(() => []),
  ]);
  return new Map([...containers.map((c) => [c.id, c.name] as const), ...agents.map((a) => [a.id, a.name] as const)]);
}
