import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Redacted, Scope, Stream, TestClock } from "effect"
import type { AccessToken } from "tokenwarden"
import { ClientAuth, Grant, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { legacyKey } from "../src/internal/legacyKey.js"
import { HttpLive, noJitter, waitForNewToken } from "./util.js"

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

const passwordSource = (server: AuthServer.AuthServer) =>
  TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
    policy: noJitter,
    timeout: "30 days",
    store: true
  })

/** A password login in a scope of its own (closed, so it never refreshes behind the test's back). */
const login = (server: AuthServer.AuthServer, username: string) =>
  Effect.scoped(Effect.flatMap(
    TokenSource.make({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant: Grant.password({ username, password: Redacted.make("pass"), scopes: ["read"] })
    }),
    (source) => source.get
  ))

describe("TokenSource with a TokenStore", () => {
  it.scopedLive("closing the scope during a refresh waits for it (shutdownGrace) and stores its rotated token", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const memory = yield* TokenStore.makeMemory
      const scope = yield* Scope.make()
      const source = yield* passwordSource(server).pipe(
        Effect.provideService(TokenStore.TokenStoreTag, memory),
        Scope.extend(scope)
      )
      const first = yield* source.get
      // the refresh is held at the server for half a second, and the scope closes meanwhile
      yield* server.inject(AuthServer.Fault.delay(500))
      const caller = yield* Effect.fork(source.refresh)
      yield* Effect.sleep("100 millis")
      yield* Scope.close(scope, Exit.void)
      // the caller still waiting is interrupted; the request was not
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(caller)))
      assert.strictEqual(yield* server.count(), 2)
      const key = TokenStore.key({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] })
      })
      const stored = Option.getOrThrow(yield* memory.load(key))
      assert.strictEqual(stored.version, 2)
      assert.notStrictEqual(value(stored.token), value(first))
      assert.strictEqual(
        Redacted.value(stored.token.refreshToken!),
        (yield* server.issued).at(-1)!.refreshToken
      )
    }).pipe(Effect.provide(HttpLive), Effect.timeout("20 seconds")))

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
        notices: Stream.empty,
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
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] })
        }))
      ))
    }).pipe(Effect.provide(HttpLive)))

  it("keys never contain the username or a secret", () => {
    const credential = (scopes: ReadonlyArray<string>) => ({
      url: "https://auth.example.com/token",
      clientAuth: ClientAuth.basic("client", Redacted.make("client-secret")),
      grant: Grant.password({ username: "john@doe.com", password: Redacted.make("hunter2"), scopes })
    })
    const key = TokenStore.key(credential(["b", "a"]))
    assert.match(key, /^[0-9a-f]{64}$/)
    assert.strictEqual(key, TokenStore.key(credential(["a", "b"])))
  })

  it.scoped("two client-credentials sources that differ only in audience get a token each", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const source = (audience: string) =>
        TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.clientCredentials({ scopes: ["read"], extraParams: { audience } }),
          store: true
        })
      const a = yield* source("api-a")
      const b = yield* source("api-b")
      assert.notStrictEqual(value(yield* b.get), value(yield* a.get))
      const requests = yield* server.requests
      assert.deepStrictEqual(requests.map((r) => r.form.audience), ["api-a", "api-b"])
    }).pipe(Effect.provide(Layer.merge(HttpLive, TokenStore.layerMemory))))

  describe("grants that act for a person", () => {
    const refreshSource = (server: AuthServer.AuthServer, options: Partial<TokenSource.Options>) =>
      TokenSource.make({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.refreshToken({ refreshToken: Redacted.make("rt-from-config"), scopes: ["read"] }),
        policy: noJitter,
        timeout: "30 days",
        store: true,
        ...options
      })

    it.scoped("with a store, a refresh-token source needs a subject or a storeKey; without one it does not", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const memory = yield* TokenStore.makeMemory
        const withStore = Effect.provideService(TokenStore.TokenStoreTag, memory)
        const refused = yield* Effect.flip(refreshSource(server, {}).pipe(withStore))
        assert.strictEqual(refused._tag, "InvalidConfiguration")
        assert.include(refused.message, "subject")
        const empty = yield* Effect.flip(refreshSource(server, { subject: "" }).pipe(withStore))
        assert.strictEqual(empty._tag, "InvalidConfiguration")
        const code = yield* Effect.flip(
          refreshSource(server, { grant: Grant.authorizationCode({ code: Redacted.make("c") }) }).pipe(withStore)
        )
        assert.strictEqual(code._tag, "InvalidConfiguration")
        assert.strictEqual(yield* server.count(), 0, "refused before any request")
        // nothing is shared without a store: the refresh token is simply used (and refused by this server)
        const alone = yield* Effect.flip(TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.refreshToken({ refreshToken: Redacted.make("rt-from-config"), scopes: ["read"] })
        }))
        assert.strictEqual(alone._tag, "ReauthorizationRequired")
        assert.strictEqual(yield* server.count("refresh_token"), 1)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("two users of one client never share a token", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({
          lifetimeSeconds: 3600,
          users: [{ username: "alice", password: "pass" }, { username: "bob", password: "pass" }]
        })
        const alice = yield* login(server, "alice")
        const bob = yield* login(server, "bob")
        const a = yield* refreshSource(server, {
          grant: Grant.refreshToken({ refreshToken: alice.refreshToken! }),
          subject: "alice"
        })
        const b = yield* refreshSource(server, {
          grant: Grant.refreshToken({ refreshToken: bob.refreshToken! }),
          subject: "bob"
        })
        assert.notStrictEqual(value(yield* a.get), value(yield* b.get))
        assert.strictEqual(yield* server.count("refresh_token"), 2)
      }).pipe(Effect.provide(Layer.merge(HttpLive, TokenStore.layerMemory))))
  })

  describe("entries written under the 0.1.0 key", () => {
    const storedToken = (access: string, refresh: string): AccessToken.AccessToken => ({
      value: Redacted.make(access),
      type: "Bearer",
      issuedAt: 0,
      expiresAt: 3_600_000,
      lifetimeSource: "expires_in",
      scopes: ["read"],
      refreshToken: Redacted.make(refresh),
      extra: Redacted.make({})
    })
    const legacyKeyOf = (server: AuthServer.AuthServer, grantType: string) =>
      legacyKey({ endpoint: server.tokenUrl, clientId: "client", grantType, scopes: ["read"] })
    const options = (server: AuthServer.AuthServer, grant: Grant.Grant): TokenSource.StoredOptions => ({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant,
      subject: "alice",
      policy: noJitter,
      timeout: "30 days",
      store: true
    })
    const refreshGrant = Grant.refreshToken({ refreshToken: Redacted.make("rt-from-config"), scopes: ["read"] })
    /** A server, and a memory store holding `token` under the 0.1.0 key of a credential of that grant type. */
    const withOldEntry = (grantType: string, token: AccessToken.AccessToken, version: number) =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const memory = yield* TokenStore.makeMemory
        const old = legacyKeyOf(server, grantType)
        yield* memory.save(old, { token, version })
        return { server, memory, old }
      })

    it.scoped("a refresh-token source adopts the entry without a request, moves it, and removes the old one", () =>
      Effect.gen(function*() {
        const { memory, old, server } = yield* withOldEntry(
          "refresh_token",
          storedToken("stored-access", "stored-refresh"),
          7
        )
        const source = yield* TokenSource.make(options(server, refreshGrant)).pipe(
          Effect.provideService(TokenStore.TokenStoreTag, memory)
        )
        assert.strictEqual(value(yield* source.get), "stored-access")
        assert.strictEqual(yield* server.count(), 0)
        const moved = Option.getOrThrow(yield* memory.load(TokenStore.key(options(server, refreshGrant))))
        assert.strictEqual(moved.version, 7)
        assert.strictEqual(value(moved.token), "stored-access")
        assert.isTrue(Option.isNone(yield* memory.load(old)))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an expired entry still gives its refresh token, the only one that works", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({
          lifetimeSeconds: 3600,
          users: [{ username: "alice", password: "pass" }]
        })
        const memory = yield* TokenStore.makeMemory
        // a login from the 0.1.0 days, its token stored under the old key; the configured refresh token is long rotated
        const loggedIn = yield* login(server, "alice")
        yield* memory.save(legacyKeyOf(server, "authorization_code"), { token: loggedIn, version: 3 })
        yield* TestClock.adjust("2 hours")
        const source = yield* TokenSource.make(
          options(server, Grant.authorizationCode({ code: Redacted.make("used-long-ago"), scopes: ["read"] }))
        ).pipe(Effect.provideService(TokenStore.TokenStoreTag, memory))
        const token = yield* source.get
        assert.notStrictEqual(value(token), value(loggedIn))
        const requests = yield* server.requests
        assert.deepStrictEqual(requests.map((r) => r.grantType), ["password", "refresh_token"])
        assert.strictEqual(requests[1]!.form.refresh_token, Redacted.value(loggedIn.refreshToken!))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a client-credentials source does not adopt it (it may be another audience's): dropped, fetched anew", () =>
      Effect.gen(function*() {
        const { memory, old, server } = yield* withOldEntry(
          "client_credentials",
          storedToken("maybe-another-audience", "r"),
          2
        )
        const grant = Grant.clientCredentials({ scopes: ["read"], extraParams: { audience: "api-a" } })
        const source = yield* TokenSource.make(options(server, grant)).pipe(
          Effect.provideService(TokenStore.TokenStoreTag, memory)
        )
        assert.notStrictEqual(value(yield* source.get), "maybe-another-audience")
        assert.strictEqual(yield* server.count(), 1)
        assert.isTrue(Option.isNone(yield* memory.load(old)))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a source with its own storeKey keeps using it: nothing to move", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const memory = yield* TokenStore.makeMemory
        yield* memory.save("alice", { token: storedToken("kept", "r"), version: 1 })
        yield* memory.save(legacyKeyOf(server, "refresh_token"), { token: storedToken("other", "r"), version: 1 })
        const source = yield* TokenSource.make({
          ...options(server, refreshGrant),
          subject: undefined,
          storeKey: "alice"
        })
          .pipe(Effect.provideService(TokenStore.TokenStoreTag, memory))
        assert.strictEqual(value(yield* source.get), "kept")
        assert.isTrue(Option.isSome(yield* memory.load(legacyKeyOf(server, "refresh_token"))), "not touched")
      }).pipe(Effect.provide(HttpLive)))
  })
})
