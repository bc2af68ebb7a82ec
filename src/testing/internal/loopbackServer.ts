/**
 * The plumbing every fake server in `tokenwarden/testing` shares: a `node:http` server on 127.0.0.1
 * whose handlers run as fibers of the scope that started it, and the few reply helpers they answer with.
 *
 * `node:http` rather than `@effect/platform`'s `HttpServer` because faults need raw control of the
 * socket (destroy it unanswered, write bytes no schema would produce).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** @internal */
export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** @internal */
export type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/** @internal */
export const jsonReply = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => ({
  status,
  // RFC 6749 section 5.1: token responses must not be cached
  headers: { "Content-Type": "application/json", "Cache-Control": "no-store", Pragma: "no-cache", ...headers },
  body: JSON.stringify(body)
})

/**
 * An RFC 6749 section 5.2 error.
 *
 * @internal
 */
export const oauthError = (
  status: number,
  error: string,
  description: string,
  headers?: Record<string, string>
): Reply => jsonReply(status, { error, error_description: description }, headers)

/** @internal */
export const send = (res: Http.ServerResponse, reply: Reply): void => {
  res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(Buffer.byteLength(reply.body)) })
  res.end(reply.body)
}

/** @internal */
export const readBody = (req: Http.IncomingMessage): Effect.Effect<string, Error> =>
  Effect.async<string, Error>((resume) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    req.on("error", (error) => resume(Effect.fail(error)))
  })

/**
 * The request's headers as recorded: lower-case names, repeated ones joined with `", "`.
 *
 * @internal
 */
export const headersOf = (req: Http.IncomingMessage): Readonly<Record<string, string | undefined>> =>
  Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v]))

/**
 * Serves `handle` on 127.0.0.1 with a random port and returns `http://127.0.0.1:PORT`. A handler that
 * fails answers 500 `server_error` (or loses its connection once headers are out); closing the scope
 * interrupts the handlers still running and drops open connections.
 *
 * @internal
 */
export const serve = (
  handle: (req: Http.IncomingMessage, res: Http.ServerResponse) => Effect.Effect<void, unknown>
): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const set = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(set)<never>()
    const listener = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      run(
        handle(req, res).pipe(Effect.catchAllCause(() =>
          Effect.sync(() => {
            if (res.headersSent) res.destroy()
            else send(res, oauthError(500, "server_error", "the fake server failed"))
          })
        ))
      )
    }
    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer(listener)
        server.once("error", (error) => resume(Effect.die(error)))
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.zipRight(
          FiberSet.clear(set),
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections() // keep-alive sockets would hold close() open forever
          })
        )
    )
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
