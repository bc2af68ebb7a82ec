/**
 * Scenarios 3 and 6: callers arriving continuously (a caller every few milliseconds) across several
 * expiries: the expiry boundary with 100 ms server latency, and the fault soak with injected faults.
 */
import { Effect, Fiber } from "effect"
import { type Context, firstToken, stats, withSession } from "./common.js"
import type { Holder, Library, Session } from "./libraries.js"
import { lifetimeFor } from "./libraries.js"
import { max, percentile, sleep } from "./stats.js"
import { expiryOf, tenantOf, uniqueLabel } from "./tenant.js"

export interface StreamResult {
  readonly lifetime: number
  readonly calls: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly errors: number
  /** gets that returned a token already expired */
  readonly expired: number
  /**
   * gets that failed while a token this library had handed out had more than the judge's margin left
   * by the server's expiry
   */
  readonly failedWhileValid: number
  /** The judge's margin, seconds (the same for every library). */
  readonly margin: number
  readonly requests: number
  readonly faults: number
}

const callersFor = async (
  session: Session,
  holder: Holder,
  library: Library,
  durationMs: number,
  intervalMs: number,
  margin: number
) => {
  const latencies: Array<number> = []
  let errors = 0
  let expired = 0
  let failedWhileValid = 0
  let latestExpiry = 0
  const ok = (result: unknown, start: number) => {
    const end = performance.now()
    latencies.push(end - start)
    const expiry = expiryOf(library.tokenOf(result))
    if (Date.now() >= expiry) expired++
    if (expiry > latestExpiry) latestExpiry = expiry
  }
  const failed = (start: number) => {
    latencies.push(performance.now() - start)
    errors++
    // valid: more left by the server's expiry than the judge's margin, the same for every library
    // whatever margin the library itself keeps (the margin is far above a request's latency)
    if (Date.now() < latestExpiry - margin) failedWhileValid++
  }
  if (holder.effect !== undefined && session.run !== undefined) {
    const effect = holder.effect
    await session.run(Effect.gen(function*() {
      const until = Date.now() + durationMs
      const fibers: Array<Fiber.RuntimeFiber<void>> = []
      while (Date.now() < until) {
        fibers.push(
          yield* Effect.fork(Effect.suspend(() => {
            const start = performance.now()
            return Effect.suspend(effect).pipe(
              Effect.matchEffect({
                onFailure: () => Effect.sync(() => failed(start)),
                onSuccess: (result) => Effect.sync(() => ok(result, start))
              })
            )
          }))
        )
        yield* Effect.sleep(intervalMs)
      }
      yield* Fiber.joinAll(fibers)
    }))
  } else {
    const pending: Array<Promise<void>> = []
    const until = Date.now() + durationMs
    while (Date.now() < until) {
      const start = performance.now()
      pending.push(holder.get().then((result) => ok(result, start), () => failed(start)))
      await sleep(intervalMs)
    }
    await Promise.all(pending)
  }
  return { latencies, errors, expired, failedWhileValid }
}

export const stream = async (
  ctx: Context,
  library: Library,
  params: {
    readonly usable: number
    readonly duration: number
    readonly delay: number
    readonly faults: number
    readonly interval: number
    /** The judge's margin, seconds. */
    readonly margin: number
  }
): Promise<StreamResult> => {
  const lifetime = lifetimeFor(library, params.usable)
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: params.delay, faults: params.faults })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holder = session.holder(0)
    await firstToken(holder)
    const run = await callersFor(
      session,
      holder,
      library,
      params.duration * 1000,
      params.interval,
      params.margin * 1000
    )
    const server = await stats(ctx, tenant)
    return {
      lifetime,
      calls: run.latencies.length,
      p50: percentile(run.latencies, 50),
      p99: percentile(run.latencies, 99),
      max: max(run.latencies),
      errors: run.errors,
      expired: run.expired,
      failedWhileValid: run.failedWhileValid,
      margin: params.margin,
      requests: server.count,
      faults: server.faults
    }
  })
}
