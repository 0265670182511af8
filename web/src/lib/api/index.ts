/** The typed client of the hub's API (API.md), REST calls and the terminal socket: the
 * SDK's (sdk/typescript, `@rexec/sdk`), with the web app's client set-up (./client). */
export * from "./types";
export { ApiError, errorFrom } from "./errors";
export { RexecClient } from "./client";
export type { ClientOptions, LockFn, RequestOptions, TargetKind, TerminalOptions } from "./client";
export * from "./terminal";
