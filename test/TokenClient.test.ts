import { NodeHttpClient } from "@effect/platform-node"
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Redacted, Scope, Stream, SubscriptionRef } from "effect"
import type { AccessToken } from "tokenwarden"
import { ClientAuth, Grant, RefreshPolicy, TokenError, TokenSource, TokenState } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import * as TokenClient from "../src/TokenClient.js"

class Tokens extends Context.Tag("test/TokenClient/Tokens")<Tokens, TokenSource.TokenSource>() {}

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

/** Lets the client's subscription fiber see a change (a real-time pause: the tests run on TestClock). */
const flush = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))

const scopes: Array<Scope.CloseableScope> = []
afterEach(async () => {
  await Promise.all(scopes.splice(0).map((scope) => Effect.runPromise(Scope.close(scope, Exit.void))))
})

const startServer = async (options?: AuthServer.Options) => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  return Effect.runPromise(Scope.extend(AuthServer.make(options), scope))
}

const layerFor = (server: AuthServer.AuthServer, secret = "secret") =>
  TokenSource.layer(Tokens, {
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make(secret)),
    grant: Grant.clientCredentials({ scopes: ["read"] }),
    policy: RefreshPolicy.make({ jitterFraction: 0 })
  }).pipe(Layer.provide(NodeHttpClient.layerUndici))

const token = (issuedAt: number, lifetime: number): AccessToken.AccessToken => ({
  value: Redacted.make(`token-${issuedAt}`),
  type: "Bearer",
  issuedAt,
  expiresAt: issuedAt + lifetime,
  lifetimeSource: "expires_in",
  scopes: [],
  extra: Redacted.make({})
})

/** A source whose state the test drives, counting the gets that reach it. */
const fakeSource = (initial: TokenState.TokenState) =>
  Effect.gen(function*() {
    const ref = yield* SubscriptionRef.make(initial)
    const calls = { get: 0 }
    const source: TokenSource.TokenSource = {
      get: Effect.suspend(() => {
        calls.get++
        return Effect.flatMap(SubscriptionRef.get(ref), (s) =>
          s._tag === "Valid"
            ? Effect.succeed(s.token)
            : s._tag === "Retrying"
            ? Effect.fail(s.error)
            : Effect.die("no token"))
      }),
      getValidFor: () => Effect.die("unused"),
      refresh: Effect.die("unused"),
      invalidate: () => Effect.void,
      unsafeCurrent: () => {
        const state = Effect.runSync(SubscriptionRef.get(ref))
        return state._tag === "Valid" && Date.now() < (state.token.expiresAt ?? Infinity) ? state.token : undefined
      },
      changes: ref.changes,
      state: SubscriptionRef.get(ref),
      provider: "fake",
      stop: Effect.void
    }
    return { ref, source, calls }
  })

describe("TokenClient", () => {
  it("fromLayer: get, current, and no request while the cached token is valid", async () => {
    const server = await startServer()
    const client = await TokenClient.fromLayer(Tokens, layerFor(server))
    try {
      const first = client.current()
      assert.isDefined(first, "the layer fetched the first token before the client resolved")
      const tokens = await Promise.all(Array.from({ length: 1000 }, () => client.get()))
      assert.isTrue(tokens.every((t) => t === first))
      assert.strictEqual(await Effect.runPromise(server.count()), 1)
    } finally {
      await client.close()
    }
  })

  it("rejects with the tagged error itself, not a wrapper", async () => {
    const server = await startServer()
    const error = await TokenClient.fromLayer(Tokens, layerFor(server, "wrong-secret-123")).then(
      () => assert.fail("should reject"),
      (e: unknown) => e
    )
    assert.instanceOf(error, TokenError.InvalidClient)
    assert.strictEqual((error as TokenError.InvalidClient)._tag, "InvalidClient")
    assert.isFalse((error as TokenError.InvalidClient).transient)
    assert.notInclude(String(error) + JSON.stringify(error), "wrong-secret-123")
  })

  it("follows proactive refreshes: onChange, current; close rejects later gets", async () => {
    // 2-second tokens: the source refreshes after 1 second, in real time
    const server = await startServer({ lifetimeSeconds: 2 })
    const client = await TokenClient.fromLayer(Tokens, layerFor(server))
    const seen: Array<string> = []
    const unsubscribe = client.onChange((state) => seen.push(state._tag))
    const first = await client.get()
    await new Promise<void>((resolve) => {
      const poll = () => client.current() !== first ? resolve() : void setTimeout(poll, 10)
      poll()
    })
    const second = client.current()!
    assert.notStrictEqual(value(second), value(first))
    assert.strictEqual(await client.get(), second)
    assert.deepStrictEqual(seen.slice(0, 2), ["Refreshing", "Valid"])
    unsubscribe()
    const count = seen.length
    await client.close()
    assert.strictEqual(seen.length, count)
    assert.isUndefined(client.current())
    const error = await client.get().then(() => undefined, (e: unknown) => e)
    assert.instanceOf(error, TokenClient.ClientClosed)
    assert.strictEqual(await Effect.runPromise(server.count()), 2)
  })

  it.scoped("make: the hot path answers from the cache without entering the runtime", () =>
    Effect.gen(function*() {
      const now = Date.now()
      const { calls, ref, source } = yield* fakeSource(TokenState.TokenState.Pending())
      const client = yield* TokenClient.make(source)
      assert.isUndefined(client.current())
      const valid = token(now, 3_600_000)
      yield* SubscriptionRef.set(ref, TokenState.TokenState.Valid({ token: valid }))
      yield* flush
      assert.strictEqual(client.current(), valid)
      const results = yield* Effect.promise(() => Promise.all(Array.from({ length: 1000 }, () => client.get())))
      assert.isTrue(results.every((t) => t === valid))
      assert.strictEqual(calls.get, 0, "no get reached the source")
      // a listener sees the next state; one that throws does not stop the others
      const seen: Array<string> = []
      client.onChange(() => {
        throw new Error("listener bug")
      })
      const unsubscribe = client.onChange((state) => seen.push(state._tag))
      yield* SubscriptionRef.set(ref, TokenState.TokenState.Refreshing({ token: valid }))
      yield* flush
      unsubscribe()
      yield* SubscriptionRef.set(ref, TokenState.TokenState.Valid({ token: valid }))
      yield* flush
      assert.deepStrictEqual(seen, ["Refreshing"])
    }))

  it.scoped("make: an expired token is never handed out; the source's error rejects as is", () =>
    Effect.gen(function*() {
      const now = Date.now()
      // issued 59 minutes ago: inside the 10-second skew of its end, so no longer usable
      const old = token(now - 3_595_000, 3_600_000)
      const error = new TokenError.ServerError({ method: "POST", url: "https://auth/token", status: 503 })
      const { calls, source } = yield* fakeSource(
        TokenState.TokenState.Retrying({ error, attempt: 3, nextAttemptAt: now + 1000, token: Option.some(old) })
      )
      const client = yield* TokenClient.make(source)
      assert.isUndefined(client.current())
      const rejected = yield* Effect.promise(() => client.get().then(() => undefined, (e: unknown) => e))
      assert.strictEqual(rejected, error)
      assert.strictEqual(calls.get, 1)
    }))

  it.scoped("make: follows the source's changes until closed", () =>
    Effect.gen(function*() {
      const now = Date.now()
      const a = token(now, 3_600_000)
      const b = token(now + 1, 3_600_000)
      const { ref, source } = yield* fakeSource(TokenState.TokenState.Valid({ token: a }))
      const client = yield* TokenClient.make(source)
      assert.strictEqual(client.current(), a)
      yield* SubscriptionRef.set(ref, TokenState.TokenState.Valid({ token: b }))
      yield* flush
      assert.strictEqual(yield* Effect.promise(() => client.get()), b)
      yield* Effect.promise(() => client.close())
      yield* SubscriptionRef.set(ref, TokenState.TokenState.Valid({ token: a }))
      assert.isUndefined(client.current())
      const changes = yield* source.changes.pipe(Stream.take(1), Stream.runCollect)
      assert.strictEqual(changes.length, 1)
    }))
})
