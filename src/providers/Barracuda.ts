/**
 * Barracuda Token Service (BTS): `client_credentials` tokens for Barracuda's APIs, per region. A token
 * is valid for 1 hour and comes without a refresh token, so the source runs the grant again before
 * each token expires.
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
import type * as EffectScope from "effect/Scope"
import type * as ClientAuth from "../ClientAuth.js"
import * as Grant from "../Grant.js"
import type * as RefreshPolicy from "../RefreshPolicy.js"
import type { TokenError } from "../TokenError.js"
import * as TokenSource from "../TokenSource.js"
import * as internal from "./internal/config.js"
import { checkScopes, isScopeToken } from "./internal/scopes.js"

/**
 * The scopes the service documents ("currently supported").
 *
 * @since 0.1.0
 * @category models
 */
export type KnownScope = "ess:account:read" | "forensics:account:read" | "forensics:account:write"

/**
 * A scope to request: one the service documents (autocompleted), or any other scope string, so a
 * permission Barracuda adds later needs no new release of tokenwarden.
 *
 * @since 0.1.0
 * @category models
 */
export type Scope = KnownScope | (string & {})

/**
 * Every documented scope.
 *
 * @since 0.1.0
 * @category constants
 */
export const scopes: ReadonlyArray<KnownScope> = [
  "ess:account:read",
  "forensics:account:read",
  "forensics:account:write"
]

/**
 * Whether a string is one of the documented scopes.
 *
 * @since 0.1.0
 * @category guards
 */
export const isKnownScope = (u: unknown): u is KnownScope => typeof u === "string" && scopes.includes(u as KnownScope)

/**
 * The region whose token service issues the token.
 *
 * @since 0.1.0
 * @category models
 */
export type Region = "US" | "UK"

/**
 * The documented token endpoint of each region.
 *
 * @since 0.1.0
 * @category constants
 */
export const tokenUrls: { readonly [R in Region]: string } = {
  US: "https://login.bts.barracudanetworks.com/token",
  UK: "https://uk.login.bts.barracudanetworks.com/token"
}

/**
 * Options of a Barracuda token source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The application's Client ID from the Barracuda Token Service. */
  readonly clientId: string
  /**
   * A `Redacted`, or an effect that reads it (`Config.redacted` over a mounted file): read again for
   * the attempt after the server refuses it, so a rotated secret needs no restart.
   */
  readonly clientSecret: ClientAuth.Secret
  /**
   * The permissions to request; the service requires at least one. They are joined with a space. A scope
   * the document does not list is sent as given, with one warning when the source is built.
   */
  readonly scopes: ReadonlyArray<Scope>
  /** `US` by default. */
  readonly region?: Region | undefined
  /** A token endpoint other than the region's (a proxy, a test server); it takes precedence over `region`. */
  readonly url?: string | URL | undefined
  /**
   * `basic` by default, as the documented `curl -u` request does; `post` sends `client_id` and
   * `client_secret` in the form body, which the parameter table also lists.
   */
  readonly clientAuth?: "basic" | "post" | undefined
  /** `plain` by default: `curl -u` sends `base64(id:secret)` without form-encoding either part first. */
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  /** How long one token request may take; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The name in logs, spans and metrics; `barracuda-us` or `barracuda-uk` by default. */
  readonly provider?: string | undefined
}

/**
 * A token source for the Barracuda Token Service; fails with `InvalidConfiguration` when no scope is
 * given (the service requires one), and with `InvalidClient` when the credentials are refused.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | EffectScope.Scope> =>
  Effect.gen(function*() {
    const region = options.region ?? "US"
    const provider = options.provider ?? `barracuda-${region.toLowerCase()}`
    // refused here rather than by the server, so a daemon with an empty scope list stops at start
    const requested = yield* checkScopes({
      name: "Barracuda",
      provider,
      scopes: options.scopes,
      known: scopes,
      isValid: isScopeToken,
      required: true
    })
    return yield* TokenSource.make({
      url: options.url ?? tokenUrls[region],
      clientAuth: internal.clientAuth(options, { method: "basic", encoding: "plain" }),
      // "format your request with a space between scope names"
      grant: Grant.clientCredentials({ scopes: requested }),
      scopeSeparator: " ",
      policy: options.policy,
      timeout: options.timeout,
      provider
    })
  })

/**
 * A layer providing a Barracuda token source under a tag of the user's (one per region or application).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Options
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, make(options))

/**
 * The options from configuration, by default from the environment: `BARRACUDA_CLIENT_ID`,
 * `BARRACUDA_CLIENT_SECRET`, `BARRACUDA_SCOPES` (space- or comma-separated; scopes the document does
 * not list are accepted, with a warning when the source is built),
 * and optionally `BARRACUDA_REGION` (`US` or `UK`), `BARRACUDA_TOKEN_URL`, `BARRACUDA_CLIENT_AUTH`
 * (`basic` or `post`) and `BARRACUDA_BASIC_ENCODING` (`plain` or `form`). Another prefix reads
 * other variables: `config("EU_BTS")` reads `EU_BTS_CLIENT_ID` and so on.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BARRACUDA"): Config.Config<Options> =>
  Config.all({
    client: internal.clientConfig(prefix),
    scopes: internal.scopeList(internal.envName(prefix, "SCOPES"), { nonEmpty: true }),
    region: Config.literal("US", "UK")(internal.envName(prefix, "REGION")).pipe(Config.withDefault("US" as const)),
    url: internal.optional(Config.url(internal.envName(prefix, "TOKEN_URL")))
  }).pipe(Config.map(({ client, ...rest }): Options => ({ ...client, ...rest })))

/**
 * A layer whose options come from `Config` (the environment under `BARRACUDA_` by default). Missing
 * or invalid configuration fails with a `ConfigError` naming the variable, before any request is sent.
 *
 * @example
 * ```ts
 * import { Context } from "effect"
 * import { Barracuda, TokenSource } from "tokenwarden"
 *
 * class UkToken extends Context.Tag("app/UkToken")<UkToken, TokenSource.TokenSource>() {}
 *
 * // EU_BTS_CLIENT_ID, EU_BTS_CLIENT_SECRET, EU_BTS_SCOPES, EU_BTS_REGION=UK
 * const UkTokenLive = Barracuda.layerConfig(UkToken, Barracuda.config("EU_BTS"))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<I, TokenError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(tag, Effect.flatMap(Config.unwrap(options), make))
