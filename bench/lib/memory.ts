/**
 * Scenario 4, memory per held token: heap after GC once the tokens are held, per token, with one client
 * registration for every token or a registration per token.
 */
import { type Context, gc, inBatches, stats, withSession } from "./common.js"
import type { Library } from "./libraries.js"
import { tenantOf, uniqueLabel } from "./tenant.js"

export interface MemoryResult {
  readonly count: number
  /** A client registration per token, or one for every token. */
  readonly clients: "distinct" | "shared"
  readonly bytesPerToken: number
  readonly rssPerToken: number
  readonly requests: number
}

export const memory = async (
  ctx: Context,
  library: Library,
  params: { readonly count: number; readonly concurrency: number; readonly distinct: number }
): Promise<MemoryResult> => {
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime: 3600, delay: 0, faults: 0 })
  const options = {
    origin: ctx.origin,
    tenant,
    maxConcurrentPerEndpoint: params.concurrency,
    keepIdle: true,
    distinctClients: params.distinct === 1
  }
  return withSession(library, options, async (session) => {
    // the library's modules, compiled code, agents, connections and internal tables are there before the
    // first measurement: a tenth as many tokens (at most 2,000), kept, so the figure is the heap each
    // additional token costs
    const warmCount = Math.max(1, Math.min(2000, Math.floor(params.count / 10)))
    const warm = new Array<unknown>(warmCount)
    await inBatches(warmCount, params.concurrency, async (i) => {
      const holder = session.holder(params.count + i)
      await holder.get()
      warm[i] = holder.handle === undefined ? holder : holder.handle
    })
    await gc()
    const before = process.memoryUsage()
    const handles = new Array<unknown>(params.count)
    await inBatches(params.count, params.concurrency, async (i) => {
      const holder = session.holder(i)
      await holder.get()
      handles[i] = holder.handle === undefined ? holder : holder.handle
    })
    await gc()
    const after = process.memoryUsage()
    const requests = (await stats(ctx, tenant)).count
    // the handles (what the application keeps of each token) stay reachable until here
    if (handles.length !== params.count || warm.length !== warmCount) throw new Error("unreachable")
    return {
      count: params.count,
      clients: params.distinct === 1 ? "distinct" : "shared",
      bytesPerToken: (after.heapUsed - before.heapUsed) / params.count,
      rssPerToken: (after.rss - before.rss) / params.count,
      requests: requests - warmCount
    }
  })
}
