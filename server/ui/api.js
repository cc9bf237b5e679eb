// The management API client. The admin token lives in this tab's session
// storage and travels as a bearer header; the UI uses no cookies.

const TOKEN_KEY = "keygate.adminToken";

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed with status ${status}`);
    this.status = status;
    this.code = e.code || "";
    this.details = Array.isArray(e.details) ? e.details : [];
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(t) {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

// onUnauthorized is called when a request with the stored token gets 401.
export const hooks = { onUnauthorized: () => {} };

async function request(method, path, body, { token = session.token, raw = false, ifMatch = "", meta = null } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: raw ? "text/csv" : "application/json" };
  // If-Match: the ETag of the GET the edit started from, so that a change
  // someone else made since is refused (412) instead of overwritten.
  if (ifMatch) headers["If-Match"] = ifMatch;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new APIError(0, { error: { code: "NETWORK", message: "Could not reach the keygate daemon. Check that it is running and try again." } });
  }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    const err = new APIError(res.status, data);
    if (res.status === 401 && token === session.token) hooks.onUnauthorized(err);
    throw err;
  }
  if (meta) meta.etag = res.headers.get("ETag") || "";
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const api = {
  // verifyToken checks a token before it is stored.
  verifyToken: (token) => request("GET", "v1/keys", undefined, { token }),
  listKeys: async () => (await request("GET", "v1/keys")).items || [],
  getKey: (id) => request("GET", `v1/keys/${encodeURIComponent(id)}`),
  createKey: (body) => request("POST", "v1/keys", body),
  revokeKey: (id) => request("DELETE", `v1/keys/${encodeURIComponent(id)}`),
  // getAllowlist returns the entries and the key's ETag.
  getAllowlist: async (id) => {
    const meta = {};
    const res = await request("GET", `v1/keys/${encodeURIComponent(id)}/allowlist`, undefined, { meta });
    return { entries: (res && res.entries) || [], etag: meta.etag };
  },
  // putAllowlist saves entries if the key is still at etag (412 if someone
  // changed it since; no etag: the last write wins).
  putAllowlist: async (id, entries, etag) => request("PUT", `v1/keys/${encodeURIComponent(id)}/allowlist`, { entries }, { ifMatch: etag }),
  patchKey: (id, body) => request("PATCH", `v1/keys/${encodeURIComponent(id)}`, body),
  rotateKey: (id, overlap) => request("POST", `v1/keys/${encodeURIComponent(id)}/rotate`, { overlap }),
  dryRunAllowlist: (id, entries) => request("PUT", `v1/keys/${encodeURIComponent(id)}/allowlist?dry_run=true`, { entries }),
  suggestions: (id, params) => request("GET", `v1/keys/${encodeURIComponent(id)}/allowlist/suggestions${query(params || {})}`),
  logStats: (params) => request("GET", `v1/logs/stats${query(params)}`),
  logs: (params) => request("GET", `v1/logs${query(params)}`),
  exportCSV: (params) => request("GET", `v1/logs/export.csv${query(params)}`, undefined, { raw: true }),
};
