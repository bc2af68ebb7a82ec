import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import * as RefreshPolicy from "../RefreshPolicy.js"
import { isTokenError } from "../TokenError.js"
import * as Monotonic from "./monotonic.js"

/**
 * Runs a call (an API request, not a token request) with a policy's retries, as token requests are
 * retried: a transient failure (5xx, 429, no answer) is tried again after the retry schedule's next
 * delay, or the Retry-After when that is longer; a permanent one, or the schedule's end, fails the call.
 * `attempt` counts from 1, so a call can tell a retry from its first try.
 *
 * @internal
 */
export const retryCall = <
  A,
  E extends { readonly transient: boolean; readonly _tag: string; readonly message: string }
>(
  policy: RefreshPolicy.RefreshPolicy,
  name: string,
  call: (attempt: number) => Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    let state = policy.retry.initial
    for (let attempt = 1;; attempt++) {
      const result = yield* Effect.either(call(attempt))
      if (Either.isRight(result)) return result.right
      const error = result.left
      // the transient errors are the token errors 5xx, 429 and TransportError: what the schedule steps on
      if (!error.transient || !isTokenError(error)) return yield* Effect.fail(error)
      const now = yield* Monotonic.now
      const [next, , decision] = yield* policy.retry.step(now, error, state)
      if (ScheduleDecision.isDone(decision)) return yield* Effect.fail(error)
      state = next
      const at = Math.max(
        ScheduleIntervals.start(decision.intervals),
        now + RefreshPolicy.retryAfterMillis(policy, error)
      )
      yield* Effect.logWarning(`${name} failed; retrying`).pipe(
        Effect.annotateLogs({ error: error._tag, detail: error.message, attempt, retry_in_ms: Math.round(at - now) })
      )
      yield* Monotonic.sleepUntil(at)
    }
  })
