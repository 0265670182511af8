/** Short messages in the corner: what just happened, or what went wrong. */

import { ApiError } from "./api";

export interface Toast {
  id: number;
  text: string;
  kind: "info" | "ok" | "error";
}

export const toasts = $state<Toast[]>([]);
let next = 1;

export function toast(text: string, kind: Toast["kind"] = "info", ms = 4000): void {
  const id = next++;
  toasts.push({ id, text, kind });
  if (toasts.length > 4) toasts.shift();
  setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  const i = toasts.findIndex((t) => t.id === id);
  if (i >= 0) toasts.splice(i, 1);
}

/** Show what the hub said (or that it could not be reached). */
export function toastError(err: unknown): void {
  toast(err instanceof ApiError ? err.message : String(err), "error", 6000);
}
