// JSON over fetch with the session cookie. Errors keep the server's {code, message} shape.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** The route does not exist on this server (an older or smaller build). */
  get unavailable() {
    return (this.status === 404 && this.code === 'not_found' && this.message === 'no such route')
      || this.status === 405;
  }
}

export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network', `the server could not be reached (${err.message})`);
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) {
    // {"error": {"code", "message"}}; Google-shaped errors carry a numeric code and a reason.
    const fields = json?.error ?? {};
    const code = typeof fields.code === 'string' ? fields.code : (fields.errors?.[0]?.reason ?? 'http_error');
    const message = fields.message ?? `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, String(code), String(message));
  }
  return json;
}

/** A sentence for a failed call to `feature`: plain about missing routes and missing rights. */
export function explain(err, feature) {
  if (err instanceof ApiError) {
    if (err.unavailable) return `${feature} is not available on this server yet.`;
    if (err.status === 401) return `${feature}: your session has ended; sign in again.`;
    if (err.status === 403) return `${feature}: ${err.message}`;
    return `${feature} failed: ${err.message}`;
  }
  return `${feature} failed: ${err.message}`;
}
