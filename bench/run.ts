/**
 * `npm run bench`: tokenwarden side by side with google-auth-library, simple-oauth2, openid-client,
 * @azure/identity and a hand-written fetch-and-cache baseline, all against one loopback TLS token
 * server (its own process, a self-signed CA trusted only by this run's processes).
 *
 *   npm run bench                      full run (under 20 minutes)
 *   npm run bench -- --quick           every scenario, smaller (under 2 minutes)
 *   npm run bench -- --smoke           tiny, for the test that keeps the benchmark from rotting
 *   options: --latency <ms> (herd scenario server latency, default 50), --out <dir>, --rotate <n>,
 *            --only hot,herd,expiry,cost,memory,spread,soak
 *   npm run bench -- --render <run.json>            writes that run's Markdown again (after a report change)
 *   npm run bench -- --render <run.json> --readme   also puts its tables in README.md between the
 *                                                   bench markers (and prints them)
 *   npm run bench -- --compare <a.json> <b.json>    do two runs agree on every met and missed? (exit 1 if not)
 *
 * Results go to bench/results/ as Markdown and JSON (smoke: a temporary directory unless --out).
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { bundle, removeBundle } from "./lib/bundle.js"
import { makeCerts, removeCerts } from "./lib/certs.js"
import { canPin, runWorker, type Server, startServer } from "./lib/processes.js"
import {
  compare,
  jobKey,
  type JobTiming,
  methodVersion,
  render,
  renderComparison,
  renderReadme,
  type Report
} from "./lib/report.js"
import { type Scenario, scenarioNames, timingScenarios } from "./lib/scenario.js"
import type { SpreadResult } from "./lib/spread.js"
import type { Job, JobResult } from "./worker.js"

type Mode = "full" | "quick" | "smoke"

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(`--${name}`)
const option = (name: string, offset = 1) => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? undefined : args[i + offset]
}
const mode: Mode = flag("smoke") ? "smoke" : flag("quick") ? "quick" : "full"
const latency = Number(option("latency") ?? 50)
const only = option("only")?.split(",") as Array<Scenario> | undefined
const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const root = Path.dirname(benchDir)
const outDir = option("out") ??
  (mode === "smoke" ? Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-smoke-")) : Path.join(benchDir, "results"))

/** Which libraries each scenario compares (tokenwarden as the per-credential source, facade and pool). */
export const lineup: Record<Scenario, ReadonlyArray<string>> = {
  hot: ["tws", "twf", "twp", "google", "simple", "openid", "azure", "base"],
  herd: ["tws", "twf", "twp", "google", "simple", "openid", "azure", "base"],
  expiry: ["tws", "twf", "twp", "google", "simple", "openid", "azure", "base"],
  // the request cost: HTTP client families, tokenwarden over each beside the client used directly
  cost: ["fetch", "undici"],
  memory: ["twp", "tws", "google", "simple", "openid", "azure", "base"],
  spread: ["twp", "google", "simple", "openid", "azure", "base"],
  soak: ["tws", "twf", "twp", "google", "simple", "openid", "azure", "base"]
}

/** Libraries that send one request per waiting caller (each a TLS connection in a herd). */
const unshared = ["simple", "openid", "azure"]

const settings = {
  smoke: {
    hot: { seconds: 0.01, rounds: 2 },
    herd: { callers: 20, usable: 1, delay: 10 },
    expiry: { usable: 1, duration: 2.5, delay: 100, faults: 0, interval: 5, margin: 0.1 },
    cost: { warmup: 5, requests: 10, rounds: 2, breakdownCalls: 200 },
    memory: [{ count: 20, clients: ["shared", "distinct"], libs: lineup.memory }],
    // the figures only have to exist: tokenwarden's lifetime is too short for its jitter here
    spread: { tokens: 20, usable: 2, twLifetime: 30, demandInterval: 500 },
    soak: { usable: 2, duration: 3, delay: 10, faults: 30, interval: 5, margin: 0.2 }
  },
  quick: {
    hot: { seconds: 0.02, rounds: 3 },
    herd: { callers: 100, usable: 1, delay: latency },
    expiry: { usable: 1, duration: 1, delay: 100, faults: 0, interval: 1, margin: 0.1 },
    cost: { warmup: 30, requests: 40, rounds: 3, breakdownCalls: 2_000 },
    memory: [{ count: 200, clients: ["shared", "distinct"], libs: lineup.memory }],
    spread: { tokens: 200, usable: 3, twLifetime: 120, demandInterval: 1000 },
    soak: { usable: 9, duration: 8, delay: 20, faults: 30, interval: 2, margin: 1 }
  },
  full: {
    hot: { seconds: 0.4, rounds: 5 },
    herd: { callers: 1_000, usable: 3, delay: latency },
    expiry: { usable: 2, duration: 8, delay: 100, faults: 0, interval: 1, margin: 0.2 },
    cost: { warmup: 300, requests: 500, rounds: 5, breakdownCalls: 20_000 },
    // 100,000 for tokenwarden's pool (the target's figure) and the baseline: each token is a request,
    // and 100,000 of every library would take the run far past its 20 minutes
    memory: [
      { count: 10_000, clients: ["shared", "distinct"], libs: lineup.memory },
      { count: 100_000, clients: ["shared", "distinct"], libs: ["twp", "base"] }
    ],
    // 300-second tokens for tokenwarden: the time its 1,000 requests take (a few seconds, longer on a
    // busy machine) stays small beside its 30-second refresh window
    spread: { tokens: 1_000, usable: 30, twLifetime: 300, demandInterval: 1000 },
    soak: { usable: 27, duration: 180, delay: 20, faults: 30, interval: 2, margin: 3 }
  }
}[mode]

const rotate = <A>(list: ReadonlyArray<A>, by: number): Array<A> => {
  const k = ((by % list.length) + list.length) % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}
/** Which library goes first changes from run to run (and from scenario to scenario). */
const rotation = Number(option("rotate") ?? Math.floor(Date.now() / 60_000))

const jobsOf = (scenario: Scenario): Array<Job> => {
  const order = rotate(lineup[scenario], rotation + scenarioNames.indexOf(scenario))
  switch (scenario) {
    case "memory":
      return settings.memory.flatMap(({ clients, count, libs }) =>
        clients.flatMap((c) =>
          libs.map((lib): Job => ({
            scenario,
            lib,
            variant: `${count}/${c}`,
            params: { count, concurrency: 16, distinct: c === "distinct" ? 1 : 0 }
          }))
        )
      )
    case "cost":
      return order.map((lib): Job => ({ scenario, lib, params: { ...settings.cost, pinned: 0 } }))
    default:
      return order.map((lib): Job => ({ scenario, lib, params: settings[scenario] }))
  }
}

/** Milliseconds of a memory job per token (a request each; a TokenSource or an MSAL client costs more). */
const memoryMillis: Record<string, number> = {
  twp: 3,
  base: 1.2,
  google: 1.5,
  simple: 4,
  openid: 1.5,
  azure: 3.5,
  tws: 6
}

/** A job's likely length, seconds (generous): what fits in a waiting spread job's idle time. */
const estimate = (job: Job): number => {
  const p = job.params
  switch (job.scenario) {
    case "hot":
      return 2 + (job.lib === "tws" || job.lib === "twp" ? 4 : 2) * (p.rounds! * p.seconds! + 0.5)
    case "herd":
      return 4 + p.usable! + (unshared.includes(job.lib) ? 2 * p.callers! * 0.02 : 2)
    case "expiry":
      return 4 + p.duration! + p.usable!
    case "cost":
      return 8 + (job.lib === "undici" ? 5 : 3) * (p.warmup! + p.requests! * (p.rounds! + 1)) * 0.003
    case "spread":
      // the issue, the wait for the library's own refresh point, the cycle (as long as the issue at most)
      return 5 + 2 * p.tokens! * 0.02 + (job.lib.startsWith("tw") ? p.twLifetime! * 0.75 : p.usable!)
    case "memory":
      return 3 + p.count! * 1.1 * (memoryMillis[job.lib] ?? 5) / 1000
    case "soak":
      return 5 + p.duration!
  }
}

const machine = () => ({
  cpu: Os.cpus()[0]?.model ?? "unknown",
  cores: Os.cpus().length,
  memoryGiB: Math.round(Os.totalmem() / 2 ** 30 * 10) / 10,
  platform: `${Os.platform()} ${Os.release()}`,
  loadAverage: Os.loadavg().map((l) => Math.round(l * 100) / 100)
})

/** Time kept free before a waiting spread job's refresh cycle, and how much longer than its estimate a job may run. */
const guardMillis = 5000
const slack = 1.5

const main = async () => {
  const started = Date.now()
  const loadAverage = machine().loadAverage
  const built = await bundle()
  const certs = makeCerts()
  const server = await startServer(built, certs)
  const pin = mode !== "smoke" && Os.cpus().length >= 2 && canPin()
  let pinnedServer: Server | undefined
  const results: Array<JobResult> = []
  const timings: Array<JobTiming> = []

  /** Runs jobs in one child, records when; `onIdle` hears of a quiet stretch (`IDLE <until>`). */
  const runChild = async (
    jobs: ReadonlyArray<Job>,
    onIdle?: (until: number) => void
  ): Promise<Array<JobResult>> => {
    let origin = server.origin
    let cpus: string | undefined
    if (jobs[0]?.scenario === "cost" && pin) {
      // the child on one core, a token server of its own on the other
      pinnedServer ??= await startServer(built, certs, "1")
      origin = pinnedServer.origin
      cpus = "0"
      jobs = jobs.map((j) => ({ ...j, params: { ...j.params, pinned: 1 } }))
    }
    const start = Date.now()
    const done = await runWorker(built, certs, origin, jobs, {
      cpus,
      onLine: (line) => {
        const match = /^IDLE (\d+)$/.exec(line)
        if (match !== null) onIdle?.(Number(match[1]))
      }
    })
    const end = Date.now()
    for (const result of done) {
      const quiet = result.value as Partial<SpreadResult> | undefined
      const active =
        quiet?.quietFrom !== undefined && quiet.quietUntil !== undefined && quiet.quietUntil > quiet.quietFrom
          ? [{ from: start, to: quiet.quietFrom }, { from: quiet.quietUntil, to: end }]
          : [{ from: start, to: end }]
      timings.push({ key: jobKey(result), start, end, active })
      process.stdout.write(result.error === undefined ? "." : "x")
    }
    results.push(...done)
    return done
  }

  try {
    const scenarios = scenarioNames.filter((s) => only === undefined || only.includes(s))
    process.stdout.write(`${scenarios.join(", ")}: `)
    const t = Date.now()
    if (mode === "smoke") {
      // one child per scenario, all at once: the figures only have to exist
      await Promise.all(scenarios.map((s) => runChild(jobsOf(s))))
    } else {
      // Timing jobs run one at a time. The counting phase runs every soak at once (they mostly wait, and
      // are judged on counts with a margin far above any latency) beside the memory jobs, two at a time,
      // the longest first; never beside a timing job.
      const timed = scenarios.filter((s) => timingScenarios.includes(s)).flatMap(jobsOf)
      const soaks = scenarios.includes("soak") ? jobsOf("soak") : []
      const heavy = scenarios.includes("memory") ? jobsOf("memory").sort((a, b) => estimate(b) - estimate(a)) : []
      let counted = soaks.length === 0 && heavy.length === 0
      const counting = async () => {
        counted = true
        const lane = async () => {
          for (let job = heavy.shift(); job !== undefined; job = heavy.shift()) await runChild([job])
        }
        await Promise.all([...soaks.map((job) => runChild([job])), lane(), lane()])
      }
      const countingEstimate = () =>
        Math.max(0, ...soaks.map(estimate), heavy.map(estimate).reduce((a, b) => a + b, 0) / 2)
      // A spread job waits with nothing to do (no calls, no requests due) for its refresh cycle: other
      // jobs run in that wait when they fit (a spread job too, whose own wait is filled the same way),
      // never in its cycle. The spread jobs go first, tokenwarden's (the longest wait) at the head.
      const queue = [
        ...timed.filter((j) => j.scenario === "spread" && j.lib.startsWith("tw")),
        ...timed.filter((j) => j.scenario === "spread" && !j.lib.startsWith("tw")),
        ...timed.filter((j) => j.scenario !== "spread")
      ]
      /** Runs queued jobs, one at a time, that end before `until` (epoch ms; none: all of them). */
      const fill = async (until: number | undefined): Promise<void> => {
        const fits = (seconds: number) =>
          until === undefined || Date.now() + seconds * 1000 * slack + guardMillis < until
        for (;;) {
          const next = queue.findIndex((j) => fits(estimate(j)))
          if (next !== -1) {
            const job = queue.splice(next, 1)[0]!
            if (job.scenario !== "spread") {
              await runChild([job])
              continue
            }
            let idle: (quietUntil: number | undefined) => void = () => {}
            const quiet = new Promise<number | undefined>((resolve) => (idle = resolve))
            const finished = runChild([job], idle).finally(() => idle(undefined))
            const quietUntil = await quiet
            if (quietUntil !== undefined) await fill(until === undefined ? quietUntil : Math.min(until, quietUntil))
            await finished
          } else if (!counted && until !== undefined && fits(countingEstimate())) {
            await counting()
          } else {
            return
          }
        }
      }
      await fill(undefined)
      await pinnedServer?.stop()
      pinnedServer = undefined
      if (!counted) await counting()
    }
    process.stdout.write(` ${((Date.now() - t) / 1000).toFixed(0)} s\n`)
  } finally {
    await pinnedServer?.stop()
    await server.stop()
    removeCerts(certs)
    removeBundle(built)
  }
  const report: Report = {
    method: methodVersion,
    date: new Date(started).toISOString(),
    mode,
    node: process.version,
    machine: { ...machine(), loadAverage },
    durationSeconds: Math.round((Date.now() - started) / 1000),
    settings,
    lineup,
    rotation,
    results,
    timings: [...timings].sort((a, b) => a.start - b.start)
  }
  const markdown = render(report)
  console.log("\n" + markdown)
  Fs.mkdirSync(outDir, { recursive: true })
  const stamp = report.date.slice(0, 16).replace(/[:T]/g, "-")
  const base = Path.join(outDir, `${stamp}-${mode}`)
  Fs.writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + "\n")
  Fs.writeFileSync(`${base}.md`, markdown + "\n")
  console.log(`results: ${base}.md, ${base}.json`)
  const failed = results.filter((r) => r.error !== undefined)
  for (const f of failed) console.error(`${jobKey(f)}: ${f.error}`)
  if (failed.length > 0) process.exitCode = 1
}

const readReport = (file: string) => JSON.parse(Fs.readFileSync(file, "utf8")) as Report

const markers = { start: "<!-- bench:results:start -->", end: "<!-- bench:results:end -->" }

/** Renders a saved run's JSON as Markdown again, beside it; with --readme, its tables into README.md. */
const rerender = (file: string) => {
  const report = readReport(file)
  const target = file.replace(/\.json$/, ".md")
  Fs.writeFileSync(target, render(report) + "\n")
  console.log(`rendered: ${target}`)
  if (!flag("readme")) return
  const readme = Path.join(root, "README.md")
  const link = Path.relative(root, Path.resolve(target)).split(Path.sep).join("/")
  const block = renderReadme(report, link)
  const text = Fs.readFileSync(readme, "utf8")
  const from = text.indexOf(markers.start)
  const to = text.indexOf(markers.end)
  if (from === -1 || to < from) throw new Error(`README.md has no ${markers.start} … ${markers.end} block`)
  Fs.writeFileSync(readme, `${text.slice(0, from + markers.start.length)}\n${block}\n${text.slice(to)}`)
  console.log(`\n${block}\n\nREADME.md: the block between the bench markers now shows ${link}`)
}

const compareFiles = (a: string, b: string) => {
  const comparison = compare(readReport(a), readReport(b))
  console.log(renderComparison(comparison, Path.basename(a), Path.basename(b)))
  if (!comparison.agree) process.exitCode = 1
}

const renderFile = option("render")
const compareA = option("compare")
const compareB = option("compare", 2)
;(compareA !== undefined && compareB !== undefined
  ? Promise.resolve(compareFiles(compareA, compareB))
  : renderFile !== undefined
  ? Promise.resolve(rerender(renderFile))
  : main()).catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
