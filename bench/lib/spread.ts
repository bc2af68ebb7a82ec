/**
 * Scenario 5, the refresh spread: how the token server sees one refresh cycle of tokens issued at the
 * same moment. Every library runs the same way, in real time: the same number of tokens, all asked for
 * at once, their expiries aligned by the server (a cohort: each token expires when the first one does,
 * however long the library took to ask for them all), and the same demand afterwards.
 */
import { type Context, stats, withSession } from "./common.js"
import type { Library } from "./libraries.js"
import { lifetimeFor } from "./libraries.js"
import { sleep } from "./stats.js"
import { tenantOf, uniqueLabel } from "./tenant.js"

export interface SpreadResult {
  readonly tokens: number
  readonly lifetime: number
  readonly clock: "real time"
  /** Seconds from the first token request to the last one of the cohort. */
  readonly issueSeconds: number
  readonly refreshes: number
  /** seconds from the first to the last refresh of the cycle (at least 1) */
  readonly window: number
  readonly peakPerSecond: number
  readonly averagePerSecond: number
  readonly peakShare: number
  readonly perSecond: ReadonlyArray<number>
  /** Epoch ms of the cycle's first and last refresh (the part of the job that must run alone). */
  readonly cycleFrom: number
  readonly cycleTo: number
  /** Epoch ms: from the end of the issue to here the job did nothing (no calls, no requests due). */
  readonly quietFrom: number
  readonly quietUntil: number
}

export interface SpreadParams {
  readonly tokens: number
  /** How long the libraries without a lifetime-dependent schedule hand a token out, seconds. */
  readonly usable: number
  /**
   * tokenwarden's token lifetime, seconds: at least 120, below which its 30-second minimum lead (capped
   * at half the lifetime) overrides the lead fraction and its jitter.
   */
  readonly twLifetime: number
  /** Every token is asked for once per this many milliseconds, from 2 s before the library's own usable end. */
  readonly demandInterval: number
}

const summarize = (
  arrivals: ReadonlyArray<number>,
  tokens: number
): Pick<
  SpreadResult,
  "refreshes" | "window" | "peakPerSecond" | "averagePerSecond" | "peakShare" | "perSecond" | "cycleFrom" | "cycleTo"
> => {
  const cycle = arrivals.slice(tokens, 2 * tokens)
  const start = cycle[0] ?? 0
  const perSecond: Array<number> = []
  for (const t of cycle) {
    const bucket = Math.floor((t - start) / 1000)
    while (perSecond.length <= bucket) perSecond.push(0)
    perSecond[bucket]!++
  }
  const window = Math.max(1, perSecond.length)
  const peak = perSecond.length === 0 ? 0 : Math.max(...perSecond)
  return {
    refreshes: cycle.length,
    window,
    peakPerSecond: peak,
    averagePerSecond: cycle.length / window,
    peakShare: tokens === 0 ? NaN : peak / tokens,
    perSecond,
    cycleFrom: start,
    cycleTo: cycle[cycle.length - 1] ?? start
  }
}

/**
 * When a library's refresh cycle can start at the earliest, for a cohort issued at `first` (epoch ms),
 * with a second for the server's rounding of the cohort's lifetimes to whole seconds.
 */
const cycleStart = (library: Library, first: number, lifetime: number, usableEnd: number): number =>
  library.id.startsWith("tw")
    // lead: at most 35 % of the lifetime (25 % and up to 10 % of jitter)
    ? first + lifetime * 650 - 1000
    : library.id === "base"
    // the baseline's timer: 75 % of the lifetime it received, counted from its receipt
    ? first + lifetime * 750 - 1000
    : usableEnd

export const spread = async (ctx: Context, library: Library, params: SpreadParams): Promise<SpreadResult> => {
  const lifetime = library.id.startsWith("tw") ? params.twLifetime : lifetimeFor(library, params.usable)
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: 0, faults: 0, cohort: params.tokens })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holders = Array.from({ length: params.tokens }, (_, i) => session.holder(i))
    // every token asked for at one moment
    const results = await Promise.all(holders.map((h) => h.get()))
    const issued = (await stats(ctx, tenant, true)).arrivals ?? []
    if (issued.length !== params.tokens) {
      throw new Error(`${issued.length} token requests for ${params.tokens} tokens (a failure or a retry)`)
    }
    const first = issued[0]!
    const usableEnd = Math.min(...results.map((r, i) => holders[i]!.usableUntil(r)))
    const demandFrom = usableEnd - 2000
    const quietFrom = Date.now()
    const quietUntil = Math.min(demandFrom, cycleStart(library, first, lifetime, usableEnd)) - 1000
    ctx.signal(`IDLE ${Math.round(quietUntil)}`)
    // nothing at all until then: no calls, not even a look at the server's counters
    await sleep(quietUntil - Date.now())
    const deadline = Math.max(demandFrom, first + lifetime * 1000) + 30_000
    while (Date.now() < deadline) {
      if (Date.now() >= demandFrom) {
        const swept = Date.now()
        await Promise.all(holders.map((h) => h.get().catch(() => undefined)))
        if ((await stats(ctx, tenant)).count >= 2 * params.tokens) break
        await sleep(params.demandInterval - (Date.now() - swept))
      } else {
        if ((await stats(ctx, tenant)).count >= 2 * params.tokens) break
        await sleep(Math.min(250, demandFrom - Date.now()))
      }
    }
    const arrivals = (await stats(ctx, tenant, true)).arrivals ?? []
    return {
      tokens: params.tokens,
      lifetime,
      clock: "real time",
      issueSeconds: (issued[issued.length - 1]! - first) / 1000,
      ...summarize(arrivals, params.tokens),
      quietFrom,
      quietUntil
    }
  })
}
