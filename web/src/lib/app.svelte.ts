/** The one API client of the page, and who is signed in. */

import { RexecClient, type User } from "./api";
import { navigate } from "./router.svelte";

export const auth = $state<{ user: User | null; ready: boolean }>({ user: null, ready: false });

export const api = new RexecClient({
  onSignedOut: () => {
    auth.user = null;
    const back = location.pathname + location.search;
    navigate(`/signin?next=${encodeURIComponent(back)}`, { replace: true });
  },
});

/** Sign in again from the refresh cookie on page load (silent; no cookie: signed out). */
export async function boot(): Promise<void> {
  try {
    auth.user = await api.resume();
  } finally {
    auth.ready = true;
  }
}

export function signedIn(user: User): void {
  auth.user = user;
}

export async function signOut(): Promise<void> {
  await api.logout().catch(() => undefined);
  auth.user = null;
  navigate("/signin");
}
