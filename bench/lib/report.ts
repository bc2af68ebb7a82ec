/** The results as Markdown tables: each figure beside its ratio to the hand-written baseline. */
import type { JobResult } from "../worker.js"
import { libraryById } from "./libraries.js"
import type { HerdResult, HotRow, MemoryResult, SpreadResult, StreamResult } from "./scenarios.js"
import { formatBytes, formatCount, formatMillis, formatRatio } from "./stats.js"

export const scenarioNames = ["hot", "herd", "expiry", "memory", "spread", "soak"] as const
export type Scenario = (typeof scenarioNames)[number]

export interface Report {
  readonly date: string
  readonly mode: string
  readonly node: string
  readonly machine: {
    readonly cpu: string
    readonly cores: number
    readonly memoryGiB: number
    readonly platform: string
    readonly loadAverage: ReadonlyArray<number>
  }
  readonly durationSeconds: number
  readonly settings: unknown
  readonly lineup: Record<Scenario, ReadonlyArray<string>>
  readonly results: ReadonlyArray<JobResult>
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")

const nameOf = (lib: string) => libraryById(lib).name

const valueOf = <A>(report: Report, scenario: Scenario, lib: string, variant?: string): A | undefined => {
  const r = report.results.find((r) => r.scenario === scenario && r.lib === lib && r.variant === variant)
  return r?.value as A | undefined
}

const errorOf = (report: Report, scenario: Scenario, lib: string, variant?: string): string | undefined =>
  report.results.find((r) => r.scenario === scenario && r.lib === lib && r.variant === variant)?.error

const failedRow = (report: Report, scenario: Scenario, lib: string, width: number, variant?: string) => [
  nameOf(lib),
  `failed: ${(errorOf(report, scenario, lib, variant) ?? "no result").slice(0, 80).replace(/\|/g, "/")}`,
  ...Array.from({ length: width - 2 }, () => "")
]

const mark = (ok: boolean) => (ok ? "met" : "**missed**")

export interface Target {
  readonly name: string
  readonly measured: string
  readonly target: string
  readonly met: boolean | undefined
}

// -------------------------------------------------------------------------------------------------

const hotSection = (report: Report, targets: Array<Target>) => {
  const rows: Array<Array<string>> = []
  const baseline = valueOf<ReadonlyArray<HotRow>>(report, "hot", "base")?.[0]?.ns ?? NaN
  const googleNs = valueOf<ReadonlyArray<HotRow>>(report, "hot", "google")?.[0]?.ns ?? NaN
  for (const lib of report.lineup.hot) {
    const value = valueOf<ReadonlyArray<HotRow>>(report, "hot", lib)
    if (value === undefined) {
      rows.push(failedRow(report, "hot", lib, 5))
      continue
    }
    const floor = value.find((r) => r.name.startsWith("Ref.get floor"))
    for (const row of value) {
      if (row === floor) continue
      rows.push([
        row.name,
        `${row.ns.toFixed(0)} ns`,
        formatRatio(row.ns, baseline),
        floor === undefined ? "" : `${formatRatio(row.ns, floor.ns)} (floor ${floor.ns.toFixed(0)} ns)`
      ])
      if (lib === "twp" && row.name.includes("source(key).get") && floor !== undefined) {
        targets.push({
          name: "hot path inside Effect (TokenPool source.get) vs `yield* Ref.get(ref)`",
          measured: formatRatio(row.ns, floor.ns),
          target: "≤ 1.5×",
          met: row.ns <= 1.5 * floor.ns
        })
      }
      if (lib === "tws" && floor !== undefined) {
        targets.push({
          name: "hot path inside Effect (TokenSource.get) vs `yield* Ref.get(ref)`",
          measured: formatRatio(row.ns, floor.ns),
          target: "≤ 1.5×",
          met: row.ns <= 1.5 * floor.ns
        })
      }
      if (lib === "twf") {
        targets.push({
          name: "hot path through the Promise facade vs google-auth-library's cached getAccessToken",
          measured: `${row.ns.toFixed(0)} ns vs ${googleNs.toFixed(0)} ns = ${formatRatio(row.ns, googleNs)}`,
          target: "≤ 2×",
          met: row.ns <= 2 * googleNs
        })
      }
    }
  }
  return [
    "## 1. Hot path: one `get` of a valid token",
    "",
    "Sequential calls in a loop, as many as fit in a fixed time per round: `yield* get` inside one Effect",
    "program for tokenwarden's Effect API (beside the floor, a loop of `yield* Ref.get(ref)` in the same",
    "process and rounds), `await get()` for Promise APIs.",
    "Median of the rounds.",
    "",
    table(["get", "per call", "× baseline", "× Ref.get floor"], rows)
  ].join("\n")
}

const herdSection = (report: Report, targets: Array<Target>) => {
  const baseline = valueOf<HerdResult>(report, "herd", "base")
  const callers = baseline?.callers ?? valueOf<HerdResult>(report, "herd", "tws")?.callers ?? NaN
  const rows = report.lineup.herd.map((lib) => {
    const v = valueOf<HerdResult>(report, "herd", lib)
    if (v === undefined) return failedRow(report, "herd", lib, 13)
    if (lib === "tws" || lib === "twp" || lib === "twf") {
      targets.push({
        name: `herd (${nameOf(lib)}): token requests for ${formatCount(v.callers)} callers, cold / at expiry`,
        measured: `${v.cold.requests} / ${v.expiry.requests} while answering (${v.ahead} refreshed ahead)`,
        target: "1 / 1",
        // one request replaces the first token, ahead of the herd or while it waits; a second refresh
        // ahead is the next token's own schedule, not the herd's doing
        met: v.cold.requests === 1 && v.expiry.requests + Math.min(v.ahead, 1) === 1
      })
      targets.push({
        name: `herd (${nameOf(lib)}): p99 at expiry vs p99 of the same herd on a hot token`,
        measured: `${formatMillis(v.expiry.p99)} vs ${formatMillis(v.hot.p99)} = ${
          formatRatio(v.expiry.p99, v.hot.p99)
        }`,
        target: "≤ 2×",
        met: v.expiry.p99 <= 2 * v.hot.p99
      })
    }
    return [
      nameOf(lib),
      formatCount(v.callers),
      formatCount(v.cold.requests),
      formatMillis(v.cold.p50),
      formatMillis(v.cold.p99),
      formatMillis(v.hot.p99),
      formatCount(v.ahead),
      formatCount(v.expiry.requests),
      formatMillis(v.expiry.p50),
      formatMillis(v.expiry.p99),
      formatRatio(v.expiry.p99, v.hot.p99),
      baseline === undefined ? "—" : formatRatio(v.expiry.p99, baseline.expiry.p99),
      String(v.cold.errors + v.hot.errors + v.expiry.errors)
    ]
  })
  return [
    `## 2. Herd: ${formatCount(callers)} concurrent \`get\` calls`,
    "",
    "On a cold start, on a hot token, and just after the moment the library stops handing out its first",
    "token (its own refresh margin: 5 minutes before expiry for google-auth-library, @azure/identity and the",
    "documented simple-oauth2/openid-client patterns; tokenwarden refreshes in the background before then).",
    "Latency is from the herd's arrival to each caller's token; requests are those the server received",
    "while the herd was answered. *Refreshed ahead*: requests a proactive library sent on its own schedule",
    "before the expiry herd (it refreshes no earlier than half-way through a lifetime, so every request",
    "from then on counts here, even one that falls while a slow cold herd is still being forked): the",
    "refresh of the first token, and with these seconds-long tokens sometimes the next token's too.",
    "Effect callers are fibers forked in a loop, Promise callers are calls in a loop; *hot p99* is the",
    "floor of each mechanism.",
    "",
    table(
      [
        "library",
        "callers",
        "cold: requests",
        "cold p50",
        "cold p99",
        "hot p99",
        "refreshed ahead",
        "at expiry: requests",
        "at expiry p50",
        "at expiry p99",
        "at expiry ÷ hot (p99)",
        "p99 at expiry × baseline",
        "errors"
      ],
      rows
    )
  ].join("\n")
}

const expirySection = (report: Report) => {
  const baseline = valueOf<StreamResult>(report, "expiry", "base")
  const rows = report.lineup.expiry.map((lib) => {
    const v = valueOf<StreamResult>(report, "expiry", lib)
    if (v === undefined) return failedRow(report, "expiry", lib, 10)
    return [
      nameOf(lib),
      formatCount(v.calls),
      formatMillis(v.p50),
      formatMillis(v.p99),
      formatMillis(v.max),
      baseline === undefined ? "—" : formatRatio(v.p99, baseline.p99),
      baseline === undefined ? "—" : formatRatio(v.max, baseline.max),
      formatCount(v.requests),
      String(v.errors),
      String(v.expired)
    ]
  })
  return [
    "## 3. Expiry boundary: callers arriving continuously, 100 ms server latency",
    "",
    "A caller every millisecond across several expiries (each library's usable window is a few seconds).",
    "",
    table([
      "library",
      "calls",
      "p50",
      "p99",
      "max",
      "p99 × baseline",
      "max × baseline",
      "token requests",
      "errors",
      "expired tokens"
    ], rows)
  ].join("\n")
}

const memorySection = (report: Report, targets: Array<Target>) => {
  const variants = [...new Set(report.results.filter((r) => r.scenario === "memory").map((r) => r.variant!))]
    .sort((a, b) => Number(a) - Number(b))
  const largest = variants[variants.length - 1]
  const rows = report.lineup.memory.map((lib) => {
    const cells = variants.map((variant) => {
      const v = valueOf<MemoryResult>(report, "memory", lib, variant)
      if (v !== undefined) return formatBytes(v.bytesPerToken)
      return report.results.some((r) => r.scenario === "memory" && r.lib === lib && r.variant === variant)
        ? "failed"
        : "(full run)"
    })
    const ratios = variants.map((variant) => {
      const v = valueOf<MemoryResult>(report, "memory", lib, variant)
      const b = valueOf<MemoryResult>(report, "memory", "base", variant)
      return v === undefined || b === undefined ? "—" : formatRatio(v.bytesPerToken, b.bytesPerToken)
    })
    if (lib === "twp" && largest !== undefined) {
      const v = valueOf<MemoryResult>(report, "memory", lib, largest)
      if (v !== undefined) {
        targets.push({
          name: `memory per held token, TokenPool at ${formatCount(Number(largest))} tokens`,
          measured: formatBytes(v.bytesPerToken),
          target: "≤ 1 KB",
          met: v.bytesPerToken <= 1024
        })
      }
    }
    return [nameOf(lib), ...cells, ...ratios]
  })
  return [
    "## 4. Memory per held token",
    "",
    "Heap used after GC (`node --expose-gc`, a child process per library and count) once the tokens are",
    "held, minus the heap before them (after a warm-up of a tenth as many tokens), divided by their count.",
    "As a platform holds them: one client registration for the provider, a token per tenant and scope. Each",
    "library keeps what it needs to use a token again: an OAuth2Client per user (google-auth-library), a",
    "ClientSecretCredential per tenant (@azure/identity), the token response per scope over one shared",
    "client (simple-oauth2, openid-client), a TokenSource per credential, or one TokenPool whose keys the",
    "application builds again from its own data when it asks (nothing else kept per token).",
    "",
    table(
      [
        "library",
        ...variants.map((v) => `per token @ ${formatCount(Number(v))}`),
        ...variants.map((v) => `× baseline @ ${formatCount(Number(v))}`)
      ],
      rows
    )
  ].join("\n")
}

const spreadSection = (report: Report, targets: Array<Target>) => {
  const baseline = valueOf<SpreadResult>(report, "spread", "base")
  const rows = report.lineup.spread.map((lib) => {
    const v = valueOf<SpreadResult>(report, "spread", lib)
    if (v === undefined) return failedRow(report, "spread", lib, 10)
    const ratio = v.peakPerSecond / v.averagePerSecond
    if (lib === "twp") {
      targets.push({
        name: `refresh spread: peak/s vs the window's average, ${formatCount(v.tokens)} tokens issued at once`,
        measured: `${formatCount(v.peakPerSecond)}/s vs ${v.averagePerSecond.toFixed(0)}/s = ${ratio.toFixed(2)}×`,
        target: "≤ 2×",
        met: ratio <= 2
      })
    }
    return [
      nameOf(lib),
      v.clock,
      formatCount(v.tokens),
      formatCount(v.refreshes),
      `${v.window} s`,
      formatCount(v.peakPerSecond),
      v.averagePerSecond.toFixed(0),
      `${ratio.toFixed(2)}×`,
      `${(v.peakShare * 100).toFixed(v.peakShare < 0.1 ? 2 : 0)} %`,
      baseline === undefined ? "—" : formatRatio(v.peakShare, baseline.peakShare)
    ]
  })
  return [
    "## 5. Refresh spread: tokens issued at the same moment",
    "",
    "How the token server sees one refresh cycle. *Window*: from the first refresh of the cycle to the",
    "last; *peak ÷ avg*: the busiest second against the window's average; *peak share*: the share of",
    "all the tokens refreshed in the busiest second (1/window at best, 100 % when all refresh at once).",
    "tokenwarden runs on a virtual Effect Clock (its refresh times come from the Clock), so 20-minute",
    "tokens issued at one virtual instant are stepped through their refresh window a second at a time,",
    "each step waiting (in real time) for every request due; this measures the schedule exactly, at full",
    "scale, without waiting 15 minutes. The other libraries have no schedule (a token is refreshed when",
    "a caller asks after the library's margin): they run in real time with every token asked for every",
    "200 ms, and the server's arrival times are counted per second.",
    "",
    table(
      [
        "library",
        "clock",
        "tokens",
        "refreshes",
        "window",
        "peak/s",
        "window avg/s",
        "peak ÷ avg",
        "peak share",
        "peak share × baseline"
      ],
      rows
    )
  ].join("\n")
}

const soakSection = (report: Report, targets: Array<Target>) => {
  const baseline = valueOf<StreamResult>(report, "soak", "base")
  const soak = (report.settings as { soak?: { duration?: number; usable?: number } }).soak
  const duration = soak?.duration ?? NaN
  const rows = report.lineup.soak.map((lib) => {
    const v = valueOf<StreamResult>(report, "soak", lib)
    if (v === undefined) return failedRow(report, "soak", lib, 9)
    if (lib === "tws" || lib === "twp" || lib === "twf") {
      targets.push({
        name: `fault soak (${nameOf(lib)}): expired tokens returned / failures while a valid token existed`,
        measured: `${v.expired} / ${v.failedWhileValid}`,
        target: "0 / 0",
        met: v.expired === 0 && v.failedWhileValid === 0
      })
    }
    return [
      nameOf(lib),
      formatCount(v.calls),
      formatCount(v.errors),
      String(v.expired),
      String(v.failedWhileValid),
      formatCount(v.requests),
      formatCount(v.faults),
      formatMillis(v.p99),
      baseline === undefined ? "—" : formatRatio(v.requests, baseline.requests)
    ]
  })
  return [
    `## 6. Fault soak: ${duration} s of refreshes with 30 % of token requests failing`,
    "",
    "503s and 429s (both with Retry-After: 1) and connection resets, 20 ms latency, a caller every 2 ms,",
    `tokens a library hands out for about ${
      soak?.usable ?? NaN
    } seconds. *Expired*: \`get\` returned a token past its expiry;`,
    "*failed while valid*: `get` failed while a token this library had already handed out had more left",
    "than the usual expiry margin (10 % of its lifetime, at most 10 s: the margin tokenwarden keeps), the",
    "same rule for every library whatever margin it keeps itself.",
    "",
    table(
      [
        "library",
        "calls",
        "errors",
        "expired returned",
        "failed while valid",
        "token requests",
        "faults injected",
        "p99",
        "requests × baseline"
      ],
      rows
    )
  ].join("\n")
}

/** One row per library across the scenarios: the table the README carries. */
const glanceSection = (report: Report) => {
  const libs = [...new Set(scenarioNames.flatMap((s) => report.lineup[s]))]
  const counts = [...new Set(report.results.filter((r) => r.scenario === "memory").map((r) => r.variant!))]
    .sort((a, b) => Number(a) - Number(b))
  const rows = libs.map((lib) => {
    const hot = valueOf<ReadonlyArray<HotRow>>(report, "hot", lib)?.find((r) => !r.name.startsWith("Ref.get"))
    const herd = valueOf<HerdResult>(report, "herd", lib)
    const expiry = valueOf<StreamResult>(report, "expiry", lib)
    const spread = valueOf<SpreadResult>(report, "spread", lib)
    const soak = valueOf<StreamResult>(report, "soak", lib)
    return [
      nameOf(lib),
      hot === undefined ? "—" : `${Math.round(hot.ns)} ns`,
      herd === undefined ? "—" : `${formatCount(herd.expiry.requests)} for ${formatCount(herd.callers)}`,
      herd === undefined ? "—" : formatMillis(herd.expiry.p99),
      expiry === undefined ? "—" : formatMillis(expiry.max),
      ...counts.map((count) => {
        const v = valueOf<MemoryResult>(report, "memory", lib, count)
        return v === undefined ? "—" : formatBytes(v.bytesPerToken)
      }),
      spread === undefined ? "—" : formatRatio(spread.peakPerSecond, spread.averagePerSecond),
      soak === undefined ? "—" : `${soak.expired} / ${soak.failedWhileValid}`
    ]
  })
  return [
    "## At a glance",
    "",
    "Per library: one `get` of a valid token; requests sent while a herd of callers waited at expiry, and",
    "its p99; the slowest `get` across expiries with 100 ms server latency; heap per held token; the",
    "busiest second of a refresh cycle against its average; expired tokens returned / failures while a",
    "valid token existed under 30 % injected faults. Details and ratios in the sections below.",
    "",
    table(
      [
        "library",
        "hot get",
        "herd at expiry: requests",
        "herd p99",
        "slowest get across expiries",
        ...counts.map((c) => `memory @ ${formatCount(Number(c))}`),
        "refresh peak ÷ avg",
        "soak: expired / failed"
      ],
      rows
    )
  ].join("\n")
}

export const render = (report: Report): string => {
  const targets: Array<Target> = []
  const sections = [
    hotSection(report, targets),
    herdSection(report, targets),
    expirySection(report),
    memorySection(report, targets),
    spreadSection(report, targets),
    soakSection(report, targets)
  ]
  const m = report.machine
  return [
    `# tokenwarden benchmark (${report.mode})`,
    "",
    `${report.date} · Node ${report.node} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · ${m.platform} · ` +
    `load average at start ${m.loadAverage.join(" / ")} · ${report.durationSeconds} s`,
    "",
    "## Targets",
    "",
    table(
      ["target", "measured", "wanted", ""],
      targets.map((t) => [t.name, t.measured, t.target, t.met === undefined ? "" : mark(t.met)])
    ),
    "",
    glanceSection(report),
    "",
    ...sections.flatMap((s) => [s, ""])
  ].join("\n")
}
