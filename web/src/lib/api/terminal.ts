/** The terminal socket: the SDK's connection (sdk/typescript, `@rexec/sdk`). */
export * from "../../../../sdk/typescript/src/terminal.js";
