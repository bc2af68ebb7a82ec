/**
 * When requests are sent: one fiber sleeps until the earliest deadline of a heap (a refresh, a retry,
 * an idle check, a retrying token's expiry), and a few request fibers per token endpoint URL run the
 * attempts, callers before proactive refreshes. 100,000 tokens keep one array and one fiber. @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { DeadlineHeap } from "../deadlineHeap.js"
import { Fifo } from "../fifo.js"
import { sleepUntil } from "../monotonic.js"
import { Phase } from "./entry.js"
import type { Entry, Group } from "./entry.js"

/** What the scheduler calls back: an entry's deadline has come, its turn to send has come. @internal */
export interface Handlers {
  readonly onDue: (entry: Entry, now: number) => Effect.Effect<void> | undefined
  readonly attempt: (entry: Entry) => Effect.Effect<void>
}

/** @internal */
export class Scheduler {
  readonly heap = new DeadlineHeap<Entry>()
  private readonly groups = new Map<string, Group>()
  private wake = Deferred.unsafeMake<void>(FiberId.none)
  /** Entries waiting for a request slot of their endpoint. */
  queued = 0
  /** The engine is closing: requests under way finish, no new one starts. */
  closing = false

  constructor(
    private readonly cap: number,
    private readonly run: (effect: Effect.Effect<void>) => unknown,
    private readonly handlers: Handlers
  ) {}

  /** The request group of an endpoint URL: its cap and its queues. */
  groupOf(url: string): Group {
    let group = this.groups.get(url)
    if (group === undefined) {
      group = { url, active: 0, urgent: new Fifo(), background: new Fifo(), failing: false, clockOffset: undefined }
      this.groups.set(url, group)
    }
    return group
  }

  /** Sets an entry's deadline (or takes it out of the heap), waking the fiber if it is now the first. */
  at(entry: Entry, deadline: number): void {
    if (deadline === Infinity) return this.heap.remove(entry)
    if (this.heap.set(entry, deadline)) Deferred.unsafeDone(this.wake, Exit.void)
  }

  /** The scheduler's fiber: runs each deadline as it comes, forever. */
  loop(now: () => number): Effect.Effect<never> {
    const heap = this.heap
    return Effect.gen(this, function*() {
      while (true) {
        const time = now()
        for (let first = heap.peek(); first !== undefined && first.deadline <= time; first = heap.peek()) {
          heap.pop()
          const log = this.handlers.onDue(first, time)
          if (log !== undefined) yield* log
        }
        this.wake = Deferred.unsafeMake<void>(FiberId.none)
        const next = heap.peek()
        yield* next === undefined
          ? Deferred.await(this.wake)
          : Effect.raceFirst(sleepUntil(next.deadline), Deferred.await(this.wake))
      }
    })
  }

  /** Queues an attempt for the entry (moved up when a caller now waits); one already queued or running is joined. */
  enqueue(entry: Entry, urgent: boolean): void {
    const phase = entry.phase
    if (entry.released || phase === Phase.Running || (phase === Phase.Queued && (!urgent || entry.urgent))) return
    if (phase === Phase.Idle) {
      this.heap.remove(entry)
      entry.dormant = false
      entry.phase = Phase.Queued
      this.queued++
    }
    entry.urgent = urgent
    const group = entry.group
    ;(urgent ? group.urgent : group.background).push(entry)
    if (group.active < this.cap) {
      group.active++
      this.run(this.worker(group))
    }
  }

  /** Takes a queued entry out of the queue (it was dropped). */
  dequeue(entry: Entry): void {
    if (entry.phase !== Phase.Queued) return
    entry.phase = Phase.Idle
    this.queued--
  }

  private worker(group: Group): Effect.Effect<void> {
    return Effect.suspend(() => {
      let entry: Entry | undefined
      // an entry queued twice (moved up when a caller started waiting) is taken once
      do entry = this.closing ? undefined : group.urgent.shift() ?? group.background.shift()
      while (entry !== undefined && (entry.phase !== Phase.Queued || entry.released))
      if (entry === undefined) {
        group.active--
        return Effect.void
      }
      entry.phase = Phase.Running
      this.queued--
      return Effect.zipRight(this.handlers.attempt(entry), this.worker(group))
    })
  }
}
