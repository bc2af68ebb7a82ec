/** Starting the token server and the worker processes (parent side). */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Job, JobResult } from "../worker.js"
import type { Bundle } from "./bundle.js"
import type { Certs } from "./certs.js"

const benchDir = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const root = Path.dirname(benchDir)

export interface Server {
  readonly origin: string
  readonly stop: () => Promise<void>
}

/** Whether `taskset` can pin a process to a core here (Linux with util-linux, two cores or more). */
export const canPin = (): boolean => {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** The command line for node, pinned to `cpus` (a taskset list such as "1") when given. */
const nodeCommand = (args: ReadonlyArray<string>, cpus: string | undefined): [string, Array<string>] =>
  cpus === undefined ? [process.execPath, [...args]] : ["taskset", ["-c", cpus, process.execPath, ...args]]

export const startServer = (bundle: Bundle, certs: Certs, cpus?: string): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child = spawn(...nodeCommand([bundle.server, certs.certFile, certs.keyFile], cpus), {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let buffer = ""
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`token server exited (${code})`)))
    child.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString()
      const match = /LISTENING (\d+)/.exec(buffer)
      if (match === null) return
      child.stdout!.removeAllListeners("data")
      child.removeAllListeners("exit")
      resolve({
        origin: `https://127.0.0.1:${match[1]}`,
        stop: () => stopChild(child)
      })
    })
  })

const stopChild = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

/**
 * Runs jobs in a new child process that trusts the run's CA (and nothing is trusted more widely).
 * The heap limit is raised: 100,000 tokens of some libraries take gigabytes. A larger young generation
 * saves about a tenth of the CPU of the request-heavy jobs (it changes no live heap, which is what the
 * memory scenario measures after a full GC).
 */
export const runWorker = (
  bundle: Bundle,
  certs: Certs,
  origin: string,
  jobs: ReadonlyArray<Job>,
  options: {
    /** Pin the child to these cores (a taskset list). */
    readonly cpus?: string | undefined
    /** Each line the child prints on the way (such as `IDLE <epoch ms>`). */
    readonly onLine?: (line: string) => void
  } = {}
): Promise<Array<JobResult>> =>
  new Promise((resolve) => {
    const child = spawn(
      ...nodeCommand([
        "--expose-gc",
        "--max-old-space-size=8192",
        "--max-semi-space-size=32",
        bundle.worker,
        origin,
        JSON.stringify(jobs)
      ], options.cpus),
      {
        cwd: root,
        env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let out = ""
    let err = ""
    let seen = 0
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      // whole lines only; the RESULT line is read at the exit
      const end = out.lastIndexOf("\n")
      if (end < seen) return
      for (const line of out.slice(seen, end).split("\n")) {
        if (line !== "" && !line.startsWith("RESULT ")) options.onLine?.(line)
      }
      seen = end + 1
    })
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()))
    child.once("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("RESULT "))
      if (line !== undefined) return resolve(JSON.parse(line.slice(7)) as Array<JobResult>)
      const reason = `worker exited with ${code}: ${err.trim().split("\n").slice(-5).join(" | ")}`
      resolve(jobs.map((job) => ({ ...job, error: reason })))
    })
  })
