/**
 * One run of a stream for every concurrent listener: started when the first arrives, stopped after the
 * last leaves, started again by the next one. A store's directory watch is one of these, however many
 * keys are followed. Needs no scope of its own: the stores that use it are built without one.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Take from "effect/Take"

/** A stream shared by its listeners. */
export interface Shared<A, E> {
  /** A listener's inbox, subscribed before it returns (nothing published after is missed). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Take.Take<A, E>>, never, Scope.Scope>
  /** The shared elements as a stream of their own. */
  readonly stream: Stream.Stream<A, E>
}

interface Running<A, E> {
  count: number
  started: boolean
  fiber: Fiber.RuntimeFiber<void> | undefined
  readonly hub: PubSub.PubSub<Take.Take<A, E>>
}

/** Shares one run of `source` among its concurrent listeners; each may fall `capacity` elements behind. */
export const make = <A, E>(source: Stream.Stream<A, E>, capacity: number): Shared<A, E> => {
  const lock = Effect.unsafeMakeSemaphore(1)
  let current: Running<A, E> | undefined

  // the source's end or failure reaches every listener, and the next listener starts it again
  const run = (running: Running<A, E>) =>
    Stream.runForEachChunk(source, (chunk) => PubSub.publish(running.hub, Take.chunk(chunk))).pipe(
      Effect.exit,
      Effect.flatMap((exit) =>
        Effect.suspend(() => {
          if (current === running) current = undefined
          return PubSub.publish(running.hub, Exit.isSuccess(exit) ? Take.end : Take.failCause(exit.cause))
        })
      ),
      Effect.asVoid
    )

  const join = Effect.acquireRelease(
    lock.withPermits(1)(Effect.suspend(() => {
      if (current !== undefined) {
        current.count++
        return Effect.succeed(current)
      }
      return Effect.map(PubSub.sliding<Take.Take<A, E>>(capacity), (hub) => {
        const running: Running<A, E> = { count: 1, started: false, fiber: undefined, hub }
        current = running
        return running
      })
    })),
    (running) =>
      lock.withPermits(1)(Effect.suspend(() => {
        if (--running.count > 0) return Effect.void
        if (current === running) current = undefined
        return running.fiber === undefined ? Effect.void : Fiber.interrupt(running.fiber)
      }))
  )

  const subscribe = Effect.uninterruptible(Effect.gen(function*() {
    const running = yield* join
    const inbox = yield* PubSub.subscribe(running.hub)
    // subscribed first, started second: the first listener misses nothing the source emits
    if (!running.started) {
      running.started = true
      running.fiber = yield* Effect.forkDaemon(Effect.interruptible(run(running)))
    }
    return inbox
  }))

  return {
    subscribe,
    stream: Stream.unwrapScoped(Effect.map(subscribe, (inbox) => Stream.flattenTake(Stream.fromQueue(inbox))))
  }
}

/** Whether a take holds an element that `predicate` accepts (an end or a failure does not). */
export const holds = <A, E>(take: Take.Take<A, E>, predicate: (a: A) => boolean): boolean =>
  Take.match(take, {
    onEnd: () => false,
    onFailure: () => false,
    onSuccess: (chunk) => Chunk.some(chunk, predicate)
  })
