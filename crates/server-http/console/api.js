// The console's view of the REST API (/api/v1) and of /metrics.

/** Largest page the API accepts; the console asks for everything at once. */
export const PAGE_LIMIT = 1000;

/** An API failure carrying the server's {code, message} when it sent one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** sessionStorage key of the API token (auth.api_token) typed into the login form. */
const TOKEN_KEY = "sluice.apiToken";

/** The API token of this browser tab, or "" when none was given. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

/** Stores (or, with "", forgets) the API token for this tab. */
export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lasts until the page is reloaded.
  }
}

async function request(method, path, signal) {
  let resp;
  const headers = {};
  const t = token();
  // Everything under /api/v1 and /metrics may be behind the API token.
  if (t && (path.startsWith("/api/") || path === "/metrics")) headers.Authorization = `Bearer ${t}`;
  try {
    resp = await fetch(path, { method, cache: "no-store", signal, headers });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", `server unreachable (${e.message})`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  if (!resp.ok) {
    let code = `http_${resp.status}`;
    let message = text || resp.statusText;
    try {
      const body = JSON.parse(text);
      code = body.code || code;
      message = body.message || message;
    } catch {
      // Not JSON: keep the raw text.
    }
    throw new ApiError(resp.status, code, message);
  }
  return text;
}

async function json(path, signal) {
  return JSON.parse(await request("GET", path, signal));
}

/** Path segment of a stream key "app/name" for the API. */
function keyPath(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

/** GET /api/v1/server. */
export const server = (signal) => json("/api/v1/server", signal);
/** GET /api/v1/streams (every page up to PAGE_LIMIT). */
export const streams = (signal) => json(`/api/v1/streams?limit=${PAGE_LIMIT}`, signal);
/** GET /api/v1/streams/{app}/{stream}. */
export const stream = (key, signal) => json(`/api/v1/streams/${keyPath(key)}`, signal);
/** GET /api/v1/sessions. */
export const sessions = (signal) => json(`/api/v1/sessions?limit=${PAGE_LIMIT}`, signal);
/** DELETE /api/v1/streams/{app}/{stream}: stop publishing. */
export const stopStream = (key) => request("DELETE", `/api/v1/streams/${keyPath(key)}`);
/** DELETE /api/v1/sessions/{id}: kick a session. */
export const kickSession = (id) => request("DELETE", `/api/v1/sessions/${encodeURIComponent(id)}`);

/**
 * GET /metrics, reduced to the unlabelled samples the console shows (process CPU and memory).
 * Returns a Map of metric name to value.
 */
export async function metrics(signal) {
  const text = await request("GET", "/metrics", signal);
  const out = new Map();
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}
