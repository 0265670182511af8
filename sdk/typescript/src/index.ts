/** `@rexec/sdk`: the typed client of Rexec's API (API.md), REST calls and the terminal
 * socket, for browsers and Node 20+. */
export * from "./types.js";
export { ApiError, errorFrom, networkError } from "./errors.js";
export { RexecClient } from "./client.js";
export type { ClientOptions, LockFn, RequestOptions, TargetKind, TerminalOptions } from "./client.js";
export * from "./terminal.js";
