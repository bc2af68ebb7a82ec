/**
 * The six scenarios, as run inside a child process for one library. Each returns plain JSON.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Fiber, Layer, Logger, LogLevel, Redacted, Ref } from "effect"
import { ClientAuth, Grant } from "tokenwarden"
import * as TokenPool from "../../src/TokenPool.js"
import type { Holder, Library, Session } from "./libraries.js"
import { lifetimeFor, usableFor } from "./libraries.js"
import { max, median, percentile, sleep } from "./stats.js"
import type { TenantStats } from "./tenant.js"
import { expiryOf, tenantOf, tokenPath, uniqueLabel } from "./tenant.js"
import * as VirtualClock from "./virtualClock.js"

export interface Context {
  readonly origin: string
}

const stats = async (ctx: Context, tenant: string, arrivals = false): Promise<TenantStats> => {
  const response = await fetch(`${ctx.origin}/_stats/${tenant}${arrivals ? "?arrivals=1" : ""}`)
  return await response.json() as TenantStats
}

const gc = async () => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) {
    collect()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const withSession = async <A>(
  library: Library,
  options: Parameters<Library["open"]>[0],
  f: (session: Session) => Promise<A>
): Promise<A> => {
  const session = await library.open(options)
  try {
    return await f(session)
  } finally {
    await session.close()
  }
}

/** Retries the first get: a fault may fail it (soak), and a library may start cold. */
const firstToken = async (holder: Holder): Promise<unknown> => {
  for (let i = 0;; i++) {
    try {
      return await holder.get()
    } catch (error) {
      if (i >= 50) throw error
      await sleep(100)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 1. hot path
// ---------------------------------------------------------------------------------------------

export interface HotRow {
  readonly name: string
  readonly ns: number
}

const effectLoop = (effect: Effect.Effect<unknown, unknown>, count: () => number) =>
  Effect.suspend(() => effectLoopOf(effect, count()))

const effectLoopOf = (effect: Effect.Effect<unknown, unknown>, n: number) =>
  Effect.gen(function*() {
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* effect
    return performance.now() - start
  })

export const hot = async (
  ctx: Context,
  library: Library,
  params: { readonly seconds: number; readonly rounds: number }
): Promise<ReadonlyArray<HotRow>> => {
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime: 3600, delay: 0, faults: 0 })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holder = session.holder(0)
    await holder.get()
    // as many calls as fit in the time of a round at the library's own speed (calibrated on 1,000)
    let n = 1000
    const variants: Array<{ name: string; measure: () => Promise<number> }> = []
    if (holder.effect !== undefined && session.run !== undefined) {
      const run = session.run
      const ref = Ref.unsafeMake(0)
      // the floor, measured in the same process and rounds as the library's own get
      variants.push({ name: "Ref.get floor (Effect)", measure: () => run(effectLoop(Ref.get(ref), () => n)) })
      const effect = holder.effect()
      variants.push({
        name: library.id === "twp" ? `${library.name}.get(credential) (Effect)` : `${library.name}.get (Effect)`,
        measure: () => run(effectLoop(effect, () => n))
      })
      const pool = (session as { readonly pool?: TokenPool.TokenPool }).pool
      if (pool !== undefined) {
        const source = await run(pool.source({
          url: ctx.origin + tokenPath(tenant),
          clientAuth: ClientAuth.basic("platform-client", Redacted.make("bench-secret")),
          grant: Grant.clientCredentials({ scopes: ["api://tenant-0/.default"] }),
          subject: "tenant-0"
        }))
        variants.push({
          name: `${library.name} source(key).get (Effect)`,
          measure: () => run(effectLoop(source.get, () => n))
        })
      }
    } else {
      variants.push({
        name: `${library.name} (await get)`,
        measure: async () => {
          const start = performance.now()
          for (let i = 0; i < n; i++) await holder.get()
          return performance.now() - start
        }
      })
    }
    // calibrate and warm up, then alternate the variants round by round so drift hits them alike
    let slowest = 0
    for (const v of variants) slowest = Math.max(slowest, (await v.measure()) / n)
    n = Math.max(1000, Math.floor((params.seconds * 1000) / variants.length / Math.max(slowest, 1e-6)))
    for (const v of variants) await v.measure()
    const samples = variants.map(() => [] as Array<number>)
    for (let round = 0; round < params.rounds; round++) {
      for (let i = 0; i < variants.length; i++) samples[i]!.push((await variants[i]!.measure()) / n * 1e6)
    }
    return variants.map((v, i) => ({ name: v.name, ns: median(samples[i]!) }))
  })
}

// ---------------------------------------------------------------------------------------------
// 2. herd
// ---------------------------------------------------------------------------------------------

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
}

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
    // when the token now held was issued: its value carries its expiry
    const held = holder.effect !== undefined && session.run !== undefined
      ? await session.run(holder.effect())
      : await holder.get()
    const issued = expiryOf(library.tokenOf(held)) - lifetime * 1000
    const hotPhase = await herdOnce(session, holder, params.callers)
    const hotEnd = Date.now()
    // the herd arrives just after the moment this library stops handing the first token out
    await sleep(issued + (usableFor(library, lifetime) + (library.granularity ?? 0)) * 1000 + 150 - Date.now())
    const arrived = Date.now()
    const expiry = await herdOnce(session, holder, params.callers)
    const answered = Date.now()
    // Counted by arrival time at the server (the same machine clock). A proactive library refreshes
    // no earlier than half-way through a lifetime (tokenwarden, the baseline), so from then on (with
    // half a second of slack) a request is its schedule's, in whatever phase it falls: under load a
    // herd of 10,000 forked fibers can outlast half of these seconds-long lifetimes.
    const arrivals = (await stats(ctx, tenant, true)).arrivals ?? []
    const scheduledFrom = (arrivals[0] ?? coldStart) + lifetime * 500 - 500
    const between = (from: number, to: number) =>
      arrivals.filter((t) => t >= from && t <= to && t < scheduledFrom).length
    return {
      callers: params.callers,
      lifetime,
      cold: { requests: between(coldStart, coldEnd), ...cold },
      hot: { requests: between(coldEnd + 1, hotEnd), ...hotPhase },
      expiry: { requests: arrivals.filter((t) => t >= arrived && t <= answered).length, ...expiry },
      ahead: arrivals.filter((t) => t >= scheduledFrom && t < arrived).length
    }
  })
}

// ---------------------------------------------------------------------------------------------
// 3. expiry boundary and 6. fault soak: callers arriving continuously
// ---------------------------------------------------------------------------------------------

export interface StreamResult {
  readonly lifetime: number
  readonly calls: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly errors: number
  /** gets that returned a token already expired */
  readonly expired: number
  /** gets that failed while a token this library had handed out was still valid */
  readonly failedWhileValid: number
  readonly requests: number
  readonly faults: number
}

const callersFor = async (
  session: Session,
  holder: Holder,
  library: Library,
  durationMs: number,
  intervalMs: number,
  lifetime: number
) => {
  const margin = Math.min(10_000, lifetime * 100)
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
    // valid: more left than the usual expiry margin (10 % of the lifetime, at most 10 s), the same
    // for every library, whatever margin the library itself keeps
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
  }
): Promise<StreamResult> => {
  const lifetime = lifetimeFor(library, params.usable)
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: params.delay, faults: params.faults })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holder = session.holder(0)
    await firstToken(holder)
    const run = await callersFor(session, holder, library, params.duration * 1000, params.interval, lifetime)
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
      requests: server.count,
      faults: server.faults
    }
  })
}

// ---------------------------------------------------------------------------------------------
// 4. memory per held token
// ---------------------------------------------------------------------------------------------

export interface MemoryResult {
  readonly count: number
  readonly bytesPerToken: number
  readonly rssPerToken: number
  readonly requests: number
}

const inBatches = async (count: number, concurrency: number, f: (i: number) => Promise<void>) => {
  let next = 0
  const lane = async () => {
    while (next < count) await f(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
}

export const memory = async (
  ctx: Context,
  library: Library,
  params: { readonly count: number; readonly concurrency: number }
): Promise<MemoryResult> => {
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime: 3600, delay: 0, faults: 0 })
  const options = { origin: ctx.origin, tenant, maxConcurrentPerEndpoint: params.concurrency, keepIdle: true }
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
      bytesPerToken: (after.heapUsed - before.heapUsed) / params.count,
      rssPerToken: (after.rss - before.rss) / params.count,
      requests: requests - warmCount
    }
  })
}

// ---------------------------------------------------------------------------------------------
// 5. refresh spread
// ---------------------------------------------------------------------------------------------

export interface SpreadResult {
  readonly tokens: number
  readonly lifetime: number
  readonly clock: "virtual" | "real time"
  readonly refreshes: number
  /** seconds from the first to the last refresh of the cycle (at least 1) */
  readonly window: number
  readonly peakPerSecond: number
  readonly averagePerSecond: number
  readonly peakShare: number
  readonly perSecond: ReadonlyArray<number>
}

const summarize = (
  perSecond: ReadonlyArray<number>,
  tokens: number,
  lifetime: number,
  clock: SpreadResult["clock"]
): SpreadResult => {
  const first = perSecond.findIndex((n) => n > 0)
  let last = perSecond.length - 1
  while (last > 0 && perSecond[last] === 0) last--
  const active = first < 0 ? [] : perSecond.slice(first, last + 1)
  const refreshes = active.reduce((a, b) => a + b, 0)
  const window = Math.max(1, active.length)
  const peak = active.length === 0 ? 0 : Math.max(...active)
  return {
    tokens,
    lifetime,
    clock,
    refreshes,
    window,
    peakPerSecond: peak,
    averagePerSecond: refreshes / window,
    peakShare: tokens === 0 ? NaN : peak / tokens,
    perSecond: active
  }
}

/**
 * tokenwarden's refresh times come from the Effect Clock, so a virtual Clock gives the exact schedule
 * of 100,000 tokens issued at the same instant: each step advances one virtual second and waits (in
 * real time) until the pool has sent every refresh due by then; the server's count per step is the
 * requests it saw in that second.
 */
const spreadVirtual = async (
  ctx: Context,
  library: Library,
  params: { readonly tokens: number; readonly concurrency: number }
): Promise<SpreadResult> => {
  // 20-minute tokens: their refreshes fall 25-35 % of the lifetime before expiry, a 2-minute window
  const lifetime = 1200
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: 0, faults: 0 })
  const clock = VirtualClock.make(Date.now())
  const url = ctx.origin + tokenPath(tenant)
  const count = Effect.promise(() => stats(ctx, tenant).then((s) => s.count))
  const clientAuth = ClientAuth.basic("platform-client", Redacted.make("bench-secret"))
  const program = Effect.gen(function*() {
    const pool = yield* TokenPool.make({ maxConcurrentPerEndpoint: params.concurrency, idleTimeToLive: Infinity })
    const settled = Effect.gen(function*() {
      yield* Effect.promise(() => sleep(1))
      while (true) {
        const s = yield* pool.stats
        if (s.inFlight === 0 && s.queued === 0) return
        yield* Effect.promise(() => sleep(2))
      }
    })
    yield* Effect.forEach(
      Array.from({ length: params.tokens }, (_, i) => i),
      (i) =>
        pool.get({
          url,
          clientAuth,
          grant: Grant.clientCredentials({ scopes: [`api://tenant-${i}/.default`] }),
          subject: `tenant-${i}`,
          timeout: "1 day"
        }),
      { concurrency: 512, discard: true }
    )
    let previous = yield* count
    // to just before the earliest refresh (lead at most 35 %), then a second at a time until every
    // token has been refreshed once
    const start = Math.floor(lifetime * 0.64)
    clock.advance(start * 1000)
    yield* settled
    const perSecond: Array<number> = []
    for (let second = start; second < lifetime && previous < 2 * params.tokens; second++) {
      clock.advance(1000)
      yield* settled
      const total = yield* count
      perSecond.push(total - previous)
      previous = total
    }
    return perSecond
  }).pipe(
    Effect.scoped,
    Effect.provide(Layer.merge(NodeHttpClient.layerUndici, Logger.minimumLogLevel(LogLevel.None))),
    Effect.withClock(clock)
  )
  const perSecond = await Effect.runPromise(program)
  return summarize(perSecond, params.tokens, lifetime, "virtual")
}

/**
 * The other libraries have no schedule: a token is refreshed when a caller asks after the library's
 * margin. They run in real time: every token is asked for every 200 ms, and the server's arrival
 * times of the refresh cycle are counted per second.
 */
const spreadRealTime = async (
  ctx: Context,
  library: Library,
  params: { readonly tokens: number; readonly usable: number }
): Promise<SpreadResult> => {
  const lifetime = lifetimeFor(library, params.usable)
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime, delay: 0, faults: 0 })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holders = Array.from({ length: params.tokens }, (_, i) => session.holder(i))
    await inBatches(params.tokens, 64, async (i) => void (await holders[i]!.get()))
    const until = Date.now() + (params.usable + 15) * 1000
    while (Date.now() < until) {
      const swept = Date.now()
      await Promise.all(holders.map((h) => h.get().catch(() => undefined)))
      if ((await stats(ctx, tenant)).count >= 2 * params.tokens) break
      await sleep(200 - (Date.now() - swept))
    }
    const arrivals = (await stats(ctx, tenant, true)).arrivals ?? []
    const cycle = arrivals.slice(params.tokens)
    const start = cycle[0] ?? 0
    const perSecond: Array<number> = []
    for (const t of cycle) {
      const bucket = Math.floor((t - start) / 1000)
      while (perSecond.length <= bucket) perSecond.push(0)
      perSecond[bucket]!++
    }
    return summarize(perSecond, params.tokens, lifetime, "real time")
  })
}

export const spread = (
  ctx: Context,
  library: Library,
  params: {
    readonly tokens: number
    readonly otherTokens: number
    readonly usable: number
    readonly concurrency: number
  }
): Promise<SpreadResult> =>
  library.id === "twp"
    ? spreadVirtual(ctx, library, { tokens: params.tokens, concurrency: params.concurrency })
    : spreadRealTime(ctx, library, { tokens: params.otherTokens, usable: params.usable })
