/**
 * Scenario 2, the herd: the same number of concurrent `get` calls for every library, on a cold start,
 * on a hot token, and just after the moment the library itself stops handing out the token it holds.
 */
import { Effect, Fiber } from "effect"
import { type Context, heldResult, stats, withSession } from "./common.js"
import type { Holder, Library, Session } from "./libraries.js"
import { lifetimeFor } from "./libraries.js"
import { max, percentile, sleep } from "./stats.js"
import { tenantOf, uniqueLabel } from "./tenant.js"

export interface HerdPhase {
  readonly requests: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly errors: number
}

export interface HerdResult {
  readonly callers: number
  readonly lifetime: number
  readonly cold: HerdPhase
  readonly hot: HerdPhase
  /** `requests`: those the server received while this herd was being answered. */
  readonly expiry: HerdPhase
  /** Requests the library sent on its own schedule before the expiry herd (refreshes ahead). */
  readonly ahead: number
  /**
   * When the expiry herd arrived, milliseconds after the moment the library stopped handing out the
   * token it held (by its own bookkeeping); negative: it arrived early and met a hot token.
   */
  readonly arrivedAfterExpiry: number
}

/** How far past a library's own expiry the expiry herd arrives. */
const afterExpiry = 150

/** `callers` gets issued at once; each latency is from the herd's arrival to that caller's token. */
const herdOnce = async (session: Session, holder: Holder, callers: number) => {
  const latencies = new Float64Array(callers)
  let errors = 0
  if (holder.effect !== undefined && session.run !== undefined) {
    const effect = holder.effect
    // a fiber per caller, forked in a loop (Effect.forEach "unbounded" costs several times more per fiber)
    await session.run(Effect.gen(function*() {
      const start = performance.now()
      const fibers = new Array<Fiber.RuntimeFiber<unknown>>(callers)
      for (let i = 0; i < callers; i++) {
        fibers[i] = yield* Effect.fork(
          Effect.suspend(effect).pipe(
            Effect.catchAll(() => Effect.sync(() => errors++)),
            Effect.tap(() => Effect.sync(() => (latencies[i] = performance.now() - start)))
          )
        )
      }
      for (const fiber of fibers) yield* Fiber.await(fiber)
    }))
  } else {
    const start = performance.now()
    const pending = new Array<Promise<void>>(callers)
    for (let i = 0; i < callers; i++) {
      pending[i] = holder.get().then(
        () => void (latencies[i] = performance.now() - start),
        () => {
          errors++
          latencies[i] = performance.now() - start
        }
      )
    }
    await Promise.all(pending)
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: max(latencies), errors }
}

export const herd = async (
  ctx: Context,
  library: Library,
  params: { readonly callers: number; readonly usable: number; readonly delay: number }
): Promise<HerdResult> => {
  const lifetime = lifetimeFor(library, params.usable)
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: params.delay, faults: 0 })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holder = session.holder(0)
    const coldStart = Date.now()
    const cold = await herdOnce(session, holder, params.callers)
    const coldEnd = Date.now()
    // When this library stops handing out the token it now holds, by its own bookkeeping: a library that
    // sends a request per waiting caller holds the last answer it received, and counts from its receipt.
    const usableUntil = holder.usableUntil(await heldResult(session, holder))
    const hotPhase = await herdOnce(session, holder, params.callers)
    const hotEnd = Date.now()
    await sleep(usableUntil + afterExpiry - Date.now())
    const arrived = Date.now()
    const expiry = await herdOnce(session, holder, params.callers)
    const answered = Date.now()
    // Counted by arrival time at the server (the same machine clock). A proactive library refreshes
    // no earlier than half-way through a lifetime (tokenwarden, the baseline), so from then on (with
    // half a second of slack, and never the first request) a request is its schedule's, in whatever
    // phase it falls.
    const arrivals = (await stats(ctx, tenant, true)).arrivals ?? []
    const first = arrivals[0] ?? coldStart
    const scheduledFrom = library.proactive ? Math.max(first + 1, first + lifetime * 500 - 500) : Infinity
    const between = (from: number, to: number) =>
      arrivals.filter((t) => t >= from && t <= to && t < scheduledFrom).length
    return {
      callers: params.callers,
      lifetime,
      cold: { requests: between(coldStart, coldEnd), ...cold },
      hot: { requests: between(coldEnd + 1, hotEnd), ...hotPhase },
      expiry: { requests: arrivals.filter((t) => t >= arrived && t <= answered).length, ...expiry },
      ahead: arrivals.filter((t) => t >= scheduledFrom && t < arrived).length,
      arrivedAfterExpiry: arrived - usableUntil
    }
  })
}
