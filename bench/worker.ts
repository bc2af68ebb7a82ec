/**
 * A benchmark child process: runs the jobs it is given (one scenario for one library each) and
 * prints their results as one JSON line, `RESULT [...]`. The parent starts one child per job so
 * that libraries never share a heap, a JIT profile or an event loop; smoke mode sends every job
 * of a scenario to one child. A job may tell the parent something on the way (`IDLE <epoch ms>`:
 * it does nothing until then).
 *
 *   node --expose-gc bench/worker.mjs '<origin>' '<jobs JSON>'     (bundled by bench/lib/bundle.ts)
 */
import type { Context } from "./lib/common.js"
import { herd } from "./lib/herd.js"
import { hot } from "./lib/hot.js"
import { libraryById } from "./lib/libraries.js"
import { memory } from "./lib/memory.js"
import { type HttpFamily, requestCost } from "./lib/requestCost.js"
import type { Scenario } from "./lib/scenario.js"
import { spread } from "./lib/spread.js"
import { stream } from "./lib/stream.js"

export interface Job {
  readonly scenario: Scenario
  /** The library (`cost`: the HTTP client family, `fetch` or `undici`). */
  readonly lib: string
  /** Which column of the scenario (memory: the token count and clients, `100000/distinct`). */
  readonly variant?: string
  readonly params: Record<string, number>
}

export interface JobResult extends Job {
  readonly value?: unknown
  readonly error?: string
  /** Wall-clock time of the job in its child, seconds. */
  readonly seconds?: number
  /**
   * CPU time of the child during the job (every thread), seconds: with `seconds`, how long the job
   * would take on a quiet machine (a job on a busy one waits for the core).
   */
  readonly cpuSeconds?: number
}

const runJob = (ctx: Context, job: Job): Promise<unknown> => {
  const p = job.params as never
  if (job.scenario === "cost") return requestCost(ctx, job.lib as HttpFamily, p)
  const library = libraryById(job.lib)
  switch (job.scenario) {
    case "hot":
      return hot(ctx, library, p)
    case "herd":
      return herd(ctx, library, p)
    case "expiry":
    case "soak":
      return stream(ctx, library, p)
    case "memory":
      return memory(ctx, library, p)
    case "spread":
      return spread(ctx, library, p)
  }
}

const main = async () => {
  const [origin, jobsJson] = process.argv.slice(2)
  if (origin === undefined || jobsJson === undefined) throw new Error("usage: worker.mjs <origin> <jobs JSON>")
  const jobs = JSON.parse(jobsJson) as ReadonlyArray<Job>
  const ctx: Context = { origin, signal: (line) => void process.stdout.write(`${line}\n`) }
  const results: Array<JobResult> = []
  for (const job of jobs) {
    const start = Date.now()
    const cpu = process.cpuUsage()
    const seconds = () => {
      const used = process.cpuUsage(cpu)
      return {
        seconds: Math.round((Date.now() - start) / 100) / 10,
        cpuSeconds: Math.round((used.user + used.system) / 1e5) / 10
      }
    }
    try {
      const value = await runJob(ctx, job)
      results.push({ ...job, value, ...seconds() })
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      results.push({ ...job, error: message, ...seconds() })
    }
  }
  process.stdout.write(`RESULT ${JSON.stringify(results)}\n`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
