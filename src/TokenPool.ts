/**
 * Many tokens in one process: a token per tenant, per provider, per scope, built on first use, shared
 * by every caller of the same key, refreshed before it expires, and dropped after an idle time. A pool
 * is the refresh engine with many keys (a `TokenSource` is the engine with one); a few request fibers
 * per token endpoint send its requests, so tokens issued together never flood their provider.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import type * as Grant from "./Grant.js"
import { dynamic } from "./internal/dynamicEffect.js"
import * as Engine from "./internal/engine/engine.js"
import type { Entry } from "./internal/engine/entry.js"
import * as Key from "./internal/engine/key.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import type * as TokenEndpoint from "./TokenEndpoint.js"
import type { InvalidConfiguration, TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"
import type { TokenState } from "./TokenState.js"
import * as TokenStore from "./TokenStore.js"

/**
 * One credential in the pool. Its key is `key` when given, else its identity: a hash of the endpoint,
 * client id, authentication method, grant type, username, `subject`, scopes and extra parameters
 * (never a secret), the one a `TokenSource` uses in a `TokenStore`. A refresh-token or
 * authorization-code grant needs a `subject` or a `key`, so users of one client never share a token.
 * Endpoint options outside the identity (timeout, headers) are those first seen for the key; a client
 * secret given as a new value replaces the one held.
 *
 * @since 0.1.0
 * @category models
 */
export interface Credential extends TokenEndpoint.Options {
  readonly grant: Grant.Grant
  /** The key of this credential in the pool; derived from the credential by default. */
  readonly key?: string | undefined
  /** Whose token this is (a user id, a tenant); part of the derived key, and not empty. */
  readonly subject?: string | undefined
}

/**
 * Options of a pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How many token requests may be under way at once to one token endpoint (by URL), across every
   * key of the pool; 4 by default. Callers waiting for a token go before proactive refreshes.
   */
  readonly maxConcurrentPerEndpoint?: number | undefined
  /**
   * A token nobody asked for this long is dropped; 30 minutes by default, `Infinity` keeps every token.
   * A credential that needs a user keeps its latest refresh token, unrefreshed until asked for again.
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
}

/**
 * Options of a pool whose tokens are kept in the `TokenStore` provided to `make` (which then requires
 * it): they survive a restart and are shared with other processes.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoredOptions extends Options {
  readonly store: true
}

/**
 * What the pool holds and does now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Keys held. */
  readonly size: number
  /** Keys with a refresh, retry or idle check scheduled. */
  readonly scheduled: number
  /** Keys waiting for a request slot of their endpoint. */
  readonly queued: number
  /** Token requests under way. */
  readonly inFlight: number
}

/**
 * A pool of tokens by key.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenPool {
  /**
   * A valid token for the credential now; waits for the network only when it holds no valid token. A
   * credential object used again is found at once, a new one after hashing its key (microseconds).
   */
  readonly get: (credential: Credential) => Effect.Effect<AccessToken, TokenError>
  /** A token that stays valid at least this long; refreshes first when the current one expires sooner. */
  readonly getValidFor: (
    credential: Credential,
    duration: Duration.DurationInput
  ) => Effect.Effect<AccessToken, TokenError>
  /** Requests a new token now (joining a request already under way). */
  readonly refresh: (credential: Credential) => Effect.Effect<AccessToken, TokenError>
  /** The API refused the token: drop it and get another; a token already replaced is ignored. */
  readonly invalidate: (credential: Credential, token?: AccessToken) => Effect.Effect<void>
  /** Drops the key now; its `changes` streams end. */
  readonly remove: (credential: Credential) => Effect.Effect<void>
  /** The key as a `TokenSource`, resolved once (the cheapest `get`); it does not keep the key from idling. */
  readonly source: (credential: Credential) => Effect.Effect<TokenSource, InvalidConfiguration>
  /** The key's state first, then every change, for as long as the stream runs (it keeps the key held). */
  readonly changes: (credential: Credential) => Stream.Stream<TokenState, InvalidConfiguration>
  /** Keys held. */
  readonly size: Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
}

const defaultConcurrency = 4
const defaultIdleTimeToLive = Duration.minutes(30)

/**
 * Builds a pool. Tokens are fetched on first `get`; closing the scope stops every refresh and
 * interrupts callers still waiting.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const O extends Options | StoredOptions = Options>(
  options: O = {} as O
): Effect.Effect<TokenPool, InvalidConfiguration, HttpClient.HttpClient | Scope.Scope | TokenStore.StoreOf<O>> =>
  Effect.gen(function*() {
    const idle = Duration.decode(options.idleTimeToLive ?? defaultIdleTimeToLive)
    const engine = yield* Engine.make({
      policy: options.policy ?? RefreshPolicy.defaults,
      cap: options.maxConcurrentPerEndpoint ?? defaultConcurrency,
      idleMillis: Duration.isFinite(idle) ? Duration.toMillis(idle) : Infinity,
      store: yield* TokenStore.asked(options),
      single: false
    })
    // a credential object used again finds its record without building and hashing its key
    const byCredential = new WeakMap<Credential, Entry>()

    // the record of a credential if the pool holds one
    const find = (credential: Credential): Entry | undefined => {
      const known = byCredential.get(credential)
      if (known !== undefined && !known.released) return known
      const key = Key.keyOf(credential, credential.key)
      const entry = key === undefined ? undefined : engine.lookup(key)
      if (entry !== undefined) {
        // a credential object not seen before may bring a rotated secret
        engine.unsafeRebind(entry, credential)
        byCredential.set(credential, entry)
      }
      return entry
    }

    const resolve = (credential: Credential): Effect.Effect<Entry, InvalidConfiguration> =>
      Effect.suspend(() => {
        const held = find(credential)
        if (held !== undefined) return Effect.succeed(held)
        const invalid = Key.check(credential, credential.key, { keyOption: "key", sharedBy: "in a TokenPool" })
        if (invalid !== undefined) return Effect.fail(invalid)
        const added = engine.add(credential, credential.key)
        return Effect.tap(added, (entry) => void byCredential.set(credential, entry))
      })

    // a valid token is one `Exit` read against the pool's monotonic clock (see `Engine.view`)
    const get = (credential: Credential): Effect.Effect<AccessToken, TokenError> =>
      dynamic(() => {
        const now = engine.now()
        const entry = find(credential)
        if (entry === undefined) return Effect.flatMap(resolve(credential), (fresh) => engine.get(fresh, now))
        const token = engine.unsafeUsable(entry, now)
        return token !== undefined ? Exit.succeed(token) : engine.get(entry, now)
      })

    const source = (credential: Credential): Effect.Effect<TokenSource, InvalidConfiguration> =>
      // resolved once already: the credential cannot turn invalid
      Effect.map(resolve(credential), (entry) => engine.view(entry, Effect.orDie(resolve(credential))))

    const withHeld = (credential: Credential, f: (entry: Entry) => Effect.Effect<void>) =>
      Effect.suspend(() => {
        const entry = find(credential)
        return entry === undefined ? Effect.void : f(entry)
      })

    return {
      get,
      getValidFor: (credential, duration) =>
        Effect.flatMap(resolve(credential), (entry) => engine.getValidFor(entry, duration)),
      refresh: (credential) => Effect.flatMap(resolve(credential), engine.refresh),
      invalidate: (credential, token) => withHeld(credential, (entry) => engine.invalidate(entry, token)),
      remove: (credential) => withHeld(credential, engine.remove),
      source,
      changes: (credential) => engine.changes(resolve(credential)),
      size: Effect.map(engine.stats, (stats) => stats.size),
      stats: engine.stats
    } satisfies TokenPool
  }).pipe(Effect.withSpan("TokenPool.make"))

/**
 * A layer that provides a pool under a tag of the user's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I, const O extends Options | StoredOptions = Options>(
  tag: Context.Tag<I, TokenPool>,
  options: O = {} as O
): Layer.Layer<I, InvalidConfiguration, HttpClient.HttpClient | TokenStore.StoreOf<O>> =>
  Layer.scoped(tag, make(options))
