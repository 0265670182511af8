/** Light, dark, or as the system says; the choice (not a secret) is kept in localStorage. */

export type ThemeChoice = "system" | "light" | "dark";
const KEY = "rexec-theme";
const media = window.matchMedia("(prefers-color-scheme: dark)");

function stored(): ThemeChoice {
  const v = localStorage.getItem(KEY);
  return v === "light" || v === "dark" ? v : "system";
}

export const theme = $state({ choice: stored(), dark: false });

function apply(): void {
  const c = theme.choice;
  theme.dark = c === "dark" || (c === "system" && media.matches);
  if (c === "system") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", c);
}

export function setTheme(choice: ThemeChoice): void {
  theme.choice = choice;
  if (choice === "system") localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, choice);
  apply();
}

export function cycleTheme(): void {
  setTheme(theme.dark ? "light" : "dark");
}

media.addEventListener("change", apply);
apply();
