/**
 * The token service: a valid token now, refreshed in the background before it expires, retried with
 * backoff when the provider fails, and every failure a tagged error.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { AccessToken } from "./AccessToken.js"
import * as DeviceFlow from "./DeviceFlow.js"
import * as Grant from "./Grant.js"
import { dynamic } from "./internal/dynamicEffect.js"
import * as Key from "./internal/engine/key.js"
import { sleepUntil } from "./internal/sleepUntil.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import { ReauthorizationRequired } from "./TokenError.js"
import * as TokenMetrics from "./TokenMetrics.js"
import { TokenState } from "./TokenState.js"
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
  /**
   * The credential's identity (a hash of what makes its tokens, never a secret), where the source
   * has one: what a token exchange that follows this source is keyed by.
   */
  readonly identity?: string | undefined
  /**
   * Stops the background refresh for good: a request under way finishes first (its rotated refresh
   * token is not lost), then no request is sent any more. For shutdown work such as revoking the
   * final tokens; closing the source's scope stops it too.
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
   * Whose token this is (a user id, a tenant); part of the credential's key in the `TokenStore`. With
   * a store, a refresh-token, authorization-code or device-code grant needs it (or a `storeKey`):
   * the library cannot tell by itself which user such a grant acts for, and two users of one client
   * must never share a token. Without a store nothing is shared, and it is not needed.
   */
  readonly subject?: string | undefined
  /**
   * The key of this credential in the `TokenStore`, when one is provided. By default `TokenStore.key`:
   * a hash of the endpoint URL, client id, client authentication method, grant type, username,
   * `subject`, scopes and extra parameters.
   */
  readonly storeKey?: string | undefined
}

interface Current {
  readonly token: AccessToken | undefined
  readonly usableUntil: number
  readonly refreshAt: number | undefined
}

const none: Current = { token: undefined, usableUntil: 0, refreshAt: undefined }

/**
 * Builds a token source and performs the first fetch. A permanent error (wrong secret, unknown grant,
 * bad scope) fails `make`, so a daemon with a broken configuration stops at start; a transient one
 * does not: the source starts in `Retrying` and heals by itself. Closing the scope stops its fiber.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const policy = options.policy ?? RefreshPolicy.defaults
    const endpoint = yield* TokenEndpoint.make({ ...options, maxLifetime: policy.maxLifetime })
    const grant = yield* Grant.validate(options.grant)
    const provider = endpoint.provider
    const state = yield* SubscriptionRef.make<TokenState>(TokenState.Pending())
    // "refresh": a caller needs a request now; "reschedule": a token came from elsewhere (the store)
    const wake = yield* Queue.sliding<"refresh" | "reschedule">(1)
    const store = Option.getOrUndefined(yield* Effect.serviceOption(TokenStore.TokenStoreTag))
    if (store !== undefined) {
      const invalid = Key.check(options, options.storeKey, { keyOption: "storeKey", sharedBy: "with a TokenStore" })
      if (invalid !== undefined) return yield* invalid
    }
    const storeKey = store === undefined ? "" : options.storeKey ?? Key.identity(options)
    // written into every entry and checked on every read: a store never hands over another credential's token
    const identity = store === undefined ? undefined : Key.identity(options)

    // Written only by the refresh fiber (and `invalidate`), read by everyone: JS runs one fiber at a
    // time and none of these updates spans a yield, so plain variables are safe and keep `get` cheap.
    let current = none
    const clock = yield* Effect.clock
    let outcome = yield* Deferred.make<AccessToken, TokenError>()
    let inFlight = false
    let refreshToken: Redacted.Redacted<string> | undefined = grant._tag === "RefreshToken"
      ? grant.refreshToken
      : undefined
    // an authorization code is single use, and a refresh-token grant is just its refresh token
    let grantUsable = grant._tag !== "RefreshToken"
    let previous: AccessToken | undefined
    // the latest token accepted and not refused by the API: handed out past its usable time, until
    // it expires, only while the provider is failing
    let lastGood: AccessToken | undefined
    // the version of the token held, as the store counts them: a store entry above it is newer
    let version = 0

    const publish = (next: TokenState, refreshAt?: number) => {
      const token = next._tag === "Valid" || next._tag === "Refreshing"
        ? next.token
        : next._tag === "Retrying" || next._tag === "Failed"
        ? Option.getOrUndefined(next.token)
        : undefined
      current = token === undefined
        ? none
        : {
          token,
          usableUntil: RefreshPolicy.usableUntil(policy, token),
          refreshAt: token === current.token ? current.refreshAt : refreshAt
        }
      return SubscriptionRef.set(state, next)
    }

    const usableToken = (now: number) =>
      current.token !== undefined && now < current.usableUntil ? Option.some(current.token) : Option.none()

    const requestOriginal = Effect.suspend(() => {
      if (!grantUsable) {
        return Effect.fail(
          new ReauthorizationRequired({ detail: "the token is gone and the grant cannot run again without a user" })
        )
      }
      // RFC 8628: the device flow needs the user, who is shown the code through `changes`
      if (grant._tag === "DeviceCode") {
        return DeviceFlow.runInSource(endpoint, grant, {
          previous,
          onPrompt: (prompt) => publish(TokenState.AwaitingUser(prompt))
        })
      }
      return endpoint.request(grant, previous).pipe(
        Effect.tap(() => {
          if (grant._tag === "AuthorizationCode") grantUsable = false
        })
      )
    })

    // RFC 6749 section 6; a refused refresh token falls back to the original grant only when that
    // grant can run unattended (client credentials, password)
    const fetchOnce: Effect.Effect<AccessToken, TokenError> = Effect.suspend(() => {
      const rt = refreshToken
      if (rt === undefined) return requestOriginal
      return endpoint.request(Grant.refreshToken({ refreshToken: rt }), previous).pipe(
        Effect.catchTag("InvalidGrant", (error) =>
          Effect.flatMap(newerStored, (newer) => {
            // another process may have rotated the refresh token first: its token is ours too
            if (Option.isSome(newer)) {
              return Effect.as(
                Effect.logInfo("refresh token already rotated by another process; adopting its token"),
                newer.value.token
              )
            }
            refreshToken = undefined
            return grantUsable && Grant.isUnattended(grant)
              ? Effect.zipRight(
                Effect.logWarning("refresh token refused; running the original grant again"),
                requestOriginal
              )
              : Effect.fail(new ReauthorizationRequired({ reason: error, detail: "the refresh token was refused" }))
          }))
      )
    })

    // a stored entry newer than the token held, still valid
    const newerStored = Effect.suspend(() =>
      store === undefined
        ? Effect.succeed(Option.none<TokenStore.StoredToken>())
        : Effect.flatMap(
          Effect.catchAll(store.load(storeKey, identity), (e) => TokenStore.logStoreError(e, Option.none())),
          (stored) =>
            Effect.map(Clock.currentTimeMillis, (now) =>
              Option.filter(
                stored,
                (entry) => entry.version > version && now < RefreshPolicy.usableUntil(policy, entry.token)
              ))
        )
    )

    // one attempt: through the store when there is one (one refresher per credential, the new token
    // written before anyone gets it), else straight to the endpoint; a failing store is logged once
    // and passed by until it works again
    let storeDown = false
    const alone = Effect.map(fetchOnce, (token): TokenStore.Refreshed => ({
      entry: { token, version: version + 1 },
      fetched: true
    }))
    const nextToken: Effect.Effect<TokenStore.Refreshed, TokenError> = Effect.suspend(() => {
      if (store === undefined) return alone
      return store.refresh(storeKey, version, fetchOnce, identity).pipe(
        Effect.tap(() => {
          if (!storeDown) return Effect.void
          storeDown = false
          return Effect.logInfo("token store is back")
        }),
        Effect.catchTag("StoreError", (error) => {
          if (storeDown) return alone
          storeDown = true
          return Effect.zipRight(TokenStore.logStoreError(error, undefined), alone)
        })
      )
    })

    const accept = (token: AccessToken, entryVersion: number, how: "received" | "adopted" | "loaded") =>
      Effect.gen(function*() {
        // an entry arriving late (the notification of our own write) changes nothing
        if (entryVersion <= version && previous !== undefined) return
        const random = yield* Random.next
        const refreshAt = RefreshPolicy.refreshAt(policy, token, random)
        previous = token
        lastGood = token
        refreshToken = token.refreshToken
        version = entryVersion
        yield* publish(TokenState.Valid({ token }), refreshAt)
        const now = yield* Clock.currentTimeMillis
        if (token.expiresAt !== undefined) {
          yield* Metric.set(
            TokenMetrics.secondsUntilExpiry.pipe(Metric.tagged("provider", provider)),
            (token.expiresAt - now) / 1000
          )
        }
        yield* Effect.logInfo(`token ${how}`).pipe(
          Effect.annotateLogs({
            expires_in_s: token.expiresAt === undefined ? "unknown" : Math.round((token.expiresAt - now) / 1000),
            lifetime_from: token.lifetimeSource,
            refresh_in_s: refreshAt === undefined ? "never" : Math.round((refreshAt - now) / 1000)
          })
        )
      })

    const count = (outcome: "success" | "transient" | "permanent") =>
      Metric.increment(
        Metric.tagged(Metric.tagged(TokenMetrics.refreshTotal, "provider", provider), "outcome", outcome)
      )

    // Waits out a backoff; returns early when a caller asks for a refresh. If the token expires
    // meanwhile, listeners are told that the source holds no valid token any more.
    const backoff = (until: number) =>
      Effect.gen(function*() {
        const expiry = current.token === undefined ? undefined : current.usableUntil
        if (expiry !== undefined && expiry < until) {
          const woken = yield* Effect.raceFirst(
            Effect.as(sleepUntil(expiry), false),
            Effect.as(Queue.take(wake), true)
          )
          if (woken) return
          const s = yield* SubscriptionRef.get(state)
          if (s._tag === "Retrying") yield* publish(TokenState.Retrying({ ...s, token: Option.none() }))
          yield* Effect.logWarning("token expired while the provider is failing")
        }
        yield* Effect.raceFirst(sleepUntil(until), Queue.take(wake))
      })

    // One refresh: attempts until a token comes back or a permanent error, spacing transient
    // failures by the policy's schedule and Retry-After.
    const cycle = Effect.gen(function*() {
      let scheduleState = policy.retry.initial
      let attempt = 0
      while (true) {
        yield* Queue.takeAll(wake)
        const before = yield* SubscriptionRef.get(state)
        if (before._tag === "Valid") yield* publish(TokenState.Refreshing({ token: before.token }))
        inFlight = true
        const startVersion = version
        const exit = yield* Effect.exit(
          nextToken.pipe(Effect.withSpan("TokenSource.refresh", { attributes: { provider } }))
        )
        attempt++
        const done = outcome
        outcome = yield* Deferred.make<AccessToken, TokenError>()
        inFlight = false
        if (Exit.isSuccess(exit)) {
          const { entry, fetched } = exit.value
          yield* accept(entry.token, entry.version, fetched ? "received" : "adopted")
          if (fetched) yield* count("success")
          if (attempt > 1) {
            yield* Effect.logInfo("token request recovered").pipe(Effect.annotateLogs({ failed_attempts: attempt - 1 }))
          }
          yield* Deferred.succeed(done, entry.token)
          return
        }
        yield* Deferred.failCause(done, exit.cause)
        const failure = Cause.failureOption(exit.cause)
        if (Option.isNone(failure)) return yield* Effect.failCause(exit.cause as Cause.Cause<never>)
        const error = failure.value
        const now = yield* Clock.currentTimeMillis
        const token = usableToken(now)
        if (!error.transient) {
          yield* count("permanent")
          yield* publish(TokenState.Failed({ error, token }))
          yield* Effect.logError("token request failed permanently; waiting for refresh").pipe(
            Effect.annotateLogs({ error: error._tag, detail: error.message })
          )
          return
        }
        yield* count("transient")
        const [nextState, , decision] = yield* policy.retry.step(now, error, scheduleState)
        scheduleState = nextState
        if (ScheduleDecision.isDone(decision)) {
          yield* publish(TokenState.Failed({ error, token }))
          yield* Effect.logError("token request failed; the retry schedule gave up").pipe(
            Effect.annotateLogs({ error: error._tag, detail: error.message, attempt })
          )
          return
        }
        const nextAttemptAt = Math.max(
          ScheduleIntervals.start(decision.intervals),
          now + RefreshPolicy.retryAfterMillis(policy, error)
        )
        yield* publish(TokenState.Retrying({ error, attempt, nextAttemptAt, token }))
        yield* Effect.logWarning("token request failed; retrying").pipe(
          Effect.annotateLogs({
            error: error._tag,
            detail: error.message,
            attempt,
            retry_in_ms: Math.round(nextAttemptAt - now),
            token_still_valid: Option.isSome(token)
          })
        )
        yield* backoff(nextAttemptAt)
        // a token arrived from the store meanwhile (another process recovered first): done
        if (version > startVersion) return
      }
    })

    const loop = Effect.gen(function*() {
      while (true) {
        const s = yield* SubscriptionRef.get(state)
        const due = s._tag === "Pending" ? 0 : s._tag === "Failed" ? undefined : current.refreshAt
        const reason = due === undefined
          ? yield* Queue.take(wake)
          : yield* Effect.raceFirst(Effect.as(sleepUntil(due), "due" as const), Queue.take(wake))
        if (reason === "reschedule") continue
        if (reason === "due" && s._tag !== "Pending") yield* Effect.logInfo("refreshing token before expiry")
        yield* cycle
      }
    }).pipe(Effect.annotateLogs({ provider }))

    // the next attempt's outcome: joins one under way, or wakes the refresh fiber for one now
    let stopped = false
    const next = Effect.suspend(() => {
      const d = outcome
      // after `stop` no request is sent: the caller gets the last error, or is interrupted
      if (stopped) {
        return Effect.flatMap(SubscriptionRef.get(state), (s) => "error" in s ? Effect.fail(s.error) : Effect.interrupt)
      }
      if (!inFlight) Queue.unsafeOffer(wake, "refresh")
      return Deferred.await(d)
    })

    // The last token accepted, while it has not expired, when the provider is failing: its skew margin
    // is spent rather than a caller failed.
    const lastValid = (now: number) =>
      lastGood !== undefined && lastGood.expiresAt !== undefined && now < lastGood.expiresAt ? lastGood : undefined

    const slowGet = (now: number): Effect.Effect<AccessToken, TokenError> =>
      Effect.flatMap(SubscriptionRef.get(state), (s) => {
        const token = usableToken(now)
        if (Option.isSome(token)) return Effect.succeed(token.value)
        if (s._tag === "Failed" || s._tag === "Retrying") {
          // the provider is failing: the last token until it expires, then the last error at once
          const last = lastValid(now)
          return last !== undefined ? Effect.succeed(last) : Effect.fail(s.error)
        }
        // a request under way or wanted: if it fails, the last token still serves until it expires
        return Effect.catchAll(next, (error) => {
          const last = lastValid(clock.unsafeCurrentTimeMillis())
          return last !== undefined ? Effect.succeed(last) : Effect.fail(error)
        })
      })

    // a valid token is one `Exit` read against the source's Clock (the one its refreshes are timed by):
    // the cost of a `Ref.get`, where `Clock.currentTimeMillis` + `flatMap` costs three operations
    const get: Effect.Effect<AccessToken, TokenError> = dynamic(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return current.token !== undefined && now < current.usableUntil ? Exit.succeed(current.token) : slowGet(now)
    })

    const getValidFor = (duration: Duration.DurationInput) =>
      Effect.gen(function*() {
        const needed = Duration.toMillis(duration)
        const now = yield* Clock.currentTimeMillis
        const token = usableToken(now)
        if (Option.isSome(token) && current.usableUntil >= now + needed) return token.value
        // the freshest token there is, even if its whole lifetime is shorter than asked for
        return yield* next
      })

    const invalidate = (token?: AccessToken) =>
      Effect.suspend(() => {
        if (token !== undefined && token !== current.token && token !== lastGood) return Effect.void
        lastGood = undefined
        // nothing can replace it without a person (a used authorization code, no refresh token): say
        // so at once instead of pretending a request is under way
        if (refreshToken === undefined && !grantUsable) {
          const error = new ReauthorizationRequired({ detail: "the token was refused and there is no refresh token" })
          return Effect.zipRight(
            Effect.logWarning("token invalidated; reauthorization required").pipe(Effect.annotateLogs({ provider })),
            publish(TokenState.Failed({ error, token: Option.none() }))
          )
        }
        return Effect.zipRight(
          Effect.logInfo("token invalidated; fetching another").pipe(Effect.annotateLogs({ provider })),
          Effect.zipRight(publish(TokenState.Pending()), Queue.offer(wake, "refresh"))
        )
      })

    // callers still waiting when the source closes are interrupted, never left hanging
    yield* Effect.addFinalizer(() => Effect.suspend(() => Deferred.interrupt(outcome)))

    // a restarted process reuses its stored token, or at least the stored refresh token
    let loaded = false
    if (store !== undefined) {
      const stored = yield* Effect.catchAll(
        loadStored(
          store,
          storeKey,
          options.storeKey === undefined ? Key.legacyKeyOf(endpoint.url, options) : undefined,
          grant,
          identity
        ),
        (e) => TokenStore.logStoreError(e, Option.none())
      ).pipe(Effect.annotateLogs({ provider }))
      if (Option.isSome(stored)) {
        const now = yield* Clock.currentTimeMillis
        const entry = stored.value
        if (now < RefreshPolicy.usableUntil(policy, entry.token)) {
          yield* accept(entry.token, entry.version, "loaded").pipe(Effect.annotateLogs({ provider }))
          loaded = true
        } else if (entry.token.refreshToken !== undefined) {
          previous = entry.token
          refreshToken = entry.token.refreshToken
          version = entry.version
        }
      }
      // tokens other processes write are adopted as they arrive, instead of polling
      yield* store.changes(storeKey, identity).pipe(
        Stream.runForEach((entry) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            // during an attempt its own outcome decides (the entry may be our own write coming back)
            if (inFlight || entry.version <= version || now >= RefreshPolicy.usableUntil(policy, entry.token)) return
            yield* accept(entry.token, entry.version, "adopted")
            yield* Queue.offer(wake, "reschedule")
          })
        ),
        // a broken subscription (Redis gone, a watcher died) is logged and started again, with backoff
        Effect.tapError((e) => TokenStore.logStoreError(e, undefined)),
        Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("1 minute")))),
        Effect.annotateLogs({ provider }),
        Effect.forkScoped
      )
    }
    const loopFiber = yield* Effect.forkScoped(
      loop.pipe(
        Effect.tapErrorCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("token refresh fiber died", cause)
        )
      )
    )
    const stop = Effect.suspend(() => {
      stopped = true
      const running = inFlight ? Effect.exit(Deferred.await(outcome)) : Effect.void
      return running.pipe(Effect.zipRight(Fiber.interrupt(loopFiber)), Effect.zipRight(Deferred.interrupt(outcome)))
    })

    // a device flow waits for a person: `make` returns at once, and `changes` shows them the code
    const first: Exit.Exit<unknown, TokenError> = loaded || grant._tag === "DeviceCode"
      ? Exit.void
      : yield* Effect.exit(Deferred.await(outcome))
    if (Exit.isFailure(first)) {
      const error = Cause.failureOption(first.cause)
      if (Option.isNone(error)) return yield* Effect.failCause(first.cause as Cause.Cause<never>)
      if (!error.value.transient) return yield* Effect.fail(error.value)
    }

    return {
      get,
      getValidFor,
      refresh: next,
      invalidate,
      changes: state.changes,
      state: SubscriptionRef.get(state),
      provider,
      identity: identity ?? Key.identity(options),
      stop
    } satisfies TokenSource
  }).pipe(Effect.withSpan("TokenSource.make"))

/**
 * The stored entry of a credential, looked for under the 0.1.0 key too: an entry found there is moved
 * to the new key and the old one removed, so an upgrade never forces a user to log in again. Only a
 * grant that needs a person adopts it: the 0.1.0 key did not tell apart extra parameters, client
 * authentication methods or users, so the entry may be another credential's, a risk worth taking only
 * where the stored refresh token may be the only one. An unattended grant drops it and fetches anew.
 */
const loadStored = (
  store: TokenStore.TokenStore,
  key: string,
  legacyKey: string | undefined,
  grant: Grant.Grant,
  identity: string | undefined
): Effect.Effect<Option.Option<TokenStore.StoredToken>, TokenStore.StoreError> =>
  Effect.gen(function*() {
    const stored = yield* store.load(key, identity)
    if (Option.isSome(stored) || legacyKey === undefined) return stored
    const old = yield* store.load(legacyKey)
    if (Option.isNone(old)) return old
    if (Grant.isUnattended(grant)) {
      yield* Effect.logInfo("token store entry under the 0.1.0 key dropped; fetching a token of our own")
      yield* store.remove(legacyKey)
      return Option.none()
    }
    // not moved (the store is failing): used this time, and moved on a later start
    const written = yield* Effect.catchAll(
      store.save(key, { ...old.value, identity }),
      (e) => TokenStore.logStoreError(e, undefined)
    )
    if (written === undefined) return old
    yield* Effect.logInfo("token store entry moved from the 0.1.0 key")
    yield* Effect.catchAll(store.remove(legacyKey), (e) => TokenStore.logStoreError(e, undefined))
    // another process moved it first and may have refreshed since: its entry is the one
    return written ? old : yield* store.load(key, identity)
  })

/**
 * A layer that provides a token source under a tag of the user's (a program often holds several).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource>,
  options: Options
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, make(options))

/**
 * A layer whose options come from `Config`, with secrets as `Config.redacted`. Missing or invalid
 * configuration fails with a `ConfigError` naming the variable, before any request is sent.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, TokenSource>,
  config: Config.Config<Options>
): Layer.Layer<I, TokenError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(tag, Effect.flatMap(config, make))
