/**
 * The refresh engine: every token's life, written once, under every view. A `TokenSource` is an
 * engine of one key, a `TokenPool` an engine of many keys with idle release.
 *
 * Each token is one plain record (`Entry`). One scheduler fiber sleeps until the earliest deadline of
 * a heap (refresh, retry, idle check, a retrying token's expiry); a few request fibers per token
 * endpoint URL (`cap`) run the attempts, callers waiting before proactive refreshes. A `Deferred`
 * exists only while a caller waits, and a listener queue only while someone listens. Records are
 * mutated only by code that does not yield in between (JS runs one fiber at a time), so they need no
 * Ref, and a valid token is one comparison away.
 *
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AccessToken } from "../../AccessToken.js"
import * as Grant from "../../Grant.js"
import * as RefreshPolicy from "../../RefreshPolicy.js"
import * as TokenEndpoint from "../../TokenEndpoint.js"
import type { InvalidConfiguration, TokenError } from "../../TokenError.js"
import { ReauthorizationRequired } from "../../TokenError.js"
import * as TokenMetrics from "../../TokenMetrics.js"
import { TokenState } from "../../TokenState.js"
import * as TokenStore from "../../TokenStore.js"
import { DeadlineHeap } from "../deadlineHeap.js"
import { endpointKeyOf } from "../endpointKey.js"
import { sleepUntil } from "../sleepUntil.js"
import * as Attempt from "./attempt.js"
import { Entry, Fifo, Phase, Status } from "./entry.js"
import type { Endpoint, Group } from "./entry.js"
import * as Key from "./key.js"
import { settle } from "./settle.js"

/**
 * How an engine runs.
 *
 * @internal
 */
export interface Config {
  readonly policy: RefreshPolicy.RefreshPolicy
  /** Requests under way at once per token endpoint URL, across every key. */
  readonly cap: number
  /** A token nobody asked for this long is dropped, in milliseconds (`Infinity` keeps it). */
  readonly idleMillis: number
  readonly store: TokenStore.TokenStore | undefined
  /** The span of each attempt. */
  readonly span: string
  /**
   * Logs each token's life (received, retrying, recovered): a single source's few tokens. Otherwise
   * an endpoint's turning failing and recovering is logged once each way: a pool's many tokens.
   */
  readonly chatty: boolean
}

/**
 * A credential as the engine holds it: the endpoint options and the grant.
 *
 * @internal
 */
export interface Credential extends TokenEndpoint.Options {
  readonly grant: Grant.Grant
  readonly subject?: string | undefined
}

interface Counters {
  readonly success: Metric.Metric.Counter<number>
  readonly transient: Metric.Metric.Counter<number>
  readonly permanent: Metric.Metric.Counter<number>
  readonly expiry: Metric.Metric.Gauge<number>
}

// built endpoints kept at once, recently used first out: one per client id would cost kilobytes a token
const endpointCacheSize = 256

/**
 * Builds an engine. Closing the scope stops every refresh and interrupts callers still waiting.
 *
 * @internal
 */
export const make = (config: Config) =>
  Effect.gen(function*() {
    const { chatty, policy, store } = config
    const client = yield* HttpClient.HttpClient
    const clock = yield* Effect.clock
    const cap = Math.max(1, Math.floor(config.cap))
    const ttl = config.idleMillis

    const entries = new Map<string, Entry>()
    // endpoint options by their identity (URL, client, timeout…), once for all their keys
    const endpoints = new Map<string, Endpoint>()
    let endpointIds = 0
    const built = new Map<number, TokenEndpoint.TokenEndpoint>()
    const groups = new Map<string, Group>()
    const providers = new Map<string, Counters>()
    const heap = new DeadlineHeap<Entry>()
    let queued = 0
    let inFlight = 0
    let wake = Deferred.unsafeMake<void>(FiberId.none)
    const fibers = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(fibers)<never>()

    // --- state as callers see it ---

    const stateOf = (entry: Entry, now: number): TokenState => {
      // a device flow under way waits for its user, whatever came before
      if (entry.phase === Phase.Running && entry.prompt !== undefined) return TokenState.AwaitingUser(entry.prompt)
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
        default: {
          if (Option.isSome(valid) && entry.phase !== Phase.Running) return TokenState.Valid({ token: valid.value })
          // a request under way: the token it replaces, until that expires (a caller who finds it past
          // its usable time waits for the request, and gets it back if the request fails)
          const last = Option.isSome(valid) ?
            valid.value :
            entry.phase === Phase.Running && entry.status === Status.Valid
            ? lastValid(entry, now)
            : undefined
          if (last !== undefined) return TokenState.Refreshing({ token: last })
          return entry.prompt !== undefined ? TokenState.AwaitingUser(entry.prompt) : TokenState.Pending()
        }
      }
    }

    const notify = (entry: Entry): void => {
      const listeners = entry.listeners
      if (listeners === undefined) return
      const state = stateOf(entry, clock.unsafeCurrentTimeMillis())
      for (const queue of listeners) Queue.unsafeOffer(queue, state)
    }

    // --- scheduling: one heap of deadlines, one fiber sleeping to the first ---

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

    const onDue = (entry: Entry, now: number): Effect.Effect<void> | undefined => {
      if (entry.released || entry.phase !== Phase.Idle) return
      if (entry.listeners === undefined && now - entry.lastUsed >= ttl) {
        // a credential that needs a user keeps its record: its latest refresh token is the only copy
        if (Grant.isUnattended(entry.grant)) drop(entry)
        else entry.dormant = true
        return
      }
      if (now >= entry.dueAt) {
        enqueue(entry, false)
        return chatty && entry.status === Status.Valid ? Effect.logInfo("refreshing token before expiry") : undefined
      }
      notify(entry)
      schedule(entry, now)
      return chatty && now >= entry.usableUntil
        ? Effect.logWarning("token expired while the provider is failing")
        : undefined
    }

    const scheduler = Effect.gen(function*() {
      while (true) {
        const now = clock.unsafeCurrentTimeMillis()
        for (let first = heap.peek(); first !== undefined && first.deadline <= now; first = heap.peek()) {
          heap.pop()
          const log = onDue(first, now)
          if (log !== undefined) yield* log
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

    // --- requests: per endpoint URL at most `cap` at once, callers waiting first ---

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

    const obtain = Attempt.make({
      policy,
      store,
      client,
      onPrompt: (entry, prompt) => {
        entry.prompt = prompt
        notify(entry)
      }
    })

    const countersOf = (provider: string): Counters => {
      let counters = providers.get(provider)
      if (counters === undefined) {
        const counter = (outcome: string) =>
          TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", provider), Metric.tagged("outcome", outcome))
        counters = {
          success: counter("success"),
          transient: counter("transient"),
          permanent: counter("permanent"),
          expiry: TokenMetrics.secondsUntilExpiry.pipe(Metric.tagged("provider", provider))
        }
        providers.set(provider, counters)
      }
      return counters
    }

    const accept = (entry: Entry, got: Attempt.Got, now: number, random: number, counters: Counters) => {
      const token = got.token
      const next = settle(policy, now, { _tag: "Token", token, random })
      entry.accept(compact(token))
      entry.usableUntil = next._tag === "Valid" ? next.usableUntil : 0
      entry.dueAt = next._tag === "Valid" ? next.dueAt : Infinity
      entry.status = Status.Valid
      if (entry.rare !== undefined) {
        entry.error = undefined
        entry.attempt = 0
        entry.retryState = undefined
        entry.prompt = undefined
        const stored = entry.stored
        if (stored !== undefined) stored.version = got.version
      }
      schedule(entry, now)
      const expiresIn = token.expiresAt === undefined ? undefined : (token.expiresAt - now) / 1000
      return Effect.zipRight(
        expiresIn === undefined ? Effect.void : Metric.set(counters.expiry, expiresIn),
        !chatty ? Effect.void : Effect.logInfo(`token ${got.how}`).pipe(
          Effect.annotateLogs({
            expires_in_s: expiresIn === undefined ? "unknown" : Math.round(expiresIn),
            lifetime_from: token.lifetimeSource,
            refresh_in_s: entry.dueAt === Infinity ? "never" : Math.round((entry.dueAt - now) / 1000)
          })
        )
      )
    }

    const onFailure = (entry: Entry, error: TokenError, now: number, counters: Counters) =>
      Effect.gen(function*() {
        const group = entry.group
        entry.error = error
        entry.attempt++
        yield* Metric.increment(error.transient ? counters.transient : counters.permanent)
        const step = error.transient
          ? yield* policy.retry.step(
            now,
            error,
            entry.retryState === undefined ? policy.retry.initial : entry.retryState
          )
          : undefined
        const next = settle(policy, now, { _tag: "Error", error, step: step && [step[0], step[2]] })
        const detail = { error: error._tag, detail: error.message }
        if (next._tag === "Retrying") {
          entry.retryState = next.retryState
          entry.status = Status.Retrying
          entry.dueAt = next.dueAt
          schedule(entry, now)
          if (chatty) {
            return yield* Effect.logWarning("token request failed; retrying").pipe(Effect.annotateLogs({
              ...detail,
              attempt: entry.attempt,
              retry_in_ms: Math.round(next.dueAt - now),
              token_still_valid: now < entry.usableUntil
            }))
          }
          if (group.failing) return
          group.failing = true
          return yield* Effect.logWarning("token endpoint failing; retrying with backoff").pipe(
            Effect.annotateLogs(detail)
          )
        }
        // permanent, or the retry schedule gave up: no more requests until `refresh`
        entry.status = Status.Failed
        // the next `refresh` starts a new round of attempts
        entry.retryState = undefined
        entry.attempt = 0
        entry.dueAt = Infinity
        schedule(entry, now)
        yield* Effect.logError(
          error.transient
            ? "token request failed; the retry schedule gave up"
            : "token request failed permanently; waiting for refresh"
        ).pipe(Effect.annotateLogs(detail))
      })

    const onSuccess = (entry: Entry, got: Attempt.Got, now: number, counters: Counters) =>
      Effect.gen(function*() {
        const failed = entry.attempt
        yield* accept(entry, got, now, yield* Random.next, counters)
        if (got.how === "received") yield* Metric.increment(counters.success)
        if (chatty && failed > 0) {
          yield* Effect.logInfo("token request recovered").pipe(Effect.annotateLogs({ failed_attempts: failed }))
        }
        if (!chatty && entry.group.failing) {
          entry.group.failing = false
          yield* Effect.logInfo("token endpoint recovered")
        }
      })

    const attempt = (entry: Entry): Effect.Effect<void> =>
      Effect.gen(function*() {
        inFlight++
        // listeners see `Refreshing` only while a valid token is held
        if (entry.status === Status.Valid && entry.usableUntil > clock.unsafeCurrentTimeMillis()) notify(entry)
        const endpoint = yield* Effect.either(endpointOf(entry.endpoint))
        const provider = endpoint._tag === "Right" ? endpoint.right.provider : "unknown"
        const counters = countersOf(provider)
        const exit = yield* Effect.exit(
          endpoint._tag === "Left"
            ? Effect.fail(endpoint.left)
            : obtain(entry, endpoint.right).pipe(Effect.withSpan(config.span, { attributes: { provider } }))
        )
        inFlight--
        entry.phase = Phase.Idle
        entry.urgent = false
        const waiters = entry.waiters
        if (waiters !== undefined) entry.waiters = undefined
        const now = clock.unsafeCurrentTimeMillis()
        let outcome: Exit.Exit<AccessToken, TokenError> = exit as Exit.Exit<never, TokenError>
        if (Exit.isSuccess(exit)) {
          yield* onSuccess(entry, exit.value, now, counters)
          // every caller gets the token as held, so `invalidate(token)` recognises it
          outcome = Exit.succeed(entry.token!)
        } else {
          if (entry.rare !== undefined) entry.prompt = undefined
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) yield* onFailure(entry, failure.value, now, counters)
          else if (!Cause.isInterruptedOnly(exit.cause)) yield* Effect.logError("token request died", exit.cause)
        }
        entry.tidy()
        // callers are released after the record is updated, so a caller retrying sees the new state
        if (waiters !== undefined) Deferred.unsafeDone(waiters, outcome)
        notify(entry)
      }).pipe(Effect.annotateLogs({ provider: entry.endpoint.provider, url: entry.group.url }))

    // The next attempt's outcome, with one under way or about to be enqueued. The waiters exist before
    // the enqueue: an attempt that needs no IO (a stored token) can end within it.
    const join = (entry: Entry): Effect.Effect<AccessToken, TokenError> => {
      // a record dropped (removed, stopped) sends nothing more; its last error, if any, says why
      if (entry.released && entry.phase !== Phase.Running) {
        const error = entry.error
        return error !== undefined ? Effect.fail(error) : Effect.interrupt
      }
      let waiters = entry.waiters
      if (waiters === undefined) {
        waiters = Deferred.unsafeMake<AccessToken, TokenError>(FiberId.none)
        entry.waiters = waiters
      }
      return Deferred.await(waiters)
    }

    // --- keys ---

    const groupOf = (url: string): Group => {
      let group = groups.get(url)
      if (group === undefined) {
        group = { url, active: 0, urgent: new Fifo(), background: new Fifo(), failing: false }
        groups.set(url, group)
      }
      return group
    }

    /**
     * The record under `key`, made if new. A new endpoint is built now, so a wrong configuration fails
     * here. `legacy`: look for a store entry under tokenwarden 0.1.0's key too (a source's default key).
     */
    const add = (credential: Credential, key: string, legacy = false): Effect.Effect<Entry, InvalidConfiguration> =>
      Effect.suspend(() => {
        const existing = entries.get(key)
        if (existing !== undefined) return Effect.succeed(existing)
        const endpointKey = endpointKeyOf(credential)
        const known = endpoints.get(endpointKey)
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
              provider: tokenEndpoint.provider,
              url: tokenEndpoint.url,
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
            if (store !== undefined) {
              entry.stored = {
                identity: Key.identity(credential),
                legacyKey: legacy ? Key.legacyKeyOf(endpoint.url, credential) : undefined,
                version: 0,
                loaded: false
              }
            }
            endpoint.refs++
            entries.set(key, entry)
          }
          return entry
        })
      })

    // --- operations on one record ---

    // The last token, while it has not expired and the API has not refused it, when the provider is
    // failing: its skew margin is spent rather than a caller failed.
    const lastValid = (entry: Entry, now: number): AccessToken | undefined => {
      const last = entry.token
      return last !== undefined && !entry.invalidated && !entry.released && last.expiresAt !== undefined &&
          now < last.expiresAt
        ? last
        : undefined
    }

    /** A token for a caller who found none usable at `now` (the views' hot paths check first). */
    const get = (entry: Entry, now: number): Effect.Effect<AccessToken, TokenError> => {
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
      const next = join(entry)
      enqueue(entry, true)
      // if the request fails, the last token still serves until it expires
      return Effect.catchAll(next, (error) => {
        const last = lastValid(entry, clock.unsafeCurrentTimeMillis())
        return last !== undefined ? Effect.succeed(last) : Effect.fail(error)
      })
    }

    /** The next attempt's outcome: joins one under way, or starts one now. */
    const refresh = (entry: Entry): Effect.Effect<AccessToken, TokenError> =>
      Effect.suspend(() => {
        entry.lastUsed = clock.unsafeCurrentTimeMillis()
        const next = join(entry)
        enqueue(entry, true)
        return next
      })

    const getValidFor = (entry: Entry, duration: Duration.DurationInput) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        const needed = Duration.toMillis(duration)
        if (entry.token !== undefined && now < entry.usableUntil && entry.usableUntil >= now + needed) {
          entry.lastUsed = now
          return Effect.succeed(entry.token)
        }
        // the freshest token there is, even if its whole lifetime is shorter than asked for
        return refresh(entry)
      })

    const invalidate = (entry: Entry, token?: AccessToken) =>
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
        const annotations = { provider: entry.endpoint.provider, url: entry.group.url }
        // nothing can replace it without a person (a used authorization code, no refresh token): say
        // so at once instead of pretending a request is under way
        if (entry.refreshToken === undefined && !entry.grantUsable) {
          entry.error = new ReauthorizationRequired({ detail: "the token was refused and there is no refresh token" })
          entry.status = Status.Failed
          entry.dueAt = Infinity
          schedule(entry, clock.unsafeCurrentTimeMillis())
          notify(entry)
          return Effect.logWarning("token invalidated; reauthorization required").pipe(Effect.annotateLogs(annotations))
        }
        if (entry.status === Status.Valid) entry.status = Status.Pending
        notify(entry)
        enqueue(entry, true)
        return Effect.logInfo("token invalidated; fetching another").pipe(Effect.annotateLogs(annotations))
      })

    /** Drops the record now; its `changes` streams end. */
    const remove = (entry: Entry) =>
      Effect.suspend(() => {
        drop(entry)
        const listeners = entry.listeners
        if (listeners === undefined) return Effect.void
        entry.listeners = undefined
        entry.tidy()
        return Effect.forEach(listeners, Queue.shutdown, { discard: true })
      })

    /** Drops the record once a request under way has finished (its rotated refresh token is not lost). */
    const stop = (entry: Entry) =>
      Effect.suspend(() => {
        const running = entry.phase === Phase.Running ? Effect.exit(join(entry)) : Effect.void
        return Effect.zipRight(running, remove(entry))
      })

    /** The record's state first, then every change, for as long as the stream runs (it keeps the record held). */
    const changes = <E>(resolve: Effect.Effect<Entry, E>): Stream.Stream<TokenState, E> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const entry = yield* resolve
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

    // --- the store: one subscription for the whole engine, split by key ---

    // an entry another process wrote, newer than the one held and still valid, is adopted instead of
    // fetched; during an attempt its own outcome decides (the entry may be our own write coming back)
    const onNotice = (store: TokenStore.TokenStore, notice: TokenStore.Notice) =>
      Effect.suspend(() => {
        const entry = entries.get(notice.key)
        const stored = entry?.stored
        if (
          entry === undefined || stored === undefined || entry.phase === Phase.Running ||
          (notice.version !== undefined && notice.version <= stored.version)
        ) {
          return Effect.void
        }
        return Effect.flatMap(Effect.orElseSucceed(store.load(notice.key, stored.identity), Option.none), (found) => {
          const now = clock.unsafeCurrentTimeMillis()
          if (
            Option.isNone(found) || entry.released || entry.phase === Phase.Running ||
            found.value.version <= stored.version || now >= RefreshPolicy.usableUntil(policy, found.value.token)
          ) {
            return Effect.void
          }
          const got: Attempt.Got = { ...found.value, how: "adopted" }
          return Effect.flatMap(Random.next, (random) =>
            Effect.zipRight(
              accept(entry, got, now, random, countersOf(entry.endpoint.provider)),
              Effect.sync(() => notify(entry))
            ))
        })
      })

    if (store !== undefined) {
      yield* store.notices.pipe(
        Stream.runForEach((notice) => onNotice(store, notice)),
        // a broken subscription (Redis gone, a watcher died) is logged and started again, with backoff
        Effect.tapError((e) => TokenStore.logStoreError(e, undefined)),
        Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("1 minute")))),
        Effect.forkScoped
      )
    }

    // callers still waiting when the engine closes are interrupted, never left hanging
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
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("token scheduler died", cause)
        )
      )
    )

    return {
      clock,
      add,
      lookup: (key: string): Entry | undefined => entries.get(key),
      get,
      refresh,
      getValidFor,
      invalidate,
      remove,
      stop,
      changes,
      revive,
      /** Starts an attempt without waiting for it. */
      start: (entry: Entry) => Effect.sync(() => enqueue(entry, true)),
      state: (entry: Entry) => Effect.sync(() => stateOf(entry, clock.unsafeCurrentTimeMillis())),
      /** The token `get` hands out now without waiting, if any. */
      unsafeCurrent: (entry: Entry): AccessToken | undefined =>
        clock.unsafeCurrentTimeMillis() < entry.usableUntil ? entry.token : undefined,
      size: Effect.sync(() => entries.size),
      stats: Effect.sync(() => ({ size: entries.size, scheduled: heap.size, queued, inFlight }))
    }
  })

/**
 * An engine, as `make` builds it.
 *
 * @internal
 */
export type Engine = Effect.Effect.Success<ReturnType<typeof make>>

/**
 * The requirements of `make`.
 *
 * @internal
 */
export type Requirements = HttpClient.HttpClient | Scope.Scope

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
