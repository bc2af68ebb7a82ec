import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import type { Report } from "../bench/lib/report.js"
import { compare, render, renderReadme, targetsOf } from "../bench/lib/report.js"
import { scenarioNames } from "../bench/lib/scenario.js"

const root = Path.dirname(Path.dirname(new URL(import.meta.url).pathname))

/** The one figure each scenario must produce for each library. */
const figures: Record<(typeof scenarioNames)[number], (value: any) => Array<number>> = {
  hot: (rows: Array<{ ns: number }>) => rows.map((r) => r.ns),
  herd: (v) => [v.cold.requests, v.cold.p99, v.hot.p99, v.expiry.requests, v.expiry.p99, v.arrivedAfterExpiry],
  expiry: (v) => [v.calls, v.p99, v.max, v.expired],
  cost: (v) => [...v.rows.map((r: { cpuUs: number }) => r.cpuUs), v.profile.samples],
  memory: (v) => [v.bytesPerToken],
  spread: (v) => [v.refreshes, v.peakPerSecond, v.averagePerSecond],
  soak: (v) => [v.calls, v.expired, v.failedWhileValid, v.requests]
}

describe("benchmark", () => {
  // no time limit is asserted: the smoke run only has to produce every figure (vitest's own timeout
  // is raised so a busy machine does not fail it)
  it("--smoke produces a figure for every scenario and every library", { timeout: 15 * 60_000 }, async () => {
    const out = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-bench-test-"))
    try {
      await promisify(execFile)(process.execPath, ["--import", "tsx", "bench/run.ts", "--smoke", "--out", out], {
        cwd: root,
        maxBuffer: 64 * 1024 * 1024
      }).catch((error: { stdout?: string; stderr?: string }) => {
        // a failed job is reported below, with its library and scenario
        if (error.stdout === undefined) throw error
      })
      const files = Fs.readdirSync(out)
      const json = files.find((f) => f.endsWith("-smoke.json"))
      assert.isDefined(json, `no results in ${out}: ${files.join(", ")}`)
      assert.isTrue(files.some((f) => f.endsWith("-smoke.md")))
      const report = JSON.parse(Fs.readFileSync(Path.join(out, json!), "utf8")) as Report
      assert.isString(report.node)
      assert.isString(report.machine.cpu)
      const missing: Array<string> = []
      for (const scenario of scenarioNames) {
        for (const lib of report.lineup[scenario]) {
          const results = report.results.filter((r) => r.scenario === scenario && r.lib === lib)
          if (results.length === 0) missing.push(`${scenario}/${lib}: no result`)
          for (const r of results) {
            const where = `${scenario}/${lib}${r.variant === undefined ? "" : `/${r.variant}`}`
            if (r.error !== undefined) missing.push(`${where}: ${r.error}`)
            else if (!figures[scenario](r.value).every((n) => typeof n === "number" && Number.isFinite(n))) {
              missing.push(`${where}: ${JSON.stringify(r.value).slice(0, 200)}`)
            }
          }
        }
      }
      assert.deepStrictEqual(missing, [])
      // the same work in every cell: one herd size, and both memory columns for every library
      const callers = new Set(report.results.filter((r) => r.scenario === "herd").map((r) => (r.value as any).callers))
      assert.strictEqual(callers.size, 1)
      for (const lib of report.lineup.memory) {
        const columns = report.results.filter((r) => r.scenario === "memory" && r.lib === lib).map((r) => r.variant)
        assert.includeMembers(columns, ["20/shared", "20/distinct"])
      }
      // every job's interval is recorded, so each row can say whether it ran alone
      assert.strictEqual(report.timings.length, report.results.length)
      // the targets carry a stable id and a method, and a run agrees with itself on each verdict
      const targets = targetsOf(report)
      assert.isAbove(targets.length, 10)
      for (const t of targets) assert.isString(t.method)
      const self = compare(report, report)
      assert.deepStrictEqual(self.rows.map((r) => r.id), targets.map((t) => t.id))
      assert.isTrue(self.rows.every((r, i) => r.agree === (targets[i]!.met !== undefined)))
      assert.include(render(report), "## 7. The token request's own cost")
      assert.include(renderReadme(report, "bench/results/x.md"), "| library | hot get |")
    } finally {
      Fs.rmSync(out, { recursive: true, force: true })
    }
  })
})
