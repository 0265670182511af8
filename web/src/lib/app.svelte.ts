/** The one API client of the page, and who is signed in. */

import { RexecClient, type User } from "./api";
import { navigate } from "./router.svelte";

export const auth = $state<{ user: User | null; ready: boolean }>({ user: null, ready: false });

// Whether this browser has signed in (a hint, no secret): without it a page load does not
// ask POST /api/refresh, whose expected 400 (no cookie) the browser would log as an error.
const SIGNED_IN = "rexec-signed-in";
const hint = (on: boolean) => {
  try {
    if (on) localStorage.setItem(SIGNED_IN, "1");
    else localStorage.removeItem(SIGNED_IN);
  } catch {
    // storage off: the hint only saves a request
  }
};
const hinted = (): boolean => {
  try {
    return localStorage.getItem(SIGNED_IN) === "1";
  } catch {
    return true;
  }
};

export const api = new RexecClient({
  onSignedOut: () => {
    hint(false);
    auth.user = null;
    const back = location.pathname + location.search;
    navigate(`/signin?next=${encodeURIComponent(back)}`, { replace: true });
  },
});

/** Sign in again from the refresh cookie on page load (silent; no cookie: signed out). */
export async function boot(): Promise<void> {
  try {
    if (hinted()) {
      auth.user = await api.resume();
      hint(auth.user !== null);
    }
  } finally {
    auth.ready = true;
  }
}

export function signedIn(user: User): void {
  hint(true);
  auth.user = user;
}

export async function signOut(): Promise<void> {
  await api.logout().catch(() => undefined);
  hint(false);
  auth.user = null;
  navigate("/signin");
}
