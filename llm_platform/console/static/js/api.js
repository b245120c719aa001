// The console's one way into the platform: its public API, as any client. The access token lives in
// this module's memory only (never localStorage): a reload or a new tab gets a fresh one from the refresh
// token, which the browser keeps in an HttpOnly cookie that no script can read (auth/refresh_cookie.py).

const CSRF_HEADERS = { "X-Requested-With": "llmp-console" };
let accessToken = null;
let refreshTimer = null;
let refreshing = null;

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The message of the platform's one error shape ({"error": {"message", "type", "code", "param"}}), or
// the status line when the answer is not that shape (a proxy's page, a dropped connection).
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText || "error"}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      message = body.error.message;
      code = body.error.code;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, code);
}

function urlOf(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

// Calls the API; answers the parsed body (null for 204), or the Response itself with `raw`. Throws an
// ApiError carrying the API's message. An expired access token is refreshed once, silently.
export async function api(path, { method = "GET", json, form, query, raw = false, signal, retry = true } = {}) {
  const headers = {};
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(urlOf(path, query), { method, headers, body, signal, credentials: "same-origin" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The platform cannot be reached: check your connection and try again", "network");
  }
  if (response.status === 401 && retry && accessToken) {
    if (await refresh()) return api(path, { method, json, form, query, raw, signal, retry: false });
    window.dispatchEvent(new CustomEvent("llmp:session-ended"));
  }
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

// Sends a multipart form with XMLHttpRequest, the one browser API that reports an upload's progress:
// `onProgress(sent, total)` as the body goes out. Answers the parsed body; errors as api() does.
export function upload(path, formData, { onProgress, retry = true } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", urlOf(path));
    if (accessToken) xhr.setRequestHeader("Authorization", `Bearer ${accessToken}`);
    xhr.responseType = "text";
    if (onProgress) xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.total));
    xhr.addEventListener("error", () => reject(new ApiError(0, "The platform cannot be reached: check your connection and try again", "network")));
    xhr.addEventListener("load", async () => {
      if (xhr.status === 401 && retry && accessToken) {
        if (await refresh()) {
          upload(path, formData, { onProgress, retry: false }).then(resolve, reject);
          return;
        }
        window.dispatchEvent(new CustomEvent("llmp:session-ended"));
      }
      const response = new Response(xhr.status === 204 ? null : xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
      if (!response.ok) reject(await errorOf(response));
      else resolve(xhr.status === 204 ? null : await response.json());
    });
    xhr.send(formData);
  });
}

function keep(tokens) {
  accessToken = tokens.access_token;
  clearTimeout(refreshTimer);
  // Refresh ahead of expiry, so a long stream or a form being typed never meets a dead token.
  refreshTimer = setTimeout(refresh, Math.max(10, tokens.expires_in * 0.8) * 1000);
}

export async function signIn({ tenant, email, password }) {
  const form = { username: email, password, refresh_cookie: "true" };
  if (tenant) form.tenant = tenant;
  keep(await api("/auth/token", { method: "POST", form, retry: false }));
}

// A new access token from the refresh cookie (which rotates). One at a time: two refreshes with the same
// cookie would spend it twice, and the platform takes a reused refresh token for a stolen one.
export function refresh() {
  refreshing ??= (async () => {
    try {
      const response = await fetch("/auth/refresh", {
        method: "POST",
        headers: CSRF_HEADERS,
        credentials: "same-origin",
      });
      if (!response.ok) {
        accessToken = null;
        return false;
      }
      keep(await response.json());
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function signOut() {
  clearTimeout(refreshTimer);
  accessToken = null;
  try {
    await fetch("/auth/logout", { method: "POST", headers: CSRF_HEADERS, credentials: "same-origin" });
  } catch {
    // the session ends here whatever the server heard; its refresh token expires on its own
  }
}

export function signedIn() {
  return accessToken !== null;
}
