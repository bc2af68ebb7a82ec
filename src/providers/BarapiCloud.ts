/**
 * barapi.cloud: the `password` grant at `https://barapi.cloud/oauth/token`, with the client's
 * `client_id` and `client_secret` in the form body. Tokens live 366 days (`expires_in: 31622400`),
 * longer than one Node.js timer can wait; the source still refreshes them on time, with the refresh
 * token (RFC 6749 section 6 at the same endpoint, which the document does not show), and runs the
 * password grant again when the refresh token is refused.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as ClientAuth from "../ClientAuth.js"
import * as Grant from "../Grant.js"
import type * as RefreshPolicy from "../RefreshPolicy.js"
import type { TokenError } from "../TokenError.js"
import * as TokenSource from "../TokenSource.js"
import * as internal from "./internal/config.js"

/**
 * The documented token endpoint.
 *
 * @since 0.1.0
 * @category constants
 */
export const tokenUrl = "https://barapi.cloud/oauth/token"

/**
 * Options of a barapi.cloud token source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** "Your provided Client ID". */
  readonly clientId: string
  /**
   * Sent although the document's parameter table omits it: its example sends it. A `Redacted`, or an
   * effect that reads it (`Config.redacted` over a mounted file), read again after a refusal.
   */
  readonly clientSecret: ClientAuth.Secret
  readonly username: string
  readonly password: Redacted.Redacted<string>
  /** Scopes joined with a space; none by default, which sends `scope=` as the document's example does. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /** Another token endpoint (a proxy, a test server). */
  readonly url?: string | URL | undefined
  /** `post` by default (`client_id` and `client_secret` in the form body, as documented); `basic` is HTTP Basic. */
  readonly clientAuth?: "basic" | "post" | undefined
  /** With `clientAuth: "basic"`: `form` by default (RFC 6749 section 2.3.1). */
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  /** How long one token request may take; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The name in logs, spans and metrics; `barapi.cloud` by default. */
  readonly provider?: string | undefined
}

/**
 * A token source for barapi.cloud; fails with `InvalidClient` when the client credentials are
 * refused and `InvalidGrant` when the username or password is.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope> => {
  const scopes = options.scopes ?? []
  return TokenSource.make({
    url: options.url ?? tokenUrl,
    clientAuth: internal.clientAuth(options, { method: "post", encoding: "form" }),
    grant: Grant.password({
      username: options.username,
      password: options.password,
      scopes,
      // `Grant.password` leaves an empty scope out; the document's example sends `scope: ""`, so
      // the field goes on the wire, empty
      extraParams: scopes.length === 0 ? { scope: "" } : {}
    }),
    policy: options.policy,
    timeout: options.timeout,
    provider: options.provider ?? "barapi.cloud"
  })
}

/**
 * A layer providing a barapi.cloud token source under a tag of the user's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Options
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, make(options))

/**
 * The options from configuration, by default from the environment: `BARAPI_CLIENT_ID`,
 * `BARAPI_CLIENT_SECRET`, `BARAPI_USERNAME`, `BARAPI_PASSWORD`, and optionally `BARAPI_SCOPES`
 * (space- or comma-separated), `BARAPI_TOKEN_URL`, `BARAPI_CLIENT_AUTH` (`post` or `basic`) and
 * `BARAPI_BASIC_ENCODING` (`form` or `plain`). Another prefix reads other variables:
 * `config("BARAPI_STAGING")` reads `BARAPI_STAGING_CLIENT_ID` and so on.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BARAPI"): Config.Config<Options> =>
  Config.all({
    client: internal.clientConfig(prefix),
    username: Config.nonEmptyString(internal.envName(prefix, "USERNAME")),
    password: Config.redacted(Config.nonEmptyString(internal.envName(prefix, "PASSWORD"))),
    scopes: internal.optional(internal.scopeList(internal.envName(prefix, "SCOPES"))),
    url: internal.optional(Config.url(internal.envName(prefix, "TOKEN_URL")))
  }).pipe(Config.map(({ client, ...rest }): Options => ({ ...client, ...rest })))

/**
 * A layer whose options come from `Config` (the environment under `BARAPI_` by default). Missing or
 * invalid configuration fails with a `ConfigError` naming the variable, before any request is sent.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<I, TokenError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(tag, Effect.flatMap(Config.unwrap(options), make))
