import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Redacted, Stream, TestClock } from "effect"
import type { TokenState } from "tokenwarden"
import { ClientAuth, Grant, RefreshPolicy, TokenMetrics, TokenStore } from "tokenwarden"
import { AuthServer, DeviceFake } from "tokenwarden/testing"
import * as TokenPool from "../src/TokenPool.js"
import { failFast, HttpLive, noJitter, settle } from "./util.js"

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

const credential = (
  server: AuthServer.AuthServer,
  scope: string,
  overrides?: Partial<TokenPool.Credential>
): TokenPool.Credential => ({
  url: server.tokenUrl,
  clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
  grant: Grant.clientCredentials({ scopes: [scope] }),
  // TestClock.adjust jumps over a request in flight on real IO: its timeout must outlast any jump
  timeout: "30 days",
  ...overrides
})

/** Polls (in real time) until `check` holds; fails the test after about 10 seconds. */
const eventually = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const a = yield* effect
      if (check(a)) return a
      yield* settle
    }
    return assert.fail(`timed out waiting for ${what}`)
  })

/** Makes every request fail from now on and steps a 600 s token (no jitter) to 590 s, its usable end. */
const failUntilUsableEnds = (server: AuthServer.AuthServer, pool: TokenPool.TokenPool) =>
  Effect.gen(function*() {
    yield* server.inject(...Array.from({ length: 20 }, () => AuthServer.Fault.unavailable()))
    for (let i = 0; i < 59; i++) {
      yield* TestClock.adjust("10 seconds")
      yield* eventually(pool.stats, (s) => s.inFlight === 0 && s.queued === 0, "attempts to end")
    }
  })

const all = <A, E>(effects: Iterable<Effect.Effect<A, E>>) => Effect.all(effects, { concurrency: "unbounded" })

describe("TokenPool", () => {
  describe("keys", () => {
    it.scoped("shares one token per key and fetches one per distinct key", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make({ policy: noJitter })
        const a1 = yield* pool.get(credential(server, "a"))
        const a2 = yield* pool.get(credential(server, "a"))
        const b = yield* pool.get(credential(server, "b"))
        // scopes are a set: their order does not make another key
        const ab1 = yield* pool.get(credential(server, "x", { grant: Grant.clientCredentials({ scopes: ["p", "q"] }) }))
        const ab2 = yield* pool.get(credential(server, "x", { grant: Grant.clientCredentials({ scopes: ["q", "p"] }) }))
        assert.strictEqual(value(a1), value(a2))
        assert.notStrictEqual(value(a1), value(b))
        assert.strictEqual(value(ab1), value(ab2))
        assert.strictEqual(yield* server.count(), 3)
        assert.strictEqual(yield* pool.size, 3)
        const requests = yield* server.requests
        assert.deepStrictEqual(requests.map((r) => r.form.scope), ["a", "b", "p q"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("extra parameters are part of the key: a value holding '&' and '=' never meets two parameters", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make({ policy: noJitter })
        const withParams = (extraParams: Record<string, string>) =>
          credential(server, "a", { grant: Grant.clientCredentials({ scopes: ["a"], extraParams }) })
        const joined = yield* pool.get(withParams({ audience: "x&resource=y" }))
        const split = yield* pool.get(withParams({ audience: "x", resource: "y" }))
        const reordered = yield* pool.get(withParams({ resource: "y", audience: "x" }))
        assert.notStrictEqual(value(joined), value(split))
        assert.strictEqual(value(reordered), value(split))
        // the same client authenticating another way is another credential; another Basic encoding is not
        const posted = yield* pool.get({
          ...withParams({}),
          clientAuth: ClientAuth.post("client", Redacted.make("secret"))
        })
        const basic = yield* pool.get(withParams({}))
        const plain = yield* pool.get({
          ...withParams({}),
          clientAuth: ClientAuth.basic("client", Redacted.make("secret"), { encoding: "plain" })
        })
        assert.notStrictEqual(value(posted), value(basic))
        assert.strictEqual(value(plain), value(basic))
        assert.strictEqual(yield* server.count(), 4)
        assert.strictEqual(yield* pool.size, 4)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a refresh-token or device-code credential needs a subject or a key", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make()
        const grant = Grant.refreshToken({ refreshToken: Redacted.make("rt") })
        const error = yield* Effect.flip(pool.get(credential(server, "a", { grant })))
        assert.strictEqual(error._tag, "InvalidConfiguration")
        assert.include(error.message, "needs a subject")
        const device = Grant.deviceCode({ deviceAuthorizationEndpoint: server.url + "/device" })
        const refused = yield* Effect.flip(pool.get(credential(server, "a", { grant: device })))
        assert.strictEqual(refused._tag, "InvalidConfiguration")
        assert.include(refused.message, "needs a subject")
        assert.strictEqual(
          (yield* Effect.flip(pool.source(credential(server, "a", { grant: device }))))._tag,
          "InvalidConfiguration"
        )
        assert.strictEqual(yield* server.count(), 0)
        assert.strictEqual(yield* pool.size, 0)
        // with a subject, or a key, a device flow is accepted: the pool holds it (the flow itself is below)
        yield* pool.source(credential(server, "a", { grant: device, subject: "alice" }))
        yield* pool.source(credential(server, "a", { grant: device, key: "bob's device" }))
        assert.strictEqual(yield* pool.size, 2)
      }).pipe(Effect.provide(HttpLive)))

    // a token exchange's own `subject` is part of the key even when the credential has a `subject` too
    it.scoped("two users' token exchanges under one credential subject get a token each", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ tokenExchange: { validSubject: () => true } })
        const pool = yield* TokenPool.make()
        const exchange = (user: string) =>
          credential(server, "a", {
            grant: Grant.tokenExchange({ subjectToken: Redacted.make(`${user}-subject-token`), subject: user }),
            subject: "tenant-1"
          })
        const alice = yield* pool.get(exchange("alice"))
        const bob = yield* pool.get(exchange("bob"))
        assert.strictEqual(yield* server.count(), 2, "one exchange per user")
        assert.notStrictEqual(value(bob), value(alice))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("refuses an http:// token URL on a non-loopback host before sending anything", () =>
      Effect.gen(function*() {
        const pool = yield* TokenPool.make()
        const error = yield* Effect.flip(pool.get({
          url: "http://auth.example.com/token",
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.clientCredentials()
        }))
        assert.strictEqual(error._tag, "InvalidConfiguration")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("single flight", () => {
    it.scoped("1,000 concurrent gets on a cold key send one request", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make()
        yield* server.inject(AuthServer.Fault.delay(100))
        const tokens = yield* all(Array.from({ length: 1000 }, () => pool.get(credential(server, "a"))))
        assert.strictEqual(new Set(tokens.map(value)).size, 1)
        assert.strictEqual(yield* server.count(), 1)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("concurrent refresh calls and gets of an invalidated token send one request", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make()
        const key = credential(server, "a")
        const first = yield* pool.get(key)
        yield* server.inject(AuthServer.Fault.delay(100))
        yield* pool.invalidate(key, first)
        const tokens = yield* all([
          ...Array.from({ length: 100 }, () => pool.refresh(key)),
          ...Array.from({ length: 100 }, () => pool.get(key))
        ])
        assert.strictEqual(new Set(tokens.map(value)).size, 1)
        assert.notStrictEqual(value(tokens[0]!), value(first))
        assert.strictEqual(yield* server.count(), 2)
        // a 401 about a token already replaced changes nothing
        yield* pool.invalidate(key, first)
        assert.strictEqual(value(yield* pool.get(key)), value(tokens[0]!))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("proactive refresh", () => {
    it.scoped("refreshes 200 keys before expiry; callers never wait", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ policy: noJitter, maxConcurrentPerEndpoint: 8, idleTimeToLive: "1 day" })
        const keys = Array.from({ length: 200 }, (_, i) => credential(server, `s${i}`))
        const first = yield* all(keys.map(pool.get))
        assert.strictEqual(yield* server.count(), 200)
        yield* TestClock.adjust("44 minutes")
        yield* settle
        assert.strictEqual(yield* server.count(), 200, "nothing before the lead time")
        yield* TestClock.adjust("1 minute")
        yield* eventually(server.count(), (n) => n === 400, "200 refreshes")
        yield* eventually(pool.stats, (s) => s.inFlight === 0 && s.queued === 0, "the pool to settle")
        const now = yield* Clock.currentTimeMillis
        const second = yield* all(keys.map(pool.get))
        second.forEach((token, i) => {
          assert.notStrictEqual(value(token), value(first[i]!))
          assert.isTrue(first[i]!.expiresAt! > now, "replaced while still valid")
        })
        assert.strictEqual(yield* server.count(), 400, "gets after the refresh sent nothing")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("spreads the refreshes of tokens issued together over the jitter window", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({
          policy: RefreshPolicy.defaults,
          maxConcurrentPerEndpoint: 8,
          idleTimeToLive: "1 day"
        })
        const count = 300
        yield* all(Array.from({ length: count }, (_, i) => pool.get(credential(server, `s${i}`))))
        // default policy: refresh at 65-75 % of the lifetime, i.e. minutes 39 to 45
        yield* TestClock.adjust("38 minutes")
        const perMinute: Array<number> = []
        let seen = yield* server.count()
        for (let minute = 38; minute < 46; minute++) {
          yield* TestClock.adjust("1 minute")
          yield* eventually(pool.stats, (s) => s.inFlight === 0 && s.queued === 0, "the minute's refreshes")
          const total = yield* server.count()
          perMinute.push(total - seen)
          seen = total
        }
        assert.strictEqual(seen, 2 * count, `every token refreshed once: ${perMinute.join(",")}`)
        assert.strictEqual(perMinute[0], 0, "none before minute 39")
        assert.strictEqual(perMinute[7], 0, "none after minute 45")
        // six minutes of window: an even spread is 50 a minute; at most twice that in any one
        assert.isTrue(Math.max(...perMinute) <= 100, `spread: ${perMinute.join(",")}`)
        assert.isTrue(perMinute.filter((n) => n > 0).length >= 6, `spread: ${perMinute.join(",")}`)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("per-endpoint concurrency cap", () => {
    it.scoped("never sends more than maxConcurrentPerEndpoint requests at once to one endpoint", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const other = yield* AuthServer.make()
        const pool = yield* TokenPool.make({ maxConcurrentPerEndpoint: 3 })
        yield* server.inject(...Array.from({ length: 12 }, () => AuthServer.Fault.delay(150)))
        yield* other.inject(...Array.from({ length: 4 }, () => AuthServer.Fault.delay(150)))
        const held = (s: AuthServer.AuthServer) =>
          Effect.map(s.requests, (rs) => rs.filter((r) => r.outcome === "fault").length)
        const fiber = yield* Effect.fork(all([
          ...Array.from({ length: 12 }, (_, i) => pool.get(credential(server, `s${i}`))),
          ...Array.from({ length: 4 }, (_, i) => pool.get(credential(other, `o${i}`)))
        ]))
        let maxServer = 0
        let maxOther = 0
        while (fiber.unsafePoll() === null) {
          maxServer = Math.max(maxServer, yield* held(server))
          maxOther = Math.max(maxOther, yield* held(other))
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        }
        const tokens = yield* Fiber.join(fiber)
        assert.strictEqual(tokens.length, 16)
        assert.strictEqual(maxServer, 3, "the cap is reached and never passed")
        assert.strictEqual(maxOther, 3, "another endpoint has its own cap")
        assert.strictEqual(yield* server.count(), 12)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("idle release", () => {
    it.scoped("drops a token nobody asked for during idleTimeToLive; the next get fetches one", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 7200 })
        const pool = yield* TokenPool.make({ idleTimeToLive: "10 minutes", policy: noJitter })
        const used = credential(server, "used")
        const unused = credential(server, "unused")
        yield* pool.get(used)
        yield* pool.get(unused)
        for (let i = 0; i < 3; i++) {
          yield* TestClock.adjust("4 minutes")
          yield* pool.get(used)
        }
        assert.strictEqual(yield* pool.size, 1, "the unused key was dropped, the used one kept")
        yield* pool.get(unused)
        assert.strictEqual(yield* server.count(), 3)
        assert.strictEqual(yield* pool.size, 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a refresh-token credential stays held (its rotated refresh token) but is not refreshed while idle", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ idleTimeToLive: "10 minutes", policy: noJitter })
        const login = yield* pool.get(credential(server, "a", {
          grant: Grant.password({ username: "user", password: Redacted.make("pass") })
        }))
        const key = credential(server, "a", {
          grant: Grant.refreshToken({ refreshToken: login.refreshToken! }),
          subject: "user"
        })
        const first = yield* pool.get(key)
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        yield* TestClock.adjust("20 minutes")
        yield* settle
        assert.strictEqual(yield* pool.size, 1, "the password key was dropped, the refresh-token key kept")
        yield* TestClock.adjust("3 hours")
        yield* settle
        assert.strictEqual(yield* server.count(), 2, "no refresh while idle")
        // the grant's refresh token was rotated away: only the one the pool kept still works
        const next = yield* pool.get(key)
        assert.notStrictEqual(value(next), value(first))
        assert.strictEqual(yield* server.count("refresh_token"), 2)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("failures", () => {
    it.scoped("retries with backoff and Retry-After while serving the valid token", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ policy: noJitter, idleTimeToLive: "1 day" })
        const key = credential(server, "a")
        const token = yield* pool.get(key)
        yield* server.inject(AuthServer.Fault.unavailable(), AuthServer.Fault.rateLimited(120))
        yield* TestClock.adjust("45 minutes")
        yield* eventually(server.count(), (n) => n === 2, "the first refresh attempt")
        yield* eventually(pool.stats, (s) => s.inFlight === 0, "the attempt to end")
        assert.strictEqual(value(yield* pool.get(key)), value(token))
        yield* TestClock.adjust("2 seconds")
        yield* eventually(server.count(), (n) => n === 3, "the retry")
        yield* eventually(pool.stats, (s) => s.inFlight === 0, "the retry to end")
        assert.strictEqual(value(yield* pool.get(key)), value(token))
        yield* TestClock.adjust("100 seconds")
        yield* settle
        assert.strictEqual(yield* server.count(), 3, "no attempt before Retry-After")
        yield* TestClock.adjust("30 seconds")
        yield* eventually(server.count(), (n) => n === 4, "the attempt after Retry-After")
        yield* eventually(pool.stats, (s) => s.inFlight === 0, "the recovery")
        assert.notStrictEqual(value(yield* pool.get(key)), value(token))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("after expiry with the provider down, with maxWait 0 get fails at once with the last error, then heals", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 600 })
        const pool = yield* TokenPool.make({ policy: failFast, idleTimeToLive: "1 day" })
        const key = credential(server, "a")
        yield* pool.get(key)
        // ten failures in a row: with backoff from 1 second they outlast the token (usable until 9m50s)
        yield* server.inject(...Array.from({ length: 10 }, () => AuthServer.Fault.unavailable()))
        for (let i = 0; i < 12; i++) {
          yield* TestClock.adjust("1 minute")
          yield* eventually(pool.stats, (s) => s.inFlight === 0 && s.queued === 0, "attempts to end")
        }
        const attempts = yield* server.count()
        assert.isTrue(attempts < 11, "still failing at minute 12")
        const error = yield* Effect.flip(pool.get(key))
        assert.strictEqual(error._tag, "ServerError")
        assert.strictEqual(yield* server.count(), attempts, "failing at once sends nothing")
        while ((yield* server.count()) < 12) {
          yield* TestClock.adjust("5 minutes")
          yield* eventually(pool.stats, (s) => s.inFlight === 0 && s.queued === 0, "attempts to end")
        }
        const healed = yield* Effect.either(pool.get(key))
        assert.strictEqual(healed._tag, "Right")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("while the provider fails, hands out the last token past its usable time until it expires", () =>
      Effect.gen(function*() {
        // 600 s tokens: usable until 590 s (10 s skew), refreshed from 300 s (no jitter)
        const server = yield* AuthServer.make({ lifetimeSeconds: 600 })
        const pool = yield* TokenPool.make({ policy: failFast, idleTimeToLive: "1 day" })
        const key = credential(server, "a")
        const token = yield* pool.get(key)
        yield* failUntilUsableEnds(server, pool)
        // 590 s: no usable token, but the last one has 10 s left
        assert.strictEqual(value(yield* pool.get(key)), value(token))
        yield* TestClock.adjust("10 seconds")
        // 600 s: expired, so the last error at once
        assert.strictEqual((yield* Effect.flip(pool.get(key)))._tag, "ServerError")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a caller waiting on a request that fails past the usable time gets the last token", () =>
      Effect.gen(function*() {
        // 600 s tokens: refreshed at 450 s (no jitter), usable until 590 s
        const server = yield* AuthServer.make({ lifetimeSeconds: 600 })
        const pool = yield* TokenPool.make({ policy: noJitter, idleTimeToLive: "1 day" })
        const key = credential(server, "a")
        const token = yield* pool.get(key)
        // the refresh is held for a second of real time, then refused with a 503
        yield* server.inject(AuthServer.Fault.delay(1000, AuthServer.Fault.unavailable()))
        yield* TestClock.adjust("460 seconds")
        yield* TestClock.adjust("131 seconds")
        assert.strictEqual((yield* pool.stats).inFlight, 1, "the request is still under way")
        assert.strictEqual(value(yield* pool.get(key)), value(token))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a last token the API refused is not handed out while the provider fails", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 600 })
        const pool = yield* TokenPool.make({ policy: failFast, idleTimeToLive: "1 day" })
        const key = credential(server, "a")
        const token = yield* pool.get(key)
        yield* failUntilUsableEnds(server, pool)
        yield* pool.invalidate(key, token)
        // the refused token is never handed out again: the next attempt's error instead
        assert.strictEqual((yield* Effect.flip(pool.get(key)))._tag, "ServerError")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a permanent error fails get at once without hammering the provider; refresh tries again", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make()
        const key = credential(server, "a", { clientAuth: ClientAuth.basic("client", Redacted.make("s3cr3t-X9")) })
        const errors = yield* all(Array.from({ length: 10 }, () => Effect.flip(pool.get(key))))
        assert.isTrue(errors.every((e) => e._tag === "InvalidClient"))
        assert.strictEqual(yield* server.count(), 1)
        assert.strictEqual((yield* Effect.flip(pool.get(key)))._tag, "InvalidClient")
        // the slow schedule: a minute, jittered (48 s at the earliest), then doubling
        yield* TestClock.adjust("40 seconds")
        assert.strictEqual(yield* server.count(), 1)
        assert.strictEqual((yield* Effect.flip(pool.refresh(key)))._tag, "InvalidClient")
        assert.strictEqual(yield* server.count(), 2, "refresh sends one request in a step")
        for (let i = 0; i < 60; i++) yield* TestClock.adjust("1 minute").pipe(Effect.zipRight(settle))
        const hour = yield* server.count()
        assert.isTrue(hour >= 5 && hour <= 8, `slow retries in an hour: ${hour}`)
        // the secret never reaches the error
        assert.notInclude(JSON.stringify(errors[0]) + String(errors[0]), "s3cr3t-X9")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("refreshes with the rotated refresh token; a refused one falls back to an unattended grant", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ policy: noJitter })
        const key = credential(server, "a", {
          grant: Grant.password({ username: "user", password: Redacted.make("pass") })
        })
        const first = yield* pool.get(key)
        const second = yield* pool.refresh(key)
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        const requests = yield* server.requests
        assert.strictEqual(requests[1]!.form.refresh_token, Redacted.value(first.refreshToken!))
        yield* server.revokeRefreshToken(Redacted.value(second.refreshToken!))
        const third = yield* pool.refresh(key)
        assert.notStrictEqual(value(third), value(second))
        assert.strictEqual(yield* server.count("password"), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a refresh-token credential whose refresh token is refused ends in ReauthorizationRequired", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const pool = yield* TokenPool.make()
        const key = credential(server, "a", {
          grant: Grant.refreshToken({ refreshToken: Redacted.make("unknown") }),
          subject: "user-1"
        })
        const error = yield* Effect.flip(pool.get(key))
        assert.strictEqual(error._tag, "ReauthorizationRequired")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("as a TokenSource", () => {
    it.scoped("source(key) gets, refreshes and reports its states", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ policy: noJitter, idleTimeToLive: "1 day" })
        const source = yield* pool.source(credential(server, "a"))
        assert.strictEqual(yield* server.count(), 0, "a handle sends nothing by itself")
        const states = yield* source.changes.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
        yield* settle
        const token = yield* source.get
        yield* TestClock.adjust("45 minutes")
        const collected = Chunk.toReadonlyArray(yield* Fiber.join(states)).map((s) => s._tag)
        assert.deepStrictEqual(collected, ["Pending", "Valid", "Refreshing", "Valid"])
        const next = yield* source.get
        assert.notStrictEqual(value(next), value(token))
        assert.strictEqual((yield* source.state)._tag, "Valid")
        assert.strictEqual(value(yield* source.getValidFor("10 minutes")), value(next))
        // asking for more than the token has left fetches another
        const longer = yield* source.getValidFor(Duration.hours(2))
        assert.notStrictEqual(value(longer), value(next))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a handle outlives an idle release; remove ends the key's change streams", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 7200 })
        const pool = yield* TokenPool.make({ idleTimeToLive: "5 minutes" })
        const key = credential(server, "a")
        const source = yield* pool.source(key)
        yield* source.get
        yield* TestClock.adjust("6 minutes")
        assert.strictEqual(yield* pool.size, 0)
        yield* source.get
        assert.strictEqual(yield* pool.size, 1)
        assert.strictEqual(yield* server.count(), 2)
        const stream = yield* pool.changes(key).pipe(Stream.runCollect, Effect.fork)
        yield* settle
        yield* pool.remove(key)
        const exit = yield* Fiber.await(stream)
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(yield* pool.size, 0)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("closing the pool interrupts waiting callers", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        yield* server.inject(AuthServer.Fault.delay(2000))
        const waiting = yield* Effect.scoped(
          Effect.gen(function*() {
            const pool = yield* TokenPool.make()
            const fiber = yield* Effect.fork(pool.get(credential(server, "a")))
            yield* settle
            return fiber
          })
        )
        const exit = yield* Fiber.await(waiting)
        assert.isTrue(Exit.isInterrupted(exit))
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("what a single source has", () => {
    const stored = Layer.merge(HttpLive, TokenStore.layerMemory)

    it.scoped("store: true: pools on one store share a key's token; a pool started after finds it", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const a = yield* TokenPool.make({ store: true, policy: noJitter })
        const b = yield* TokenPool.make({ store: true, policy: noJitter })
        const fromA = yield* a.get(credential(server, "a"))
        const fromB = yield* b.get(credential(server, "a"))
        assert.strictEqual(value(fromB), value(fromA))
        assert.strictEqual(yield* server.count(), 1)
        // at the same time, on a cold key: still one request
        const [x, y] = yield* Effect.all([a.get(credential(server, "b")), b.get(credential(server, "b"))], {
          concurrency: "unbounded"
        })
        assert.strictEqual(value(x), value(y))
        assert.strictEqual(yield* server.count(), 2)
        const later = yield* TokenPool.make({ store: true, policy: noJitter })
        assert.strictEqual(value(yield* later.get(credential(server, "a"))), value(fromA))
        assert.strictEqual(yield* server.count(), 2, "the later pool read the store, sent nothing")
        // the store holds it under the credential's identity
        const store = yield* TokenStore.TokenStoreTag
        const entry = yield* store.load(TokenStore.key(credential(server, "a")))
        assert.isTrue(Option.isSome(entry))
        assert.strictEqual(value(Option.getOrThrow(entry).token), value(fromA))
      }).pipe(Effect.provide(stored)))

    it.scoped("store: true with an explicit key: the store keeps it under that key", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const pool = yield* TokenPool.make({ store: true })
        const token = yield* pool.get(credential(server, "a", { key: "tenant-7" }))
        const store = yield* TokenStore.TokenStoreTag
        const entry = yield* store.load("tenant-7")
        assert.strictEqual(value(Option.getOrThrow(entry).token), value(token))
        assert.isTrue(Option.isNone(yield* store.load(TokenStore.key(credential(server, "a")))))
      }).pipe(Effect.provide(stored)))

    it.scoped("without store: true a provided store is not used", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const a = yield* TokenPool.make({ policy: noJitter })
        const b = yield* TokenPool.make({ policy: noJitter })
        const fromA = yield* a.get(credential(server, "a"))
        const fromB = yield* b.get(credential(server, "a"))
        assert.notStrictEqual(value(fromB), value(fromA))
        assert.strictEqual(yield* server.count(), 2)
        const store = yield* TokenStore.TokenStoreTag
        assert.isTrue(Option.isNone(yield* store.load(TokenStore.key(credential(server, "a")))))
      }).pipe(Effect.provide(stored)))

    it.scoped("a device-code credential: changes shows AwaitingUser with the user code, then Valid after approval", () =>
      Effect.gen(function*() {
        const fake = yield* DeviceFake.make({ interval: 5, expiresIn: 600, script: ["pending", "approve"] })
        const t0 = yield* Clock.currentTimeMillis
        const pool = yield* TokenPool.make({ policy: noJitter })
        const device: TokenPool.Credential = {
          url: fake.tokenUrl,
          clientAuth: ClientAuth.none("device-app"),
          grant: Grant.deviceCode({ deviceAuthorizationEndpoint: fake.deviceAuthorizationUrl, scopes: ["read"] }),
          subject: "alice",
          timeout: "30 days"
        }
        const states = yield* pool.changes(device).pipe(
          Stream.takeUntil((s) => s._tag === "Valid"),
          Stream.runCollect,
          Effect.fork
        )
        const waiting = yield* Effect.fork(pool.get(device))
        const prompt = yield* eventually(
          pool.changes(device).pipe(Stream.runHead, Effect.orDie),
          (s) => Option.isSome(s) && s.value._tag === "AwaitingUser",
          "the prompt"
        )
        const awaiting = Option.getOrThrow(prompt) as Extract<TokenState.TokenState, { _tag: "AwaitingUser" }>
        const [issued] = yield* fake.userCodes
        assert.strictEqual(awaiting.userCode, issued)
        assert.strictEqual(awaiting.verificationUri, fake.verificationUri)
        assert.strictEqual(awaiting.expiresAt, t0 + 600_000)
        // the first poll after the interval: pending; the second: approved
        for (const at of [5_000, 10_000]) {
          yield* eventually(
            TestClock.sleeps(),
            (sleeps) => Chunk.some(sleeps, (d) => d === t0 + at),
            `a sleep until ${at} ms`
          )
          yield* TestClock.setTime(t0 + at)
          yield* eventually(fake.polls, (polls) => polls.some((p) => p.at === t0 + at), `the poll at ${at} ms`)
        }
        const token = yield* Fiber.join(waiting)
        assert.deepStrictEqual((yield* fake.polls).map((p) => p.answer), ["authorization_pending", "token"])
        assert.deepStrictEqual(token.scopes, ["read"])
        const seen = Chunk.toReadonlyArray(yield* Fiber.join(states)).map((s) => s._tag)
        assert.deepStrictEqual(seen.filter((tag, i) => tag !== seen[i - 1]), ["Pending", "AwaitingUser", "Valid"])
        assert.strictEqual(value(yield* pool.get(device)), value(token))
        assert.strictEqual((yield* fake.authorizations).length, 1)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the expiry gauge: a pool get sets seconds until expiry for its provider, with each token", () =>
      Effect.gen(function*() {
        const long = yield* AuthServer.make({ lifetimeSeconds: 1800 })
        const short = yield* AuthServer.make({ lifetimeSeconds: 600 })
        const pool = yield* TokenPool.make({ policy: noJitter })
        const gauge = (provider: string) =>
          Effect.map(
            Metric.value(TokenMetrics.secondsUntilExpiry.pipe(Metric.tagged("provider", provider))),
            (state) => state.value
          )
        yield* pool.get(credential(long, "a", { provider: "pool-gauge" }))
        const first = yield* gauge("pool-gauge")
        assert.isTrue(first > 1790 && first <= 1800, `${first}`)
        // the gauge tells the lifetime at the time the token was received: time passing does not move it
        yield* TestClock.adjust("5 minutes")
        assert.strictEqual(yield* gauge("pool-gauge"), first)
        // another token of the same provider sets it again
        yield* pool.get(credential(short, "a", { provider: "pool-gauge" }))
        const second = yield* gauge("pool-gauge")
        assert.isTrue(second > 590 && second <= 600, `${second}`)
        // another provider has its own
        yield* pool.get(credential(long, "b", { provider: "pool-gauge-other" }))
        assert.isTrue((yield* gauge("pool-gauge-other")) > 1790)
        assert.strictEqual(yield* gauge("pool-gauge"), second)
      }).pipe(Effect.provide(HttpLive)))
  })
})
