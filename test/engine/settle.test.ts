import { assert, describe, it } from "@effect/vitest"
import { Duration, FastCheck as fc, Redacted } from "effect"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import { RefreshPolicy, TokenError } from "tokenwarden"
import type { AccessToken } from "../../src/AccessToken.js"
import { type Outcome, settle, type Settled } from "../../src/internal/engine/settle.js"

const now = 1_750_000_000_000
const second = 1000
const minute = 60 * second
const hour = 60 * minute

const token = (lifetime: number | undefined, issuedAt = now): AccessToken => ({
  value: Redacted.make("at"),
  type: "Bearer",
  issuedAt,
  expiresAt: lifetime === undefined ? undefined : issuedAt + lifetime,
  lifetimeSource: lifetime === undefined ? "none" : "expires_in",
  scopes: [],
  extra: Redacted.make({})
})

const got = (lifetime: number | undefined, random = 0): Outcome => ({
  _tag: "Token",
  token: token(lifetime),
  random,
  offset: 0
})

const valid = (settled: Settled) => {
  if (settled._tag !== "Valid") return assert.fail(`expected Valid, got ${settled._tag}`)
  return settled
}

const failedOf = (settled: Settled) => {
  assert.strictEqual(settled._tag, "Failed")
  return settled as Extract<Settled, { _tag: "Failed" }>
}
const retrying = (settled: Settled) => {
  if (settled._tag !== "Retrying") return assert.fail(`expected Retrying, got ${settled._tag}`)
  return settled
}

const endpoint = { method: "POST", url: "https://auth.example.com/token" }
const serverError = new TokenError.ServerError({ ...endpoint, status: 503 })
const rateLimited = (retryAfter: Duration.DurationInput) =>
  new TokenError.RateLimited({ ...endpoint, status: 429, retryAfter: Duration.decode(retryAfter) })
const invalidClient = new TokenError.InvalidClient({ ...endpoint, status: 401, error: "invalid_client" })

/** The schedule's step: go on, the next attempt in the interval starting at `start`. */
const continueAt = (start: number, state: unknown = "state") =>
  [state, ScheduleDecision.continueWith(ScheduleInterval.make(start, start + 1000))] as const

/** An error on the retry schedule, or on the slow one (`slow`, as the engine decides for a permanent error). */
const failed = (
  error: TokenError.TokenError,
  step: Extract<Outcome, { _tag: "Error" }>["step"],
  slow = false
): Outcome => ({ _tag: "Error", error, step, slow })

describe("settle", () => {
  describe("a token", () => {
    const policy = RefreshPolicy.defaults

    it("is handed out until expiry minus the skew (10 s), or minus a tenth of its lifetime when that is less", () => {
      assert.strictEqual(valid(settle(policy, now, got(hour))).usableUntil, now + hour - 10 * second)
      // a 60 s token: a tenth is 6 s, less than the skew
      assert.strictEqual(valid(settle(policy, now, got(minute))).usableUntil, now + minute - 6 * second)
      // exactly at the crossover (100 s): both are 10 s
      assert.strictEqual(valid(settle(policy, now, got(100 * second))).usableUntil, now + 90 * second)
      const skewed = RefreshPolicy.make({ expirySkew: "2 minutes" })
      assert.strictEqual(valid(settle(skewed, now, got(hour))).usableUntil, now + hour - 2 * minute)
      // a token of no lifetime at all is usable until its expiry, which is now
      assert.strictEqual(valid(settle(policy, now, got(0))).usableUntil, now)
    })

    it("is refreshed at the lead fraction plus the drawn share of the jitter window", () => {
      // defaults: lead 25 % + random × 10 % of the lifetime before expiry
      assert.strictEqual(valid(settle(policy, now, got(hour, 0))).dueAt, now + 45 * minute)
      assert.strictEqual(valid(settle(policy, now, got(hour, 0.5))).dueAt, now + 42 * minute)
      const late = valid(settle(policy, now, got(hour, 0.999999))).dueAt
      assert.isTrue(late > now + 39 * minute && late < now + 39 * minute + 100, `${late - now}`)
      // the window's bounds: never before 65 %, never after 75 % of the lifetime
      for (const random of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999]) {
        const dueAt = valid(settle(policy, now, got(hour, random))).dueAt
        assert.isTrue(dueAt > now + 0.65 * hour && dueAt <= now + 0.75 * hour, `random ${random}: ${dueAt - now}`)
      }
      // no jitter: the draw does not matter
      const still = RefreshPolicy.make({ jitterFraction: 0 })
      assert.strictEqual(valid(settle(still, now, got(hour, 0.9))).dueAt, now + 45 * minute)
    })

    it("is refreshed at least minLead before expiry, capped at half its lifetime, and at most maxLead", () => {
      const policy = RefreshPolicy.make({ jitterFraction: 0 })
      // 80 s token: 25 % is 20 s, less than the 30 s minLead
      assert.strictEqual(valid(settle(policy, now, got(80 * second))).dueAt, now + 50 * second)
      // 20 s token: minLead capped at half the lifetime, 10 s
      assert.strictEqual(valid(settle(policy, now, got(20 * second))).dueAt, now + 10 * second)
      const capped = RefreshPolicy.make({ jitterFraction: 0, maxLead: "5 minutes" })
      assert.strictEqual(valid(settle(capped, now, got(hour))).dueAt, now + 55 * minute)
      // a lifetime of zero is due at once
      assert.strictEqual(valid(settle(policy, now, got(0))).dueAt, now)
    })

    it("with a maxLead under the expiry skew is refreshed when it stops being handed out, not after", () => {
      const policy = RefreshPolicy.make({ jitterFraction: 0, maxLead: "5 seconds", expirySkew: "10 seconds" })
      const settled = valid(settle(policy, now, got(hour)))
      assert.strictEqual(settled.usableUntil, now + hour - 10 * second)
      assert.strictEqual(settled.dueAt, settled.usableUntil)
    })

    it("without an expiry is handed out and kept forever", () => {
      const settled = valid(settle(RefreshPolicy.defaults, now, got(undefined, 0.5)))
      assert.strictEqual(settled.usableUntil, Infinity)
      assert.strictEqual(settled.dueAt, Infinity)
    })

    it("issued before now counts its lifetime from when it was requested", () => {
      const earlier: Outcome = { _tag: "Token", token: token(hour, now - 10 * minute), random: 0, offset: 0 }
      const settled = valid(settle(RefreshPolicy.make({ jitterFraction: 0 }), now, earlier))
      assert.strictEqual(settled.dueAt, now + 35 * minute)
      assert.strictEqual(settled.usableUntil, now + 50 * minute - 10 * second)
    })

    it("in epoch milliseconds lands on the monotonic clock: its times less the wall clock's lead", () => {
      // the monotonic clock reads 1,000 where the wall clock reads `now`: a token of an hour from `now`
      const monotonic = 1_000
      const outcome: Outcome = { _tag: "Token", token: token(hour), random: 0, offset: now - monotonic }
      const settled = valid(settle(RefreshPolicy.make({ jitterFraction: 0 }), monotonic, outcome))
      assert.strictEqual(settled.dueAt, monotonic + 45 * minute)
      assert.strictEqual(settled.usableUntil, monotonic + hour - 10 * second)
    })

    it.prop(
      "for a token issued now: now ≤ dueAt ≤ usableUntil ≤ expiresAt",
      [
        fc.integer({ min: 0, max: 400 * 24 * hour }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
      ],
      ([lifetime, random]) => {
        const settled = valid(settle(RefreshPolicy.defaults, now, got(lifetime, random)))
        assert.isTrue(now <= settled.dueAt, `dueAt ${settled.dueAt - now}`)
        assert.isTrue(settled.dueAt <= settled.usableUntil, `dueAt ${settled.dueAt} usableUntil ${settled.usableUntil}`)
        assert.isTrue(settled.usableUntil <= now + lifetime)
      },
      { fastCheck: { numRuns: 1000 } }
    )

    it.prop(
      "the same holds for any policy whose lead is at least a tenth of the lifetime",
      [
        fc.integer({ min: 0, max: 400 * 24 * hour }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.record({
          leadFraction: fc.double({ min: 0.1, max: 0.9, noNaN: true }),
          jitterFraction: fc.double({ min: 0, max: 0.5, noNaN: true }),
          minLead: fc.integer({ min: 0, max: 2 * hour }),
          expirySkew: fc.integer({ min: 0, max: hour }),
          maxLead: fc.option(fc.integer({ min: hour, max: 30 * 24 * hour }), { nil: undefined })
        })
      ],
      ([lifetime, random, options]) => {
        const settled = valid(settle(RefreshPolicy.make(options), now, got(lifetime, random)))
        assert.isTrue(now <= settled.dueAt)
        assert.isTrue(settled.dueAt <= settled.usableUntil)
        assert.isTrue(settled.usableUntil <= now + lifetime)
      },
      { fastCheck: { numRuns: 500 } }
    )
  })

  describe("an error", () => {
    const policy = RefreshPolicy.defaults

    it("transient, with a step of the schedule: retried when the schedule says, keeping its state", () => {
      const settled = retrying(settle(policy, now, failed(serverError, continueAt(now + 2 * second, { n: 3 }))))
      assert.strictEqual(settled.dueAt, now + 2 * second)
      assert.deepStrictEqual(settled.retryState, { n: 3 })
      const transport = new TokenError.TransportError({ ...endpoint, reason: "Timeout" })
      assert.strictEqual(retrying(settle(policy, now, failed(transport, continueAt(now + 7)))).dueAt, now + 7)
      // a 2xx without a body is worth asking again
      const empty = new TokenError.MalformedResponse({ ...endpoint, status: 200, reason: "empty", retryable: true })
      assert.strictEqual(retrying(settle(policy, now, failed(empty, continueAt(now + 5)))).dueAt, now + 5)
    })

    it("the schedule's interval is its start, whatever its end or how many it holds", () => {
      const intervals = ScheduleIntervals.fromIterable([
        ScheduleInterval.make(now + 3 * second, now + 4 * second),
        ScheduleInterval.make(now + 9 * second, now + 10 * second)
      ])
      const step = ["s", ScheduleDecision.continue(intervals)] as const
      assert.strictEqual(retrying(settle(policy, now, failed(serverError, step))).dueAt, now + 3 * second)
    })

    it("never retried before Retry-After: the later of the schedule and now + Retry-After", () => {
      // Retry-After 120 s beats a 1 s backoff
      assert.strictEqual(
        retrying(settle(policy, now, failed(rateLimited("120 seconds"), continueAt(now + second)))).dueAt,
        now + 120 * second
      )
      // a backoff of 5 minutes beats Retry-After 120 s
      assert.strictEqual(
        retrying(settle(policy, now, failed(rateLimited("120 seconds"), continueAt(now + 5 * minute)))).dueAt,
        now + 5 * minute
      )
      // a 503 may carry a Retry-After too
      const unavailable = new TokenError.ServerError({ ...endpoint, status: 503, retryAfter: Duration.seconds(30) })
      assert.strictEqual(
        retrying(settle(policy, now, failed(unavailable, continueAt(now + second)))).dueAt,
        now + 30 * second
      )
    })

    it("a Retry-After over maxRetryAfter is capped at it", () => {
      // default cap: 1 hour
      assert.strictEqual(
        retrying(settle(policy, now, failed(rateLimited("1 day"), continueAt(now + second)))).dueAt,
        now + hour
      )
      const short = RefreshPolicy.make({ maxRetryAfter: "10 seconds" })
      assert.strictEqual(
        retrying(settle(short, now, failed(rateLimited("120 seconds"), continueAt(now + second)))).dueAt,
        now + 10 * second
      )
      // the cap limits Retry-After, not the schedule
      assert.strictEqual(
        retrying(settle(short, now, failed(rateLimited("120 seconds"), continueAt(now + minute)))).dueAt,
        now + minute
      )
      const uncapped = RefreshPolicy.make({ maxRetryAfter: Duration.infinity })
      assert.strictEqual(
        retrying(settle(uncapped, now, failed(rateLimited("1 day"), continueAt(now + second)))).dueAt,
        now + 24 * hour
      )
    })

    it("on the slow schedule (a permanent error): Failed, tried again when that schedule says", () => {
      assert.deepStrictEqual(settle(policy, now, failed(invalidClient, continueAt(now + minute), true)), {
        _tag: "Failed",
        dueAt: now + minute,
        retryState: "state"
      })
      const malformed = new TokenError.MalformedResponse({ ...endpoint, status: 200, reason: "html" })
      assert.strictEqual(settle(policy, now, failed(malformed, continueAt(now + second), true))._tag, "Failed")
      // never before Retry-After, on the slow schedule too
      assert.strictEqual(
        failedOf(settle(policy, now, failed(rateLimited("10 minutes"), continueAt(now + minute), true))).dueAt,
        now + 10 * minute
      )
    })

    it("a schedule that ended (Done): Failed, and no attempt by itself", () => {
      assert.deepStrictEqual(settle(policy, now, failed(serverError, ["s", ScheduleDecision.done])), {
        _tag: "Failed",
        dueAt: Infinity,
        retryState: "s"
      })
      assert.strictEqual(
        failedOf(settle(policy, now, failed(invalidClient, ["s", ScheduleDecision.done], true))).dueAt,
        Infinity
      )
    })

    it.prop(
      "a retry is never before now + the capped Retry-After, nor before the schedule's start",
      [
        fc.integer({ min: 0, max: 2 * hour }),
        fc.integer({ min: -minute, max: 2 * hour }),
        fc.integer({ min: 0, max: 2 * hour })
      ],
      ([retryAfter, delay, cap]) => {
        const policy = RefreshPolicy.make({ maxRetryAfter: cap })
        const settled = retrying(settle(policy, now, failed(rateLimited(retryAfter), continueAt(now + delay))))
        assert.strictEqual(settled.dueAt, Math.max(now + delay, now + Math.min(retryAfter, cap)))
      }
    )
  })
})
