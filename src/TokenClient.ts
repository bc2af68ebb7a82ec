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
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import { TaggedError } from "./internal/taggedError.js"
import type * as RefreshPolicy from "./RefreshPolicy.js"
import type { TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"
import type * as TokenState from "./TokenState.js"

/**
 * A token source as Promises.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenClient {
  /**
   * A valid token. Resolves at once with the source's token while it is usable; otherwise asks the source
   * (which waits for the network only when it holds no valid token). Rejects with the source's
   * `TokenError` itself (`error._tag`, `error.transient`), not a wrapper.
   */
  readonly get: () => Promise<AccessToken>
  /** The source's token while it is usable, else `undefined`. Never waits, never sends a request. */
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
   * @deprecated Not used: the client asks the source whether its token is usable (`unsafeCurrent`),
   * so both always agree. Kept so code that passes it still compiles.
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
  release: () => Promise<void>
) => {
  const listeners = new Set<(state: TokenState.TokenState) => void>()
  let closed = false

  const update = (state: TokenState.TokenState) => {
    for (const listener of listeners) {
      try {
        listener(state)
      } catch {
        // a throwing listener must not stop the others
      }
    }
  }

  // The hot path asks the source, synchronously, whether it holds a usable token: its skew and its
  // clock decide, never a copy of them here, and a valid token never enters the Effect runtime (a
  // runPromise costs about a microsecond, 20 times this check).
  const client: TokenClient = {
    get: () => {
      if (closed) return Promise.reject(new ClientClosed())
      const token = source.unsafeCurrent()
      return token !== undefined ? Promise.resolve(token) : runExit(source.get).then(settle)
    },
    current: () => closed ? undefined : source.unsafeCurrent(),
    invalidate: (token) =>
      closed
        ? Promise.reject(new ClientClosed())
        : runExit(source.invalidate(token ?? source.unsafeCurrent())).then(settle),
    onChange: (listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    close: () => {
      if (closed) return Promise.resolve()
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
  _options?: Options
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
          : runExit(Fiber.interrupt(subscription.fiber)).then(() => undefined)
    )
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
  _options?: Options
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
      const { client, update } = build(source, (effect) => runtime.runPromiseExit(effect), release)
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
