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

// Effect's live Clock reads `process.hrtime.bigint()`: a bigint made and converted on every `get`
// costs about 20 ns of a 90 ns hot path. `performance.now()` reads the same monotonic source as a
// number, so the live Clock is read through it, from the origin that puts both on one scale.
const live = Clock.make()
const performanceOrigin = typeof performance === "object" && typeof performance.now === "function"
  ? Number(live.unsafeCurrentTimeNanos()) / 1e6 - performance.now()
  : undefined

/**
 * A reader of the Clock's monotonic time in milliseconds, chosen once for the Clock: through
 * `performance.now()` for effect's live Clock, from `currentTimeNanos` for any other (TestClock, a
 * user's). A hot path keeps the reader, and pays for no choice per call.
 *
 * @internal
 */
export const reader = (clock: Clock.Clock): () => number => isLive(clock) ? liveNow : () => fromNanos(clock)

/**
 * The Clock's monotonic time in milliseconds (see `reader`).
 *
 * @internal
 */
export const unsafeNow = (clock: Clock.Clock): number => isLive(clock) ? liveNow() : fromNanos(clock)

const isLive = (clock: Clock.Clock): boolean =>
  performanceOrigin !== undefined && clock.unsafeCurrentTimeNanos === live.unsafeCurrentTimeNanos

const liveNow = (): number => performanceOrigin! + performance.now()

const fromNanos = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos()) / 1e6

/**
 * The Clock's monotonic time in milliseconds.
 *
 * @internal
 */
export const now: Effect.Effect<number> = Effect.clockWith((clock) => Effect.sync(() => unsafeNow(clock)))

/**
 * How far the wall clock is ahead of the monotonic one now: a monotonic time plus this is epoch
 * milliseconds. It changes when the system clock is stepped, so it is read when a time crosses over.
 *
 * @internal
 */
export const unsafeWallOffset = (clock: Clock.Clock): number => {
  // the two clocks are read one after the other: a thread preempted in between (a loaded machine)
  // would shift every expiry by the pause, so the wall clock is read between two monotonic reads,
  // and the tightest of a few tries kept
  let offset = 0
  let spread = Infinity
  for (let i = 0; i < 4 && spread > 0.05; i++) {
    const before = unsafeNow(clock)
    const wall = clock.unsafeCurrentTimeMillis()
    const after = unsafeNow(clock)
    if (after - before < spread) {
      spread = after - before
      offset = wall - (before + after) / 2
    }
  }
  // the live Clock's wall time is Date.now(), cut to the millisecond: the true time is up to 1 ms
  // later than read, and an expiry moved by the offset as read could land up to 1 ms late
  return clock.unsafeCurrentTimeMillis === live.unsafeCurrentTimeMillis ? offset + 1 : offset
}

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
