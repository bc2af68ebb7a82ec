/**
 * Tokens for programs not written with Effect: a token source behind Promises, a synchronous
 * `current()`, and change listeners.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import { TaggedError } from "./internal/taggedError.js"
import * as RefreshPolicy from "./RefreshPolicy.js"
import type { TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"
import * as TokenState from "./TokenState.js"

/**
 * A token source as Promises.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenClient {
  /**
   * A valid token. Resolves at once from the cached token while it is valid; otherwise asks the source
   * (which waits for the network only when it holds no valid token). Rejects with the source's
   * `TokenError` itself (`error._tag`, `error.transient`), not a wrapper.
   */
  readonly get: () => Promise<AccessToken>
  /** The cached token while it is valid, else `undefined`. Never waits, never sends a request. */
  readonly current: () => AccessToken | undefined
  /**
   * The API refused this token (HTTP 401): the source drops it and gets another. Many calls about one
   * refused token cause one request; a call about a token already replaced does nothing.
   */
  readonly invalidate: (token?: AccessToken) => Promise<void>
  /** Called with each new state of the source (`Valid`, `Refreshing`, `Retrying`…); returns the unsubscribe. */
  readonly onChange: (listener: (state: TokenState.TokenState) => void) => () => void
  /** Stops listening; for a client built from a layer, also releases the layer (its refresh fiber, its servers). */
  readonly close: () => Promise<void>
}

/**
 * Options of a client.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The refresh policy of the source, so that the cache stops handing out a token exactly when the
   * source would (`expirySkew`); `RefreshPolicy.defaults` by default.
   */
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
}

/**
 * Why a closed client rejects: there is no source any more to ask.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClientClosed extends TaggedError<ClientClosed>("TokenClient")("ClientClosed", {}, {
  transient: false,
  message: () => "tokenwarden: the token client is closed"
}) {}

// a failure rejects with the error itself (a TokenError), not the FiberFailure runPromise would give
const settle = <A>(exit: Exit.Exit<A, unknown>): Promise<A> =>
  Exit.isSuccess(exit) ? Promise.resolve(exit.value) : Promise.reject(Cause.squash(exit.cause))

const build = (
  source: TokenSource,
  runExit: <A, E>(effect: Effect.Effect<A, E>) => Promise<Exit.Exit<A, unknown>>,
  release: () => Promise<void>,
  options: Options | undefined
) => {
  const policy = options?.policy ?? RefreshPolicy.defaults
  const listeners = new Set<(state: TokenState.TokenState) => void>()
  let cached: AccessToken | undefined
  // Date.now() milliseconds. The one clock read outside Effect in tokenwarden, on purpose: this hot path
  // must not enter the Effect runtime (a runPromise costs about a microsecond, 20 times this check).
  // A client runs on the live Clock, whose currentTimeMillis is Date.now(), so both read the same time.
  let usableUntil = 0
  let closed = false

  const hold = (token: AccessToken | undefined) => {
    if (closed) return
    cached = token
    usableUntil = token === undefined ? 0 : RefreshPolicy.usableUntil(policy, token)
  }

  const update = (state: TokenState.TokenState) => {
    hold(Option.getOrUndefined(TokenState.token(state)))
    for (const listener of listeners) {
      try {
        listener(state)
      } catch {
        // a throwing listener must not stop the others, nor the cache updates that follow
      }
    }
  }

  const slowGet = (): Promise<AccessToken> => {
    if (closed) return Promise.reject(new ClientClosed())
    return runExit(source.get).then((exit) => {
      // the changes stream may not have delivered this token yet: a newer token is held at once
      if (Exit.isSuccess(exit) && (cached === undefined || exit.value.issuedAt >= cached.issuedAt)) hold(exit.value)
      return settle(exit)
    })
  }

  const client: TokenClient = {
    get: () => cached !== undefined && Date.now() < usableUntil ? Promise.resolve(cached) : slowGet(),
    current: () => cached !== undefined && Date.now() < usableUntil ? cached : undefined,
    invalidate: (token) => {
      if (closed) return Promise.reject(new ClientClosed())
      const refused = token ?? cached
      // the cache stops handing the refused token out at once, before the source's new state arrives
      if (
        refused !== undefined && cached !== undefined && Redacted.value(refused.value) === Redacted.value(cached.value)
      ) {
        hold(undefined)
      }
      return runExit(source.invalidate(refused)).then(settle)
    },
    onChange: (listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    close: () => {
      if (closed) return Promise.resolve()
      hold(undefined)
      closed = true
      listeners.clear()
      return release()
    }
  }
  return { client, update }
}

/**
 * A client over a token source, for handing tokens to code outside Effect from an Effect program.
 * It listens to the source's `changes` until `close` or until the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  source: TokenSource,
  options?: Options
): Effect.Effect<TokenClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const runExit = <A, E>(effect: Effect.Effect<A, E>) => Runtime.runPromiseExit(runtime)(effect)
    const subscription: { fiber?: Fiber.RuntimeFiber<void> } = {}
    const { client, update } = build(
      source,
      runExit,
      () =>
        subscription.fiber === undefined
          ? Promise.resolve()
          : runExit(Fiber.interrupt(subscription.fiber)).then(() => undefined),
      options
    )
    update(yield* source.state)
    subscription.fiber = yield* Effect.forkScoped(
      Stream.runForEach(source.changes, (state) => Effect.sync(() => update(state)))
    )
    return client
  })

/**
 * A client that owns its token source: builds the layer in a runtime of its own (the first token
 * fetched, as the layer does), and releases it on `close`. Rejects with the layer's error (a
 * `TokenError`, or a `ConfigError`) when it cannot be built.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Context, Layer, Redacted } from "effect"
 * import { ClientAuth, Grant, TokenClient, TokenSource } from "tokenwarden"
 *
 * class Crm extends Context.Tag("app/Crm")<Crm, TokenSource.TokenSource>() {}
 * const CrmLive = TokenSource.layer(Crm, {
 *   url: "https://auth.example.com/oauth/token",
 *   clientAuth: ClientAuth.basic("my-client", Redacted.make(process.env.CRM_SECRET ?? "")),
 *   grant: Grant.clientCredentials({ scopes: ["contacts.read"] })
 * }).pipe(Layer.provide(NodeHttpClient.layerUndici))
 *
 * const tokens = await TokenClient.fromLayer(Crm, CrmLive)
 * const token = await tokens.get()
 * await tokens.close()
 */
export const fromLayer = async <I, E>(
  tag: Context.Tag<I, TokenSource>,
  layer: Layer.Layer<I, E>,
  options?: Options
): Promise<TokenClient> => {
  const runtime = ManagedRuntime.make(layer)
  let fiber: Fiber.RuntimeFiber<void> | undefined
  const release = async () => {
    if (fiber !== undefined) await runtime.runPromise(Fiber.interrupt(fiber))
    await runtime.dispose()
  }
  const started = await runtime.runPromiseExit(
    Effect.gen(function*() {
      const source = yield* tag
      const { client, update } = build(source, (effect) => runtime.runPromiseExit(effect), release, options)
      update(yield* source.state)
      // a daemon, interrupted by `close`: the runtime's own scope holds the layer, not forked fibers
      fiber = yield* Effect.forkDaemon(Stream.runForEach(source.changes, (state) => Effect.sync(() => update(state))))
      return client
    })
  )
  if (Exit.isFailure(started)) {
    await runtime.dispose()
    return settle(started as Exit.Exit<never, TokenError | E>)
  }
  return started.value
}
