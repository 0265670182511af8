/**
 * The web app's client: the SDK's `RexecClient` (sdk/typescript, `@rexec/sdk`), set up
 * for a page: the refresh token stays in the hub's HttpOnly cookie, never in this code,
 * however the page is run (a test runner has no `document` either).
 */

import { type ClientOptions, RexecClient as SdkClient } from "../../../../sdk/typescript/src/client.js";

export type { ClientOptions, LockFn, RequestOptions, TargetKind, TerminalOptions } from "../../../../sdk/typescript/src/client.js";
export { ApiError } from "../../../../sdk/typescript/src/errors.js";

export class RexecClient extends SdkClient {
  constructor(options: ClientOptions = {}) {
    super({ keepRefreshToken: false, ...options });
  }
}
