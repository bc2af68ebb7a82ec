/**
 * A token dead on arrival, and a server whose clock is off (issue 14, response side): a JWT's `exp` is
 * moved onto our clock by the offset the answer's `Date` header shows, and a token that has expired
 * when it arrives is a transient failure, retried on the schedule, never a request loop.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Redacted, TestClock } from "effect"
import { ClientAuth, Grant, RefreshPolicy, TokenEndpoint, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { collectLogs, HttpLive, type LogLine, settle } from "./util.js"

// a December noon, in whole seconds, as a Date header states time
const NOW = Date.UTC(2026, 11, 2, 12, 0, 0)
const HOUR = 3600_000

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
/** An unsigned JWT access token expiring at `exp` (epoch ms), as some servers issue without `expires_in`. */
const jwt = (exp: number) => `${base64url({ alg: "none" })}.${base64url({ sub: "svc", exp: exp / 1000 })}.`

/** One token response, sent with the given `Date` header. */
const answer = (token: string, date: number) =>
  AuthServer.Fault.status(200, {
    body: JSON.stringify({ access_token: token, token_type: "Bearer" }),
    contentType: "application/json",
    headers: { Date: new Date(date).toUTCString() }
  })

const endpoint = (server: AuthServer.AuthServer) =>
  TokenEndpoint.make({ url: server.tokenUrl, clientAuth: ClientAuth.basic("client", Redacted.make("secret")) })

const DAY = 24 * HOUR

describe("lifetimes too long to believe", () => {
  it.scoped("expires_in: 1e12 (31,700 years) is taken as 366 days, with one warning, and refreshed before then", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = yield* AuthServer.make({ shapeToken: (body) => ({ ...body, expires_in: 1e12 }) })
      const source = yield* TokenSource.make({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.clientCredentials(),
        // the clock jumps 280 days while the refresh (sent from day 238) is on real IO: its timeout
        // must outlast the jump, or a loaded machine sees it time out and retried
        timeout: "400 days"
      })
      const token = yield* source.get
      assert.strictEqual(token.expiresAt! - token.issuedAt, 366 * DAY)
      const warnings = lines.filter((l) => l.level === "WARN" && l.message.includes("maxLifetime"))
      assert.strictEqual(warnings.length, 1)
      assert.strictEqual(warnings[0]!.annotations.lifetime_s, 1e12)
      // refreshed at 65-75 % of 366 days, not in 31,700 years
      yield* TestClock.adjust(Duration.days(280))
      yield* settle
      assert.strictEqual(yield* server.count(), 2)
    }).pipe(Effect.provide(HttpLive), collectLogs(lines))
  })

  it.scoped("the policy's maxLifetime is the bound; one that is not positive fails make before any request", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = yield* AuthServer.make({ lifetimeSeconds: 7200 })
      const make = (maxLifetime: Duration.DurationInput) =>
        TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.clientCredentials(),
          policy: RefreshPolicy.make({ maxLifetime }),
          timeout: "30 days"
        })
      const token = yield* (yield* make("1 hour")).get
      assert.strictEqual(token.expiresAt! - token.issuedAt, HOUR)
      const refused = yield* Effect.flip(make(0))
      assert.strictEqual(refused._tag, "InvalidConfiguration")
      assert.strictEqual(yield* server.count(), 1)
    }).pipe(Effect.provide(HttpLive)))
})

describe("dead tokens and server clocks", () => {
  it.scoped("a server 2 hours behind: its JWT's exp is read on our clock through its Date header", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = yield* AuthServer.make()
      // the server's clock says 10:00; its token expires an hour after that, at 11:00 its time
      yield* server.inject(answer(jwt(NOW - HOUR), NOW - 2 * HOUR))
      const token = yield* (yield* endpoint(server)).request(Grant.clientCredentials())
      assert.strictEqual(token.lifetimeSource, "jwt")
      assert.strictEqual(token.expiresAt, NOW + HOUR)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a Date header within seconds of our clock, or absurdly far, changes nothing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = yield* AuthServer.make()
      const tokens = yield* endpoint(server)
      yield* server.inject(answer(jwt(NOW + HOUR), NOW - 3_000), answer(jwt(NOW + HOUR), NOW - 30 * 24 * HOUR))
      assert.strictEqual((yield* tokens.request(Grant.clientCredentials())).expiresAt, NOW + HOUR)
      assert.strictEqual((yield* tokens.request(Grant.clientCredentials())).expiresAt, NOW + HOUR)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a token expired on arrival is a transient MalformedResponse that quotes no token", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const server = yield* AuthServer.make()
      const dead = jwt(NOW - HOUR)
      yield* server.inject(answer(dead, NOW))
      const error = yield* Effect.flip((yield* endpoint(server)).request(Grant.clientCredentials()))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error.transient)
      assert.include(error.message, "expired on arrival")
      assert.notInclude(JSON.stringify(error), dead.split(".")[1]!)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a server that only issues dead tokens is asked on the retry schedule, not in a loop", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      // every token it issues expired an hour before it was issued (no Date offset: the same clock)
      const server = yield* AuthServer.make({
        jwtAccessTokens: true,
        expiresIn: "omit",
        lifetimeSeconds: 3600,
        shapeToken: (body) => ({ ...body, access_token: jwt(NOW - HOUR) })
      })
      const source = yield* TokenSource.make({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.clientCredentials(),
        timeout: "30 days",
        // a caller is answered at once with the error, so the test counts the schedule's requests alone
        policy: RefreshPolicy.make({ maxWait: 0 })
      })
      assert.strictEqual((yield* source.state)._tag, "Retrying")
      const error = yield* Effect.flip(source.get)
      assert.strictEqual(error._tag, "MalformedResponse")
      // ten seconds of the exponential schedule (1 s, 2 s, 4 s, jittered): a handful of attempts
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("500 millis").pipe(Effect.zipRight(settle))
      const requests = yield* server.count()
      assert.isAtLeast(requests, 2)
      assert.isAtMost(requests, 6)
    }).pipe(Effect.provide(HttpLive)))
})
