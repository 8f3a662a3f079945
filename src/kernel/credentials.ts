/**
 * Where a resource gets the credential it attaches to an outgoing request:
 * the user's own secret for that origin (a vault in the token store), or a
 * token exchanged for the caller's at the identity provider. The resource
 * asks at the moment it sends, after the request was authorized, and puts
 * the answer on the wire only: the model, tool code, audit events and error
 * messages never hold it.
 */
import type { Capability } from "./capability.js";

/** Credentials per principal and origin, looked up when a request is sent. */
export interface CredentialSource {
  /**
   * The Authorization header value to send to `origin` (scheme, host and
   * port, such as "https://api.example.com") for a request made with `cap`
   * (its root's principal is the user), or null to send none. Rejects when
   * the principal is revoked, or when a credential exists but cannot be
   * read (VaultKeyMismatch, VaultKeyMissing); never with the secret in a
   * message.
   */
  authorization(cap: Capability, origin: string, signal?: AbortSignal): Promise<string | null>;
}
