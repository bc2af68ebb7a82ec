/**
 * What an attempt's outcome makes of a token's record: when the token is handed out until, when the
 * next request is due, whether the source is retrying or has failed. Pure (the retry schedule's step,
 * an effect, is taken by the caller and passed in), so every rule is tested on its own.
 *
 * @internal
 */
import type * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type { AccessToken } from "../../AccessToken.js"
import * as RefreshPolicy from "../../RefreshPolicy.js"
import type { TokenError } from "../../TokenError.js"

/**
 * The outcome of one attempt: a token (with the random draw of its jitter), or an error (with the
 * retry schedule's step for it when the error is transient).
 *
 * @internal
 */
export type Outcome =
  | { readonly _tag: "Token"; readonly token: AccessToken; readonly random: number }
  | {
    readonly _tag: "Error"
    readonly error: TokenError
    readonly step?: readonly [state: unknown, decision: ScheduleDecision.ScheduleDecision] | undefined
  }

/**
 * What the record becomes.
 *
 * @internal
 */
export type Settled =
  | { readonly _tag: "Valid"; readonly usableUntil: number; readonly dueAt: number }
  | { readonly _tag: "Retrying"; readonly dueAt: number; readonly retryState: unknown }
  | { readonly _tag: "Failed" }

/**
 * A token is handed out until its skew margin, and refreshed at a jittered point of its lifetime
 * (never, without an expiry). A transient error is retried when the schedule says, and never before
 * the server's Retry-After; a permanent error, or a schedule that gave up, fails.
 *
 * @internal
 */
export const settle = (policy: RefreshPolicy.RefreshPolicy, now: number, outcome: Outcome): Settled => {
  if (outcome._tag === "Token") {
    return {
      _tag: "Valid",
      usableUntil: RefreshPolicy.usableUntil(policy, outcome.token),
      dueAt: RefreshPolicy.refreshAt(policy, outcome.token, outcome.random) ?? Infinity
    }
  }
  const step = outcome.step
  if (!outcome.error.transient || step === undefined || step[1]._tag === "Done") return { _tag: "Failed" }
  return {
    _tag: "Retrying",
    dueAt: Math.max(
      ScheduleIntervals.start(step[1].intervals),
      now + RefreshPolicy.retryAfterMillis(policy, outcome.error)
    ),
    retryState: step[0]
  }
}
