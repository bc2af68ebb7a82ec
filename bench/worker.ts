/**
 * A benchmark child process: runs the jobs it is given (one scenario for one library each) and
 * prints their results as one JSON line, `RESULT [...]`. The parent starts one child per job so
 * that libraries never share a heap, a JIT profile or an event loop; smoke mode sends every job
 * to one child.
 *
 *   node --expose-gc --import tsx bench/worker.ts '<origin>' '<jobs JSON>'
 */
import { libraryById } from "./lib/libraries.js"
import * as Scenarios from "./lib/scenarios.js"

export interface Job {
  readonly scenario: "hot" | "herd" | "expiry" | "memory" | "spread" | "soak"
  readonly lib: string
  /** Which column of the scenario (memory: the token count). */
  readonly variant?: string
  readonly params: Record<string, number>
}

export interface JobResult extends Job {
  readonly value?: unknown
  readonly error?: string
  /** Wall-clock time of the job in its child, seconds. */
  readonly seconds?: number
}

const runJob = (origin: string, job: Job): Promise<unknown> => {
  const ctx = { origin }
  const library = libraryById(job.lib)
  const p = job.params as never
  switch (job.scenario) {
    case "hot":
      return Scenarios.hot(ctx, library, p)
    case "herd":
      return Scenarios.herd(ctx, library, p)
    case "expiry":
    case "soak":
      return Scenarios.stream(ctx, library, p)
    case "memory":
      return Scenarios.memory(ctx, library, p)
    case "spread":
      return Scenarios.spread(ctx, library, p)
  }
}

const main = async () => {
  const [origin, jobsJson] = process.argv.slice(2)
  if (origin === undefined || jobsJson === undefined) throw new Error("usage: worker.ts <origin> <jobs JSON>")
  const jobs = JSON.parse(jobsJson) as ReadonlyArray<Job>
  const results: Array<JobResult> = []
  for (const job of jobs) {
    const start = Date.now()
    const seconds = () => Math.round((Date.now() - start) / 100) / 10
    try {
      const value = await runJob(origin, job)
      results.push({ ...job, value, seconds: seconds() })
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      results.push({ ...job, error: message, seconds: seconds() })
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
