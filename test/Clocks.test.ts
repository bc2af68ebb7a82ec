/**
 * Two clocks, each for its job (issue 14): usability and deadlines on the monotonic clock (pinned
 * against every face by the resilience contract), public fields in epoch milliseconds of the wall clock
 * as it reads when they are made, after a system clock step too.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted, TestClock } from "effect"
import { ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "./secrets.js"
import { HttpLive, noJitter, settle, steppedClock } from "./util.js"

const hour = 3600_000

describe("two clocks", () => {
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
