/**
 * A fake Barracuda Token Service on 127.0.0.1: `POST /token` with `grant_type=client_credentials`,
 * a `scope` of the documented ones separated by spaces, and the client's id and secret either in an
 * HTTP Basic header (plain `base64(id:secret)`, as `curl -u` sends it) or in the form body, never
 * both. It answers the document's `{access_token, expires_in, token_type, scope}`, `expires_in` as
 * the number 3600 or, by option, as the String the parameter table documents; no refresh token.
 * Anything else gets an RFC 6749 section 5.2 error (400, or 401 for client authentication).
 *
 * It is an `AuthServer` narrowed to that grant, checking the documented scopes and answering in the
 * document's shape.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as AuthServer from "./AuthServer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `"bts-client"`. */
  readonly clientId?: string
  /** Default `"bts-secret"`. */
  readonly clientSecret?: string
  /** Default 3600: "an access token is valid for 1 hour". */
  readonly lifetimeSeconds?: number
  /** How `expires_in` is written: the sample's number (default) or the String the parameter table documents. */
  readonly expiresIn?: "number" | "string"
  /** The `scope` answered whatever was asked, as a service that grants more or less than requested. */
  readonly grantedScope?: string
  /** Scopes the service has added since its document, accepted besides the documented three. */
  readonly extraScopes?: ReadonlyArray<string>
}

/**
 * The fake: `tokenUrl` is `POST /token`, `resourceUrl` a protected `GET` accepting the issued tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface BarracudaFake extends Omit<AuthServer.AuthServer, "issueCode" | "revokeRefreshToken"> {}

// written from the document, not imported from the provider module, so that a typo there fails a test
const documentedScopes = ["ess:account:read", "forensics:account:read", "forensics:account:write"]

const check =
  (supported: ReadonlyArray<string>) =>
  ({ authMethod, form }: AuthServer.TokenRequest): AuthServer.Refusal | undefined => {
    const requested = (form.scope ?? "").split(" ").filter((s) => s !== "")
    if (requested.length === 0) return { error: "invalid_request", description: "scope is required" }
    const unknown = requested.filter((s) => !supported.includes(s))
    if (unknown.length > 0) return { error: "invalid_scope", description: `unknown scope: ${unknown.join(" ")}` }
    // RFC 6749 section 2.3.1: one method per request, though the document shows both; the AuthServer
    // refuses a Basic header with a client_secret already, this refuses one with a client_id too
    return authMethod === "client_secret_basic" && form.client_id !== undefined
      ? { error: "invalid_request", description: "client credentials both in the Basic header and in the body" }
      : undefined
  }

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BarracudaFake, never, Scope.Scope> =>
  AuthServer.make({
    clients: [{
      clientId: options.clientId ?? "bts-client",
      clientSecret: options.clientSecret ?? "bts-secret",
      basicEncoding: "plain"
    }],
    users: [],
    lifetimeSeconds: options.lifetimeSeconds ?? 3600,
    expiresIn: options.expiresIn ?? "number",
    path: "/token",
    grantTypes: ["client_credentials"],
    check: check([...documentedScopes, ...options.extraScopes ?? []]),
    // the document's four fields, in its order
    shapeToken: (token) => ({
      access_token: token.access_token,
      expires_in: token.expires_in,
      token_type: token.token_type,
      scope: options.grantedScope ?? token.scope
    })
  })
