import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Metric, Option, Redacted, Stream, TestClock } from "effect"
import { ClientAuth, Grant, RefreshPolicy, TokenMetrics, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { failFast, HttpLive, noJitter, settle, setup, waitFor, waitForNewToken } from "./util.js"

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

/**
 * A source of 100 s tokens (refreshed at 65-70 s, usable until 90 s) whose provider fails every request
 * from the first token on, stepped to 92 s: Retrying, with no usable token.
 */
const failingPastUsable = Effect.gen(function*() {
  const { server, source } = yield* setup({ lifetimeSeconds: 100 }, { policy: failFast })
  const token = yield* source.get
  yield* server.inject(...Array.from({ length: 20 }, () => AuthServer.Fault.unavailable()))
  for (let i = 0; i < 46; i++) yield* TestClock.adjust("2 seconds").pipe(Effect.zipRight(settle))
  yield* waitFor(source, (s) => s._tag === "Retrying" && Option.isNone(s.token))
  return { source, token }
})

describe("TokenSource", () => {
  describe("proactive refresh", () => {
    it.scoped("refreshes every token of a day of 1-hour lifetimes before it expires", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 }, { policy: RefreshPolicy.defaults })
        let token = yield* source.get
        assert.strictEqual(yield* server.count(), 1)
        for (let hour = 1; hour <= 24; hour++) {
          // refresh is due between 35% and 25% of the lifetime before expiry: 39 to 45 minutes in
          yield* TestClock.setTime(token.issuedAt + 38 * 60_000)
          assert.strictEqual(value(yield* source.get), value(token), "no refresh before the lead time")
          yield* TestClock.adjust("7 minutes")
          const next = yield* waitForNewToken(source, token)
          const now = yield* Clock.currentTimeMillis
          assert.isTrue(token.expiresAt! > now, "the old token was still valid when it was replaced")
          // callers never wait: the token they get is the new one, with no extra request
          assert.strictEqual(value(yield* source.get), value(next))
          token = next
        }
        assert.strictEqual(yield* server.count(), 25)
        assert.strictEqual(yield* server.count("client_credentials"), 25)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("refreshes a 366-day token on time (TestClock, through chunked sleeps)", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 31_622_400 }, {
          grant: Grant.password({ username: "user", password: Redacted.make("pass") })
        })
        const token = yield* source.get
        yield* TestClock.adjust(Duration.days(230))
        assert.strictEqual(yield* server.count(), 1)
        yield* TestClock.adjust(Duration.days(45))
        const next = yield* waitForNewToken(source, token)
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        assert.isTrue(next.expiresAt! - next.issuedAt === 31_622_400_000)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("spreads the refreshes of tokens issued together (jitter)", () =>
      Effect.gen(function*() {
        const policy = RefreshPolicy.defaults
        const token = (issuedAt: number) => ({
          value: Redacted.make("x"),
          type: "Bearer",
          issuedAt,
          expiresAt: issuedAt + 3_600_000,
          lifetimeSource: "expires_in" as const,
          scopes: [],
          extra: Redacted.make({})
        })
        const times = [0, 0.25, 0.5, 0.75, 0.999].map((r) => RefreshPolicy.refreshAt(policy, token(0), r)!)
        assert.deepStrictEqual(new Set(times).size, 5)
        assert.isTrue(times.every((t) => t >= 3_600_000 * 0.65 && t <= 3_600_000 * 0.75))
        // a 2-second token still leaves time for the request
        const short = { ...token(0), expiresAt: 2000 }
        assert.isTrue(RefreshPolicy.refreshAt(policy, short, 0.5)! <= 1500)
      }))
  })

  describe("single flight", () => {
    it.scoped("1,000 concurrent gets with no valid token send one request", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup()
        yield* source.invalidate()
        yield* server.inject(AuthServer.Fault.delay(100))
        const tokens = yield* Effect.all(Array.from({ length: 1000 }, () => source.get), { concurrency: "unbounded" })
        assert.strictEqual(new Set(tokens.map(value)).size, 1)
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("concurrent refresh calls send one request", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup()
        const first = yield* source.get
        yield* server.inject(AuthServer.Fault.delay(100))
        const tokens = yield* Effect.all(Array.from({ length: 100 }, () => source.refresh), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(tokens.map(value)).size, 1)
        assert.notStrictEqual(value(tokens[0]!), value(first))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("invalidate with an already replaced token does nothing", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup()
        const stale = yield* source.get
        const fresh = yield* source.refresh
        yield* source.invalidate(stale)
        assert.strictEqual(value(yield* source.get), value(fresh))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("retry with backoff", () => {
    it.scoped("keeps serving the valid token while retrying, and honours Retry-After", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 })
        const token = yield* source.get
        yield* server.inject(AuthServer.Fault.unavailable(), AuthServer.Fault.rateLimited(120))
        yield* TestClock.adjust("45 minutes")
        const retrying = yield* waitFor(source, (s) => s._tag === "Retrying" && s.attempt === 1)
        assert.strictEqual(retrying._tag === "Retrying" && retrying.error._tag, "ServerError")
        assert.strictEqual(value(yield* source.get), value(token))
        yield* TestClock.adjust("2 seconds")
        const limited = yield* waitFor(source, (s) => s._tag === "Retrying" && s.attempt === 2)
        const now = yield* Clock.currentTimeMillis
        assert.isTrue(limited._tag === "Retrying" && limited.error._tag === "RateLimited")
        assert.isTrue(limited._tag === "Retrying" && limited.nextAttemptAt >= now + 118_000, "Retry-After honoured")
        assert.strictEqual(value(yield* source.get), value(token))
        yield* TestClock.adjust("100 seconds")
        yield* settle
        assert.strictEqual(yield* server.count(), 3, "no attempt before Retry-After")
        yield* TestClock.adjust("30 seconds")
        const next = yield* waitForNewToken(source, token)
        assert.notStrictEqual(value(next), value(token))
        assert.strictEqual(yield* server.count(), 4)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("with maxWait 0, fails at once after expiry while the provider is down, and heals by itself", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 60 }, { policy: failFast })
        const token = yield* source.get
        yield* server.inject(...Array.from({ length: 8 }, () => AuthServer.Fault.unavailable()))
        // backoff grows 1, 2, 4, 8, 16 ... seconds (±20%): the token expires during the retries
        for (let i = 0; i < 12; i++) yield* TestClock.adjust("10 seconds").pipe(Effect.zipRight(settle))
        yield* waitFor(source, (s) => s._tag === "Retrying" && Option.isNone(s.token))
        const error = yield* Effect.flip(source.get)
        assert.strictEqual(error._tag, "ServerError")
        const attempts = yield* server.count()
        for (let i = 0; i < 60; i++) {
          yield* TestClock.adjust("10 seconds")
          const s = yield* source.state
          if (s._tag === "Valid") break
          yield* settle
        }
        const healed = yield* waitForNewToken(source, token)
        assert.strictEqual(value(yield* source.get), value(healed))
        assert.isTrue(attempts >= 4 && (yield* server.count()) === 10, "8 failures, then success")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("while the provider fails, hands out the last token past its usable time until it expires", () =>
      Effect.gen(function*() {
        const { source, token } = yield* failingPastUsable
        // 92 s: no usable token, but the last one has 8 s left
        assert.strictEqual(value(yield* source.get), value(token))
        yield* TestClock.adjust("8 seconds")
        // 100 s: expired, so the last error at once
        assert.strictEqual((yield* Effect.flip(source.get))._tag, "ServerError")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a caller waiting on a request that fails past the usable time gets the last token", () =>
      Effect.gen(function*() {
        // 100 s tokens: refreshed at 65-70 s, usable until 90 s
        const { server, source } = yield* setup({ lifetimeSeconds: 100 })
        const token = yield* source.get
        // the refresh is held for a second of real time, then refused with a 503
        yield* server.inject(AuthServer.Fault.delay(1000, AuthServer.Fault.unavailable()))
        yield* TestClock.adjust("80 seconds")
        yield* TestClock.adjust("11 seconds")
        assert.strictEqual((yield* source.state)._tag, "Refreshing", "the request is still under way")
        assert.strictEqual(value(yield* source.get), value(token))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a last token the API refused is not handed out while the provider fails", () =>
      Effect.gen(function*() {
        const { source, token } = yield* failingPastUsable
        yield* source.invalidate(token)
        yield* settle
        // the refused token is never handed out again: the next attempt's error instead
        assert.strictEqual((yield* Effect.flip(source.get))._tag, "ServerError")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a permanent error is retried only on the slow schedule (from a minute), or by refresh", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 })
        const first = yield* source.get
        const invalidScope = AuthServer.Fault.status(400, { body: JSON.stringify({ error: "invalid_scope" }) })
        yield* server.inject(invalidScope, invalidScope)
        yield* TestClock.adjust("45 minutes")
        const failed = yield* waitFor(source, (s) => s._tag === "Failed")
        assert.strictEqual(failed._tag === "Failed" && failed.error._tag, "InvalidScope")
        yield* TestClock.adjust("40 seconds")
        yield* settle
        assert.strictEqual(yield* server.count(), 2, "no hammering after a permanent error")
        // the token still has minutes left, and is handed out
        assert.strictEqual(value(yield* source.get), value(first))
        // the first refresh in a step of the slow schedule sends one request; the next joins the schedule
        assert.strictEqual((yield* Effect.flip(source.refresh))._tag, "InvalidScope")
        assert.strictEqual(yield* server.count(), 3)
        const joined = yield* Effect.fork(source.refresh)
        yield* settle
        assert.strictEqual(yield* server.count(), 3, "a second refresh in the step waits for the schedule")
        // the next step (2 minutes, jittered) succeeds
        yield* TestClock.adjust("3 minutes")
        const token = yield* Fiber.join(joined)
        assert.notStrictEqual(value(token), value(first))
        assert.strictEqual(value(yield* source.get), value(token))
        assert.strictEqual(yield* server.count(), 4)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("make", () => {
    it.scoped("fails on a permanent error: a wrong secret is InvalidClient", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(setup({}, { clientAuth: ClientAuth.basic("client", Redacted.make("wrong")) }))
        assert.strictEqual(error._tag, "InvalidClient")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("starts Retrying on a transient error; get waits for the retry and gets its token", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        yield* server.inject(AuthServer.Fault.unavailable())
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.post("client", Redacted.make("secret")),
          grant: Grant.clientCredentials()
        })
        assert.strictEqual((yield* source.state)._tag, "Retrying")
        // the retry is due within maxWait (30 seconds): the caller waits for it instead of failing
        const waiting = yield* Effect.fork(source.get)
        yield* settle
        assert.isNull(waiting.unsafePoll(), "waits for the retry")
        yield* TestClock.adjust("2 seconds")
        const token = yield* Fiber.join(waiting)
        assert.strictEqual((yield* source.state)._tag, "Valid")
        assert.strictEqual(value(yield* source.get), value(token))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("refuses http:// on a non-loopback host before sending anything", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(TokenSource.make({
          url: "http://auth.example.com/token",
          clientAuth: ClientAuth.post("client", Redacted.make("secret")),
          grant: Grant.clientCredentials()
        }))
        assert.strictEqual(error._tag, "InvalidConfiguration")
        for (const url of ["http://127.0.0.9:1/token", "http://localhost:1/token", "http://[::1]:1/token"]) {
          // loopback is allowed; nobody listens, so the source starts retrying a transient failure
          const source = yield* TokenSource.make({
            url,
            clientAuth: ClientAuth.post("client", Redacted.make("secret")),
            grant: Grant.clientCredentials()
          })
          const state = yield* source.state
          assert.isTrue(state._tag === "Retrying" && state.error._tag === "TransportError", url)
        }
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("refresh tokens", () => {
    it.scoped("uses the refresh token, never a rotated one twice, and falls back to the password grant", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 }, {
          grant: Grant.password({ username: "user", password: Redacted.make("pass") })
        })
        let token = yield* source.get
        for (let i = 0; i < 3; i++) {
          yield* TestClock.adjust("45 minutes")
          token = yield* waitForNewToken(source, token)
        }
        const refreshes = (yield* server.requests).filter((r) => r.grantType === "refresh_token")
        assert.strictEqual(refreshes.length, 3)
        const sent = refreshes.map((r) => r.form.refresh_token)
        assert.strictEqual(new Set(sent).size, 3, "each rotated refresh token is sent once")
        // the user revokes everything: the refresh token is refused, the password grant runs again
        yield* server.revokeAll
        yield* TestClock.adjust("45 minutes")
        token = yield* waitForNewToken(source, token)
        assert.strictEqual(yield* server.count("password"), 2)
        assert.strictEqual(yield* server.count("refresh_token"), 4)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("keeps the old refresh token when the response has no new one", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600, rotateRefreshTokens: false }, {
          grant: Grant.password({ username: "user", password: Redacted.make("pass") })
        })
        let token = yield* source.get
        for (let i = 0; i < 2; i++) {
          yield* TestClock.adjust("45 minutes")
          token = yield* waitForNewToken(source, token)
        }
        const sent = (yield* server.requests).filter((r) => r.grantType === "refresh_token").map((r) =>
          r.form.refresh_token
        )
        assert.strictEqual(sent.length, 2)
        assert.strictEqual(sent[0], sent[1])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an authorization-code source whose refresh token is refused needs reauthorization", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const code = yield* server.issueCode({ clientId: "client", redirectUri: "http://127.0.0.1/cb" })
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.authorizationCode({ code: Redacted.make(code), redirectUri: "http://127.0.0.1/cb" }),
          policy: noJitter
        })
        yield* source.get
        yield* server.revokeAll
        yield* TestClock.adjust("45 minutes")
        const failed = yield* waitFor(source, (s) => s._tag === "Failed")
        assert.isTrue(failed._tag === "Failed" && failed.error._tag === "ReauthorizationRequired")
        const error = failed._tag === "Failed" ? failed.error : undefined
        assert.strictEqual(error?._tag === "ReauthorizationRequired" && error.reason?._tag, "InvalidGrant")
        assert.strictEqual(yield* server.count("authorization_code"), 1, "a code is never sent twice")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("tokens without expires_in", () => {
    it.scoped("uses the JWT exp claim as a lifetime hint", () =>
      Effect.gen(function*() {
        const { source } = yield* setup({ lifetimeSeconds: 600, expiresIn: "omit", jwtAccessTokens: true })
        const token = yield* source.get
        const now = yield* Clock.currentTimeMillis
        assert.strictEqual(token.lifetimeSource, "jwt")
        assert.isTrue(Math.abs(token.expiresAt! - (now + 600_000)) <= 1000)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("falls back to the configured default lifetime", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 600, expiresIn: "omit" }, {
          defaultLifetime: "10 minutes"
        })
        const token = yield* source.get
        assert.strictEqual(token.lifetimeSource, "default")
        yield* TestClock.adjust("450 seconds")
        yield* waitForNewToken(source, token)
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("without any lifetime a token is valid until invalidated", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: undefined })
        const token = yield* source.get
        assert.strictEqual(token.expiresAt, undefined)
        yield* TestClock.adjust(Duration.days(400))
        assert.strictEqual(value(yield* source.get), value(token))
        assert.strictEqual(yield* server.count(), 1)
        yield* source.invalidate(token)
        const next = yield* source.get
        assert.notStrictEqual(value(next), value(token))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a later response without expires_in keeps the lifetime learnt before", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 })
        const token = yield* source.get
        yield* server.setLifetime(undefined)
        const next = yield* source.refresh
        assert.strictEqual(next.lifetimeSource, "previous")
        assert.strictEqual(next.expiresAt! - next.issuedAt, token.expiresAt! - token.issuedAt)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("getValidFor", () => {
    it.scoped("refreshes first when the token expires sooner than asked", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 })
        const token = yield* source.get
        assert.strictEqual(value(yield* source.getValidFor("30 minutes")), value(token))
        yield* TestClock.adjust("20 minutes")
        const fresh = yield* Effect.all(Array.from({ length: 10 }, () => source.getValidFor("50 minutes")), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(fresh.map(value)).size, 1)
        assert.notStrictEqual(value(fresh[0]!), value(token))
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("stop", () => {
    it.scoped("lets a request under way finish, then sends nothing more", () =>
      Effect.gen(function*() {
        const { server, source } = yield* setup({ lifetimeSeconds: 3600 })
        const first = yield* source.get
        yield* server.inject(AuthServer.Fault.delay(200))
        const refreshing = yield* Effect.fork(source.refresh)
        yield* waitFor(source, (s) => s._tag === "Refreshing")
        yield* source.stop
        const next = yield* Fiber.join(refreshing)
        assert.notStrictEqual(value(next), value(first))
        assert.strictEqual(value(yield* source.get), value(next), "the token that came back is kept")
        yield* TestClock.adjust(Duration.days(1))
        yield* settle
        assert.strictEqual(yield* server.count(), 2, "no refresh after stop")
        assert.isTrue(Exit.isFailure(yield* Effect.exit(source.refresh)), "a refresh after stop sends nothing")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("observability", () => {
    it.scoped("changes emits every transition, and the refresh counter counts outcomes", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.clientCredentials(),
          provider: "observed",
          policy: noJitter
        })
        const seen = yield* source.changes.pipe(
          Stream.map((s) => s._tag),
          Stream.take(4),
          Stream.runCollect,
          Effect.fork
        )
        yield* Effect.sleep(0)
        yield* server.inject(AuthServer.Fault.unavailable())
        yield* TestClock.adjust("45 minutes")
        yield* waitFor(source, (s) => s._tag === "Retrying")
        yield* TestClock.adjust("2 seconds")
        const tags = Array.from(yield* Fiber.join(seen))
        assert.deepStrictEqual(tags, ["Valid", "Refreshing", "Retrying", "Valid"])
        const success = yield* Metric.value(
          TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", "observed"), Metric.tagged("outcome", "success"))
        )
        const transient = yield* Metric.value(
          TokenMetrics.refreshTotal.pipe(Metric.tagged("provider", "observed"), Metric.tagged("outcome", "transient"))
        )
        assert.strictEqual(success.count, 2)
        assert.strictEqual(transient.count, 1)
      }).pipe(Effect.provide(HttpLive)))
  })
})
