/**
 * The refresh engine: every token's life, written once, under every view. A `TokenSource` is an
 * engine of one key, a `TokenPool` an engine of many keys with idle release.
 *
 * Each token is one plain record (`Entry`); the `Scheduler` decides when requests are sent, `attempt`
 * how a token is got, `settle` what an outcome makes of the record. A `Deferred` exists only while a
 * caller waits, and a listener queue only while someone listens. Records are mutated only by code that
 * does not yield in between (JS runs one fiber at a time), so they need no Ref, and a valid token is
 * one comparison away.
 *
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
import type * as ClientAuth from "../../ClientAuth.js"
import * as Grant from "../../Grant.js"
import * as RefreshPolicy from "../../RefreshPolicy.js"
import * as TokenEndpoint from "../../TokenEndpoint.js"
import type { InvalidConfiguration, TokenError } from "../../TokenError.js"
import { ReauthorizationRequired } from "../../TokenError.js"
import * as TokenMetrics from "../../TokenMetrics.js"
import { TokenState } from "../../TokenState.js"
import * as TokenStore from "../../TokenStore.js"
import { endpointKeyOf } from "../endpointKey.js"
import * as Monotonic from "../monotonic.js"
import * as Attempt from "./attempt.js"
import { Entry, Phase, Status } from "./entry.js"
import type { Endpoint } from "./entry.js"
import * as Key from "./key.js"
import { Scheduler } from "./scheduler.js"
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
  /**
   * A key's first attempt is a start (a source's `make`): a proxy's 4xx page then stays permanent, so
   * a wrong URL stops the program. Without it (a pool, which has no start) every attempt is judged as
   * after one.
   */
  readonly strictStart: boolean
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
  readonly provider: string
  readonly success: Metric.Metric.Counter<number>
  readonly transient: Metric.Metric.Counter<number>
  readonly permanent: Metric.Metric.Counter<number>
  readonly expiry: Metric.Metric.Gauge<number>
}

// built endpoints kept at once, recently used first out: one per client id would cost kilobytes a token
const endpointCacheSize = 256

/**
 * The engine: its records, and every operation on them. Its views (a source, a pool) call these.
 *
 * @internal
 */
export class Engine {
  private readonly entries = new Map<string, Entry>()
  // endpoint options by their identity (URL, client, timeout…), once for all their keys
  private readonly endpoints = new Map<string, Endpoint>()
  private endpointIds = 0
  private readonly built = new Map<number, TokenEndpoint.TokenEndpoint>()
  private readonly providers = new Map<string, Counters>()
  private readonly scheduler: Scheduler
  private readonly attempts: ReturnType<typeof Attempt.make>
  private inFlight = 0
  /**
   * The monotonic time in milliseconds, which every deadline and usability is measured on (a system
   * clock step changes nothing); the views' hot paths read it too.
   */
  readonly now: () => number

  constructor(
    private readonly config: Config,
    private readonly client: HttpClient.HttpClient,
    readonly clock: Clock.Clock,
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

  // --- state as callers see it ---

  private stateOf(entry: Entry, now: number): TokenState {
    // a device flow under way waits for its user, whatever came before
    if (entry.phase === Phase.Running && entry.prompt !== undefined) return TokenState.AwaitingUser(entry.prompt)
    const valid = entry.token !== undefined && now < entry.usableUntil ? Option.some(entry.token) : Option.none()
    if (entry.status === Status.Failed) return TokenState.Failed({ error: entry.error!, token: valid })
    if (entry.status === Status.Retrying) {
      return TokenState.Retrying({
        error: entry.error!,
        attempt: entry.attempt,
        nextAttemptAt: Monotonic.toWall(this.clock, entry.dueAt),
        token: valid
      })
    }
    if (Option.isSome(valid) && entry.phase !== Phase.Running) return TokenState.Valid({ token: valid.value })
    // a request under way: the token it replaces, until that expires (a caller who finds it past its
    // usable time waits for the request, and gets it back if the request fails)
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

  // --- deadlines ---

  private schedule(entry: Entry, now: number): void {
    const heap = this.scheduler.heap
    if (entry.released || entry.dormant || entry.phase !== Phase.Idle) return heap.remove(entry)
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
    const chatty = this.config.chatty
    if (now >= entry.dueAt) {
      // a new step of the slow schedule: a caller's `refresh` may send one request in it
      entry.stepUsed = false
      // callers waiting for this attempt make it urgent
      this.send(entry, entry.waiters !== undefined)
      return chatty && entry.status === Status.Valid ? Effect.logInfo("refreshing token before expiry") : undefined
    }
    this.notify(entry)
    this.schedule(entry, now)
    return chatty && now >= entry.usableUntil
      ? Effect.logWarning("token expired while the provider is failing")
      : undefined
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
    this.built.delete(endpoint.id)
  }

  /**
   * A caller's credential for a held key with another client secret (Basic or post) than the record's
   * (one rotated, given as a new value): the record's next request uses it, and so do new keys of that
   * endpoint. A secret given as an effect is read again after a refusal instead, and never compared.
   */
  readonly unsafeRebind = (entry: Entry, credential: Credential): void => {
    const old = entry.endpoint
    if (sameSecret(old.options.clientAuth, credential.clientAuth) || endpointKeyOf(credential) !== old.key) return
    const endpoint: Endpoint = {
      id: ++this.endpointIds,
      key: old.key,
      options: endpointOptions(credential, this.config.policy),
      provider: old.provider,
      group: old.group,
      refs: 1
    }
    this.endpoints.set(old.key, endpoint)
    entry.endpoint = endpoint
    this.release(old)
  }

  /** Wakes a dormant record (idle, of a grant that needs a user) that is asked for again. */
  readonly revive = (entry: Entry, now: number): void => {
    entry.dormant = false
    this.schedule(entry, now)
  }

  // --- attempts ---

  private endpointOf(endpoint: Endpoint): Effect.Effect<TokenEndpoint.TokenEndpoint, InvalidConfiguration> {
    const cached = this.built.get(endpoint.id)
    if (cached !== undefined) return Effect.succeed(cached)
    return TokenEndpoint.make(endpoint.options).pipe(
      Effect.provideService(HttpClient.HttpClient, this.client),
      Effect.tap((made) => Effect.sync(() => this.remember(endpoint.id, made)))
    )
  }

  private remember(id: number, endpoint: TokenEndpoint.TokenEndpoint): void {
    this.built.set(id, endpoint)
    if (this.built.size > endpointCacheSize) this.built.delete(this.built.keys().next().value!)
  }

  private countersOf(provider: string): Counters {
    let counters = this.providers.get(provider)
    if (counters === undefined) {
      const counter = (outcome: string) =>
        TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", provider), Metric.tagged("outcome", outcome))
      counters = {
        provider,
        success: counter("success"),
        transient: counter("transient"),
        permanent: counter("permanent"),
        expiry: TokenMetrics.secondsUntilExpiry.pipe(Metric.tagged("provider", provider))
      }
      this.providers.set(provider, counters)
    }
    return counters
  }

  private accept(entry: Entry, got: Attempt.Got, now: number, random: number): Effect.Effect<void> {
    const token = got.token
    // the token's epoch times, moved onto the monotonic clock by the wall clock now
    const offset = Monotonic.unsafeWallOffset(this.clock)
    const next = settle(this.config.policy, now, { _tag: "Token", token, random, offset })
    entry.accept(compact(token))
    // what our clock's offset to the server is, for tokens other processes store
    if (got.how === "received" && token.clockOffset !== undefined) entry.group.clockOffset = token.clockOffset
    entry.expiry = token.expiresAt === undefined ? Infinity : token.expiresAt - offset
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
    this.schedule(entry, now)
    const expiresIn = entry.expiry === Infinity ? undefined : (entry.expiry - now) / 1000
    const gauge = expiresIn === undefined
      ? Effect.void
      : Metric.set(this.countersOf(entry.endpoint.provider).expiry, expiresIn)
    if (!this.config.chatty) return gauge
    return Effect.zipRight(
      gauge,
      Effect.logInfo(`token ${got.how}`).pipe(Effect.annotateLogs({
        expires_in_s: expiresIn === undefined ? "unknown" : Math.round(expiresIn),
        lifetime_from: token.lifetimeSource,
        refresh_in_s: entry.dueAt === Infinity ? "never" : Math.round((entry.dueAt - now) / 1000)
      }))
    )
  }

  private onSuccess(entry: Entry, got: Attempt.Got, now: number, counters: Counters): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      const failed = entry.attempt
      yield* this.accept(entry, got, now, yield* Random.next)
      if (got.how === "received") yield* Metric.increment(counters.success)
      if (this.config.chatty && failed > 0) {
        yield* Effect.logInfo("token request recovered").pipe(Effect.annotateLogs({ failed_attempts: failed }))
      }
      if (!this.config.chatty && entry.group.failing) {
        entry.group.failing = false
        yield* Effect.logInfo("token endpoint recovered")
      }
    })
  }

  private onFailure(entry: Entry, error: TokenError, now: number, counters: Counters): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      const { chatty, policy } = this.config
      const before = entry.status
      entry.error = error
      entry.attempt++
      // after the first fetch, a 4xx that is not an OAuth or API error (a proxy's, a WAF's or a captive
      // portal's page) is passing; at a source's start it stays permanent, so a wrong URL stops `make`
      const transient = error.transient ||
        ((entry.started || !this.config.strictStart) && error._tag === "MalformedResponse" && error.status >= 400 &&
          error.status < 500)
      yield* Metric.increment(transient ? counters.transient : counters.permanent)
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
      const detail = { error: error._tag, detail: error.message }
      const retryIn = entry.dueAt === Infinity ? "never" : Math.round(entry.dueAt - now)
      if (slow) {
        return yield* Effect.logError(
          transient ? "token request failed; the retry schedule gave up" : "token request failed permanently"
        ).pipe(Effect.annotateLogs({ ...detail, retry_in_ms: retryIn }))
      }
      if (chatty) {
        return yield* Effect.logWarning("token request failed; retrying").pipe(Effect.annotateLogs({
          ...detail,
          attempt: entry.attempt,
          retry_in_ms: retryIn,
          token_still_valid: now < entry.usableUntil
        }))
      }
      if (entry.group.failing) return
      entry.group.failing = true
      return yield* Effect.logWarning("token endpoint failing; retrying with backoff").pipe(Effect.annotateLogs(detail))
    })
  }

  private attempt(entry: Entry): Effect.Effect<void> {
    return Effect.gen(this, function*() {
      this.inFlight++
      // listeners see `Refreshing` only while a valid token is held
      if (entry.status === Status.Valid && entry.usableUntil > this.now()) this.notify(entry)
      const endpoint = yield* Effect.either(this.endpointOf(entry.endpoint))
      const provider = entry.endpoint.provider
      const counters = this.countersOf(provider)
      const exit = yield* Effect.exit(
        endpoint._tag === "Left"
          ? Effect.fail(endpoint.left)
          : this.attempts.obtain(entry, endpoint.right).pipe(
            Effect.withSpan(this.config.span, { attributes: { provider } })
          )
      )
      this.inFlight--
      entry.phase = Phase.Idle
      entry.urgent = false
      const waiters = entry.waiters
      if (waiters !== undefined) entry.waiters = undefined
      const now = this.now()
      let outcome: Exit.Exit<AccessToken, TokenError> = exit as Exit.Exit<never, TokenError>
      if (Exit.isSuccess(exit)) {
        yield* this.onSuccess(entry, exit.value, now, counters)
        // every caller gets the token as held, so `invalidate(token)` recognises it
        outcome = Exit.succeed(entry.token!)
      } else {
        if (entry.rare !== undefined) entry.prompt = undefined
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) yield* this.onFailure(entry, failure.value, now, counters)
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

  // The next attempt's outcome, with one under way or about to be enqueued. The waiters exist before
  // the enqueue: an attempt that needs no IO (a stored token) can end within it.
  private join(entry: Entry): Effect.Effect<AccessToken, TokenError> {
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

  /** The record under `key`, if held. */
  readonly lookup = (key: string): Entry | undefined => this.entries.get(key)

  /**
   * The record under `key`, made if new. A new endpoint is built now, so a wrong configuration fails
   * here. `legacy`: look for a store entry under tokenwarden 0.1.0's key too (a source's default key).
   */
  readonly add = (credential: Credential, key: string, legacy = false): Effect.Effect<Entry, InvalidConfiguration> =>
    Effect.suspend(() => {
      const existing = this.entries.get(key)
      if (existing !== undefined) return Effect.succeed(existing)
      return Effect.map(this.endpointFor(credential), (endpoint) => {
        let entry = this.entries.get(key)
        if (entry === undefined) {
          entry = new Entry(key, credential.grant, endpoint, this.now())
          if (this.config.store !== undefined) {
            entry.stored = {
              identity: Key.identity(credential),
              legacyKey: legacy ? Key.legacyKeyOf(endpoint.group.url, credential) : undefined,
              version: 0,
              loaded: false
            }
          }
          endpoint.refs++
          this.entries.set(key, entry)
        }
        return entry
      })
    })

  private endpointFor(credential: Credential): Effect.Effect<Endpoint, InvalidConfiguration> {
    const endpointKey = endpointKeyOf(credential)
    const known = this.endpoints.get(endpointKey)
    if (known !== undefined) return Effect.succeed(known)
    const options = endpointOptions(credential, this.config.policy)
    return TokenEndpoint.make(options).pipe(
      Effect.provideService(HttpClient.HttpClient, this.client),
      Effect.map((tokenEndpoint) => {
        const again = this.endpoints.get(endpointKey)
        if (again !== undefined) return again
        const endpoint: Endpoint = {
          id: ++this.endpointIds,
          key: endpointKey,
          options,
          // one string per name, not per client: a pool of 100,000 clients keeps one
          provider: this.countersOf(tokenEndpoint.provider).provider,
          group: this.scheduler.groupOf(tokenEndpoint.url),
          refs: 0
        }
        this.endpoints.set(endpointKey, endpoint)
        this.remember(endpoint.id, tokenEndpoint)
        return endpoint
      })
    )
  }

  // --- operations on one record ---

  // The last token, while it has not expired and the API has not refused it, when the provider is
  // failing: its skew margin is spent rather than a caller failed.
  private lastValid(entry: Entry, now: number): AccessToken | undefined {
    const last = entry.token
    return last !== undefined && !entry.invalidated && !entry.released && last.expiresAt !== undefined &&
        now < entry.expiry
      ? last
      : undefined
  }

  /** Queues an attempt now: a caller asked, or one is due. */
  private send(entry: Entry, urgent: boolean): void {
    entry.validForSent = false
    this.scheduler.enqueue(entry, urgent)
  }

  // Whether an attempt may be sent now, or callers must join the next one the schedule sends: never
  // before a backoff delay or a Retry-After has passed.
  private backingOff(entry: Entry): boolean {
    return entry.status === Status.Retrying || entry.status === Status.Failed
  }

  /**
   * The token a caller gets at once at `now`, if usable (the hot path of a pool's keys): the key is
   * marked used, and woken if it slept idle.
   */
  readonly unsafeUsable = (entry: Entry, now: number): AccessToken | undefined => {
    if (entry.released || now >= entry.usableUntil) return undefined
    entry.lastUsed = now
    if (entry.dormant) this.revive(entry, now)
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

  // While the provider fails: the last token until it expires; else the next attempt when it is due
  // before `deadline` (a passing fault); else the last error at once. In `Failed` nobody waits.
  private waitOrFail(entry: Entry, now: number, deadline: number): Effect.Effect<AccessToken, TokenError> {
    // a token came meanwhile (another process's, through the store)
    if (now < entry.usableUntil) return Effect.succeed(entry.token!)
    const last = this.lastValid(entry, now)
    if (last !== undefined) return Effect.succeed(last)
    if (entry.status !== Status.Retrying || entry.dueAt > deadline || entry.released) return Effect.fail(entry.error!)
    return Effect.catchAll(this.join(entry), () => this.waitOrFail(entry, this.now(), deadline))
  }

  /**
   * The next attempt's outcome. While backing off it joins the attempt the schedule sends; in `Failed`
   * the first call in each step of the slow schedule sends one now (a fixed secret, a user back).
   */
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

  /**
   * A token valid at least `duration`. One request per token at most: once one was sent for the token
   * held, the freshest token there is, even if its whole lifetime is shorter than asked for.
   */
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

  /**
   * The API refused the token: it is no longer handed out, and another is fetched (once, for many
   * calls); while backing off, the attempt the schedule sends replaces it.
   */
  readonly invalidate = (entry: Entry, token?: AccessToken): Effect.Effect<void> =>
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
      // nothing can replace it without a person (a used authorization code, no refresh token): say so
      // at once instead of pretending a request is under way
      if (entry.refreshToken === undefined && !entry.grantUsable) {
        entry.error = new ReauthorizationRequired({ detail: "the token was refused and there is no refresh token" })
        entry.status = Status.Failed
        entry.dueAt = Infinity
        this.schedule(entry, this.now())
        this.notify(entry)
        return Effect.logWarning("token invalidated; reauthorization required").pipe(Effect.annotateLogs(annotations))
      }
      if (entry.status === Status.Valid) entry.status = Status.Pending
      this.notify(entry)
      if (!this.backingOff(entry)) this.send(entry, true)
      return Effect.logInfo("token invalidated; fetching another").pipe(Effect.annotateLogs(annotations))
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

  /** The record's state now. */
  readonly state = (entry: Entry): Effect.Effect<TokenState> => Effect.sync(() => this.stateOf(entry, this.now()))

  /** The token `get` hands out now without waiting, if any. */
  readonly unsafeCurrent = (entry: Entry): AccessToken | undefined =>
    this.now() < entry.usableUntil ? entry.token : undefined

  /** The record's state first, then every change, for as long as the stream runs (it keeps the record held). */
  readonly changes = <E>(resolve: Effect.Effect<Entry, E>): Stream.Stream<TokenState, E> =>
    Stream.unwrapScoped(Effect.gen(this, function*() {
      const entry = yield* resolve
      const queue = yield* Queue.unbounded<TokenState>()
      yield* Effect.acquireRelease(
        Effect.sync(() => this.listen(entry, queue)),
        () => Effect.sync(() => this.unlisten(entry, queue))
      )
      return Stream.fromQueue(queue)
    }))

  private listen(entry: Entry, queue: Queue.Queue<TokenState>): void {
    const listeners = entry.listeners ?? new Set()
    entry.listeners = listeners
    listeners.add(queue)
    const now = this.now()
    Queue.unsafeOffer(queue, this.stateOf(entry, now))
    if (entry.dormant) this.revive(entry, now)
    else this.schedule(entry, now)
  }

  private unlisten(entry: Entry, queue: Queue.Queue<TokenState>): void {
    const listeners = entry.listeners
    listeners?.delete(queue)
    if (listeners?.size === 0) {
      entry.listeners = undefined
      entry.tidy()
    }
    const now = this.now()
    entry.lastUsed = now
    this.schedule(entry, now)
  }

  /** Keys held. */
  readonly size: Effect.Effect<number> = Effect.sync(() => this.entries.size)

  /** What the engine holds and does now. */
  readonly stats = Effect.sync(() => ({
    size: this.entries.size,
    scheduled: this.scheduler.heap.size,
    queued: this.scheduler.queued,
    inFlight: this.inFlight
  }))

  // --- the store: one subscription for the whole engine, split by key ---

  // An entry another process wrote, newer than the one held and still valid, is adopted instead of
  // fetched; during an attempt its own outcome decides (the entry may be our own write coming back).
  private onNotice(notice: TokenStore.Notice): Effect.Effect<void> {
    const entry = this.entries.get(notice.key)
    const stored = entry?.stored
    const busy = () => entry === undefined || entry.released || entry.phase === Phase.Running
    if (stored === undefined || busy() || (notice.version ?? Infinity) <= stored.version) return Effect.void
    return Effect.flatMap(this.attempts.newerStored(entry!), (found) => {
      if (Option.isNone(found) || busy()) return Effect.void
      const now = this.now()
      return Effect.flatMap(Random.next, (random) =>
        Effect.zipRight(
          this.accept(entry!, { ...found.value, how: "adopted" }, now, random),
          Effect.sync(() => this.notify(entry!))
        ))
    })
  }

  /** The engine's fibers: the scheduler, and the store's subscription. */
  readonly run: Effect.Effect<void, never, Scope.Scope> = Effect.gen(this, function*() {
    const store = this.config.store
    if (store !== undefined) {
      yield* store.notices.pipe(
        Stream.runForEach((notice) => this.onNotice(notice)),
        // a broken subscription (Redis gone, a watcher died) is logged and started again, with backoff
        Effect.tapError((e) => TokenStore.logStoreError(e, undefined)),
        Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("1 minute")))),
        Effect.forkScoped
      )
    }
    // Closing waits (up to `shutdownGrace`) for the requests under way, whose tokens (a rotated
    // refresh token) are then kept and stored, and sends no new one; callers still waiting are then
    // interrupted, never left hanging.
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
        return Effect.ignore(
          Effect.timeout(
            Effect.interruptible(Effect.all(running, { concurrency: "unbounded" })),
            this.config.policy.shutdownGrace
          )
        )
      })
    )
    yield* Effect.forkScoped(
      this.scheduler.loop(() => this.now()).pipe(
        Effect.tapErrorCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("token scheduler died", cause)
        )
      )
    )
  })
}

/**
 * Builds an engine, its fibers running in the scope. Closing the scope stops every refresh and
 * interrupts callers still waiting.
 *
 * @internal
 */
export const make = (
  config: Config
): Effect.Effect<Engine, InvalidConfiguration, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    // every setting checked before any request
    yield* RefreshPolicy.validate(config.policy)
    const fibers = yield* FiberSet.make<void>()
    const engine = new Engine(
      config,
      yield* HttpClient.HttpClient,
      yield* Effect.clock,
      yield* FiberSet.runtime(fibers)()
    )
    yield* engine.run
    return engine
  })

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

// the client secret a client authentication carries, when given as a value
const secretValue = (auth: ClientAuth.ClientAuth): string | undefined => {
  const secret = "clientSecret" in auth ? auth.clientSecret : undefined
  return Redacted.isRedacted(secret) ? Redacted.value(secret) : undefined
}

// the same secret, or none to compare (an effect, a JWK object): only a new value is a rotation
const sameSecret = (a: ClientAuth.ClientAuth, b: ClientAuth.ClientAuth): boolean => {
  const before = secretValue(a)
  const after = secretValue(b)
  return before === undefined || after === undefined || before === after
}

const emptyExtra = Redacted.make<Readonly<Record<string, unknown>>>(Object.freeze({}))

// A response without extra fields (the usual RFC 6749 one) gets the one shared empty `extra`: a
// Redacted wrapper and its registry entry cost about 150 bytes per token otherwise.
const compact = (token: AccessToken): AccessToken => {
  for (const _ in Redacted.value(token.extra)) return token
  return { ...token, extra: emptyExtra }
}
