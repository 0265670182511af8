/** The shapes of API.md: the SDK's (sdk/typescript, `@rexec/sdk`). */
export type * from "../../../../sdk/typescript/src/types.js";
