import { assert, describe, it } from "@effect/vitest"
import { Chunk, Clock, Duration, Effect, Fiber, HashMap, Logger, Option, Redacted, TestClock } from "effect"
import type { TokenState } from "tokenwarden"
import { ClientAuth, DeviceFlow, Grant, RefreshPolicy, TokenSource } from "tokenwarden"
import { AuthServer, DeviceFake } from "tokenwarden/testing"
import { HttpLive, settle, waitFor } from "./util.js"

type AwaitingUser = Extract<TokenState.TokenState, { readonly _tag: "AwaitingUser" }>

/** Real time passes (loopback IO) until `check` holds; fails the test after about 10 seconds. */
const eventually = <A>(what: string, check: Effect.Effect<A | undefined>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const value = yield* check
      if (value !== undefined) return value
      yield* settle
    }
    const now = yield* Clock.currentTimeMillis
    const sleeps = Chunk.toReadonlyArray(yield* TestClock.sleeps()).map((d) => d - now)
    return yield* Effect.dieMessage(`timed out waiting for ${what} (pending sleeps, ms from now: ${sleeps.join(", ")})`)
  })

/**
 * Waits until the client sleeps until exactly `deadline` (the interval it chose is the assertion: a
 * wrong one times out), then moves the TestClock there, so the next poll arrives at `deadline`.
 */
const pollAt = (fake: DeviceFake.DeviceFake, deadline: number) =>
  Effect.gen(function*() {
    const before = (yield* fake.polls).length
    yield* eventually(
      `a sleep until ${deadline}`,
      Effect.map(TestClock.sleeps(), (sleeps) => Chunk.some(sleeps, (d) => d === deadline) || undefined)
    )
    yield* TestClock.setTime(deadline)
    return yield* eventually(
      `poll ${before + 1}`,
      Effect.map(fake.polls, (polls) => polls[before])
    )
  })

const deviceSource = (fake: DeviceFake.DeviceFake, scopes: ReadonlyArray<string> = ["read"]) =>
  TokenSource.make({
    url: fake.tokenUrl,
    clientAuth: ClientAuth.none("device-app"),
    grant: Grant.deviceCode({ deviceAuthorizationEndpoint: fake.deviceAuthorizationUrl, scopes }),
    policy: RefreshPolicy.make({ jitterFraction: 0 }),
    // TestClock.setTime must never jump over a request's timeout
    timeout: "30 days"
  })

const awaitingUser = (source: TokenSource.TokenSource, previousCodes: ReadonlyArray<string> = []) =>
  waitFor(source, (s) => s._tag === "AwaitingUser" && !previousCodes.includes(s.userCode)).pipe(
    Effect.map((s) => s as AwaitingUser)
  )

describe("DeviceFlow", () => {
  it.scoped("shows the user code through changes, polls every interval while pending, then holds a token", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, expiresIn: 600, script: ["pending", "pending", "approve"] })
      const t0 = yield* Clock.currentTimeMillis
      // make returns at once: the flow needs a person, who learns the code from `changes`
      const source = yield* deviceSource(fake, ["read", "write"])
      const waiting = yield* Effect.fork(source.get)
      const prompt = yield* awaitingUser(source)
      const [issued] = yield* fake.userCodes
      assert.strictEqual(prompt.userCode, issued)
      assert.strictEqual(prompt.verificationUri, fake.verificationUri)
      assert.deepStrictEqual(prompt.verificationUriComplete, Option.some(`${fake.verificationUri}?user_code=${issued}`))
      assert.strictEqual(prompt.expiresAt, t0 + 600_000)
      const [authorization] = yield* fake.authorizations
      assert.deepStrictEqual(authorization?.form, { scope: "read write", client_id: "device-app" })

      const polls = [
        yield* pollAt(fake, t0 + 5_000),
        yield* pollAt(fake, t0 + 10_000),
        yield* pollAt(fake, t0 + 15_000)
      ]
      assert.deepStrictEqual(polls.map((p) => p.answer), ["authorization_pending", "authorization_pending", "token"])
      for (const poll of polls) {
        // RFC 8628 section 3.4: grant type, device code and client id; scope went with the authorization
        assert.deepStrictEqual(Object.keys(poll.form).sort(), ["client_id", "device_code", "grant_type"])
        assert.strictEqual(poll.form.grant_type, "urn:ietf:params:oauth:grant-type:device_code")
      }
      const token = yield* Fiber.join(waiting)
      assert.deepStrictEqual(token.scopes, ["read", "write"])
      assert.isDefined(token.refreshToken)
      assert.strictEqual((yield* source.state)._tag, "Valid")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("slow_down adds 5 seconds to the interval, for the rest of the flow (RFC 8628 section 3.5)", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, script: ["slow_down", "pending", "slow_down", "approve"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      yield* awaitingUser(source)
      // 5 s, then 10 s (slowed once), 10 s, then 15 s (slowed twice)
      for (const at of [5_000, 15_000, 25_000, 40_000]) yield* pollAt(fake, t0 + at)
      const polls = yield* fake.polls
      assert.deepStrictEqual(polls.map((p) => p.at - t0), [5_000, 15_000, 25_000, 40_000])
      assert.deepStrictEqual(polls.map((p) => p.answer), ["slow_down", "authorization_pending", "slow_down", "token"])
      yield* waitFor(source, (s) => s._tag === "Valid")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a transient failure doubles the interval and polling goes on", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, script: [{ status: 503 }, "pending", "approve"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      yield* awaitingUser(source)
      for (const at of [5_000, 15_000, 25_000]) yield* pollAt(fake, t0 + at)
      assert.deepStrictEqual((yield* fake.polls).map((p) => p.answer), ["status 503", "authorization_pending", "token"])
      yield* waitFor(source, (s) => s._tag === "Valid")
      assert.strictEqual((yield* fake.authorizations).length, 1, "the same device code throughout")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("expired_token ends the flow with a permanent, typed error and no more polls", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, script: ["pending", "expired"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      yield* awaitingUser(source)
      yield* pollAt(fake, t0 + 5_000)
      yield* pollAt(fake, t0 + 10_000)
      const failed = yield* waitFor(source, (s) => s._tag === "Failed")
      const error = failed._tag === "Failed" ? failed.error : undefined
      assert.strictEqual(error?._tag, "DeviceCodeExpired")
      assert.strictEqual(error?._tag === "DeviceCodeExpired" && error.error, "expired_token")
      // the deprecated predicates still answer
      assert.isTrue(error !== undefined && DeviceFlow.isExpired(error))
      assert.isFalse(error !== undefined && DeviceFlow.isAccessDenied(error))
      const caught = yield* source.get.pipe(
        Effect.as("token"),
        Effect.catchTag("DeviceCodeExpired", (e) => Effect.succeed(e.error))
      )
      assert.strictEqual(caught, "expired_token")
      yield* TestClock.adjust("1 hour")
      yield* settle
      assert.strictEqual((yield* fake.polls).length, 2, "a permanent error is not retried")
      assert.strictEqual((yield* fake.authorizations).length, 1, "no new flow without the user asking")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("access_denied ends the flow with a permanent, typed error", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, script: ["denied"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      yield* awaitingUser(source)
      yield* pollAt(fake, t0 + 5_000)
      const failed = yield* waitFor(source, (s) => s._tag === "Failed")
      assert.strictEqual(failed._tag === "Failed" && failed.error._tag, "AccessDenied")
      assert.isTrue(failed._tag === "Failed" && DeviceFlow.isAccessDenied(failed.error))
      assert.isTrue(failed._tag === "Failed" && !failed.error.transient)
      const caught = yield* source.get.pipe(
        Effect.as("token"),
        Effect.catchTag("AccessDenied", (e) => Effect.succeed(e.error))
      )
      assert.strictEqual(caught, "access_denied")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("stops at the device code's expires_in without asking the server again", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, expiresIn: 12 })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      yield* awaitingUser(source)
      yield* pollAt(fake, t0 + 5_000)
      yield* pollAt(fake, t0 + 10_000)
      // the next poll would be at 15 s, after the code expired at 12 s: the flow ends at 12 s
      yield* eventually(
        "a sleep until expiry",
        Effect.map(TestClock.sleeps(), (s) => Chunk.some(s, (d) => d === t0 + 12_000) || undefined)
      )
      yield* TestClock.setTime(t0 + 12_000)
      const failed = yield* waitFor(source, (s) => s._tag === "Failed")
      assert.isTrue(failed._tag === "Failed" && DeviceFlow.isExpired(failed.error))
      assert.strictEqual((yield* fake.polls).length, 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("refreshes with the refresh token; a refused one needs the user, and refresh starts a new flow", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: 5, lifetimeSeconds: 3600, script: ["approve"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake)
      const first = yield* awaitingUser(source)
      yield* pollAt(fake, t0 + 5_000)
      const token = yield* source.get
      // no jitter: a 1-hour token refreshes 15 minutes before expiry
      yield* TestClock.adjust("45 minutes")
      const next = yield* waitFor(
        source,
        (s) => s._tag === "Valid" && Redacted.value(s.token.value) !== Redacted.value(token.value)
      )
      assert.strictEqual(next._tag, "Valid")
      assert.deepStrictEqual((yield* fake.refreshes).map((r) => r.answer), ["token"])
      assert.strictEqual((yield* fake.refreshes)[0]?.refreshToken, Redacted.value(token.refreshToken!))

      // the user revokes the device: the device grant cannot run unattended
      yield* fake.revokeAll
      yield* TestClock.adjust("45 minutes")
      const failed = yield* waitFor(source, (s) => s._tag === "Failed")
      const error = failed._tag === "Failed" ? failed.error : undefined
      assert.strictEqual(error?._tag, "ReauthorizationRequired")
      assert.strictEqual(error?._tag === "ReauthorizationRequired" && error.reason?._tag, "InvalidGrant")
      assert.strictEqual((yield* fake.authorizations).length, 1, "no device flow starts by itself")

      // an explicit refresh asks the user again, with a new code
      const refreshed = yield* Effect.fork(source.refresh)
      const second = yield* awaitingUser(source, [first.userCode])
      assert.notStrictEqual(second.userCode, first.userCode)
      assert.strictEqual((yield* fake.authorizations).length, 2)
      yield* fake.script("approve")
      const t1 = yield* Clock.currentTimeMillis
      yield* pollAt(fake, t1 + 5_000)
      const fresh = yield* Fiber.join(refreshed)
      assert.strictEqual((yield* source.state)._tag, "Valid")
      assert.notStrictEqual(Redacted.value(fresh.value), Redacted.value(token.value))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("logs the user code for the user, never the device code", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push(JSON.stringify({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) }))
      })
      const fake = yield* DeviceFake.make({ interval: 5, script: ["slow_down", { status: 503 }, "approve"] })
      const t0 = yield* Clock.currentTimeMillis
      const source = yield* deviceSource(fake).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      const prompt = yield* awaitingUser(source)
      for (const at of [5_000, 15_000, 35_000]) yield* pollAt(fake, t0 + at)
      const token = yield* source.get
      const [poll] = yield* fake.polls
      assert.isTrue(lines.some((l) => l.includes(prompt.userCode)), "the user code is shown")
      assert.isTrue(lines.some((l) => l.includes("slow down")))
      for (const secret of [poll!.deviceCode, Redacted.value(token.value), Redacted.value(token.refreshToken!)]) {
        assert.isFalse(lines.some((l) => l.includes(secret)), "no secret in the logs")
      }
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("DeviceFlow.authorize: interval defaults to 5 s; a broken response is refused quoting no code", () =>
    Effect.gen(function*() {
      const fake = yield* DeviceFake.make({ interval: undefined })
      const authorization = yield* DeviceFlow.authorize({
        grant: Grant.deviceCode({ deviceAuthorizationEndpoint: fake.deviceAuthorizationUrl }),
        clientAuth: ClientAuth.none("device-app")
      })
      assert.strictEqual(Duration.toMillis(authorization.interval), 5_000)
      const server = yield* AuthServer.make()
      yield* server.inject(
        AuthServer.Fault.body(JSON.stringify({ device_code: "dc-secret-value", user_code: "ABCD" }), {
          contentType: "application/json"
        })
      )
      const error = yield* Effect.flip(DeviceFlow.authorize({
        grant: Grant.deviceCode({ deviceAuthorizationEndpoint: server.tokenUrl }),
        clientAuth: ClientAuth.none("client")
      }))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.deepStrictEqual(error._tag === "MalformedResponse" && error.fields, ["device_code", "user_code"])
      assert.notInclude(String(error) + JSON.stringify(error), "dc-secret-value")
      const insecure = yield* Effect.flip(DeviceFlow.authorize({
        grant: Grant.deviceCode({ deviceAuthorizationEndpoint: "http://auth.example.com/device" }),
        clientAuth: ClientAuth.none("device-app")
      }))
      assert.strictEqual(insecure._tag, "InvalidConfiguration")
    }).pipe(Effect.provide(HttpLive)))
})
