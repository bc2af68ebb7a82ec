/**
 * A fake Baruwa token endpoint on 127.0.0.1: `POST /api/v1/oauth/token` with
 * `grant_type=client_credentials`, the application's credentials in an HTTP Basic header
 * (form-encoded per RFC 6749 section 2.3.1 by default) or in the form body, and
 * `grant_type=refresh_token` with the refresh token every response carries ("Bearer and Refresh
 * access tokens"). Any other grant, a missing field or wrong credentials get an RFC 6749 section 5.2
 * error (400, or 401 for client authentication).
 *
 * It is a front on `AuthServer`: the front checks what the document allows and can add fields a
 * beta API might send; the `AuthServer` behind it authenticates the client, issues, rotates, expires
 * and revokes tokens, and plays the injected faults.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as AuthServer from "./AuthServer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `"baruwa-app"`. */
  readonly clientId?: string
  /** Default `"baruwa-secret"`. */
  readonly clientSecret?: string
  /** How a Basic header must encode id and secret: `"form"` (RFC 6749 section 2.3.1, the default), `"plain"` or `"either"`. */
  readonly basicEncoding?: "form" | "plain" | "either"
  /** Default 3600 (the document states none). */
  readonly lifetimeSeconds?: number
  /** Default true: a refresh issues a new refresh token and revokes the one presented. */
  readonly rotateRefreshTokens?: boolean
  /** The `scope` answered whatever was asked, as a server that grants more or less than requested. */
  readonly grantedScope?: string
  /** Fields beyond RFC 6749 added to every token response, as a changing beta API might send. */
  readonly extraFields?: Readonly<Record<string, unknown>>
}

/**
 * The fake: `url` is the server's base URL, `tokenUrl` its token endpoint, `resourceUrl` a protected
 * `GET` accepting the issued tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface BaruwaFake extends Omit<AuthServer.AuthServer, "issueCode"> {}

const path = "/api/v1/oauth/token"

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BaruwaFake, never, Scope.Scope> =>
  Effect.gen(function*() {
    const inner = yield* AuthServer.make({
      clients: [{
        clientId: options.clientId ?? "baruwa-app",
        clientSecret: options.clientSecret ?? "baruwa-secret",
        authMethods: ["client_secret_basic", "client_secret_post"],
        basicEncoding: options.basicEncoding ?? "form"
      }],
      users: [],
      lifetimeSeconds: options.lifetimeSeconds ?? 3600,
      refreshTokensForClientCredentials: true,
      rotateRefreshTokens: options.rotateRefreshTokens ?? true,
      path
    })
    const server = yield* front(inner, path, {
      check: (form) => {
        const grantType = form.get("grant_type")
        if (grantType === null || grantType === "") return oauthError(400, "invalid_request", "grant_type is required")
        if (grantType !== "client_credentials" && grantType !== "refresh_token") {
          return oauthError(400, "unsupported_grant_type", `grant_type ${grantType} is not supported`)
        }
        return undefined
      },
      reshape: (token) => ({
        ...options.extraFields,
        ...token,
        ...(options.grantedScope === undefined ? {} : { scope: options.grantedScope })
      })
    })
    return {
      ...server,
      tokenUrl: server.url + path,
      resourceUrl: server.url + "/resource",
      revokeAccessToken: inner.revokeAccessToken,
      revokeRefreshToken: inner.revokeRefreshToken,
      revokeAll: inner.revokeAll,
      setLifetime: inner.setLifetime,
      issued: inner.issued,
      resourceCalls: inner.resourceCalls
    } satisfies BaruwaFake
  })

// The front below is the same in the three provider fakes (Baruwa, barapi.cloud, Barracuda): it
// records each request, plays faults, refuses what `check` refuses, forwards the rest to the
// `AuthServer`, and rewrites a token with `reshape`.

interface Reply {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

const jsonReply = (status: number, body: unknown): Reply => ({
  status,
  // RFC 6749 section 5.1: token responses must not be cached
  headers: { "Content-Type": "application/json", "Cache-Control": "no-store", Pragma: "no-cache" },
  body: JSON.stringify(body)
})

const oauthError = (status: number, error: string, description: string): Reply =>
  jsonReply(status, { error, error_description: description })

const send = (res: Http.ServerResponse, reply: Reply): void => {
  res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(Buffer.byteLength(reply.body)) })
  res.end(reply.body)
}

const readBody = (req: Http.IncomingMessage) =>
  Effect.async<string, Error>((resume) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    req.on("error", (error) => resume(Effect.fail(error)))
  })

// the method a request authenticates with and the client id as sent (not yet form-decoded)
const clientOf = (header: string | undefined, form: URLSearchParams) => {
  if (header !== undefined && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    return { authMethod: "client_secret_basic" as const, clientId: colon < 0 ? undefined : decoded.slice(0, colon) }
  }
  const clientId = form.get("client_id") ?? undefined
  const authMethod: AuthServer.AuthMethod | undefined = clientId === undefined
    ? undefined
    : form.has("client_secret")
    ? "client_secret_post"
    : "none"
  return { authMethod, clientId }
}

const forwardedHeaders = ["authorization", "content-type", "accept"]
const answeredHeaders = ["content-type", "cache-control", "pragma", "retry-after", "www-authenticate"]

const front = (
  inner: AuthServer.AuthServer,
  path: string,
  provider: {
    /** The error to answer instead of forwarding, for what the provider's document does not allow. */
    readonly check: (form: URLSearchParams, headers: Http.IncomingHttpHeaders) => Reply | undefined
    /** The provider's shape of a token response. */
    readonly reshape: (token: Record<string, unknown>) => Record<string, unknown>
  }
) =>
  Effect.gen(function*() {
    const liveClock = Clock.make()
    const faults: Array<AuthServer.Fault> = []
    const requests: Array<Mutable<AuthServer.RecordedRequest>> = []
    // one request at a time reaches the AuthServer, so a fault handed to it is played on that request
    const lock = yield* Effect.makeSemaphore(1)

    const forward = (url: string, req: Http.IncomingMessage, body: string | undefined, fault?: AuthServer.Fault) => {
      const request = Effect.tryPromise(async (): Promise<Reply> => {
        const headers: Record<string, string> = {}
        for (const name of forwardedHeaders) {
          const value = req.headers[name]
          if (typeof value === "string") headers[name] = value
        }
        const response = await fetch(url, {
          method: req.method ?? "GET",
          headers,
          redirect: "manual",
          ...(body === undefined ? {} : { body })
        })
        const answered: Record<string, string> = {}
        for (const name of answeredHeaders) {
          const value = response.headers.get(name)
          if (value !== null) answered[name] = value
        }
        return { status: response.status, headers: answered, body: await response.text() }
      })
      return lock.withPermits(1)(fault === undefined ? request : Effect.zipRight(inner.inject(fault), request))
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const pathname = new URL(req.url ?? "/", "http://127.0.0.1").pathname
        if (pathname === "/resource") return send(res, yield* forward(inner.resourceUrl, req, undefined))
        const rawBody = yield* readBody(req)
        const form = new URLSearchParams(rawBody)
        const record: Mutable<AuthServer.RecordedRequest> = {
          method: req.method ?? "",
          path: pathname,
          grantType: form.get("grant_type") ?? undefined,
          form: Object.fromEntries(form),
          rawBody,
          headers: Object.fromEntries(
            Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v])
          ),
          ...clientOf(req.headers.authorization, form),
          outcome: "error"
        }
        requests.push(record)
        if (pathname !== path) return send(res, oauthError(404, "invalid_request", "not found"))
        if (req.method !== "POST") return send(res, { status: 405, headers: { Allow: "POST" }, body: "" })
        const fault = faults.shift()
        if (fault !== undefined) {
          record.outcome = "fault"
          // the AuthServer plays the fault and the front passes its answer on untouched; a Drop
          // fails the forward, and the front drops this connection in turn
          if (fault._tag !== "Delay") return send(res, yield* forward(inner.tokenUrl, req, rawBody, fault))
          yield* Effect.sleep(Duration.millis(fault.millis)).pipe(Effect.withClock(liveClock))
        }
        const refused = provider.check(form, req.headers)
        const reply = refused ?? (yield* forward(inner.tokenUrl, req, rawBody))
        record.outcome = reply.status === 200 ? "token" : "error"
        send(res, reply.status === 200 ? jsonReply(200, provider.reshape(JSON.parse(reply.body))) : reply)
      })

    const set = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(set)<never>()
    const listener = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      run(handle(req, res).pipe(Effect.catchAllCause(() => Effect.sync(() => req.socket.destroy()))))
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

    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      inject: (...more: ReadonlyArray<AuthServer.Fault>) => Effect.sync(() => void faults.push(...more)),
      requests: Effect.sync((): ReadonlyArray<AuthServer.RecordedRequest> => requests.map((r) => ({ ...r }))),
      count: (grantType?: string) =>
        Effect.sync(() =>
          requests.filter((r) =>
            r.path === path && r.method === "POST" && (grantType === undefined || r.grantType === grantType)
          ).length
        )
    }
  })
