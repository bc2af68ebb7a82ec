/**
 * Many tokens in one process: a token per tenant, per provider, per scope, built on first use, shared
 * by every caller of the same key, refreshed before it expires, and dropped after an idle time.
 *
 * A `TokenSource` per key would cost its fiber, `SubscriptionRef`, queue and their bookkeeping (about
 * 45 KB a token, measured by `npm run bench`). The pool keeps one plain record per token instead, one
 * scheduler fiber over a heap of refresh deadlines, and only while a request is under way a `Deferred`
 * for the callers that wait for it; a few request fibers per token endpoint
 * (`maxConcurrentPerEndpoint`) send the requests, so a fleet of tokens issued together never floods
 * its provider. About 850 bytes a token at 100,000, the token itself included.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import * as Grant from "./Grant.js"
import { DeadlineHeap } from "./internal/deadlineHeap.js"
import { dynamic } from "./internal/dynamicEffect.js"
import { endpointKeyOf } from "./internal/endpointKey.js"
import * as Key from "./internal/engine/key.js"
import { Entry, Fifo, Phase, Status } from "./internal/poolEntry.js"
import type { Endpoint, Group } from "./internal/poolEntry.js"
import { sleepUntil } from "./internal/sleepUntil.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import { InvalidConfiguration, ReauthorizationRequired } from "./TokenError.js"
import * as TokenMetrics from "./TokenMetrics.js"
import type { TokenSource } from "./TokenSource.js"
import { TokenState } from "./TokenState.js"

/**
 * One credential in the pool: its token endpoint, its grant, and what names it.
 *
 * The key is `key` when given, else the credential's identity: a SHA-256 hash of the endpoint URL,
 * client id, client authentication method, grant type, username (password grant), `subject`, sorted
 * scopes and sorted extra parameters, the same identity a `TokenSource` uses in a `TokenStore`. A
 * refresh-token or authorization-code grant needs a `subject` or a `key`, so two users of one client
 * never share a token. No secret is part of a key (a client id names one client): the secret first
 * seen for a key is the one its requests use, and so are its grant and its endpoint options (timeout,
 * headers, provider name), which are not part of the identity either: when headers select what the
 * server issues, tell the credentials apart with `subject`.
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
   * A token nobody asked for this long is dropped and no longer refreshed; 30 minutes by default.
   * A refresh-token or authorization-code credential keeps its record (its latest refresh token)
   * but is no longer refreshed until it is asked for again. `Infinity` keeps every token.
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
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
   * A valid token for the credential now; waits for the network only when it holds no valid token.
   * A credential object used again is found at once; a new object with the same content finds the same
   * token after building its key (a few microseconds).
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
  /**
   * The key as a `TokenSource`, with its key resolved once (the cheapest `get`). Sends no request
   * by itself; holding it does not keep the token from being dropped when idle.
   */
  readonly source: (credential: Credential) => Effect.Effect<TokenSource, InvalidConfiguration>
  /** The key's state first, then every change, for as long as the stream runs (it keeps the key held). */
  readonly changes: (credential: Credential) => Stream.Stream<TokenState, InvalidConfiguration>
  /** Keys held. */
  readonly size: Effect.Effect<number>
  readonly stats: Effect.Effect<Stats>
}

const defaultConcurrency = 4
const defaultIdleTimeToLive = Duration.minutes(30)
const endpointCacheSize = 256

interface Counters {
  readonly success: Metric.Metric.Counter<number>
  readonly transient: Metric.Metric.Counter<number>
  readonly permanent: Metric.Metric.Counter<number>
}

/**
 * Builds a pool. Tokens are fetched on first `get`; closing the scope stops every refresh and
 * interrupts callers still waiting.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * import { Effect, Redacted } from "effect"
 * import { ClientAuth, Grant, TokenPool } from "tokenwarden"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* TokenPool.make({ maxConcurrentPerEndpoint: 4 })
 *   const token = yield* pool.get({
 *     url: "https://auth.example.com/oauth/token",
 *     clientAuth: ClientAuth.basic("platform", Redacted.make("secret")),
 *     grant: Grant.clientCredentials({ scopes: ["crm.read"], extraParams: { audience: "tenant-42" } }),
 *     subject: "tenant-42"
 *   })
 * })
 */
export const make = (
  options: Options = {}
): Effect.Effect<TokenPool, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const clock = yield* Effect.clock
    const policy = options.policy ?? RefreshPolicy.defaults
    const cap = Math.max(1, Math.floor(options.maxConcurrentPerEndpoint ?? defaultConcurrency))
    const idle = Duration.decode(options.idleTimeToLive ?? defaultIdleTimeToLive)
    const ttl = Duration.isFinite(idle) ? Duration.toMillis(idle) : Infinity

    const entries = new Map<string, Entry>()
    // endpoint options by their identity (URL, client, timeout…), once for all their keys
    const endpoints = new Map<string, Endpoint>()
    let endpointIds = 0
    // built endpoints, recently used first out: a burst of requests for one client builds one
    const built = new Map<number, TokenEndpoint.TokenEndpoint>()
    const groups = new Map<string, Group>()
    const providers = new Map<string, Counters>()
    const heap = new DeadlineHeap<Entry>()
    // a credential object used again finds its record without building and hashing its key
    const byCredential = new WeakMap<Credential, Entry>()

    let queued = 0
    let inFlight = 0
    let wake = Deferred.unsafeMake<void>(FiberId.none)

    const fibers = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(fibers)<never>()

    // ---------------------------------------------------------------------------------------------
    // state as callers see it
    // ---------------------------------------------------------------------------------------------

    const stateOf = (entry: Entry, now: number): TokenState => {
      const valid = entry.token !== undefined && now < entry.usableUntil ? Option.some(entry.token) : Option.none()
      switch (entry.status) {
        case Status.Failed:
          return TokenState.Failed({ error: entry.error!, token: valid })
        case Status.Retrying:
          return TokenState.Retrying({
            error: entry.error!,
            attempt: entry.attempt,
            nextAttemptAt: entry.dueAt,
            token: valid
          })
        default:
          return Option.isNone(valid)
            ? TokenState.Pending()
            : entry.phase === Phase.Running
            ? TokenState.Refreshing({ token: valid.value })
            : TokenState.Valid({ token: valid.value })
      }
    }

    const notify = (entry: Entry): void => {
      const listeners = entry.listeners
      if (listeners === undefined) return
      const state = stateOf(entry, clock.unsafeCurrentTimeMillis())
      for (const queue of listeners) Queue.unsafeOffer(queue, state)
    }

    // ---------------------------------------------------------------------------------------------
    // scheduling: one heap of deadlines (refresh, retry, idle check), one fiber sleeping to the first
    // ---------------------------------------------------------------------------------------------

    const schedule = (entry: Entry, now: number): void => {
      if (entry.released || entry.dormant || entry.phase !== Phase.Idle) return heap.remove(entry)
      let deadline = entry.dueAt
      if (entry.listeners === undefined) deadline = Math.min(deadline, entry.lastUsed + ttl)
      else if (entry.status === Status.Retrying && entry.token !== undefined && entry.usableUntil > now) {
        // listeners are told when the token expires while the provider is failing
        deadline = Math.min(deadline, entry.usableUntil)
      }
      if (deadline === Infinity) return heap.remove(entry)
      if (heap.set(entry, deadline)) Deferred.unsafeDone(wake, Exit.void)
    }

    const drop = (entry: Entry): void => {
      if (entry.released) return
      entry.released = true
      heap.remove(entry)
      if (entries.get(entry.key) === entry) entries.delete(entry.key)
      if (entry.phase === Phase.Queued) {
        entry.phase = Phase.Idle
        queued--
      }
      const endpoint = entry.endpoint
      if (--endpoint.refs === 0 && endpoints.get(endpoint.key) === endpoint) {
        endpoints.delete(endpoint.key)
        built.delete(endpoint.id)
      }
    }

    const onDue = (entry: Entry, now: number): void => {
      if (entry.released || entry.phase !== Phase.Idle) return
      if (entry.listeners === undefined && now - entry.lastUsed >= ttl) {
        // a credential that needs a user keeps its record: its latest refresh token is the only copy
        if (Grant.isUnattended(entry.grant)) drop(entry)
        else entry.dormant = true
        return
      }
      if (now >= entry.dueAt) return enqueue(entry, false)
      notify(entry)
      schedule(entry, now)
    }

    const scheduler = Effect.gen(function*() {
      while (true) {
        const now = clock.unsafeCurrentTimeMillis()
        for (let first = heap.peek(); first !== undefined && first.deadline <= now; first = heap.peek()) {
          heap.pop()
          onDue(first, now)
        }
        wake = Deferred.unsafeMake<void>(FiberId.none)
        const next = heap.peek()
        yield* next === undefined
          ? Deferred.await(wake)
          : Effect.raceFirst(sleepUntil(next.deadline), Deferred.await(wake))
      }
    })

    const revive = (entry: Entry, now: number): void => {
      entry.dormant = false
      schedule(entry, now)
    }

    // ---------------------------------------------------------------------------------------------
    // requests: per endpoint URL at most `cap` at once, callers waiting first
    // ---------------------------------------------------------------------------------------------

    const enqueue = (entry: Entry, urgent: boolean): void => {
      if (entry.released || entry.phase === Phase.Running) return
      const group = entry.group
      if (entry.phase === Phase.Queued) {
        if (urgent && !entry.urgent) {
          entry.urgent = true
          group.urgent.push(entry)
        }
        return
      }
      heap.remove(entry)
      entry.dormant = false
      entry.phase = Phase.Queued
      entry.urgent = urgent
      queued++
      if (urgent) group.urgent.push(entry)
      else group.background.push(entry)
      if (group.active < cap) {
        group.active++
        run(worker(group))
      }
    }

    const takeNext = (group: Group): Entry | undefined => {
      while (true) {
        const entry = group.urgent.shift() ?? group.background.shift()
        if (entry === undefined) return undefined
        // an entry queued twice (moved up when a caller started waiting) is taken once
        if (entry.phase !== Phase.Queued || entry.released) continue
        entry.phase = Phase.Running
        queued--
        return entry
      }
    }

    const worker = (group: Group): Effect.Effect<void> =>
      Effect.suspend(() => {
        const entry = takeNext(group)
        if (entry === undefined) {
          group.active--
          return Effect.void
        }
        return Effect.zipRight(attempt(entry), worker(group))
      })

    const endpointOf = (endpoint: Endpoint): Effect.Effect<TokenEndpoint.TokenEndpoint, InvalidConfiguration> =>
      Effect.suspend(() => {
        const cached = built.get(endpoint.id)
        if (cached !== undefined) return Effect.succeed(cached)
        return TokenEndpoint.make(endpoint.options).pipe(
          Effect.provideService(HttpClient.HttpClient, client),
          Effect.tap((made) => Effect.sync(() => remember(endpoint.id, made)))
        )
      })

    const remember = (id: number, endpoint: TokenEndpoint.TokenEndpoint): void => {
      built.set(id, endpoint)
      if (built.size > endpointCacheSize) built.delete(built.keys().next().value!)
    }

    const requestOriginal = (
      entry: Entry,
      endpoint: TokenEndpoint.TokenEndpoint
    ): Effect.Effect<AccessToken, TokenError> =>
      Effect.suspend(() => {
        const grant = entry.grant
        if (!entry.grantUsable) {
          return Effect.fail(
            new ReauthorizationRequired({ detail: "the token is gone and the grant cannot run again without a user" })
          )
        }
        return endpoint.request(grant, entry.token).pipe(
          Effect.tap(() => {
            if (grant._tag === "AuthorizationCode") entry.grantUsable = false
          })
        )
      })

    // RFC 6749 section 6, as a TokenSource does it: a refused refresh token falls back to the original
    // grant only when that grant runs unattended
    const fetchOnce = (entry: Entry, endpoint: TokenEndpoint.TokenEndpoint): Effect.Effect<AccessToken, TokenError> =>
      Effect.suspend(() => {
        const refreshToken = entry.refreshToken
        if (refreshToken === undefined) return requestOriginal(entry, endpoint)
        return endpoint.request(Grant.refreshToken({ refreshToken }), entry.token).pipe(
          Effect.catchTag("InvalidGrant", (error) => {
            entry.refuseRefreshToken()
            return entry.grantUsable && Grant.isUnattended(entry.grant)
              ? Effect.zipRight(
                Effect.logWarning("refresh token refused; running the original grant again"),
                requestOriginal(entry, endpoint)
              )
              : Effect.fail(new ReauthorizationRequired({ reason: error, detail: "the refresh token was refused" }))
          })
        )
      })

    const accept = (entry: Entry, token: AccessToken, now: number, random: number): void => {
      entry.accept(compact(token))
      entry.usableUntil = RefreshPolicy.usableUntil(policy, token)
      // jitter: tokens issued together are refreshed spread over the policy's window
      entry.dueAt = RefreshPolicy.refreshAt(policy, token, random) ?? Infinity
      entry.status = Status.Valid
      if (entry.rare !== undefined) {
        entry.error = undefined
        entry.attempt = 0
        entry.retryState = undefined
      }
      schedule(entry, now)
    }

    const onFailure = (entry: Entry, error: TokenError, now: number, counters: Counters) =>
      Effect.gen(function*() {
        const group = entry.group
        entry.error = error
        entry.attempt++
        if (error.transient) {
          yield* Metric.increment(counters.transient)
          const [next, , decision] = yield* policy.retry.step(
            now,
            error,
            entry.retryState === undefined ? policy.retry.initial : entry.retryState
          )
          if (!ScheduleDecision.isDone(decision)) {
            entry.retryState = next
            entry.status = Status.Retrying
            entry.dueAt = Math.max(
              ScheduleIntervals.start(decision.intervals),
              now + RefreshPolicy.retryAfterMillis(policy, error)
            )
            schedule(entry, now)
            if (!group.failing) {
              group.failing = true
              yield* Effect.logWarning("token endpoint failing; retrying with backoff").pipe(
                Effect.annotateLogs({ error: error._tag, detail: error.message })
              )
            }
            return
          }
        } else {
          yield* Metric.increment(counters.permanent)
        }
        // permanent, or the retry schedule gave up: no more requests until `refresh`
        entry.status = Status.Failed
        entry.retryState = undefined
        entry.dueAt = Infinity
        schedule(entry, now)
        yield* Effect.logError("token request failed permanently; waiting for refresh").pipe(
          Effect.annotateLogs({ error: error._tag, detail: error.message })
        )
      })

    const attempt = (entry: Entry): Effect.Effect<void> =>
      Effect.gen(function*() {
        inFlight++
        // listeners see `Refreshing` only while a valid token is held, as from a TokenSource
        if (entry.status === Status.Valid && entry.usableUntil > clock.unsafeCurrentTimeMillis()) notify(entry)
        const endpoint = yield* Effect.either(endpointOf(entry.endpoint))
        const provider = endpoint._tag === "Right" ? endpoint.right.provider : "unknown"
        const counters = countersOf(provider)
        const exit = yield* Effect.exit(
          endpoint._tag === "Left"
            ? Effect.fail(endpoint.left)
            : fetchOnce(entry, endpoint.right).pipe(Effect.withSpan("TokenPool.refresh", { attributes: { provider } }))
        )
        inFlight--
        entry.phase = Phase.Idle
        entry.urgent = false
        const waiters = entry.waiters
        if (waiters !== undefined) entry.waiters = undefined
        const now = clock.unsafeCurrentTimeMillis()
        let outcome: Exit.Exit<AccessToken, TokenError> = exit
        if (Exit.isSuccess(exit)) {
          accept(entry, exit.value, now, yield* Random.next)
          // every caller gets the token as held, so `invalidate(token)` recognises it
          outcome = Exit.succeed(entry.token!)
          yield* Metric.increment(counters.success)
          if (entry.group.failing) {
            entry.group.failing = false
            yield* Effect.logInfo("token endpoint recovered")
          }
        } else {
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) yield* onFailure(entry, failure.value, now, counters)
          else if (!Cause.isInterruptedOnly(exit.cause)) yield* Effect.logError("token request died", exit.cause)
        }
        entry.tidy()
        // callers are released after the record is updated, so a caller retrying sees the new state
        if (waiters !== undefined) Deferred.unsafeDone(waiters, outcome)
        notify(entry)
      }).pipe(Effect.annotateLogs({ url: entry.group.url }))

    const join = (entry: Entry): Effect.Effect<AccessToken, TokenError> => {
      // enqueue refused: the key was removed meanwhile
      if (entry.phase === Phase.Idle) {
        return Effect.fail(new ReauthorizationRequired({ detail: "the credential was removed from the pool" }))
      }
      let waiters = entry.waiters
      if (waiters === undefined) {
        waiters = Deferred.unsafeMake<AccessToken, TokenError>(FiberId.none)
        entry.waiters = waiters
      }
      return Deferred.await(waiters)
    }

    // ---------------------------------------------------------------------------------------------
    // keys
    // ---------------------------------------------------------------------------------------------

    const countersOf = (provider: string): Counters => {
      let counters = providers.get(provider)
      if (counters === undefined) {
        const counter = (outcome: string) =>
          TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", provider), Metric.tagged("outcome", outcome))
        counters = { success: counter("success"), transient: counter("transient"), permanent: counter("permanent") }
        providers.set(provider, counters)
      }
      return counters
    }

    const groupOf = (url: string): Group => {
      let group = groups.get(url)
      if (group === undefined) {
        group = { url, active: 0, urgent: new Fifo(), background: new Fifo(), failing: false }
        groups.set(url, group)
      }
      return group
    }

    const keyOption = { keyOption: "key", sharedBy: "in a TokenPool" }

    const remembered = (credential: Credential, entry: Entry | undefined): Entry | undefined => {
      if (entry !== undefined) byCredential.set(credential, entry)
      return entry
    }

    /** The record of a credential if the pool holds one. */
    const find = (credential: Credential): Entry | undefined => {
      const known = byCredential.get(credential)
      if (known !== undefined && !known.released) return known
      const key = Key.keyOf(credential, credential.key)
      return key === undefined ? undefined : remembered(credential, entries.get(key))
    }

    const resolve = (credential: Credential): Effect.Effect<Entry, InvalidConfiguration> =>
      Effect.suspend(() => {
        const held = byCredential.get(credential)
        if (held !== undefined && !held.released) return Effect.succeed(held)
        const invalid = Key.check(credential, credential.key, keyOption)
        if (invalid !== undefined) return Effect.fail(invalid)
        const key = credential.key ?? Key.identity(credential)
        const existing = remembered(credential, entries.get(key))
        if (existing !== undefined) return Effect.succeed(existing)
        if (credential.grant._tag === "DeviceCode") {
          return Effect.fail(new InvalidConfiguration({ reason: "the device flow needs a user: use a TokenSource" }))
        }
        const endpointKey = endpointKeyOf(credential)
        const known = endpoints.get(endpointKey)
        // a new endpoint is built now, so a wrong configuration fails here (and its first request finds it)
        const options = endpointOptions(credential, policy)
        const made = known !== undefined ? Effect.succeed(known) : TokenEndpoint.make(options).pipe(
          Effect.provideService(HttpClient.HttpClient, client),
          Effect.map((tokenEndpoint) => {
            const again = endpoints.get(endpointKey)
            if (again !== undefined) return again
            const endpoint: Endpoint = {
              id: ++endpointIds,
              key: endpointKey,
              options,
              group: groupOf(tokenEndpoint.url),
              refs: 0
            }
            endpoints.set(endpointKey, endpoint)
            remember(endpoint.id, tokenEndpoint)
            return endpoint
          })
        )
        return Effect.map(made, (endpoint) => {
          let entry = entries.get(key)
          if (entry === undefined) {
            entry = new Entry(key, credential.grant, endpoint, clock.unsafeCurrentTimeMillis())
            endpoint.refs++
            entries.set(key, entry)
          }
          byCredential.set(credential, entry)
          return entry
        })
      })

    // ---------------------------------------------------------------------------------------------
    // operations on one record
    // ---------------------------------------------------------------------------------------------

    const slowGet = (entry: Entry, now: number): Effect.Effect<AccessToken, TokenError> => {
      entry.lastUsed = now
      if (now < entry.usableUntil) {
        if (entry.dormant) revive(entry, now)
        return Effect.succeed(entry.token!)
      }
      if (entry.status === Status.Retrying || entry.status === Status.Failed) {
        // the provider is failing: the last token until it expires, then the last error at once
        const last = lastValid(entry, now)
        return last !== undefined ? Effect.succeed(last) : Effect.fail(entry.error!)
      }
      enqueue(entry, true)
      // if the request fails, the last token still serves until it expires
      return Effect.catchAll(join(entry), (error) => {
        const last = lastValid(entry, clock.unsafeCurrentTimeMillis())
        return last !== undefined ? Effect.succeed(last) : Effect.fail(error)
      })
    }

    // The last token, while it has not expired and the API has not refused it, when the provider is
    // failing: its skew margin is spent rather than a caller failed.
    const lastValid = (entry: Entry, now: number): AccessToken | undefined => {
      const last = entry.token
      return last !== undefined && !entry.invalidated && !entry.released && last.expiresAt !== undefined &&
          now < last.expiresAt
        ? last
        : undefined
    }

    const next = (entry: Entry): Effect.Effect<AccessToken, TokenError> =>
      Effect.suspend(() => {
        entry.lastUsed = clock.unsafeCurrentTimeMillis()
        enqueue(entry, true)
        return join(entry)
      })

    const validFor = (entry: Entry, duration: Duration.DurationInput) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const needed = Duration.toMillis(duration)
        if (entry.token !== undefined && now < entry.usableUntil && entry.usableUntil >= now + needed) {
          entry.lastUsed = now
          return Effect.succeed(entry.token)
        }
        return next(entry)
      })

    const invalidateEntry = (entry: Entry, token?: AccessToken) =>
      Effect.suspend(() => {
        if (
          entry.released || entry.token === undefined || entry.invalidated ||
          (token !== undefined && token !== entry.token)
        ) {
          return Effect.void
        }
        // the token stays as the one a new request replaces, but is no longer handed out
        entry.invalidated = true
        entry.usableUntil = 0
        if (entry.status === Status.Valid) entry.status = Status.Pending
        notify(entry)
        enqueue(entry, true)
        return Effect.logInfo("token invalidated; fetching another").pipe(Effect.annotateLogs({ url: entry.group.url }))
      })

    const removeEntry = (entry: Entry) =>
      Effect.suspend(() => {
        drop(entry)
        const listeners = entry.listeners
        if (listeners === undefined) return Effect.void
        entry.listeners = undefined
        entry.tidy()
        return Effect.forEach(listeners, Queue.shutdown, { discard: true })
      })

    const changesOf = (resolveEntry: Effect.Effect<Entry, InvalidConfiguration>) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const entry = yield* resolveEntry
        const queue = yield* Queue.unbounded<TokenState>()
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            let listeners = entry.listeners
            if (listeners === undefined) {
              listeners = new Set()
              entry.listeners = listeners
            }
            listeners.add(queue)
            const now = clock.unsafeCurrentTimeMillis()
            Queue.unsafeOffer(queue, stateOf(entry, now))
            if (entry.dormant) revive(entry, now)
            else schedule(entry, now)
          }),
          () =>
            Effect.sync(() => {
              const listeners = entry.listeners
              listeners?.delete(queue)
              if (listeners?.size === 0) {
                entry.listeners = undefined
                entry.tidy()
              }
              const now = clock.unsafeCurrentTimeMillis()
              entry.lastUsed = now
              schedule(entry, now)
            })
        )
        return Stream.fromQueue(queue)
      }))

    // ---------------------------------------------------------------------------------------------
    // the public operations
    // ---------------------------------------------------------------------------------------------

    // The hot paths read the pool's Clock (the one its deadlines are set by) in one `dynamic` effect:
    // a valid token costs what a `Ref.get` does, where `Clock.currentTimeMillis` + `flatMap` reads
    // the fiber's services and runs three operations.
    const get = (credential: Credential): Effect.Effect<AccessToken, TokenError> =>
      dynamic(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const entry = find(credential)
        if (entry !== undefined && now < entry.usableUntil) {
          entry.lastUsed = now
          if (entry.dormant) revive(entry, now)
          return Exit.succeed(entry.token!)
        }
        return entry === undefined
          ? Effect.flatMap(resolve(credential), (entry) => slowGet(entry, now))
          : slowGet(entry, now)
      })

    const source = (credential: Credential): Effect.Effect<TokenSource, InvalidConfiguration> =>
      Effect.flatMap(resolve(credential), (first) =>
        Effect.map(endpointOf(first.endpoint), (endpoint): TokenSource => {
          let entry = first
          // a dropped record (idle, removed) is replaced by a new one on next use
          const current = Effect.suspend(() =>
            entry.released
              ? Effect.map(resolve(credential), (fresh) => (entry = fresh))
              : Effect.succeed(entry)
          )
          const currentOrDie = Effect.orDie(current) // resolved once already: the credential cannot turn invalid
          return {
            get: dynamic(() => {
              const now = clock.unsafeCurrentTimeMillis()
              const held = entry
              if (!held.released && now < held.usableUntil) {
                held.lastUsed = now
                if (held.dormant) revive(held, now)
                return Exit.succeed(held.token!)
              }
              return Effect.flatMap(current, (fresh) => slowGet(fresh, now))
            }),
            getValidFor: (duration) => Effect.flatMap(current, (fresh) => validFor(fresh, duration)),
            refresh: Effect.flatMap(current, next),
            invalidate: (token) => Effect.flatMap(currentOrDie, (fresh) => invalidateEntry(fresh, token)),
            changes: changesOf(current).pipe(Stream.orDie),
            state: Effect.map(currentOrDie, (fresh) => stateOf(fresh, clock.unsafeCurrentTimeMillis())),
            provider: endpoint.provider,
            // drops the key once a request under way has finished (its rotated refresh token is not lost)
            stop: Effect.suspend(() => {
              const held = entry
              const running = held.phase === Phase.Running ? Effect.exit(join(held)) : Effect.void
              return Effect.zipRight(running, removeEntry(held))
            })
          }
        }))

    // callers still waiting when the pool closes are interrupted, never left hanging
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const entry of entries.values()) {
          const waiters = entry.waiters
          if (waiters !== undefined) Deferred.unsafeDone(waiters, Effect.interrupt)
        }
      })
    )
    yield* Effect.forkScoped(
      scheduler.pipe(
        Effect.tapErrorCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("token pool scheduler died", cause)
        )
      )
    )

    return {
      get,
      getValidFor: (credential, duration) => Effect.flatMap(resolve(credential), (entry) => validFor(entry, duration)),
      refresh: (credential) => Effect.flatMap(resolve(credential), next),
      invalidate: (credential, token) =>
        Effect.suspend(() => {
          const entry = find(credential)
          return entry === undefined ? Effect.void : invalidateEntry(entry, token)
        }),
      remove: (credential) =>
        Effect.suspend(() => {
          const entry = find(credential)
          return entry === undefined ? Effect.void : removeEntry(entry)
        }),
      source,
      changes: (credential) => changesOf(resolve(credential)),
      size: Effect.sync(() => entries.size),
      stats: Effect.sync(() => ({ size: entries.size, scheduled: heap.size, queued, inFlight }))
    } satisfies TokenPool
  }).pipe(Effect.withSpan("TokenPool.make"))

// the endpoint options of a credential, without its grant and key (kept once per endpoint)
const endpointOptions = (credential: Credential, policy: RefreshPolicy.RefreshPolicy): TokenEndpoint.Options => ({
  maxLifetime: policy.maxLifetime,
  url: credential.url,
  clientAuth: credential.clientAuth,
  scopeSeparator: credential.scopeSeparator,
  timeout: credential.timeout,
  defaultLifetime: credential.defaultLifetime,
  headers: credential.headers,
  provider: credential.provider
})

const emptyExtra = Redacted.make<Readonly<Record<string, unknown>>>(Object.freeze({}))

// A response without extra fields (the usual RFC 6749 one) gets the one shared empty `extra`: a
// Redacted wrapper and its registry entry cost about 150 bytes per token otherwise.
const compact = (token: AccessToken): AccessToken => {
  for (const _ in Redacted.value(token.extra)) return token
  return { ...token, extra: emptyExtra }
}

/**
 * A layer that provides a pool under a tag of the user's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenPool>,
  options: Options = {}
): Layer.Layer<I, never, HttpClient.HttpClient> => Layer.scoped(tag, make(options))
