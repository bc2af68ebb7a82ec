/**
 * Scenario 1, the hot path: one `get` of a valid token, in the loop shape an application uses, beside
 * the floors of those loop shapes measured in the same process and rounds.
 */
import { Effect, Redacted, Ref } from "effect"
import { ClientAuth, Grant } from "tokenwarden"
import type * as TokenPool from "../../src/TokenPool.js"
import { type Context, withSession } from "./common.js"
import type { Library } from "./libraries.js"
import { median } from "./stats.js"
import { tenantOf, tokenPath, uniqueLabel } from "./tenant.js"

/** How a row's calls are made. */
export type LoopShape =
  /** `for (…) yield* get` inside one `Effect.gen`, run once per round */
  | "yield*"
  /** `for (…) await get()` */
  | "await"
  /** `for (…) await runtime.runPromise(get)`: an Effect API called from Promise code */
  | "runPromise"

export interface HotRow {
  readonly name: string
  readonly shape: LoopShape
  /** A floor (`Ref.get`, a cached value behind `await`), not a library's get. */
  readonly floor?: "ref" | "await"
  /** Median per call over the rounds, nanoseconds. */
  readonly ns: number
  /** Fastest and slowest round, nanoseconds per call. */
  readonly min: number
  readonly max: number
  /**
   * The process's CPU time per call (every thread), median of the rounds: close to `ns` on a quiet
   * machine; well below it when other processes took the core.
   */
  readonly cpuNs: number
  /** Calls per round. */
  readonly calls: number
}

interface Variant {
  readonly name: string
  readonly shape: LoopShape
  readonly floor?: "ref" | "await"
  /** Runs `n` calls, returns milliseconds. */
  readonly measure: (n: number) => Promise<number>
}

const effectLoop = (effect: Effect.Effect<unknown, unknown>, n: number) =>
  Effect.gen(function*() {
    const start = performance.now()
    for (let i = 0; i < n; i++) yield* effect
    return performance.now() - start
  })

const awaitLoop = (get: () => Promise<unknown>) => async (n: number) => {
  const start = performance.now()
  for (let i = 0; i < n; i++) await get()
  return performance.now() - start
}

export const hot = async (
  ctx: Context,
  library: Library,
  params: { readonly seconds: number; readonly rounds: number }
): Promise<ReadonlyArray<HotRow>> => {
  const tenant = tenantOf({ label: uniqueLabel(library.id), lifetime: 3600, delay: 0, faults: 0 })
  return withSession(library, { origin: ctx.origin, tenant }, async (session) => {
    const holder = session.holder(0)
    const token = await holder.get()
    // the floor of a Promise loop: a cached value behind `await`, in every child
    const cached = async () => token
    const variants: Array<Variant> = [{
      name: "floor: await a cached value",
      shape: "await",
      floor: "await",
      measure: awaitLoop(cached)
    }]
    if (holder.effect !== undefined && session.run !== undefined) {
      const run = session.run
      const ref = Ref.unsafeMake(token)
      const effect = holder.effect()
      variants.push(
        {
          name: "floor: yield* Ref.get(ref)",
          shape: "yield*",
          floor: "ref",
          measure: (n) => run(effectLoop(Ref.get(ref), n))
        },
        {
          name: library.id === "twp" ? `${library.name}.get(credential)` : `${library.name}.get`,
          shape: "yield*",
          measure: (n) => run(effectLoop(effect, n))
        }
      )
      const pool = (session as { readonly pool?: TokenPool.TokenPool }).pool
      if (pool !== undefined) {
        const source = await run(pool.source({
          url: ctx.origin + tokenPath(tenant),
          clientAuth: ClientAuth.basic("platform-client", Redacted.make("bench-secret")),
          grant: Grant.clientCredentials({ scopes: ["api://tenant-0/.default"] }),
          subject: "tenant-0"
        }))
        variants.push({
          name: `${library.name} source(key).get`,
          shape: "yield*",
          measure: (n) => run(effectLoop(source.get, n))
        })
      } else {
        // the same get called from Promise code, one runPromise per call
        variants.push({ name: `${library.name}.get`, shape: "runPromise", measure: awaitLoop(() => run(effect)) })
      }
    } else {
      variants.push({ name: library.name, shape: "await", measure: awaitLoop(holder.get) })
    }
    // Warm-up and calibration per variant: double the count until a batch takes 20 ms (the code is
    // optimized by then), then size a round to `seconds` at that speed. Rounds alternate the variants so
    // that drift hits them alike.
    const counts: Array<number> = []
    for (const v of variants) {
      let n = 1000
      while ((await v.measure(n)) < 20) n *= 2
      const perCall = (await v.measure(n)) / n
      counts.push(Math.max(1000, Math.floor((params.seconds * 1000) / Math.max(perCall, 1e-6))))
    }
    const samples = variants.map(() => [] as Array<number>)
    const cpu = variants.map(() => [] as Array<number>)
    for (let round = 0; round < params.rounds; round++) {
      for (let i = 0; i < variants.length; i++) {
        const before = process.cpuUsage()
        samples[i]!.push((await variants[i]!.measure(counts[i]!)) / counts[i]! * 1e6)
        const used = process.cpuUsage(before)
        cpu[i]!.push((used.user + used.system) * 1000 / counts[i]!)
      }
    }
    return variants.map((v, i): HotRow => ({
      name: v.name,
      shape: v.shape,
      ...(v.floor === undefined ? {} : { floor: v.floor }),
      ns: median(samples[i]!),
      min: Math.min(...samples[i]!),
      max: Math.max(...samples[i]!),
      cpuNs: median(cpu[i]!),
      calls: counts[i]!
    }))
  })
}
