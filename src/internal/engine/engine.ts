/**
 * The refresh engine: every token's life, written once, under every view. A `TokenSource` is an
 * engine of one key, a `TokenPool` one of many keys with idle release. A token is one plain record
 * (`Entry`); the `Scheduler` decides when requests are sent, `attempt` how a token is got, `settle`
 * what an outcome makes of the record. Records are mutated only by code that does not yield in
 * between (JS runs one fiber at a time), so they need no Ref, and a valid token is one comparison away.
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
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
import type { TokenSource } from "../../TokenSource.js"
import { TokenState } from "../../TokenState.js"
import * as TokenStore from "../../TokenStore.js"
import { dynamic } from "../dynamicEffect.js"
import { endpointKeyOf, endpointOptions, rotatedSecret } from "../endpointKey.js"
import { legacyKeyOf } from "../legacyKey.js"
import * as Monotonic from "../monotonic.js"
import * as Attempt from "./attempt.js"
import { Asleep, Entry, Phase, Status } from "./entry.js"
import type { Endpoint } from "./entry.js"
import * as Key from "./key.js"
import { Scheduler } from "./scheduler.js"
import { settle } from "./settle.js"

/** How an engine runs. @internal */
export interface Config {
  readonly policy: RefreshPolicy.RefreshPolicy
  /** Requests under way at once per token endpoint URL, across every key. */
  readonly cap: number
  /** A token nobody asked for this long is dropped, in milliseconds (`Infinity` keeps it). */
  readonly idleMillis: number
  readonly store: TokenStore.TokenStore | undefined
  /**
   * A single source's engine: its first attempt is a start (a proxy's 4xx page is then permanent, so a
   * wrong URL stops `make`), and each token's life is logged; a pool logs an endpoint's failing and recovering.
   */
  readonly single: boolean
}

/** A credential as the engine holds it: the endpoint options and the grant. @internal */
export interface Credential extends TokenEndpoint.Options, Key.Credential {}

// a provider's metrics, tagged once
const metricsOf = (provider: string) => {
  const counter = (outcome: string) =>
    TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", provider), Metric.tagged("outcome", outcome))
  const expiry = TokenMetrics.secondsUntilExpiry.pipe(Metric.tagged("provider", provider))
  return {
    provider,
    success: counter("success"),
    transient: counter("transient"),
    permanent: counter("permanent"),
    expiry
  }
}

type Metrics = ReturnType<typeof metricsOf>

/** The engine: its records, and every operation on them, which its views (a source, a pool) call. @internal */
export class Engine {
  private readonly entries = new Map<string, Entry>()
  // endpoint options by their identity (URL, client, timeout…), once for all their keys
  private readonly endpoints = new Map<string, Endpoint>()
  private readonly built = new Map<Endpoint, TokenEndpoint.TokenEndpoint>()
  private readonly metrics = new Map<string, Metrics>()
  private readonly scheduler: Scheduler
  private readonly attempts: ReturnType<typeof Attempt.make>
  private inFlight = 0
  /** Monotonic milliseconds, on which every deadline and usability is measured; the views' hot paths read it. */
  readonly now: () => number

  constructor(
    private readonly config: Config,
    private readonly client: HttpClient.HttpClient,
    private readonly clock: Clock.Clock,
    run: (effect: Effect.Effect<void>) => unknown
  ) {
    this.now = Monotonic.reader(clock)
    this.scheduler = new Scheduler(Math.max(1, Math.floor(config.cap)), run, {
      onDue: (entry, now) => this.onDue(entry, now),
      attempt: (entry) => this.attempt(entry)
    })
    this.attempts = Attempt.make({
      policy: config.policy,
      store: config.store,
      client,
      onPrompt: (entry, prompt) => {
        entry.prompt = prompt
        this.notify(entry)
      }
    })
  }

  private stateOf(entry: Entry, now: number): TokenState {
    // a device flow under way waits for its user, whatever came before
    if (entry.phase === Phase.Running && entry.prompt !== undefined) return TokenState.AwaitingUser(entry.prompt)
    const valid = entry.token !== undefined && now < entry.usableUntil ? Option.some(entry.token) : Option.none()
    if (entry.status === Status.Failed) return TokenState.Failed({ error: entry.error!, token: valid })
    if (entry.status === Status.Retrying) {
      const nextAttemptAt = Monotonic.toWall(this.clock, entry.dueAt)
      return TokenState.Retrying({ error: entry.error!, attempt: entry.attempt, nextAttemptAt, token: valid })
    }
    if (Option.isSome(valid) && entry.phase !== Phase.Running) return TokenState.Valid({ token: valid.value })
    // a request under way: the token it replaces, until that expires
    const last = Option.isSome(valid)
      ? valid.value
      : entry.phase === Phase.Running && entry.status === Status.Valid
      ? this.lastValid(entry, now)
      : undefined
    if (last !== undefined) return TokenState.Refreshing({ token: last })
    return entry.prompt !== undefined ? TokenState.AwaitingUser(entry.prompt) : TokenState.Pending()
  }

  private notify(entry: Entry): void {
    const listeners = entry.listeners
    if (listeners === undefined) return
    const state = this.stateOf(entry, this.now())
    for (const queue of listeners) Queue.unsafeOffer(queue, state)
  }

  private schedule(entry: Entry, now: number): void {
    if (entry.released || entry.dormant || entry.phase !== Phase.Idle) return this.scheduler.heap.remove(entry)
    let deadline = entry.dueAt
    if (entry.listeners === undefined) deadline = Math.min(deadline, entry.lastUsed + this.config.idleMillis)
    else if (entry.status === Status.Retrying && entry.token !== undefined && entry.usableUntil > now) {
      // listeners are told when the token expires while the provider is failing
      deadline = Math.min(deadline, entry.usableUntil)
    }
    this.scheduler.at(entry, deadline)
  }

  private onDue(entry: Entry, now: number): Effect.Effect<void> | undefined {
    if (entry.released || entry.phase !== Phase.Idle) return
    if (entry.listeners === undefined && now - entry.lastUsed >= this.config.idleMillis) {
      // a credential that needs a user keeps its record: its latest refresh token is the only copy
      if (Grant.isUnattended(entry.grant)) this.drop(entry)
      else entry.dormant = true
      return
    }
    const single = this.config.single
    if (now >= entry.dueAt) {
      // a new step of the slow schedule: a caller's `refresh` may send one request in it
      entry.stepUsed = false
      // callers waiting for this attempt make it urgent
      this.send(entry, entry.waiters !== undefined)
      return single && entry.status === Status.Valid ? Effect.logInfo("refreshing token before expiry") : undefined
    }
    this.notify(entry)
    this.schedule(entry, now)
    return single && now >= entry.usableUntil
      ? Effect.logWarning("token expired while the provider is failing")
      : undefined
  }

  private revive(entry: Entry, now: number): void {
    entry.dormant = false
    this.schedule(entry, now)
  }

  /** The record under `key`, if held. */
  readonly lookup = (key: string): Entry | undefined => this.entries.get(key)

  /** The record under `key` (else the identity), made if new, grant and endpoint checked; `legacy`: 0.1.0's key too. */
  readonly add = (credential: Credential, key?: string, legacy = false): Effect.Effect<Entry, InvalidConfiguration> =>
    // a grant that cannot be sent (a JWT bearer grant's claims, key, lifetime) is refused before any request
    Effect.zipRight(
      Grant.validate(credential.grant),
      Effect.suspend(() => {
        const id = key ?? Key.identity(credential)
        const existing = this.entries.get(id)
        if (existing !== undefined) return Effect.succeed(existing)
        return Effect.map(this.endpointFor(credential), (endpoint) => {
          let entry = this.entries.get(id)
          if (entry !== undefined) return entry
          entry = new Entry(id, credential.grant, endpoint, this.now())
          if (this.config.store !== undefined) {
            const legacyKey = legacy ? legacyKeyOf(endpoint.group.url, credential) : undefined
            entry.stored = { identity: Key.identity(credential), legacyKey, version: 0, loaded: false }
          }
          endpoint.refs++
          this.entries.set(id, entry)
          return entry
        })
      })
    )

  private endpointFor(credential: Credential): Effect.Effect<Endpoint, InvalidConfiguration> {
    const key = endpointKeyOf(credential)
    const known = this.endpoints.get(key)
    if (known !== undefined) return Effect.succeed(known)
    const options = endpointOptions(credential, this.config.policy)
    return Effect.map(this.build(options), (built) => {
      const again = this.endpoints.get(key)
      if (again !== undefined) return again
      // one provider string per name, not per client: a pool of 100,000 clients keeps one
      const provider = this.metricsOf(built.provider).provider
      const endpoint = this.endpoint(key, options, provider, this.scheduler.groupOf(built.url))
      this.remember(endpoint, built)
      return endpoint
    })
  }

  private endpoint(key: string, options: TokenEndpoint.Options, provider: string, group: Endpoint["group"]): Endpoint {
    const endpoint: Endpoint = { key, options, provider, group, refs: 0 }
    this.endpoints.set(key, endpoint)
    return endpoint
  }

  private build(options: TokenEndpoint.Options): Effect.Effect<TokenEndpoint.TokenEndpoint, InvalidConfiguration> {
    return Effect.provideService(TokenEndpoint.make(options), HttpClient.HttpClient, this.client)
  }

  // the built endpoint of a record's options: built again once evicted from the cache
  private endpointOf(endpoint: Endpoint): Effect.Effect<TokenEndpoint.TokenEndpoint, InvalidConfiguration> {
    const cached = this.built.get(endpoint)
    if (cached !== undefined) return Effect.succeed(cached)
    return Effect.tap(this.build(endpoint.options), (made) => this.remember(endpoint, made))
  }

  private remember(endpoint: Endpoint, built: TokenEndpoint.TokenEndpoint): void {
    this.built.set(endpoint, built)
    // a few hundred at once, first in first out: one per client id would cost kilobytes a token
    if (this.built.size > 256) this.built.delete(this.built.keys().next().value!)
  }

  private metricsOf(provider: string): Metrics {
    let metrics = this.metrics.get(provider)
    if (metrics === undefined) this.metrics.set(provider, metrics = metricsOf(provider))
    return metrics
  }

  /** A caller's credential brings a rotated client secret for a held key: its next request, and new keys', use it. */
  readonly unsafeRebind = (entry: Entry, credential: Credential): void => {
    const old = entry.endpoint
    if (!rotatedSecret(old.options.clientAuth, credential.clientAuth) || endpointKeyOf(credential) !== old.key) return
    entry.endpoint = this.endpoint(old.key, endpointOptions(credential, this.config.policy), old.provider, old.group)
    entry.endpoint.refs = 1
    this.release(old)
  }

  private drop(entry: Entry): void {
    if (entry.released) return
    entry.released = true
    this.scheduler.heap.remove(entry)
    this.scheduler.dequeue(entry)
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key)
    this.release(entry.endpoint)
  }

  private release(endpoint: Endpoint): void {
    if (--endpoint.refs > 0) return
    if (this.endpoints.get(endpoint.key) === endpoint) this.endpoints.delete(endpoint.key)
    this.built.delete(endpoint)
  }

  // A token got: the record made valid and scheduled, its expiry gauged, its arrival logged.
  private accept(entry: Entry, got: Attempt.Got, now: number): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      const { how, token } = got
      const failed = entry.attempt
      // the token's epoch times, moved onto the monotonic clock by the wall clock now
      const offset = Monotonic.unsafeWallOffset(this.clock)
      const next = settle(this.config.policy, now, { _tag: "Token", token, random: yield* Random.next, offset })
      entry.accept(compact(token))
      // what our clock's offset to the server is, for tokens other processes store
      if (how === "received" && token.clockOffset !== undefined) entry.group.clockOffset = token.clockOffset
      entry.expiry = token.expiresAt === undefined ? Infinity : token.expiresAt - offset
      entry.usableUntil = next._tag === "Valid" ? next.usableUntil : 0
      entry.dueAt = next._tag === "Valid" ? next.dueAt : Infinity
      entry.status = Status.Valid
      if (entry.rare !== undefined) {
        entry.error = entry.retryState = entry.prompt = undefined
        entry.attempt = 0
        if (entry.stored !== undefined) entry.stored.version = got.version
      }
      this.schedule(entry, now)
      const metrics = this.metricsOf(entry.endpoint.provider)
      const expiresIn = entry.expiry === Infinity ? undefined : (entry.expiry - now) / 1000
      if (expiresIn !== undefined) yield* Metric.set(metrics.expiry, expiresIn)
      if (how === "received") yield* Metric.increment(metrics.success)
      if (!this.config.single) {
        if (!entry.group.failing) return
        entry.group.failing = false
        return yield* Effect.logInfo("token endpoint recovered")
      }
      yield* Effect.logInfo(`token ${how}`).pipe(Effect.annotateLogs({
        expires_in_s: expiresIn === undefined ? "unknown" : Math.round(expiresIn),
        lifetime_from: token.lifetimeSource,
        refresh_in_s: entry.dueAt === Infinity ? "never" : Math.round((entry.dueAt - now) / 1000)
      }))
      if (failed > 0) {
        yield* Effect.logInfo("token request recovered").pipe(Effect.annotateLogs({ failed_attempts: failed }))
      }
    })
  }

  private onFailure(entry: Entry, error: TokenError, now: number): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      const metrics = this.metricsOf(entry.endpoint.provider)
      const { policy, single } = this.config
      const before = entry.status
      entry.error = error
      entry.attempt++
      // a 4xx that is not an OAuth or API error (a proxy's page) is passing, but not at a source's start
      const transient = error.transient || ((entry.started || !single) && error._tag === "MalformedResponse" &&
        error.status >= 400 && error.status < 500)
      yield* Metric.increment(transient ? metrics.transient : metrics.permanent)
      const stateOf = (status: Status, schedule: Schedule.Schedule<unknown, TokenError>) =>
        before === status && entry.retryState !== undefined ? entry.retryState : schedule.initial
      let step = transient ? yield* policy.retry.step(now, error, stateOf(Status.Retrying, policy.retry)) : undefined
      const slow = step === undefined || step[2]._tag === "Done"
      if (slow) step = yield* policy.slowRetry.step(now, error, stateOf(Status.Failed, policy.slowRetry))
      const next = settle(policy, now, { _tag: "Error", error, slow, step: [step![0], step![2]] })
      entry.retryState = next._tag === "Valid" ? undefined : next.retryState
      // nothing changes without a person (a refused refresh token, a device flow): no request by itself
      const unattended = entry.refreshToken !== undefined || (entry.grantUsable && Grant.isUnattended(entry.grant))
      entry.dueAt = next._tag === "Valid" || (slow && !unattended) ? Infinity : next.dueAt
      entry.status = slow ? Status.Failed : Status.Retrying
      // the next round of attempts (after `refresh`, or the slow schedule's) counts from 1
      if (slow) entry.attempt = 0
      this.schedule(entry, now)
      const retry_in_ms = entry.dueAt === Infinity ? "never" : Math.round(entry.dueAt - now)
      const log = slow
        ? Effect.logError(
          transient ? "token request failed; the retry schedule gave up" : "token request failed permanently"
        )
        : single
        ? Effect.logWarning("token request failed; retrying").pipe(
          Effect.annotateLogs({ attempt: entry.attempt, token_still_valid: now < entry.usableUntil })
        )
        : entry.group.failing
        ? Effect.void
        : Effect.logWarning("token endpoint failing; retrying with backoff")
      // a pool logs an endpoint's failing once, not each token's
      if (!slow && !single) entry.group.failing = true
      yield* Effect.annotateLogs(log, { error: error._tag, detail: error.message, retry_in_ms })
    })
  }

  private attempt(entry: Entry): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      this.inFlight++
      // listeners see `Refreshing` only while a valid token is held
      if (entry.status === Status.Valid && entry.usableUntil > this.now()) this.notify(entry)
      const provider = entry.endpoint.provider
      const exit = yield* Effect.exit(Effect.flatMap(
        this.endpointOf(entry.endpoint),
        (endpoint) =>
          this.attempts.obtain(entry, endpoint).pipe(
            Effect.withSpan(this.config.single ? "TokenSource.refresh" : "TokenPool.refresh", {
              attributes: { provider }
            })
          )
      ))
      this.inFlight--
      entry.phase = Phase.Idle
      entry.urgent = false
      const waiters = entry.waiters
      if (waiters !== undefined) entry.waiters = undefined
      const now = this.now()
      let outcome: Exit.Exit<AccessToken, TokenError> = exit as Exit.Exit<never, TokenError>
      if (Exit.isSuccess(exit)) {
        yield* this.accept(entry, exit.value, now)
        // every caller gets the token as held, so `invalidate(token)` recognises it
        outcome = Exit.succeed(entry.token!)
      } else {
        if (entry.rare !== undefined) entry.prompt = undefined
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) yield* this.onFailure(entry, failure.value, now)
        else if (!Cause.isInterruptedOnly(exit.cause)) yield* Effect.logError("token request died", exit.cause)
      }
      // from now on a proxy's error page is a passing fault, not a wrong configuration
      entry.started = true
      entry.tidy()
      // callers are released after the record is updated, so a caller retrying sees the new state
      if (waiters !== undefined) Deferred.unsafeDone(waiters, outcome)
      this.notify(entry)
    }).pipe(Effect.annotateLogs({ provider: entry.endpoint.provider, url: entry.group.url }))
  }

  // The next attempt's outcome; the waiters exist before the enqueue, in which a stored token can arrive.
  private join(entry: Entry): Effect.Effect<AccessToken, TokenError> {
    // a record dropped (removed, stopped) sends nothing more; its last error, if any, says why
    if (entry.released && entry.phase !== Phase.Running) {
      return entry.error !== undefined ? Effect.fail(entry.error) : Effect.interrupt
    }
    entry.waiters ??= Deferred.unsafeMake<AccessToken, TokenError>(FiberId.none)
    return Deferred.await(entry.waiters)
  }

  /** Queues an attempt now: a caller asked, or one is due. */
  private send(entry: Entry, urgent: boolean): void {
    entry.validForSent = false
    this.scheduler.enqueue(entry, urgent)
  }

  // Whether callers must join the attempt the schedule sends: never before a backoff or a Retry-After.
  private backingOff(entry: Entry): boolean {
    return entry.status === Status.Retrying || entry.status === Status.Failed
  }

  // The last token, not expired nor refused, while the provider fails: its skew margin spent, no caller failed.
  private lastValid(entry: Entry, now: number): AccessToken | undefined {
    const last = entry.token
    const live = last?.expiresAt !== undefined && !entry.invalidated && !entry.released && now < entry.expiry
    return live ? last : undefined
  }

  /** The token a caller gets at once at `now`, if usable (a pool key's hot path): marked used, woken if dormant. */
  readonly unsafeUsable = (entry: Entry, now: number): AccessToken | undefined => {
    if (now >= entry.usableUntil) return undefined
    if ((entry.flags & Asleep) !== 0) {
      if (entry.released) return undefined
      this.revive(entry, now)
    }
    entry.lastUsed = now
    return entry.token
  }

  /** A token for a caller who found none usable at `now` (the views' hot paths check first). */
  readonly get = (entry: Entry, now: number): Effect.Effect<AccessToken, TokenError> => {
    entry.lastUsed = now
    if (now < entry.usableUntil) {
      if (entry.dormant) this.revive(entry, now)
      return Effect.succeed(entry.token!)
    }
    const deadline = now + Duration.toMillis(this.config.policy.maxWait)
    if (this.backingOff(entry)) return this.waitOrFail(entry, now, deadline)
    const next = this.join(entry)
    this.send(entry, true)
    return Effect.catchAll(next, () => this.waitOrFail(entry, this.now(), deadline))
  }

  // While the provider fails: the last token until it expires, else the next attempt if due before
  // `deadline` (a passing fault), else the last error at once. In `Failed` nobody waits.
  private waitOrFail(entry: Entry, now: number, deadline: number): Effect.Effect<AccessToken, TokenError> {
    // a token came meanwhile (another process's, through the store)
    if (now < entry.usableUntil) return Effect.succeed(entry.token!)
    const last = this.lastValid(entry, now)
    if (last !== undefined) return Effect.succeed(last)
    if (entry.status !== Status.Retrying || entry.dueAt > deadline || entry.released) return Effect.fail(entry.error!)
    return Effect.catchAll(this.join(entry), () => this.waitOrFail(entry, this.now(), deadline))
  }

  /** The next attempt's outcome: the schedule's while backing off, but in `Failed` one now per slow step. */
  readonly refresh = (entry: Entry): Effect.Effect<AccessToken, TokenError> =>
    Effect.suspend(() => {
      entry.lastUsed = this.now()
      const next = this.join(entry)
      if (entry.status === Status.Failed && !entry.stepUsed) {
        entry.stepUsed = true
        this.send(entry, true)
      } else if (!this.backingOff(entry)) this.send(entry, true)
      return next
    })

  /** Starts an attempt without waiting for it. */
  readonly start = (entry: Entry): Effect.Effect<void> => Effect.sync(() => this.send(entry, true))

  /** A token valid at least `duration`: one request per token at most, then the freshest token there is. */
  readonly getValidFor = (entry: Entry, duration: Duration.DurationInput): Effect.Effect<AccessToken, TokenError> =>
    Effect.suspend(() => {
      const now = this.now()
      const usable = entry.token !== undefined && now < entry.usableUntil
      if (usable && entry.usableUntil >= now + Duration.toMillis(duration)) {
        entry.lastUsed = now
        return Effect.succeed(entry.token!)
      }
      // a request under way is the freshest token there will be
      if (entry.phase !== Phase.Idle) return this.refresh(entry)
      if (!usable || this.backingOff(entry)) return this.get(entry, now)
      if (entry.validForSent) return Effect.succeed(entry.token!)
      const next = this.join(entry)
      this.send(entry, true)
      entry.validForSent = true
      return next
    })

  /** The API refused the token: no longer handed out, and another fetched once (while backing off, by the schedule). */
  readonly invalidate = (entry: Entry, token?: AccessToken): Effect.Effect<void> =>
    Effect.suspend(() => {
      const current = entry.token
      if (entry.released || current === undefined || entry.invalidated || (token !== undefined && token !== current)) {
        return Effect.void
      }
      // the token stays as the one a new request replaces, but is no longer handed out
      entry.invalidated = true
      entry.usableUntil = 0
      // nothing replaces it without a person (a used code, no refresh token): said at once
      const stuck = entry.refreshToken === undefined && !entry.grantUsable
      if (stuck) {
        entry.error = new ReauthorizationRequired({ detail: "the token was refused and there is no refresh token" })
        entry.status = Status.Failed
        entry.dueAt = Infinity
        this.schedule(entry, this.now())
      } else if (entry.status === Status.Valid) entry.status = Status.Pending
      this.notify(entry)
      if (!this.backingOff(entry)) this.send(entry, true)
      return Effect.annotateLogs(
        stuck
          ? Effect.logWarning("token invalidated; reauthorization required")
          : Effect.logInfo("token invalidated; fetching another"),
        { provider: entry.endpoint.provider, url: entry.group.url }
      )
    })

  /** Drops the record now; its `changes` streams end. */
  readonly remove = (entry: Entry): Effect.Effect<void> =>
    Effect.suspend(() => {
      this.drop(entry)
      const listeners = entry.listeners
      if (listeners === undefined) return Effect.void
      entry.listeners = undefined
      entry.tidy()
      return Effect.forEach(listeners, Queue.shutdown, { discard: true })
    })

  /** Drops the record once a request under way has finished (its rotated refresh token is not lost). */
  readonly stop = (entry: Entry): Effect.Effect<void> =>
    Effect.suspend(() =>
      Effect.zipRight(entry.phase === Phase.Running ? Effect.exit(this.join(entry)) : Effect.void, this.remove(entry))
    )

  /** A `TokenSource` of a record; a pool's `renew` gives it again once dropped (idle, removed). */
  readonly view = (first: Entry, renew?: Effect.Effect<Entry>): TokenSource => {
    let entry = first
    const now = this.now
    const current = Effect.suspend(() =>
      entry.released && renew !== undefined ? Effect.map(renew, (fresh) => (entry = fresh)) : Effect.succeed(entry)
    )
    return {
      // a valid token is one `Exit` (a `Ref.get`'s cost); a single source's record is never replaced
      // nor idle, and skips that bookkeeping (10 ns a call)
      get: renew === undefined
        ? dynamic(() => {
          const at = now()
          return at < first.usableUntil ? Exit.succeed(first.token!) : this.get(first, at)
        })
        : dynamic(() => {
          const at = now()
          const token = this.unsafeUsable(entry, at)
          return token !== undefined ? Exit.succeed(token) : Effect.flatMap(current, (fresh) => this.get(fresh, at))
        }),
      getValidFor: (duration) => Effect.flatMap(current, (fresh) => this.getValidFor(fresh, duration)),
      refresh: Effect.flatMap(current, this.refresh),
      invalidate: (token) => Effect.flatMap(current, (fresh) => this.invalidate(fresh, token)),
      unsafeCurrent: () => !entry.released && this.now() < entry.usableUntil ? entry.token : undefined,
      changes: this.changes(current),
      state: Effect.flatMap(current, (fresh) => Effect.sync(() => this.stateOf(fresh, this.now()))),
      provider: first.endpoint.provider,
      stop: Effect.suspend(() => this.stop(entry))
    }
  }

  /** The record's state first, then every change, for as long as the stream runs (it keeps the record held). */
  readonly changes = <E>(resolve: Effect.Effect<Entry, E>): Stream.Stream<TokenState, E> =>
    Stream.unwrapScoped(Effect.gen(this, function*() {
      const entry = yield* resolve
      const queue = yield* Queue.unbounded<TokenState>()
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          ;(entry.listeners ??= new Set()).add(queue)
          const now = this.now()
          Queue.unsafeOffer(queue, this.stateOf(entry, now))
          if (entry.dormant) this.revive(entry, now)
          else this.schedule(entry, now)
        }),
        () =>
          Effect.sync(() => {
            const listeners = entry.listeners
            listeners?.delete(queue)
            if (listeners?.size === 0) {
              entry.listeners = undefined
              entry.tidy()
            }
            this.schedule(entry, entry.lastUsed = this.now())
          })
      )
      return Stream.fromQueue(queue)
    }))

  /** What the engine holds and does now. */
  readonly stats = Effect.sync(() => ({
    size: this.entries.size,
    scheduled: this.scheduler.heap.size,
    queued: this.scheduler.queued,
    inFlight: this.inFlight
  }))

  // Another process's newer, valid entry is adopted; during an attempt its outcome decides (maybe our own write).
  private onNotice(notice: TokenStore.Notice): Effect.Effect<void> {
    const entry = this.entries.get(notice.key)
    const busy = () => entry === undefined || entry.released || entry.phase === Phase.Running
    const stored = entry?.stored
    if (stored === undefined || busy() || (notice.version ?? Infinity) <= stored.version) return Effect.void
    return Effect.flatMap(this.attempts.newerStored(entry!), (found) =>
      Option.isNone(found) || busy()
        ? Effect.void
        : Effect.zipRight(
          this.accept(entry!, { ...found.value, how: "adopted" }, this.now()),
          Effect.sync(() => this.notify(entry!))
        ))
  }

  /** The engine's fibers: the scheduler, and the store's subscription. */
  readonly run: Effect.Effect<void, never, Scope.Scope> = Effect.gen(this, function*() {
    if (this.config.store !== undefined) {
      yield* this.config.store.notices.pipe(
        Stream.runForEach((notice) => this.onNotice(notice)),
        // a broken subscription (Redis gone, a watcher died) is logged and started again, with backoff
        Effect.tapError((e) => TokenStore.logStoreError(e, undefined)),
        Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("1 minute")))),
        Effect.forkScoped
      )
    }
    // Closing sends no new request and waits up to `shutdownGrace` for those under way (a rotated
    // refresh token is kept and stored); callers still waiting are interrupted, never left hanging.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        this.scheduler.closing = true
        const running: Array<Effect.Effect<unknown>> = []
        for (const entry of this.entries.values()) {
          const waiters = entry.waiters
          entry.waiters = undefined
          if (waiters !== undefined) Deferred.unsafeDone(waiters, Effect.interrupt)
          // a device flow waiting for its user has nothing to keep yet
          if (entry.phase === Phase.Running && entry.prompt === undefined) running.push(Effect.exit(this.join(entry)))
        }
        // interruptible: a finalizer is not, and the timeout could not stop the wait otherwise
        const all = Effect.interruptible(Effect.all(running, { concurrency: "unbounded" }))
        return Effect.ignore(Effect.timeout(all, this.config.policy.shutdownGrace))
      })
    )
    yield* Effect.forkScoped(
      this.scheduler.loop(this.now).pipe(
        Effect.tapErrorCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("token scheduler died", cause)
        )
      )
    )
  })
}

/** Builds an engine, its fibers running in the scope (closing it stops every refresh). @internal */
export const make = (
  config: Config
): Effect.Effect<Engine, InvalidConfiguration, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    // every setting checked before any request
    yield* RefreshPolicy.validate(config.policy)
    const fibers = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(fibers)()
    const engine = new Engine(config, yield* HttpClient.HttpClient, yield* Effect.clock, run)
    yield* engine.run
    return engine
  })

const emptyExtra = Redacted.make<Readonly<Record<string, unknown>>>(Object.freeze({}))

// A response without extra fields (the usual RFC 6749 one) gets the one shared empty `extra`: a
// Redacted wrapper and its registry entry cost about 150 bytes per token otherwise.
const compact = (token: AccessToken): AccessToken => {
  for (const _ in Redacted.value(token.extra)) return token
  return { ...token, extra: emptyExtra }
}
