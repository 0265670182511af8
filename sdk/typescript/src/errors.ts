/** One error type for everything the hub refuses, carrying API.md's error shape. */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfter: number | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    details?: Record<string, unknown>,
    retryAfter?: number,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }

  /** The field a 400 names, for putting the message beside the right input. */
  get field(): string | undefined {
    const field = this.details?.["field"];
    return typeof field === "string" ? field : undefined;
  }
}

/** Read an error answer; anything that is not the error shape still becomes an ApiError. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page, an empty body): described by the status alone
  }
  const retry = Number(response.headers.get("Retry-After") ?? "");
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : undefined;
  const err = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)
    ?.error;
  if (err && typeof err.code === "string") {
    const message = typeof err.message === "string" ? err.message : err.code;
    const details =
      err.details && typeof err.details === "object"
        ? (err.details as Record<string, unknown>)
        : undefined;
    return new ApiError(response.status, err.code, message, details, retryAfter);
  }
  const text = response.statusText || "request failed";
  return new ApiError(response.status, `http_${response.status}`, `The hub answered ${response.status} ${text}.`, undefined, retryAfter);
}

/** Network failures (hub unreachable) have status 0. */
export function networkError(cause: unknown): ApiError {
  const message = cause instanceof Error ? cause.message : String(cause);
  return new ApiError(0, "network_error", `Cannot reach the hub (${message}).`);
}
