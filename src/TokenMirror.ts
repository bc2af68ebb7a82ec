/**
 * Thread sharing: one owner (usually the main thread) holds a token source and refreshes it; worker
 * threads get a mirror of it, a `TokenSource` that never sends a token request. They share one
 * refresher, one request per lifetime and one retry schedule, however many workers there are.
 *
 * The owner's `serve` gives a `Handle`: plain data (a `BroadcastChannel` name), so it fits
 * `workerData` and reaches every worker of a pool (piscina's included) at start. A `BroadcastChannel`
 * rather than a `MessagePort`: a port can be transferred to one thread only, while one handle must serve
 * any number of workers, started at any time.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Crypto from "node:crypto"
import { BroadcastChannel } from "node:worker_threads"
import type { AccessToken, LifetimeSource } from "./AccessToken.js"
import * as Monotonic from "./internal/monotonic.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import { OwnerGone, TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"
import * as TokenState from "./TokenState.js"

/**
 * What connects a worker to an owner's source: plain data, for `workerData` or a message.
 *
 * @since 0.2.0
 * @category models
 */
export interface Handle {
  readonly _tag: "tokenwarden/TokenMirror/Handle"
  /** The name of the `BroadcastChannel` the owner listens on. */
  readonly channel: string
  readonly provider: string
  readonly identity: string | undefined
  /** How often the owner says it is alive, in milliseconds. */
  readonly heartbeatMillis: number
}

// --- the wire: tokens as bytes (no field of a message is the token as a string), errors in their
// Schema encoding, times as epoch milliseconds (each thread's monotonic clock has its own origin)

interface WireToken {
  readonly value: Uint8Array
  readonly type: string
  readonly issuedAt: number
  readonly expiresAt: number | undefined
  readonly lifetimeSource: LifetimeSource
  readonly scopes: ReadonlyArray<string>
}

type WireState =
  | { readonly _tag: "Pending" }
  | { readonly _tag: "Valid" | "Refreshing"; readonly token: WireToken }
  | {
    readonly _tag: "Retrying"
    readonly error: unknown
    readonly attempt: number
    readonly nextAttemptAt: number
    readonly token: WireToken | undefined
  }
  | { readonly _tag: "Failed"; readonly error: unknown; readonly token: WireToken | undefined }
  | {
    readonly _tag: "AwaitingUser"
    readonly userCode: string
    readonly verificationUri: string
    readonly verificationUriComplete: string | undefined
    readonly expiresAt: number
  }

type ToWorker =
  | { readonly t: "state"; readonly state: WireState }
  | { readonly t: "alive" }
  | { readonly t: "reply"; readonly id: string; readonly token?: WireToken; readonly error?: unknown }
  | { readonly t: "closed"; readonly detail: string }

type ToOwner =
  | { readonly t: "hello" }
  | { readonly t: "get"; readonly id: string }
  | { readonly t: "getValidFor"; readonly id: string; readonly millis: number }
  | { readonly t: "refresh"; readonly id: string }
  | { readonly t: "invalidate"; readonly token: Uint8Array | undefined }

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const encodeError = Schema.encodeSync(TokenError)
const decodeError = Schema.decodeUnknownSync(TokenError)

const wireToken = (token: AccessToken): WireToken => ({
  value: encoder.encode(Redacted.value(token.value)),
  type: token.type,
  issuedAt: token.issuedAt,
  expiresAt: token.expiresAt,
  lifetimeSource: token.lifetimeSource,
  scopes: token.scopes
})

// a mirror never refreshes: the refresh token stays with the owner
const fromWire = (wire: WireToken): AccessToken => ({
  value: Redacted.make(decoder.decode(wire.value)),
  type: wire.type,
  issuedAt: wire.issuedAt,
  expiresAt: wire.expiresAt,
  lifetimeSource: wire.lifetimeSource,
  scopes: wire.scopes,
  refreshToken: undefined,
  extra: Redacted.make({})
})

const wireOption = (token: Option.Option<AccessToken>) => Option.isSome(token) ? wireToken(token.value) : undefined
const optionOf = (token: WireToken | undefined) => token === undefined ? Option.none() : Option.some(fromWire(token))

const wireState = (state: TokenState.TokenState): WireState => {
  switch (state._tag) {
    case "Pending":
      return { _tag: "Pending" }
    case "Valid":
    case "Refreshing":
      return { _tag: state._tag, token: wireToken(state.token) }
    case "Retrying":
      return {
        _tag: "Retrying",
        error: encodeError(state.error),
        attempt: state.attempt,
        nextAttemptAt: state.nextAttemptAt,
        token: wireOption(state.token)
      }
    case "Failed":
      return { _tag: "Failed", error: encodeError(state.error), token: wireOption(state.token) }
    case "AwaitingUser":
      return {
        _tag: "AwaitingUser",
        userCode: state.userCode,
        verificationUri: state.verificationUri,
        verificationUriComplete: Option.getOrUndefined(state.verificationUriComplete),
        expiresAt: state.expiresAt
      }
  }
}

const stateFromWire = (wire: WireState): TokenState.TokenState => {
  switch (wire._tag) {
    case "Pending":
      return TokenState.TokenState.Pending()
    case "Valid":
      return TokenState.TokenState.Valid({ token: fromWire(wire.token) })
    case "Refreshing":
      return TokenState.TokenState.Refreshing({ token: fromWire(wire.token) })
    case "Retrying":
      return TokenState.TokenState.Retrying({
        error: decodeError(wire.error),
        attempt: wire.attempt,
        nextAttemptAt: wire.nextAttemptAt,
        token: optionOf(wire.token)
      })
    case "Failed":
      return TokenState.TokenState.Failed({ error: decodeError(wire.error), token: optionOf(wire.token) })
    case "AwaitingUser":
      return TokenState.TokenState.AwaitingUser({
        userCode: wire.userCode,
        verificationUri: wire.verificationUri,
        verificationUriComplete: Option.fromNullable(wire.verificationUriComplete),
        expiresAt: wire.expiresAt
      })
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Crypto.timingSafeEqual(a, b)

/**
 * Shares a token source with worker threads until the scope closes: answers their requests, tells
 * them every state, and says it is alive every `heartbeat` (1 second by default). Closing the scope
 * tells the workers, whose waiting calls then fail with `OwnerGone`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const serve = (
  source: TokenSource,
  options?: { readonly heartbeat?: Duration.DurationInput | undefined }
): Effect.Effect<Handle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const heartbeatMillis = Math.max(1, Duration.toMillis(options?.heartbeat ?? Duration.seconds(1)))
    const name = `tokenwarden/mirror/${Crypto.randomUUID()}`
    const channel = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const opened = new BroadcastChannel(name)
        // the owner's program decides when it ends, not the channel
        opened.unref()
        return opened
      }),
      (opened) =>
        Effect.sync(() => {
          opened.postMessage({ t: "closed", detail: "the owner's scope closed" } satisfies ToWorker)
          opened.onmessage = () => {}
          opened.close()
        })
    )
    const post = (message: ToWorker) => channel.postMessage(message)
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const reply = (id: string, effect: Effect.Effect<AccessToken, TokenError>) =>
      Effect.exit(effect).pipe(Effect.map((exit) => {
        if (Exit.isSuccess(exit)) return post({ t: "reply", id, token: wireToken(exit.value) })
        const failure: TokenError = Option.getOrElse(
          Cause.failureOption(exit.cause),
          () => new OwnerGone({ provider: source.provider, detail: "the owner's request was interrupted" })
        )
        post({ t: "reply", id, error: encodeError(failure) })
      }))
    const invalidate = (bytes: Uint8Array | undefined) =>
      Effect.flatMap(source.state, (state) => {
        const current = Option.getOrUndefined(TokenState.token(state))
        // a 401 about a token already replaced changes nothing (many workers, one refresh)
        if (current === undefined || (bytes !== undefined && !sameBytes(bytes, wireToken(current).value))) {
          return Effect.void
        }
        return source.invalidate(current)
      })
    const handleMessage = (message: ToOwner): Effect.Effect<void> => {
      switch (message.t) {
        case "hello":
          return Effect.map(source.state, (state) => post({ t: "state", state: wireState(state) }))
        case "get":
          return reply(message.id, source.get)
        case "getValidFor":
          return reply(message.id, source.getValidFor(Duration.millis(message.millis)))
        case "refresh":
          return reply(message.id, source.refresh)
        case "invalidate":
          return invalidate(message.token)
      }
    }
    channel.onmessage = (event: unknown) => {
      const message = (event as { readonly data: unknown }).data as ToOwner | ToWorker
      // workers hear each other's requests and the owner's own words too: only requests are for us
      if (typeof message === "object" && message !== null && "t" in message && isToOwner(message)) {
        runFork(handleMessage(message))
      }
    }
    yield* source.changes.pipe(
      Stream.runForEach((state) => Effect.sync(() => post({ t: "state", state: wireState(state) }))),
      Effect.forkScoped
    )
    yield* Effect.sync(() => post({ t: "alive" })).pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(heartbeatMillis))),
      Effect.forkScoped
    )
    return {
      _tag: "tokenwarden/TokenMirror/Handle",
      channel: name,
      provider: source.provider,
      identity: source.identity,
      heartbeatMillis
    } satisfies Handle
  })

const ownerMessages: ReadonlySet<string> = new Set(["hello", "get", "getValidFor", "refresh", "invalidate"])
const isToOwner = (message: { readonly t: unknown }): message is ToOwner =>
  typeof message.t === "string" && ownerMessages.has(message.t)

/**
 * Options of a mirror.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The owner's policy, so the mirror stops handing out a token exactly when the source would. */
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  /**
   * How long the owner may stay silent before the mirror calls it gone; three of its heartbeats by
   * default.
   */
  readonly ownerTimeout?: Duration.DurationInput | undefined
}

/**
 * A mirror of the owner's source, in a worker: the same `TokenSource` interface, answered from the
 * states the owner sends, asking the owner only when no token is usable. It never sends a token
 * request. A late mirror gets the current token at once. When the owner is gone, a call that needs it
 * fails with `OwnerGone`; a token still valid is still handed out.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (handle: Handle, options?: Options): Effect.Effect<TokenSource, never, Scope.Scope> =>
  Effect.gen(function*() {
    const policy = options?.policy ?? RefreshPolicy.defaults
    const ownerTimeout = options?.ownerTimeout === undefined
      ? 3 * handle.heartbeatMillis
      : Duration.toMillis(options.ownerTimeout)
    const provider = handle.provider
    const clock = yield* Effect.clock
    const runSync = Runtime.runSync(yield* Effect.runtime<never>())
    const state = yield* SubscriptionRef.make<TokenState.TokenState>(TokenState.TokenState.Pending())
    const greeted = yield* Deferred.make<void>()
    const pending = new Map<string, Deferred.Deferred<AccessToken, TokenError>>()
    let current: TokenState.TokenState = TokenState.TokenState.Pending()
    let refused: Uint8Array | undefined
    // until when the current token is handed out, on the monotonic clock (a system clock step changes nothing)
    let until = 0
    const monotonic = Monotonic.reader(clock)
    let lastHeard = monotonic()
    let gone: OwnerGone | undefined
    // an owner that said it closed is gone for good; one that was only silent may speak again
    let closedByOwner = false

    const channel = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const opened = new BroadcastChannel(handle.channel)
        opened.unref()
        return opened
      }),
      (opened) =>
        Effect.sync(() => {
          opened.onmessage = () => {}
          opened.close()
          const closed = new OwnerGone({ provider, detail: "the mirror was closed" })
          for (const waiting of pending.values()) Deferred.unsafeDone(waiting, Exit.fail(closed))
          pending.clear()
        })
    )
    const post = (message: ToOwner) => channel.postMessage(message)

    const setState = (next: TokenState.TokenState) => {
      current = next
      const token = Option.getOrUndefined(TokenState.token(next))
      // as the source does: up to the skew while healthy; while it retries, the last token until it expires
      const wallUntil = token === undefined
        ? 0
        : next._tag === "Valid" || next._tag === "Refreshing"
        ? RefreshPolicy.usableUntil(policy, token)
        : token.expiresAt ?? Infinity
      until = Monotonic.fromWall(clock, wallUntil)
      runSync(SubscriptionRef.set(state, next))
    }
    const ownerGone = (detail: string) => {
      if (gone !== undefined) return
      gone = new OwnerGone({ provider, detail })
      for (const waiting of pending.values()) Deferred.unsafeDone(waiting, Exit.fail(gone))
      pending.clear()
      setState(TokenState.TokenState.Failed({ error: gone, token: TokenState.token(current) }))
    }

    channel.onmessage = (event: unknown) => {
      const message = (event as { readonly data: unknown }).data as ToWorker | ToOwner
      if (typeof message !== "object" || message === null || closedByOwner) return
      lastHeard = monotonic()
      if (gone !== undefined && message.t === "state") gone = undefined
      switch (message.t) {
        case "state":
          setState(stateFromWire(message.state))
          Deferred.unsafeDone(greeted, Exit.void)
          return
        case "reply": {
          const waiting = pending.get(message.id)
          if (waiting === undefined) return
          pending.delete(message.id)
          Deferred.unsafeDone(
            waiting,
            message.token === undefined ? Exit.fail(decodeError(message.error)) : Exit.succeed(fromWire(message.token))
          )
          return
        }
        case "closed":
          closedByOwner = true
          gone = undefined
          return ownerGone(message.detail)
        case "alive":
          // heard again after a silence: ask for the state, which ends the silence's failure
          if (gone !== undefined) post({ t: "hello" })
          return
      }
    }

    // the owner's silence, on this thread's clock: no heartbeat for `ownerTimeout` means it is gone
    yield* Effect.sync(() => {
      const silent = Math.round(monotonic() - lastHeard)
      if (silent > ownerTimeout) ownerGone(`no word from the owner for ${silent} ms`)
    }).pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, Math.min(handle.heartbeatMillis, ownerTimeout))))),
      Effect.forkScoped
    )

    const usable = (now: number): AccessToken | undefined => {
      const token = Option.getOrUndefined(TokenState.token(current))
      if (token === undefined) return undefined
      if (refused !== undefined && sameBytes(refused, wireToken(token).value)) return undefined
      return now < until ? token : undefined
    }

    const ask = (message: (id: string) => ToOwner): Effect.Effect<AccessToken, TokenError> =>
      Effect.gen(function*() {
        if (gone !== undefined) return yield* gone
        const id = Crypto.randomUUID()
        const answer = yield* Deferred.make<AccessToken, TokenError>()
        pending.set(id, answer)
        post(message(id))
        return yield* Deferred.await(answer).pipe(Effect.ensuring(Effect.sync(() => pending.delete(id))))
      })

    const get = Effect.suspend(() => {
      const now = monotonic()
      const token = usable(now)
      return token === undefined ? ask((id) => ({ t: "get", id })) : Effect.succeed(token)
    })

    post({ t: "hello" })
    // a late worker starts with the current token; an owner that never answers is gone
    const answered = yield* Deferred.await(greeted).pipe(Effect.timeout(Duration.millis(ownerTimeout)), Effect.option)
    if (Option.isNone(answered)) ownerGone(`no answer from the owner within ${ownerTimeout} ms`)

    return {
      get,
      getValidFor: (duration) => ask((id) => ({ t: "getValidFor", id, millis: Duration.toMillis(duration) })),
      refresh: ask((id) => ({ t: "refresh", id })),
      unsafeCurrent: () => usable(monotonic()),
      invalidate: (token) =>
        Effect.sync(() => {
          const target = token ?? Option.getOrUndefined(TokenState.token(current))
          if (target === undefined) return
          refused = wireToken(target).value
          if (gone === undefined) post({ t: "invalidate", token: refused })
        }),
      changes: state.changes,
      state: SubscriptionRef.get(state),
      provider,
      identity: handle.identity,
      // a mirror stops nothing but itself: the owner's source is the owner's
      stop: Effect.sync(() => ownerGone("the mirror was stopped"))
    } satisfies TokenSource
  }).pipe(Effect.withSpan("TokenMirror.make"))

/**
 * A layer that provides a mirror of the owner's source under a tag of the user's, in a worker.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource>,
  handle: Handle,
  options?: Options
): Layer.Layer<I> => Layer.scoped(tag, make(handle, options))

/**
 * Whether a value is a mirror's handle (as it arrives in `workerData`).
 *
 * @since 0.2.0
 * @category guards
 */
export const isHandle = (u: unknown): u is Handle =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "tokenwarden/TokenMirror/Handle"
