import { AgentcapError } from "../kernel/errors.ts";

/**
 * An authorized HTTP exchange failed for a reason outside agentcap's control:
 * the name did not resolve, the connection or TLS handshake failed, or the
 * server sent something unreadable. The message names the URL and the
 * address connected to; the underlying error is the `cause`.
 */
export class HttpRequestFailed extends AgentcapError {
  override readonly code = "ERR_HTTP_REQUEST_FAILED";
}
