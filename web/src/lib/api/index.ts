/** The typed client of the hub's API (API.md): REST calls and the terminal socket. */
export * from "./types";
export { ApiError, errorFrom } from "./errors";
export { RexecClient } from "./client";
export type { ClientOptions, LockFn, RequestOptions } from "./client";
export * from "./terminal";
