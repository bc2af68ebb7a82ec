/**
 * Worker processes for the fleet tests (test/fleet/worker.ts): spawned, read line by line (every
 * line swept for secrets), stopped with SIGTERM then SIGKILL, and bounded waits on what they report.
 */
import { Clock, Effect } from "effect"
import type { Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Readline from "node:readline"
import type { Runner } from "../fixtures/spawn.js"
import * as Sweep from "../sweep.js"

export interface Get {
  readonly worker: string
  readonly type: "get"
  readonly ok: boolean
  readonly started: number
  readonly at: number
  readonly waited: number
  readonly issuedAt?: number
  readonly expiresAt?: number
  readonly status?: number
  readonly statusAt?: number
  readonly fp?: string
  readonly error?: string
}

export interface Log {
  readonly worker: string
  readonly type: "log"
  readonly at: number
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, string>
}

export interface Worker {
  readonly id: string
  readonly child: ChildProcess.ChildProcess
  readonly gets: Array<Get>
  readonly logs: Array<Log>
  ready: boolean
  stdout: string
  stderr: string
  exited: boolean
}

export const fingerprint = (value: string) => Crypto.createHash("sha256").update(value).digest("hex").slice(0, 12)

export const now = Clock.currentTimeMillis

export const spawnWorker = (
  run: Runner,
  id: string,
  env: Record<string, string>
): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = ChildProcess.spawn(run.command, run.args, {
        env: { ...process.env, ...env, WORKER_ID: id },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const worker: Worker = { id, child, gets: [], logs: [], ready: false, stdout: "", stderr: "", exited: false }
      Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        Sweep.output(`worker ${id} stdout`, line)
        worker.stdout += line + "\n"
        let record: { type?: string } = {}
        try {
          record = JSON.parse(line)
        } catch {
          return
        }
        if (record.type === "ready") worker.ready = true
        else if (record.type === "get") worker.gets.push(record as Get)
        else if (record.type === "log") worker.logs.push({ ...(record as Log), at: Date.now() })
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        Sweep.output(`worker ${id} stderr`, chunk.toString())
        worker.stderr = (worker.stderr + chunk.toString()).slice(-8000)
      })
      child.once("exit", () => void (worker.exited = true))
      return worker
    }),
    (worker) =>
      Effect.async<void>((resume) => {
        if (worker.exited) return resume(Effect.void)
        const force = setTimeout(() => worker.child.kill("SIGKILL"), 3000)
        worker.child.once("exit", () => {
          clearTimeout(force)
          resume(Effect.void)
        })
        worker.child.kill("SIGTERM")
      })
  )

/** Polls `condition` every 25 ms; fails naming `what` after `millis`. */
export const waitUntil = (what: string, millis: number, condition: () => Effect.Effect<boolean> | boolean) =>
  Effect.gen(function*() {
    const deadline = (yield* now) + millis
    while (true) {
      const result = condition()
      if (typeof result === "boolean" ? result : yield* result) return yield* now
      if ((yield* now) > deadline) return yield* Effect.die(new Error(`timed out after ${millis} ms: ${what}`))
      yield* Effect.sleep("25 millis")
    }
  })

export const getsBetween = (workers: ReadonlyArray<Worker>, from: number, to: number) =>
  workers.flatMap((w) => w.gets.filter((g) => g.at >= from && g.at <= to))

export const logsAfter = (worker: Worker, from: number, prefix: string) =>
  worker.logs.filter((l) => l.at >= from && l.message.startsWith(prefix))
