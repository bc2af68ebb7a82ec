/**
 * A fake barapi.cloud token endpoint on 127.0.0.1: `POST /oauth/token` with `grant_type=password`,
 * `client_id` and `client_secret` in the form body, `username`, `password` and `scope` (which may be
 * empty, as in the document's example, but must be there). It answers the document's four fields,
 * `token_type`, `expires_in` (31622400: 366 days), `access_token` and `refresh_token`, and takes the
 * refresh token back with `grant_type=refresh_token` (RFC 6749 section 6; the document shows no
 * refresh request). Any other grant, a missing field or wrong credentials get an RFC 6749 section
 * 5.2 error (400, or 401 for client authentication).
 *
 * It is an `AuthServer` narrowed to those two grants and to `client_secret_post`, answering in the
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
  /** Default `"barapi-client"`. */
  readonly clientId?: string
  /** Default `"barapi-secret"`. */
  readonly clientSecret?: string
  /** Default `"john@doe.com"`, the document's example. */
  readonly username?: string
  /** Default `"mypassword123"`, the document's example. */
  readonly password?: string
  /** Default 31622400 (366 days), the document's `expires_in`. */
  readonly lifetimeSeconds?: number
  /** Default true: a refresh issues a new refresh token and revokes the one presented. */
  readonly rotateRefreshTokens?: boolean
  /** A `scope` field added to every token response, as a server that grants other scopes than asked. */
  readonly grantedScope?: string
}

/**
 * The fake: `tokenUrl` is `POST /oauth/token`, `resourceUrl` a protected `GET` accepting the issued
 * tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface BarapiCloudFake extends Omit<AuthServer.AuthServer, "issueCode"> {}

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BarapiCloudFake, never, Scope.Scope> =>
  AuthServer.make({
    clients: [{
      clientId: options.clientId ?? "barapi-client",
      clientSecret: options.clientSecret ?? "barapi-secret",
      authMethods: ["client_secret_post"]
    }],
    users: [{ username: options.username ?? "john@doe.com", password: options.password ?? "mypassword123" }],
    lifetimeSeconds: options.lifetimeSeconds ?? 31_622_400,
    rotateRefreshTokens: options.rotateRefreshTokens ?? true,
    path: "/oauth/token",
    grantTypes: ["password", "refresh_token"],
    // the document's example sends `scope: ""`: the field is expected even when empty
    check: ({ form, grantType }) =>
      grantType === "password" && form.scope === undefined
        ? { error: "invalid_request", description: "scope is required (it may be empty)" }
        : undefined,
    // the document's four fields in its order, and no `scope`
    shapeToken: (token) => ({
      token_type: token.token_type,
      expires_in: token.expires_in,
      access_token: token.access_token,
      refresh_token: token.refresh_token,
      ...(options.grantedScope === undefined ? {} : { scope: options.grantedScope })
    })
  })
