/**
 * The token service: a valid token now, refreshed in the background before it expires, retried with
 * backoff when the provider fails, and every failure a tagged error.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import type * as Grant from "./Grant.js"
import * as Engine from "./internal/engine/engine.js"
import * as Key from "./internal/engine/key.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import type * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import type { TokenState } from "./TokenState.js"
import * as TokenStore from "./TokenStore.js"

/**
 * A source of valid tokens for one credential.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenSource {
  /** A valid token now. Waits for the network only when there is no valid token at all. */
  readonly get: Effect.Effect<AccessToken, TokenError>
  /** A token that stays valid at least this long; refreshes first when the current one expires sooner. */
  readonly getValidFor: (duration: Duration.DurationInput) => Effect.Effect<AccessToken, TokenError>
  /** Requests a new token now (joining a request already under way). */
  readonly refresh: Effect.Effect<AccessToken, TokenError>
  /** The token `get` would hand out now without waiting, if any: for code outside Effect (the Promise facade). */
  readonly unsafeCurrent: () => AccessToken | undefined
  /**
   * The API refused the token (HTTP 401): drop it and get another. Given the refused token, a call
   * about a token already replaced does nothing, so many concurrent 401s cause one refresh.
   */
  readonly invalidate: (token?: AccessToken) => Effect.Effect<void>
  /** The current state first, then every change. */
  readonly changes: Stream.Stream<TokenState>
  /** The current state. */
  readonly state: Effect.Effect<TokenState>
  /** The token endpoint's name in logs and metrics. */
  readonly provider: string
  /** The credential's identity (a hash, never a secret), where it has one: what a token exchange is keyed by. */
  readonly identity?: string | undefined
  /**
   * Stops the background refresh for good once a request under way has finished (its rotated refresh
   * token is kept): for shutdown work such as revoking the final tokens. Closing the scope stops it too.
   */
  readonly stop: Effect.Effect<void>
}

/**
 * Options of a token source: the endpoint, the grant, and optionally the refresh policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends TokenEndpoint.Options {
  readonly grant: Grant.Grant
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  /**
   * Whose token this is (a user id, a tenant), part of its key in a `TokenStore`. With a store, a
   * refresh-token, authorization-code or device-code grant needs it (or a `storeKey`): the library
   * cannot tell which user such a grant acts for, and users of one client must never share a token.
   */
  readonly subject?: string | undefined
  /** The key of this credential in the `TokenStore`; `TokenStore.key` (the credential's identity) by default. */
  readonly storeKey?: string | undefined
}

/**
 * Options of a source whose token is kept in the `TokenStore` provided to `make` (which then requires
 * it): the token survives a restart and is shared with other processes.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoredOptions extends Options {
  readonly store: true
}

/**
 * Builds a token source and performs the first fetch. A permanent error (wrong secret, unknown grant,
 * bad scope) fails `make`, so a daemon with a broken configuration stops at start; a transient one
 * does not: the source starts in `Retrying` and heals by itself. Closing the scope stops its fiber.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options | StoredOptions>(
  options: O
): Effect.Effect<TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope | TokenStore.StoreOf<O>> =>
  Effect.gen(function*() {
    const store = yield* TokenStore.asked(options)
    if (store !== undefined) {
      const invalid = Key.check(options, options.storeKey, { keyOption: "storeKey", sharedBy: "with a TokenStore" })
      if (invalid !== undefined) return yield* invalid
    }
    // one key: without a store nothing is shared, and it need not name the credential
    const key = options.storeKey ?? (store === undefined ? "source" : undefined)
    const policy = options.policy ?? RefreshPolicy.defaults
    const engine = yield* Engine.make({ policy, cap: 1, idleMillis: Infinity, store, single: true })
    const entry = yield* engine.add(options, key, options.storeKey === undefined)
    // a device flow waits for a person: `make` returns at once, and `changes` shows them the code
    if (options.grant._tag === "DeviceCode") yield* engine.start(entry)
    // a transient error leaves the source `Retrying`, to heal by itself; a permanent one fails `make`
    else yield* Effect.catchIf(engine.refresh(entry), (error) => error.transient, () => Effect.void)
    return { ...engine.view(entry), identity: entry.stored?.identity ?? Key.identity(options) }
  }).pipe(Effect.withSpan("TokenSource.make"))

/**
 * A layer that provides a token source under a tag of the user's (a program often holds several).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I, const O extends Options | StoredOptions>(
  tag: Context.Tag<I, TokenSource>,
  options: O
): Layer.Layer<I, TokenError, HttpClient.HttpClient | TokenStore.StoreOf<O>> => Layer.scoped(tag, make(options))

/**
 * A layer whose options come from `Config`, with secrets as `Config.redacted`. Missing or invalid
 * configuration fails with a `ConfigError` naming the variable, before any request is sent.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I, O extends Options | StoredOptions>(
  tag: Context.Tag<I, TokenSource>,
  config: Config.Config<O>
): Layer.Layer<I, TokenError | ConfigError.ConfigError, HttpClient.HttpClient | TokenStore.StoreOf<O>> =>
  Layer.scoped(tag, Effect.flatMap(config, (options) => make(options)))
