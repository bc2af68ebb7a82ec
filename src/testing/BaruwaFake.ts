/**
 * A fake Baruwa token endpoint on 127.0.0.1: `POST /api/v1/oauth/token` with
 * `grant_type=client_credentials`, the application's credentials in an HTTP Basic header
 * (form-encoded per RFC 6749 section 2.3.1 by default) or in the form body, and
 * `grant_type=refresh_token` with the refresh token every response carries ("Bearer and Refresh
 * access tokens"). Any other grant, a missing field or wrong credentials get an RFC 6749 section 5.2
 * error (400, or 401 for client authentication).
 *
 * It is an `AuthServer` narrowed to those two grants, whose token responses can carry the fields a
 * beta API might add.
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
  /** Default `"baruwa-app"`. */
  readonly clientId?: string
  /** Default `"baruwa-secret"`. */
  readonly clientSecret?: string
  /** How a Basic header must encode id and secret: `"form"` (RFC 6749 section 2.3.1, the default), `"plain"` or `"either"`. */
  readonly basicEncoding?: "form" | "plain" | "either"
  /** Default 3600 (the document states none). */
  readonly lifetimeSeconds?: number
  /** Default true: a refresh issues a new refresh token and revokes the one presented. */
  readonly rotateRefreshTokens?: boolean
  /** The `scope` answered whatever was asked, as a server that grants more or less than requested. */
  readonly grantedScope?: string
  /** Fields beyond RFC 6749 added to every token response, as a changing beta API might send. */
  readonly extraFields?: Readonly<Record<string, unknown>>
}

/**
 * The fake: `url` is the server's base URL, `tokenUrl` its token endpoint, `resourceUrl` a protected
 * `GET` accepting the issued tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface BaruwaFake extends Omit<AuthServer.AuthServer, "issueCode"> {}

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BaruwaFake, never, Scope.Scope> =>
  AuthServer.make({
    clients: [{
      clientId: options.clientId ?? "baruwa-app",
      clientSecret: options.clientSecret ?? "baruwa-secret",
      authMethods: ["client_secret_basic", "client_secret_post"],
      basicEncoding: options.basicEncoding ?? "form"
    }],
    users: [],
    lifetimeSeconds: options.lifetimeSeconds ?? 3600,
    // every Baruwa response carries a refresh token, the client_credentials one included
    refreshTokensForClientCredentials: true,
    rotateRefreshTokens: options.rotateRefreshTokens ?? true,
    path: "/api/v1/oauth/token",
    grantTypes: ["client_credentials", "refresh_token"],
    shapeToken: (token) => ({
      ...options.extraFields,
      ...token,
      ...(options.grantedScope === undefined ? {} : { scope: options.grantedScope })
    })
  })
