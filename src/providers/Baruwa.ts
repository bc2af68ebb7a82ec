/**
 * Baruwa, the self-hosted mail security server: its API authorizes requests with OAuth 2.0 tokens
 * from `/api/v1/oauth/token` on the user's own server. The application's `client_id` and
 * `client_secret` obtain a token (`client_credentials`), and the refresh token that comes with it
 * renews it (`grant_type=refresh_token` at the same endpoint); when the refresh token is refused,
 * the source runs `client_credentials` again.
 *
 * API calls send `Authorization: {tokenType} {accessToken}` with the type from the response:
 * `AccessToken.authorizationHeader`. The API is in beta and "may make some large changes", so
 * responses are decoded leniently and their unknown fields kept (`AccessToken.extra`).
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
import type * as Scope from "effect/Scope"
import type * as ClientAuth from "../ClientAuth.js"
import * as Grant from "../Grant.js"
import { trimTrailingSlashes } from "../internal/url.js"
import type * as RefreshPolicy from "../RefreshPolicy.js"
import type { TokenError } from "../TokenError.js"
import * as TokenSource from "../TokenSource.js"
import * as internal from "./internal/config.js"

/**
 * The token endpoint's path on a Baruwa server.
 *
 * @since 0.1.0
 * @category constants
 */
export const tokenPath = "/api/v1/oauth/token"

/**
 * The token endpoint of the Baruwa server at `baseUrl` (which may itself have a path, as a server
 * behind a reverse proxy at `https://example.com/baruwa`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const tokenUrl = (baseUrl: string | URL, path: string = tokenPath): string =>
  `${trimTrailingSlashes(String(baseUrl))}/${path.replace(/^\/+/, "")}`

/**
 * Options of a Baruwa token source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The Baruwa server, `https://mail.example.com`; the token endpoint is `/api/v1/oauth/token` below it. */
  readonly baseUrl: string | URL
  /** The application's `client_id`, from "API & Applications" in the web interface. */
  readonly clientId: string
  /**
   * A `Redacted`, or an effect that reads it (`Config.redacted` over a mounted file): read again for
   * the attempt after the server refuses it, so a rotated secret needs no restart.
   */
  readonly clientSecret: ClientAuth.Secret
  /** Scopes to request, joined with a space; none by default (the document names none). */
  readonly scopes?: ReadonlyArray<string> | undefined
  /**
   * `basic` by default (HTTP Basic, RFC 6749 section 2.3.1); `post` sends `client_id` and
   * `client_secret` in the form body. The document says only "authenticate with your application
   * credentials": this is an assumption, and this setting corrects it.
   */
  readonly clientAuth?: "basic" | "post" | undefined
  /** `form` by default: id and secret form-encoded before base64, as RFC 6749 section 2.3.1 says. */
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
  /** The token endpoint's path, should a later version of the beta API move it. */
  readonly tokenPath?: string | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  /** How long one token request may take; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The name in logs, spans and metrics; `baruwa` by default. */
  readonly provider?: string | undefined
}

/**
 * A token source for a Baruwa server; fails with `InvalidClient` when the credentials are refused.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope> =>
  TokenSource.make({
    url: tokenUrl(options.baseUrl, options.tokenPath),
    clientAuth: internal.clientAuth(options, { method: "basic", encoding: "form" }),
    // the source keeps the refresh token of each response and refreshes with it (RFC 6749 section 6),
    // falling back to this grant, which needs no user, when the refresh token is refused
    grant: Grant.clientCredentials({ scopes: options.scopes }),
    policy: options.policy,
    timeout: options.timeout,
    provider: options.provider ?? "baruwa"
  })

/**
 * A layer providing a Baruwa token source under a tag of the user's (one per server or application).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Options
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, make(options))

/**
 * The options from configuration, by default from the environment: `BARUWA_BASE_URL`,
 * `BARUWA_CLIENT_ID`, `BARUWA_CLIENT_SECRET`, and optionally `BARUWA_SCOPES` (space- or
 * comma-separated), `BARUWA_TOKEN_PATH`, `BARUWA_CLIENT_AUTH` (`basic` or `post`) and
 * `BARUWA_BASIC_ENCODING` (`form` or `plain`). Another prefix reads other variables:
 * `config("MAIL")` reads `MAIL_BASE_URL` and so on.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BARUWA"): Config.Config<Options> =>
  Config.all({
    baseUrl: Config.url(internal.envName(prefix, "BASE_URL")),
    client: internal.clientConfig(prefix),
    scopes: internal.optional(internal.scopeList(internal.envName(prefix, "SCOPES"))),
    tokenPath: internal.optional(Config.nonEmptyString(internal.envName(prefix, "TOKEN_PATH")))
  }).pipe(Config.map(({ client, ...rest }): Options => ({ ...client, ...rest })))

/**
 * A layer whose options come from `Config` (the environment under `BARUWA_` by default). Missing or
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
