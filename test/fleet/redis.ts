/**
 * A real `redis-server` for the tests: on a free loopback port, without persistence, killed when the
 * scope closes. Where it is not installed the Redis suites are skipped with a notice, except under CI
 * (`CI` set), where its absence fails the run.
 */
import { describe, it } from "@effect/vitest"
import { Clock, Data, Effect } from "effect"
import type { Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

const findBinary = (): string | undefined => {
  const dirs = [...(process.env.PATH ?? "").split(Path.delimiter), "/usr/bin", "/usr/local/bin", "/usr/sbin"]
  for (const dir of dirs) {
    if (dir === "") continue
    const candidate = Path.join(dir, "redis-server")
    try {
      Fs.accessSync(candidate, Fs.constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** The `redis-server` binary, when installed. */
export const binary: string | undefined = findBinary()

const onCi = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false" &&
  process.env.CI !== "0"

const hint = "redis-server is not installed; install it with `apt-get install redis-server` to run these tests"

/**
 * `describe` for suites needing `redis-server`: skipped with a one-line notice where it is missing,
 * failing under CI.
 */
export const describeRedis = (name: string, body: () => void): void => {
  if (binary === undefined && onCi) {
    return void describe(name, () => {
      it("needs redis-server", () => {
        throw new Error(`${hint} (CI is set: Redis tests may not be skipped)`)
      })
    })
  }
  if (binary === undefined) process.stderr.write(`skipping "${name}": ${hint}\n`)
  describe.skipIf(binary === undefined)(name, body)
}

export class RedisStartError extends Data.TaggedError("RedisStartError")<{ readonly detail: string }> {}

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  /** Kills the server (SIGKILL, as a crash); its data is gone. */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port. */
  readonly start: Effect.Effect<void, RedisStartError>
}

// waits in real time even under a TestClock: the server is a real process
const live = Clock.make()
const sleep = (millis: number) => Effect.sleep(millis).pipe(Effect.withClock(live))

const freePort = Effect.async<number, RedisStartError>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(new RedisStartError({ detail: error.message }))))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

// one PING over a raw socket: true on +PONG (or -NOAUTH: up, and wanting a password)
const ping = (port: number, password?: string) =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    let answer = ""
    const finish = (up: boolean) => {
      socket.destroy()
      resume(Effect.succeed(up))
    }
    socket.setTimeout(500, () => finish(false))
    socket.once("error", () => finish(false))
    socket.on("data", (chunk) => {
      answer += chunk.toString("utf8")
      if (answer.includes("+PONG")) finish(true)
      else if (answer.includes("-")) finish(false)
    })
    socket.once("connect", () => {
      socket.write(password === undefined ? "PING\r\n" : `AUTH ${password}\r\nPING\r\n`)
    })
    return Effect.sync(() => socket.destroy())
  })

/**
 * Starts `redis-server` on a free port of 127.0.0.1 and waits (at most 10 seconds) until it answers
 * PING; the scope's end kills it.
 */
export const make = (
  options: { readonly password?: string } = {}
): Effect.Effect<RedisServer, RedisStartError, Scope.Scope> =>
  Effect.gen(function*() {
    if (binary === undefined) return yield* Effect.fail(new RedisStartError({ detail: hint }))
    const port = yield* freePort
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-redis-"))
    let child: ChildProcess.ChildProcess | undefined
    let output = ""

    const kill = Effect.async<void>((resume) => {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) {
        return resume(Effect.void)
      }
      running.once("exit", () => resume(Effect.void))
      running.kill("SIGKILL")
    })

    const start = Effect.gen(function*() {
      yield* kill
      output = ""
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
      if (options.password !== undefined) args.push("--requirepass", options.password)
      const spawned = ChildProcess.spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
      child = spawned
      spawned.stdout.on("data", (chunk: Buffer) => void (output = (output + chunk.toString("utf8")).slice(-4000)))
      spawned.stderr.on("data", (chunk: Buffer) => void (output = (output + chunk.toString("utf8")).slice(-4000)))
      for (let attempt = 0; attempt < 200; attempt++) {
        if (spawned.exitCode !== null) break
        if (yield* ping(port, options.password)) return
        yield* sleep(50)
      }
      yield* kill
      return yield* Effect.fail(new RedisStartError({ detail: `redis-server did not answer PING:\n${output}` }))
    })

    yield* Effect.addFinalizer(() =>
      Effect.zipRight(kill, Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    )
    yield* start
    return { port, url: `redis://127.0.0.1:${port}`, stop: kill, start }
  })
