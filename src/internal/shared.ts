/**
 * One run of a stream for every concurrent listener: started when the first arrives, stopped after the
 * last leaves, started again by the next one. A store's directory watch is one of these, however many
 * keys are followed, and so is the one subscription to a store's notices behind all its `changes`
 * streams. Needs no scope of its own: the stores that use it are built without one.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Take from "effect/Take"

interface Run<S> {
  count: number
  started: boolean
  fiber: Fiber.RuntimeFiber<void> | undefined
  readonly state: S
}

/**
 * The bookkeeping both kinds share: `join` hands out the current run (a new one when none is under
 * way) and leaving it stops the run after its last listener; `start` starts the run once, after the
 * listener that joined is ready (so it misses nothing). `feed` runs the source into the run's state and
 * reports its end; the next listener then starts a new run.
 */
const refCounted = <S>(create: Effect.Effect<S>, feed: (state: S) => Effect.Effect<void>) => {
  const lock = Effect.unsafeMakeSemaphore(1)
  let current: Run<S> | undefined
  const join: Effect.Effect<Run<S>, never, Scope.Scope> = Effect.acquireRelease(
    lock.withPermits(1)(Effect.suspend(() => {
      if (current !== undefined) {
        current.count++
        return Effect.succeed(current)
      }
      return Effect.map(create, (state) => {
        const run: Run<S> = { count: 1, started: false, fiber: undefined, state }
        current = run
        return run
      })
    })),
    (run) =>
      lock.withPermits(1)(Effect.suspend(() => {
        if (--run.count > 0) return Effect.void
        if (current === run) current = undefined
        return run.fiber === undefined ? Effect.void : Fiber.interrupt(run.fiber)
      }))
  )
  const start = (run: Run<S>) =>
    Effect.suspend(() => {
      if (run.started) return Effect.void
      run.started = true
      const ended = Effect.sync(() => {
        if (current === run) current = undefined
      })
      return Effect.forkDaemon(Effect.interruptible(Effect.zipRight(feed(run.state), ended))).pipe(
        Effect.map((fiber) => void (run.fiber = fiber)),
        // the run's first steps (a subscription) before the listener goes on
        Effect.zipLeft(Effect.yieldNow())
      )
    })
  return { join, start }
}

// the source's end or failure, for every listener
const finalTake = <E>(exit: Exit.Exit<void, E>): Take.Take<never, E> =>
  Exit.isSuccess(exit) ? Take.end : Take.failCause(exit.cause)

/** A stream shared by its listeners. */
export interface Shared<A, E> {
  /** A listener's inbox, subscribed before it returns (nothing published after is missed). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Take.Take<A, E>>, never, Scope.Scope>
  /** The shared elements as a stream of their own. */
  readonly stream: Stream.Stream<A, E>
}

/** Shares one run of `source` among its concurrent listeners; each may fall `capacity` elements behind. */
export const make = <A, E>(source: Stream.Stream<A, E>, capacity: number): Shared<A, E> => {
  const { join, start } = refCounted(
    PubSub.sliding<Take.Take<A, E>>(capacity),
    (hub) =>
      Stream.runForEachChunk(source, (chunk) => PubSub.publish(hub, Take.chunk(chunk))).pipe(
        Effect.exit,
        Effect.flatMap((exit) => PubSub.publish(hub, finalTake(exit))),
        Effect.asVoid
      )
  )
  const subscribe = Effect.uninterruptible(Effect.gen(function*() {
    const run = yield* join
    const inbox = yield* PubSub.subscribe(run.state)
    yield* start(run)
    return inbox
  }))
  return {
    subscribe,
    stream: Stream.unwrapScoped(Effect.map(subscribe, (inbox) => Stream.flattenTake(Stream.fromQueue(inbox))))
  }
}

/**
 * One run of `source` for listeners that each follow one key: an element reaches the listeners of its
 * key only (a map lookup, whatever the number of listeners of other keys), each of which keeps at most
 * `capacity` elements, the newest.
 */
export const keyed = <A, E>(
  source: Stream.Stream<A, E>,
  keyOf: (a: A) => string,
  capacity: number
): (key: string) => Stream.Stream<A, E> => {
  const { join, start } = refCounted(
    Effect.sync(() => new Map<string, Set<Queue.Queue<Take.Take<A, E>>>>()),
    (routes) =>
      Stream.runForEach(source, (a) =>
        Effect.sync(() => {
          const listeners = routes.get(keyOf(a))
          if (listeners !== undefined) { for (const inbox of listeners) inbox.unsafeOffer(Take.of(a)) }
        })).pipe(
          Effect.exit,
          Effect.flatMap((exit) =>
            Effect.sync(() => {
              const take = finalTake(exit)
              for (const listeners of routes.values()) for (const inbox of listeners) inbox.unsafeOffer(take)
            })
          )
        )
  )
  return (key) =>
    Stream.unwrapScoped(Effect.uninterruptible(Effect.gen(function*() {
      const inbox = yield* Queue.sliding<Take.Take<A, E>>(capacity)
      const run = yield* join
      const routes = run.state
      const listeners = routes.get(key) ?? new Set()
      routes.set(key, listeners)
      listeners.add(inbox)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          listeners.delete(inbox)
          if (listeners.size === 0 && routes.get(key) === listeners) routes.delete(key)
        })
      )
      yield* start(run)
      return Stream.flattenTake(Stream.fromQueue(inbox))
    })))
}

/** Whether a take holds an element that `predicate` accepts (an end or a failure does not). */
export const holds = <A, E>(take: Take.Take<A, E>, predicate: (a: A) => boolean): boolean =>
  Take.match(take, {
    onEnd: () => false,
    onFailure: () => false,
    onSuccess: (chunk) => Chunk.some(chunk, predicate)
  })
