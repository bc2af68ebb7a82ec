/**
 * Monotonic time: what deadlines and a token's usability are measured on, in milliseconds of the
 * Clock's `currentTimeNanos` (which TestClock drives and a system clock step does not move). Public
 * fields (`AccessToken.expiresAt`, `Retrying.nextAttemptAt`) and stored entries stay in epoch
 * milliseconds; `toWall` and `fromWall` cross between the two.
 *
 * @internal
 */
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
 * The Clock's monotonic time in milliseconds (about 12 ns more than `unsafeCurrentTimeMillis`).
 *
 * @internal
 */
export const unsafeNow = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1e6

/**
 * The Clock's monotonic time in milliseconds.
 *
 * @internal
 */
export const now: Effect.Effect<number> = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1e6)

/**
 * How far the wall clock is ahead of the monotonic one now: a monotonic time plus this is epoch
 * milliseconds. It changes when the system clock is stepped, so it is read when a time crosses over.
 *
 * @internal
 */
export const unsafeWallOffset = (clock: Clock.Clock): number => clock.unsafeCurrentTimeMillis() - unsafeNow(clock)

/**
 * A monotonic time as epoch milliseconds, by the wall clock now.
 *
 * @internal
 */
export const toWall = (clock: Clock.Clock, monotonic: number): number => monotonic + unsafeWallOffset(clock)

/**
 * Epoch milliseconds (a token's expiry) as a monotonic time, by the wall clock now.
 *
 * @internal
 */
export const fromWall = (clock: Clock.Clock, wall: number): number => wall - unsafeWallOffset(clock)

/**
 * Sleeps until a monotonic time, in chunks no timer refuses, re-reading the Clock after each.
 *
 * @internal
 */
export const sleepUntil = (deadline: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    let remaining = deadline - (yield* now)
    while (remaining > 0) {
      // whole milliseconds: a fractional remainder could otherwise shrink forever without reaching 0
      yield* Effect.sleep(Duration.millis(Math.min(Math.ceil(remaining), MAX_TIMER_MILLIS)))
      remaining = deadline - (yield* now)
    }
  })
