/**
 * An Effect Clock that only moves when told to, for the refresh-spread scenario. Unlike TestClock,
 * which moves to each sleeper's deadline in turn and waits a timer tick between them (so 100,000
 * refreshes due in one virtual second would be delivered one tick apart), `advance` sets the time
 * once and wakes every sleeper due by then, as a real clock does after a busy second.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export interface VirtualClock extends Clock.Clock {
  /** Moves the time forward and wakes every sleeper whose deadline has passed. */
  readonly advance: (millis: number) => void
}

interface Sleeper {
  readonly end: number
  readonly wake: () => void
}

/** A clock standing at `start` (epoch milliseconds) until advanced. */
export const make = (start = 0): VirtualClock => {
  let now = start
  const sleepers = new Set<Sleeper>()
  const currentTimeMillis = Effect.sync(() => now)
  const currentTimeNanos = Effect.sync(() => BigInt(now) * 1_000_000n)
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => now,
    unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
    currentTimeMillis,
    currentTimeNanos,
    sleep: (duration: Duration.Duration) =>
      Effect.async<void>((resume) => {
        const sleeper: Sleeper = { end: now + Duration.toMillis(duration), wake: () => resume(Effect.void) }
        if (sleeper.end <= now) return resume(Effect.void)
        sleepers.add(sleeper)
        return Effect.sync(() => void sleepers.delete(sleeper))
      }),
    advance: (millis) => {
      now += millis
      for (const sleeper of sleepers) {
        if (sleeper.end <= now) {
          sleepers.delete(sleeper)
          sleeper.wake()
        }
      }
    }
  }
}
