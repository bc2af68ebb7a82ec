import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Stream, TestClock } from "effect"
import { ClientAuth, Grant, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { HttpLive, noJitter, waitForNewToken } from "./util.js"

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

const passwordSource = (server: AuthServer.AuthServer) =>
  TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
    policy: noJitter,
    timeout: "30 days"
  })

describe("TokenSource with a TokenStore", () => {
  it.scoped("a second source of the same credential loads the stored token instead of fetching", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const a = yield* passwordSource(server)
      const b = yield* passwordSource(server)
      assert.strictEqual(value(yield* b.get), value(yield* a.get))
      assert.strictEqual(yield* server.count(), 1)
    }).pipe(Effect.provide(Layer.merge(HttpLive, TokenStore.layerMemory))))

  it.scoped("one refresh serves every source: the others adopt the stored token as it is written", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const a = yield* passwordSource(server)
      const b = yield* passwordSource(server)
      const first = yield* a.get
      const refreshed = yield* a.refresh
      const adopted = yield* waitForNewToken(b, first)
      assert.strictEqual(value(adopted), value(refreshed))
      // B's own refresh time moved with the adopted token: at 45 minutes of the new token, one refresh
      yield* TestClock.adjust("45 minutes")
      const next = yield* waitForNewToken(a, refreshed)
      assert.strictEqual(value(yield* waitForNewToken(b, refreshed)), value(next))
      assert.strictEqual(yield* server.count("refresh_token"), 2)
      assert.strictEqual(yield* server.count("password"), 1)
    }).pipe(Effect.provide(Layer.merge(HttpLive, TokenStore.layerMemory))))

  it.scoped("a refresh token refused because another process rotated it first: adopt the stored token", () =>
    Effect.gen(function*() {
      const memory = yield* TokenStore.makeMemory
      // a store with the race window wide open: no notifications, and no re-read before fetching
      const racy: TokenStore.TokenStore = {
        ...memory,
        changes: () => Stream.empty,
        refresh: (key, knownVersion, fetch) =>
          Effect.gen(function*() {
            const token = yield* fetch
            const entry = { token, version: knownVersion + 1 }
            yield* memory.save(key, entry)
            return { entry, fetched: true }
          })
      }
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const [a, b] = yield* Effect.all([passwordSource(server), passwordSource(server)]).pipe(
        Effect.provideService(TokenStore.TokenStoreTag, racy)
      )
      const first = yield* b.get
      const rotated = yield* a.refresh
      const adopted = yield* b.refresh
      assert.strictEqual(value(adopted), value(rotated))
      assert.notStrictEqual(value(adopted), value(first))
      const outcomes = (yield* server.requests).map((r) => `${r.grantType}:${r.outcome}`)
      assert.deepStrictEqual(outcomes, ["password:token", "refresh_token:token", "refresh_token:error"])
      assert.strictEqual(yield* server.count("password"), 1, "no fallback to the password grant")
      assert.isTrue(Option.isSome(
        yield* memory.load(TokenStore.key({
          endpoint: server.tokenUrl,
          clientId: "client",
          grantType: "password",
          subject: "user",
          scopes: ["read"]
        }))
      ))
    }).pipe(Effect.provide(HttpLive)))

  it("keys never contain the username or a secret", () => {
    const key = TokenStore.key({
      endpoint: "https://auth.example.com/token",
      clientId: "client",
      grantType: "password",
      subject: "john@doe.com",
      scopes: ["b", "a"]
    })
    assert.match(key, /^[0-9a-f]{64}$/)
    assert.strictEqual(
      key,
      TokenStore.key({
        endpoint: "https://auth.example.com/token",
        clientId: "client",
        grantType: "password",
        subject: "john@doe.com",
        scopes: ["a", "b"]
      })
    )
  })
})
