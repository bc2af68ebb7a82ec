/**
 * Two clocks, each for its job (issue 14): usability and deadlines on the monotonic clock (pinned
 * against every face by the resilience contract), public fields in epoch milliseconds of the wall clock
 * as it reads when they are made, after a system clock step too.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Option, Redacted, TestClock } from "effect"
import { ClientAuth, Grant, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import * as Monotonic from "../src/internal/monotonic.js"
import { CLIENT_SECRET } from "./secrets.js"
import { HttpLive, noJitter, settle, steppedClock } from "./util.js"

const hour = 3600_000

describe("two clocks", () => {
  it("the wall clock's lead is read between two monotonic reads: a pause in between shifts no expiry", () => {
    // the monotonic clock at 1,000 ms, the wall clock 5,000 ms ahead; the thread is paused 20 ms
    // while it reads the wall clock the first time (a loaded machine)
    let monotonic = 1_000
    let pauses = 1
    const nanos = () => BigInt(Math.round(monotonic * 1e6))
    const clock: Clock.Clock = {
      [Clock.ClockTypeId]: Clock.ClockTypeId,
      unsafeCurrentTimeMillis: () => {
        const wall = monotonic + 5_000
        if (pauses-- > 0) monotonic += 20
        return wall
      },
      currentTimeMillis: Effect.sync(() => monotonic + 5_000),
      unsafeCurrentTimeNanos: nanos,
      currentTimeNanos: Effect.sync(nanos),
      sleep: () => Effect.void
    }
    assert.strictEqual(Monotonic.unsafeWallOffset(clock), 5_000)
  })

  it("the live Clock's monotonic time, read through performance.now(), is its currentTimeNanos", () => {
    const live = Clock.make()
    for (let i = 0; i < 100; i++) {
      const before = Number(live.unsafeCurrentTimeNanos()) / 1e6
      const read = Monotonic.unsafeNow(live)
      const after = Number(live.unsafeCurrentTimeNanos()) / 1e6
      // one scale: within the few microseconds between the two reads that set the origin
      assert.isTrue(before - 1 <= read && read <= after + 1, `${before} ${read} ${after}`)
    }
  })

  it("the live Clock's wall lead errs late, never early: Date.now() is cut to the millisecond", () => {
    const live = Clock.make()
    for (let i = 0; i < 100; i++) {
      const offset = Monotonic.unsafeWallOffset(live)
      // a true wall time now, to the microsecond, on the monotonic clock's scale
      const wall = performance.timeOrigin + performance.now()
      assert.isTrue(offset >= wall - Monotonic.unsafeNow(live) - 0.5, `${offset - (wall - Monotonic.unsafeNow(live))}`)
    }
  })

  it.scoped("after a system clock step back, expiresAt and nextAttemptAt are on the stepped wall clock", () =>
    Effect.gen(function*() {
      const auth = yield* AuthServer.make({
        clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
        lifetimeSeconds: 3600
      })
      const system = yield* steppedClock
      const source = yield* TokenSource.make({
        url: auth.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
        grant: Grant.clientCredentials({ scopes: ["read"] }),
        policy: noJitter,
        timeout: "30 days"
      }).pipe(Effect.withClock(system.clock))
      const first = yield* source.get
      assert.strictEqual(first.expiresAt, first.issuedAt + hour)

      yield* TestClock.adjust("10 minutes")
      yield* system.step(-2 * hour)
      yield* auth.inject(AuthServer.Fault.rateLimited(60))
      yield* source.invalidate(first)
      yield* settle
      const wall = system.clock.unsafeCurrentTimeMillis()
      const state = yield* source.state
      if (state._tag !== "Retrying") return assert.fail(`expected Retrying, got ${state._tag}`)
      // the Retry-After of 60 seconds, from the wall clock as it reads now (2 hours back)
      assert.isTrue(Math.abs(state.nextAttemptAt - (wall + 60_000)) < 1000, `${state.nextAttemptAt - wall}`)
      assert.isTrue(Option.isNone(state.token), "the refused token is not handed out")

      yield* TestClock.adjust("61 seconds")
      yield* settle
      const second = yield* source.get
      assert.notStrictEqual(Redacted.value(second.value), Redacted.value(first.value))
      // requested when the retry was due, on the stepped wall clock; an hour from then
      assert.isTrue(Math.abs(second.issuedAt - (wall + 60_000)) < 1000, `${second.issuedAt - wall}`)
      assert.strictEqual(second.expiresAt, second.issuedAt + hour)
    }).pipe(Effect.provide(HttpLive)))
})

// a December noon, in whole seconds, as a Date header states time
const NOON = Date.UTC(2026, 11, 2, 12, 0, 0)

/** A token response of an hour with a refresh token, stamped with the server's clock (`Date`). */
const answer = (name: string, serverNow: number) =>
  AuthServer.Fault.status(200, {
    body: JSON.stringify({ access_token: name, token_type: "Bearer", expires_in: 3600, refresh_token: `r-${name}` }),
    contentType: "application/json",
    headers: { Date: new Date(serverNow).toUTCString() }
  })

describe("stored entries across clocks", () => {
  it("are written in tokenwarden/v3 with the writer's clockOffset; v2 entries are still read", () =>
    Effect.gen(function*() {
      const token = {
        value: Redacted.make("at"),
        type: "Bearer",
        issuedAt: NOON,
        expiresAt: NOON + hour,
        lifetimeSource: "expires_in" as const,
        scopes: ["read"],
        extra: Redacted.make({}),
        clockOffset: 2 * hour
      }
      const text = TokenStore.encode({ token, version: 3, identity: "id" }, "k")
      const json = JSON.parse(text)
      assert.strictEqual(json.format, "tokenwarden/v3")
      assert.strictEqual(json.token.clockOffset, 2 * hour)
      const read = yield* TokenStore.decode("file", text, "k", "id")
      assert.strictEqual(read.token.clockOffset, 2 * hour)
      assert.strictEqual(read.token.expiresAt, NOON + hour)
      // an entry of v2: the same, without clockOffset
      const v2 = JSON.stringify({ ...json, format: "tokenwarden/v2", token: { ...json.token, clockOffset: undefined } })
      const old = yield* TokenStore.decodeEntry("file", v2, "k", "id")
      assert.isFalse(old.legacy)
      assert.strictEqual(old.entry.token.expiresAt, NOON + hour)
      assert.isUndefined(old.entry.token.clockOffset)
      assert.strictEqual(old.entry.version, 3)
    }).pipe(Effect.runPromise))

  it.scoped("a token another process stored is moved onto this process's clock by the two offsets to the server", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOON)
      const auth = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
      const store = yield* TokenStore.makeMemory
      const make = () =>
        TokenSource.make({
          url: auth.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
          policy: noJitter,
          timeout: "30 days",
          store: true
        }).pipe(Effect.provideService(TokenStore.TokenStoreTag, store))
      // process A: its clock agrees with the server's
      yield* auth.inject(answer("a1", NOON))
      const a = yield* make()
      assert.strictEqual((yield* a.get).clockOffset, 0)
      yield* auth.inject(answer("b1", NOON))
      // process B: its clock is 2 hours ahead, so A's token looks expired to it until B has asked the
      // server itself. It refreshes, and learns its offset from the answer's Date header.
      const ahead = yield* steppedClock
      yield* ahead.step(2 * hour)
      const b = yield* make().pipe(Effect.withClock(ahead.clock))
      const fromB = yield* b.get
      assert.strictEqual(Redacted.value(fromB.value), "b1")
      assert.strictEqual(fromB.clockOffset, 2 * hour)
      assert.strictEqual(fromB.expiresAt, NOON + 3 * hour, "on B's clock")
      yield* settle
      // A adopts B's token on its own clock: it expires at 13:00 for A, as for the server
      const adopted = yield* a.get
      assert.strictEqual(Redacted.value(adopted.value), "b1")
      assert.strictEqual(adopted.expiresAt, NOON + hour)
      assert.strictEqual(adopted.clockOffset, 0)
      // refreshed at 12:45 (by whichever process comes first), and A hands out the new token
      yield* auth.inject(answer("a2", NOON + 45 * 60_000))
      yield* TestClock.adjust("46 minutes")
      yield* settle
      assert.strictEqual(Redacted.value((yield* a.get).value), "a2")
    }).pipe(Effect.provide(HttpLive)))
})
