import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The longest delay one timer can wait: effect 3's live Clock never fires a longer sleep (Node's
 * setTimeout clamps it), while TestClock does, so a single long sleep passes tests and fails in production.
 *
 * @internal
 */
export const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * Sleeps until a point in Clock time, in chunks no timer refuses, re-reading the Clock after each.
 *
 * @internal
 */
export const sleepUntil = (deadline: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    let remaining = deadline - (yield* Clock.currentTimeMillis)
    while (remaining > 0) {
      // whole milliseconds: a fractional remainder could otherwise shrink forever without reaching 0
      yield* Effect.sleep(Duration.millis(Math.min(Math.ceil(remaining), MAX_TIMER_MILLIS)))
      remaining = deadline - (yield* Clock.currentTimeMillis)
    }
  })
