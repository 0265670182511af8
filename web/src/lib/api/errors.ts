/** The hub's errors: the SDK's (sdk/typescript, `@rexec/sdk`), which the web app uses. */
export { ApiError, errorFrom, networkError } from "../../../../sdk/typescript/src/errors.js";
