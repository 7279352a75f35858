// The API token: taken from the page's fragment (#token=...), kept in sessionStorage for this
// tab, and removed from the address bar so it is not bookmarked, shared or shown.
const KEY = "loop.token";

export function captureToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("token");
  if (token !== null) {
    sessionStorage.setItem(KEY, token);
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
}

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}
