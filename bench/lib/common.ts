/** What every scenario of a child process shares: the server's counters, GC, sessions, batches. */
import type { Holder, Library, Session, SessionOptions } from "./libraries.js"
import { sleep } from "./stats.js"
import type { TenantStats } from "./tenant.js"

export interface Context {
  readonly origin: string
  /** Tells the parent something while the job runs (one line on stdout, such as `IDLE <until>`). */
  readonly signal: (line: string) => void
}

/** The token server's counters of a tenant; `arrivals` (epoch ms of each token request) when asked. */
export const stats = async (ctx: Context, tenant: string, arrivals = false): Promise<TenantStats> => {
  const response = await fetch(`${ctx.origin}/_stats/${tenant}${arrivals ? "?arrivals=1" : ""}`)
  return await response.json() as TenantStats
}

/** A full collection, four times over, each after the event loop has turned. */
export const gc = async () => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) {
    collect()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

export const withSession = async <A>(
  library: Library,
  options: SessionOptions,
  f: (session: Session) => Promise<A>
): Promise<A> => {
  const session = await library.open(options)
  try {
    return await f(session)
  } finally {
    await session.close()
  }
}

/**
 * Retries the first get: a fault may fail it (soak), and a library may start cold. Up to 30 s: three
 * injected faults in a row put a backing-off library 7 s (1 + 2 + 4) from its next attempt, and the
 * warm-up must outlast that for every library alike.
 */
export const firstToken = async (holder: Holder): Promise<unknown> => {
  for (let i = 0;; i++) {
    try {
      return await holder.get()
    } catch (error) {
      if (i >= 300) throw error
      await sleep(100)
    }
  }
}

/** `f(0 … count-1)`, at most `concurrency` at a time. */
export const inBatches = async (count: number, concurrency: number, f: (i: number) => Promise<void>) => {
  let next = 0
  const lane = async () => {
    while (next < count) await f(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane))
}

/** What `get` resolved with, read through the Effect API where the library has one (the token itself). */
export const heldResult = (session: Session, holder: Holder): Promise<unknown> =>
  holder.effect !== undefined && session.run !== undefined ? session.run(holder.effect()) : holder.get()
