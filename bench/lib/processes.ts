/** Starting the token server and the worker processes (parent side). */
import { type ChildProcess, spawn } from "node:child_process"
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

export const startServer = (bundle: Bundle, certs: Certs): Promise<Server> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      bundle.server,
      certs.certFile,
      certs.keyFile
    ], {
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
  jobs: ReadonlyArray<Job>
): Promise<Array<JobResult>> =>
  new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        "--expose-gc",
        "--max-old-space-size=8192",
        "--max-semi-space-size=32",
        bundle.worker,
        origin,
        JSON.stringify(jobs)
      ],
      {
        cwd: root,
        env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let out = ""
    let err = ""
    child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()))
    child.once("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("RESULT "))
      if (line !== undefined) return resolve(JSON.parse(line.slice(7)) as Array<JobResult>)
      const reason = `worker exited with ${code}: ${err.trim().split("\n").slice(-5).join(" | ")}`
      resolve(jobs.map((job) => ({ ...job, error: reason })))
    })
  })
