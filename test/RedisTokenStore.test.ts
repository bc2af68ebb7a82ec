import { NodeHttpClient } from "@effect/platform-node"
import { assert, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Fiber, Layer, Logger, Option, Redacted, Schedule, Stream } from "effect"
import { Redis } from "ioredis"
import { ClientAuth, Grant, RedisTokenStore, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { legacyKey } from "../src/internal/legacyKey.js"
import { leaseContract, token } from "./contract/storeLease.js"
import * as RedisServer from "./fleet/redis.js"
import * as Secrets from "./secrets.js"
import { elapsed } from "./util.js"

const value = (t: { readonly value: Redacted.Redacted }) => Redacted.value(t.value)

interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const collectLogs = () => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    lines.push({ level: logLevel.label, message: text, annotations: Object.fromEntries(annotations) })
  })
  return { lines, layer: Logger.add(logger) }
}

// a raw connection to look at what the store wrote, as an operator would
const raw = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: false })),
    (client) => Effect.sync(() => client.disconnect())
  )

RedisServer.describeRedis("RedisTokenStore", () => {
  it.live("keys and messages: the entry under <prefix>token:<key>, only versions published, no secret", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url, keyPrefix: "app:" })
      const listener = yield* raw(server.url)
      const messages: Array<[string, string]> = []
      listener.on("message", (channel: string, message: string) => void messages.push([channel, message]))
      yield* Effect.promise(() => listener.subscribe("app:changes:cred"))
      const refreshed = yield* store.refresh("cred", 0, Effect.succeed(token("secret-access", "secret-refresh")))
      assert.isTrue(refreshed.fetched)
      assert.strictEqual(refreshed.entry.version, 1)
      const inspect = yield* raw(server.url)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      const keys = (yield* Effect.promise(() => inspect.keys("*"))).sort()
      assert.deepStrictEqual(keys, ["app:fence:cred", "app:token:cred"], "the lease is released")
      const stored = yield* Effect.promise(() => inspect.get("app:token:cred"))
      assert.strictEqual(stored, TokenStore.encode(refreshed.entry, "cred"))
      assert.deepStrictEqual(messages, [["app:changes:cred", "1"], ["app:changes:cred", "released"]])
    }).pipe(Effect.scoped))

  // load, save, remove, refresh, changes and notices as every store keeps them: test/contract/store.ts
  it.live("remove deletes the entry's Redis key", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url })
      yield* store.refresh("k", 0, Effect.succeed(token("a1")))
      yield* store.remove("k")
      const inspect = yield* raw(server.url)
      assert.deepStrictEqual(yield* Effect.promise(() => inspect.keys("tokenwarden:token:*")), [])
    }).pipe(Effect.scoped))

  it.live("1,000 concurrent changes streams on 1,000 keys: one pattern subscription, no channel per key", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url, keyPrefix: "app:" })
      const inspect = yield* raw(server.url)
      const fibers = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) => Effect.fork(store.changes(`k${i}`).pipe(Stream.runHead)),
        { concurrency: "unbounded" }
      )
      yield* Effect.sleep("200 millis")
      assert.strictEqual(yield* Effect.promise(() => inspect.call("PUBSUB", "NUMPAT")), 1)
      assert.deepStrictEqual(yield* Effect.promise(() => inspect.call("PUBSUB", "CHANNELS", "app:*")), [])
      const clients = yield* Effect.promise(() => inspect.client("LIST") as Promise<string>)
      const subscriptions = clients.split("\n").filter((line) => / psub=1 /.test(line))
      assert.strictEqual(subscriptions.length, 1, "one connection holds the one pattern")
      assert.include(subscriptions[0]!, " sub=0 ")
      // and it carries every key: a write to one reaches its stream, and only its stream
      yield* store.save("k500", { token: token("five hundred"), version: 1 })
      const heard = yield* Fiber.join(fibers[500]!).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(value(Option.getOrThrow(heard).token), "five hundred")
      const others = yield* Effect.forEach(fibers, (fiber) => Fiber.poll(fiber))
      assert.strictEqual(others.filter(Option.isSome).length, 1)
      yield* Effect.forEach(fibers, Fiber.interrupt, { concurrency: "unbounded", discard: true })
    }).pipe(Effect.scoped))

  it.live("after a reconnect the pattern is subscribed again, and every key used is told to re-read", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url })
      yield* store.save("used", { token: token("before"), version: 1 })
      yield* Effect.sleep("200 millis") // its own notice is past
      const seen: Array<TokenStore.Notice> = []
      yield* store.notices.pipe(Stream.runForEach((n) => Effect.sync(() => void seen.push(n))), Effect.forkScoped)
      yield* Effect.sleep("100 millis")
      yield* server.stop
      yield* Effect.sleep("100 millis")
      yield* server.start
      const wait = (count: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < 800 && seen.length < count; i++) yield* Effect.sleep("10 millis")
        })
      yield* wait(1)
      assert.deepStrictEqual(seen, [{ key: "used", version: undefined }], "writes may have gone unheard")
      // the pattern is back: another process's write is heard
      const other = yield* RedisTokenStore.make({ url: server.url })
      yield* other.save("fresh", { token: token("after"), version: 3 })
      yield* wait(2)
      assert.deepStrictEqual(seen[1], { key: "fresh", version: 3 })
    }).pipe(Effect.scoped))

  it.live("a TokenSource adopts an entry under the 0.1.0 key without a request and moves it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const auth = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const store = yield* RedisTokenStore.make({ url: server.url })
      const old = legacyKey({ endpoint: auth.tokenUrl, clientId: "client", grantType: "refresh_token", scopes: [] })
      const now = Date.now()
      yield* store.save(old, {
        token: { ...token("stored-access", "stored-refresh"), issuedAt: now, expiresAt: now + 3_600_000 },
        version: 5
      })
      const options: TokenSource.StoredOptions = {
        store: true,
        url: auth.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.refreshToken({ refreshToken: Redacted.make("rt-from-config") }),
        subject: "alice"
      }
      const source = yield* TokenSource.make(options).pipe(Effect.provideService(TokenStore.TokenStoreTag, store))
      assert.strictEqual(value(yield* source.get), "stored-access")
      assert.strictEqual(yield* auth.count(), 0)
      const inspect = yield* raw(server.url)
      const keys = yield* Effect.promise(() => inspect.keys("tokenwarden:token:*"))
      assert.deepStrictEqual(keys, [`tokenwarden:token:${TokenStore.key(options)}`])
      assert.strictEqual(Option.getOrThrow(yield* store.load(TokenStore.key(options))).version, 5)
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))

  it.live("a corrupted or foreign entry is a Corrupted StoreError; the next refresh replaces it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url })
      const client = yield* raw(server.url)
      for (const garbage of ["{\"format\":\"tokenwarden/v1\",\"version\":3,\"tok", "{\"hello\":1}", "\u0000\u0001"]) {
        yield* Effect.promise(() => client.set("tokenwarden:token:k", garbage))
        const error = yield* Effect.flip(store.load("k"))
        assert.strictEqual(error.reason, "Corrupted")
      }
      const refreshed = yield* store.refresh("k", 0, Effect.succeed(token("fresh")))
      assert.isTrue(refreshed.fetched)
      assert.strictEqual(value(Option.getOrThrow(yield* store.load("k")).token), "fresh")
    }).pipe(Effect.scoped))

  leaseContract((options) =>
    Effect.flatMap(RedisServer.make(), (server) =>
      Effect.all([
        RedisTokenStore.make({ url: server.url, leaseTtl: options.leaseTtl }),
        RedisTokenStore.make({ url: server.url, leaseTtl: options.leaseTtl })
      ]))
  )

  it.live("a holder that died: another process takes over when its lease expires, not before", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url, leaseTtl: "1 second" })
      const client = yield* raw(server.url)
      // the dead holder's lease, 800 ms left
      yield* Effect.promise(() => client.set("tokenwarden:lease:k", "41", "PX", 800))
      let fetches = 0
      const [result, millis] = yield* elapsed(store.refresh("k", 0, Effect.sync(() => token(`t${++fetches}`))))
      assert.isTrue(result.fetched)
      assert.strictEqual(fetches, 1)
      assert.isAtLeast(millis, 750, "waited for the lease")
      assert.isBelow(millis, 800 + 600, "took over right after it expired")
    }).pipe(Effect.scoped))

  it.live("fencing: a holder whose lease passed to another process does not write; its token is still returned", () =>
    Effect.gen(function*() {
      const logs = collectLogs()
      yield* Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const store = yield* RedisTokenStore.make({ url: server.url })
        const client = yield* raw(server.url)
        // while the request runs, the lease expires and another process takes it (fence 99)
        const fetch = Effect.promise(() => client.set("tokenwarden:lease:k", "99", "PX", 5000)).pipe(
          Effect.as(token("late"))
        )
        const result = yield* store.refresh("k", 0, fetch)
        assert.isTrue(result.fetched)
        assert.strictEqual(value(result.entry.token), "late")
        assert.isTrue(Option.isNone(yield* store.load("k")), "not written")
        assert.strictEqual(yield* Effect.promise(() => client.get("tokenwarden:lease:k")), "99", "not released")
      }).pipe(Effect.provide(logs.layer), Effect.scoped)
      assert.isTrue(logs.lines.some((l) => l.message.includes("lease passed to another process")))
    }))

  it.live("Redis unreachable: commands fail fast as Unavailable, refresh fails before fetching; it recovers", () =>
    Effect.gen(function*() {
      const logs = collectLogs()
      yield* Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const store = yield* RedisTokenStore.make({ url: server.url })
        yield* store.save("k", { token: token("before"), version: 1 })
        yield* server.stop
        yield* Effect.sleep("50 millis")
        for (let i = 0; i < 3; i++) {
          const [error, millis] = yield* elapsed(Effect.flip(store.load("k")))
          assert.strictEqual(error.reason, "Unavailable")
          assert.isBelow(millis, 500, "no hanging command")
        }
        let fetches = 0
        const failed = yield* Effect.flip(store.refresh("k", 1, Effect.sync(() => token(`t${++fetches}`))))
        assert.strictEqual(failed._tag, "StoreError")
        assert.strictEqual(fetches, 0, "the source refreshes alone; the store does not fetch")
        yield* server.start
        // ioredis reconnects within its 2-second backoff cap
        const back = yield* store.load("k").pipe(
          Effect.retry({ times: 40, schedule: Schedule.spaced("100 millis") }),
          Effect.timeout("6 seconds")
        )
        assert.isTrue(Option.isNone(back), "a restarted Redis without persistence is empty")
        assert.isTrue(yield* store.save("k", { token: token("after"), version: 2 }))
      }).pipe(Effect.provide(logs.layer), Effect.scoped)
      const lost = logs.lines.filter((l) => l.message.startsWith("redis unreachable"))
      const restored = logs.lines.filter((l) => l.message.startsWith("redis connection restored"))
      assert.strictEqual(lost.length, 1, "logged once, not per attempt")
      assert.strictEqual(restored.length, 1)
    }))

  it.live("an unreachable Redis at start does not fail the store, which connects once Redis is up", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* server.stop
      const store = yield* RedisTokenStore.make({ url: server.url })
      const error = yield* Effect.flip(store.load("k"))
      assert.strictEqual(error.reason, "Unavailable")
      yield* server.start
      yield* store.save("k", { token: token("x"), version: 1 }).pipe(
        Effect.retry({ times: 40, schedule: Schedule.spaced("100 millis") }),
        Effect.timeout("6 seconds")
      )
      assert.strictEqual(Option.getOrThrow(yield* store.load("k")).version, 1)
    }).pipe(Effect.scoped, Effect.provide(Logger.remove(Logger.defaultLogger))))

  it.live("the password is never logged nor kept in an error", () =>
    Effect.gen(function*() {
      const logs = collectLogs()
      const password = "pa55-w0rd-s3cret"
      yield* Effect.gen(function*() {
        const server = yield* RedisServer.make({ password })
        const store = yield* RedisTokenStore.make({ url: server.url, password: Redacted.make(password) })
        assert.isTrue(yield* store.save("k", { token: token("x"), version: 1 }))
        const wrong = "wrong-s3cret-value"
        const refused = yield* Effect.exit(
          RedisTokenStore.make({ url: `redis://:${wrong}@127.0.0.1:${server.port}` })
        )
        assert.isTrue(Exit.isFailure(refused))
        const error = Exit.isFailure(refused) ? Option.getOrThrow(Exit.causeOption(refused)) : undefined
        const text = `${String(error)} ${JSON.stringify(error)} ${JSON.stringify(logs.lines)}`
        assert.include(text, "InvalidConfiguration")
        assert.notInclude(text, wrong)
        assert.notInclude(text, password)
      }).pipe(Effect.provide(logs.layer), Effect.scoped)
    }))

  it.live("layerConfig reads REDIS_URL (redacted), REDIS_KEY_PREFIX, REDIS_LEASE_TTL; a wrong scheme names the variable", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const env = (map: Record<string, string>) =>
        Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map))))
      const context = yield* Layer.build(
        RedisTokenStore.layerConfig().pipe(
          Layer.provide(env({ REDIS_URL: server.url, REDIS_KEY_PREFIX: "cfg:", REDIS_LEASE_TTL: "5 seconds" }))
        )
      )
      const store = Context.get(context, TokenStore.TokenStoreTag)
      yield* store.save("k", { token: token("x"), version: 1 })
      const client = yield* raw(server.url)
      assert.isNotNull(yield* Effect.promise(() => client.get("cfg:token:k")))
      const bad = yield* Effect.exit(
        Effect.provide(
          TokenStore.TokenStoreTag,
          RedisTokenStore.layerConfig().pipe(Layer.provide(env({ REDIS_URL: "http://x" })))
        )
      )
      assert.isTrue(Exit.isFailure(bad))
      assert.include(String(Exit.isFailure(bad) ? bad.cause : ""), "REDIS_URL")
    }).pipe(Effect.scoped))

  it.live("entries are bound to their key and credential: a copy under another key, another credential's entry: Untrusted; the refresh replaces it", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url })
      const client = yield* raw(server.url)
      yield* store.refresh("a", 0, Effect.succeed(token("for-a", "refresh-a")), "identity-a")
      const text = (yield* Effect.promise(() => client.get("tokenwarden:token:a")))!
      const stored = JSON.parse(text)
      assert.deepStrictEqual([stored.format, stored.key, stored.identity], ["tokenwarden/v3", "a", "identity-a"])
      // a key collision, a misrouted write: the entry of `a` under `b`
      yield* Effect.promise(() => client.set("tokenwarden:token:b", text))
      const moved = yield* Effect.flip(store.load("b"))
      assert.deepStrictEqual([moved.reason, moved.detail], ["Untrusted", "the entry was written under another key"])
      const foreign = yield* Effect.flip(store.load("a", "identity-other"))
      assert.deepStrictEqual([foreign.reason, foreign.detail], [
        "Untrusted",
        "the entry was written for another credential"
      ])
      assert.strictEqual(value(Option.getOrThrow(yield* store.load("a", "identity-a")).token), "for-a")
      const replaced = yield* store.refresh("b", 0, Effect.succeed(token("for-b")), "identity-b")
      assert.isTrue(replaced.fetched)
      assert.strictEqual(value(Option.getOrThrow(yield* store.load("b", "identity-b")).token), "for-b")
    }).pipe(Effect.scoped))

  it.live("a TokenSource logs an entry written under another key as an Untrusted StoreError and fetches its own token", () =>
    Effect.gen(function*() {
      const logs = collectLogs()
      const server = yield* RedisServer.make()
      const auth = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const store = yield* RedisTokenStore.make({ url: server.url })
      const client = yield* raw(server.url)
      const options: TokenSource.StoredOptions = {
        store: true,
        url: auth.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] })
      }
      yield* store.save("elsewhere", { token: token("planted", "planted-refresh"), version: 9 })
      const text = (yield* Effect.promise(() => client.get("tokenwarden:token:elsewhere")))!
      yield* Effect.promise(() => client.set(`tokenwarden:token:${TokenStore.key(options)}`, text))
      const source = yield* TokenSource.make(options).pipe(
        Effect.provideService(TokenStore.TokenStoreTag, store),
        Effect.provide(logs.layer)
      )
      const fresh = yield* source.get
      assert.notStrictEqual(value(fresh), "planted")
      assert.strictEqual(yield* auth.count("password"), 1)
      assert.strictEqual(yield* auth.count("refresh_token"), 0, "the planted refresh token was never sent")
      assert.isTrue(logs.lines.some((l) => l.annotations.reason === "Untrusted"))
      assert.strictEqual(value(Option.getOrThrow(yield* store.load(TokenStore.key(options))).token), value(fresh))
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))

  it.live("encryption: an envelope bound to its Redis key, no secret in clear; clear, moved or altered entries refused and replaced", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const encryptionKey = Redacted.make(Secrets.STORE_KEY)
      const store = yield* RedisTokenStore.make({ url: server.url, encryptionKey })
      const client = yield* raw(server.url)
      const get = (key: string) => Effect.promise(() => client.get(`tokenwarden:token:${key}`))
      const set = (key: string, text: string) => Effect.promise(() => client.set(`tokenwarden:token:${key}`, text))
      yield* store.refresh("a", 0, Effect.succeed(token("secret-access", "secret-refresh")), "id")
      const sealed = (yield* get("a"))!
      assert.notInclude(sealed, "secret-")
      const envelope = JSON.parse(sealed)
      assert.deepStrictEqual(Object.keys(envelope).sort(), ["data", "format", "iv", "tag", "version"])
      assert.strictEqual(envelope.version, 1)
      const loaded = Option.getOrThrow(yield* store.load("a", "id"))
      assert.strictEqual(Redacted.value(loaded.token.refreshToken!), "secret-refresh")
      // moved under another key: the associated data no longer matches
      yield* set("b", sealed)
      assert.strictEqual((yield* Effect.flip(store.load("b"))).reason, "Decryption")
      // the clear version raised (to block every later write): the sealed one says otherwise
      yield* set("a", JSON.stringify({ ...envelope, version: 1e12 }))
      assert.strictEqual((yield* Effect.flip(store.load("a"))).reason, "Untrusted")
      const healed = yield* store.refresh("a", 1, Effect.succeed(token("healed")), "id")
      assert.isTrue(healed.fetched)
      assert.strictEqual(value(Option.getOrThrow(yield* store.load("a", "id")).token), "healed")
      // a hostile writer without the key: a well-formed entry in clear, with a version above any other
      const plain = yield* RedisTokenStore.make({ url: server.url })
      yield* plain.save("c", { token: token("planted"), version: 1e12 })
      assert.strictEqual((yield* Effect.flip(store.load("c"))).reason, "Decryption")
      const replaced = yield* store.refresh("c", 0, Effect.succeed(token("ours")), "id")
      assert.isTrue(replaced.fetched)
      assert.strictEqual(value(Option.getOrThrow(yield* store.load("c", "id")).token), "ours")
      // and a store without the key refuses the envelope
      assert.strictEqual((yield* Effect.flip(plain.load("a"))).reason, "Decryption")
      // a bad key is refused before connecting, without repeating it
      const bad = yield* Effect.flip(RedisTokenStore.make({ url: server.url, encryptionKey: Redacted.make("short") }))
      assert.strictEqual(bad._tag, "InvalidConfiguration")
      assert.notInclude(JSON.stringify(bad), "short")
    }).pipe(Effect.scoped))

  it.live("an entry of 0.1.0's format is read once and rewritten bound to its key, its refresh token kept", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const store = yield* RedisTokenStore.make({ url: server.url })
      const client = yield* raw(server.url)
      yield* store.save("k", { token: token("old-access", "old-refresh"), version: 4 })
      const current = JSON.parse((yield* Effect.promise(() => client.get("tokenwarden:token:k")))!)
      const legacy = JSON.stringify({ format: "tokenwarden/v1", version: 4, token: current.token })
      yield* Effect.promise(() => client.set("tokenwarden:token:k", legacy))
      const loaded = Option.getOrThrow(yield* store.load("k", "id"))
      assert.strictEqual(loaded.version, 4)
      assert.strictEqual(Redacted.value(loaded.token.refreshToken!), "old-refresh")
      const rewritten = JSON.parse((yield* Effect.promise(() => client.get("tokenwarden:token:k")))!)
      assert.deepStrictEqual(
        [rewritten.format, rewritten.key, rewritten.identity, rewritten.version],
        ["tokenwarden/v3", "k", "id", 4]
      )
      assert.deepStrictEqual(rewritten.token, current.token)
    }).pipe(Effect.scoped))

  it.live("two TokenSources of one credential in two processes: one request, then one refresh for both", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const auth = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const source = (store: TokenStore.TokenStore) =>
        TokenSource.make({
          url: auth.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
          store: true
        }).pipe(Effect.provideService(TokenStore.TokenStoreTag, store))
      const a = yield* source(yield* RedisTokenStore.make({ url: server.url }))
      const b = yield* source(yield* RedisTokenStore.make({ url: server.url }))
      const first = yield* a.get
      assert.strictEqual(value(yield* b.get), value(first))
      assert.strictEqual(yield* auth.count(), 1)
      const refreshed = yield* a.refresh
      const adopted = yield* b.changes.pipe(
        Stream.filter((s) => s._tag === "Valid" && value(s.token) !== value(first)),
        Stream.runHead,
        Effect.timeout("5 seconds")
      )
      assert.strictEqual(
        Option.isSome(adopted) && adopted.value._tag === "Valid" && value(adopted.value.token),
        value(refreshed)
      )
      assert.strictEqual(yield* auth.count("refresh_token"), 1)
      assert.strictEqual(yield* auth.count("password"), 1)
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici)))
})
