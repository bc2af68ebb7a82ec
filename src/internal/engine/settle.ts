/**
 * What an attempt's outcome makes of a token's record, on the engine's monotonic clock (`now`). Pure:
 * the retry schedule's step, an effect, is taken by the caller and passed in. @internal
 */
import type * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type { AccessToken } from "../../AccessToken.js"
import * as RefreshPolicy from "../../RefreshPolicy.js"
import type { TokenError } from "../../TokenError.js"

/** One attempt's outcome: a token with its jitter's random draw, or an error with its schedule's step. @internal */
export type Outcome =
  | {
    readonly _tag: "Token"
    readonly token: AccessToken
    readonly random: number
    /** How far the wall clock is ahead of `now`'s: the token's epoch times less this are on `now`'s clock. */
    readonly offset: number
  }
  | {
    readonly _tag: "Error"
    readonly error: TokenError
    /** On the slow schedule (a permanent error, or `retry` gave up), or the retry schedule. */
    readonly slow: boolean
    readonly step: readonly [state: unknown, decision: ScheduleDecision.ScheduleDecision]
  }

/** What the record becomes. @internal */
export type Settled =
  | { readonly _tag: "Valid"; readonly usableUntil: number; readonly dueAt: number }
  | { readonly _tag: "Retrying"; readonly dueAt: number; readonly retryState: unknown }
  | { readonly _tag: "Failed"; readonly dueAt: number; readonly retryState: unknown }

/**
 * A token is handed out until its skew margin, and refreshed at a jittered point of its lifetime
 * (never, without an expiry). An error is tried again when its schedule says, never before the
 * server's Retry-After: `Retrying` on the retry schedule, `Failed` on the slow one (a permanent error,
 * or a retry schedule that gave up). @internal
 */
export const settle = (policy: RefreshPolicy.RefreshPolicy, now: number, outcome: Outcome): Settled => {
  if (outcome._tag === "Token") {
    const { offset, random, token } = outcome
    return {
      _tag: "Valid",
      usableUntil: RefreshPolicy.usableUntil(policy, token) - offset,
      dueAt: (RefreshPolicy.refreshAt(policy, token, random) ?? Infinity) - offset
    }
  }
  const [retryState, decision] = outcome.step
  const dueAt = decision._tag === "Done"
    ? Infinity
    : Math.max(ScheduleIntervals.start(decision.intervals), now + RefreshPolicy.retryAfterMillis(policy, outcome.error))
  return { _tag: outcome.slow || decision._tag === "Done" ? "Failed" : "Retrying", dueAt, retryState }
}
