/**
 * Server text is hostile (issue 15): one describe per defect, each test written to fail on the code
 * before the fix. See also test/scrub.test.ts (the cleaning rules one by one) and
 * test/Decoders.property.test.ts (every decoder on arbitrary input).
 */
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Inspectable, Logger, Redacted, Schema, Tracer } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Util from "node:util"
import { Worker } from "node:worker_threads"
import * as Zlib from "node:zlib"
import type { AccessToken } from "tokenwarden"
import { AuthorizedClient, Baack, ClientAuth, Grant, TokenEndpoint, TokenError, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { runner } from "./fixtures/spawn.js"
import { ACCESS, API_TOKEN, CLIENT_SECRET, found, OPAQUE_ACCESS, PASSWORD, REFRESH } from "./secrets.js"
import * as Sweep from "./sweep.js"
import { HttpLive, noJitter } from "./util.js"

/** Every way a program prints an error. */
const renderings = (error: unknown): ReadonlyArray<string> => [
  String(error),
  JSON.stringify(error),
  Util.inspect(error, { depth: 10 }),
  Inspectable.format(error),
  Cause.pretty(Cause.fail(error)),
  (error as { readonly message?: string }).message ?? ""
]

/** Asserts that no rendering of `error` shows any of `secrets`, in any case or encoding. */
const assertClean = (error: unknown, secrets: ReadonlyArray<string>) => {
  for (const text of renderings(error)) {
    assert.deepStrictEqual(found(text, secrets), [], `a secret leaked into: ${text}`)
  }
}

type Answer = (req: Http.IncomingMessage, res: Http.ServerResponse, body: string) => void

/** A bare node:http server that answers every request with `answer`; its URL, with `path`. */
const rawServer = (answer: Answer, path = "/token") =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((req, res) => {
        let body = ""
        req.on("data", (chunk: Buffer) => body += chunk.toString("utf8"))
        req.on("end", () => answer(req, res, body))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`))

const reply = (status: number, body: string | Buffer, headers: Record<string, string> = {}): Answer =>
(
  _req,
  res
) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(body)
}

const clients = [
  ["undici", NodeHttpClient.layerUndici],
  ["node:http", NodeHttpClient.layer],
  ["fetch", FetchHttpClient.layer]
] as const

const cc = Grant.clientCredentials({ scopes: ["read"] })

/** An endpoint on `url` that authenticates with CLIENT_SECRET in the form. */
const endpointAt = (url: string) =>
  TokenEndpoint.make({ url, clientAuth: ClientAuth.post("client", Redacted.make(CLIENT_SECRET)) })

/** A token source whose tokens, one after the other, are `tokens` (opaque: no pattern would mask them). */
const sourceIssuing = (...tokens: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
    yield* server.inject(
      ...tokens.map((value) =>
        AuthServer.Fault.body(JSON.stringify({ access_token: value, token_type: "Bearer", expires_in: 3600 }), {
          contentType: "application/json"
        })
      )
    )
    return yield* TokenSource.make({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
      grant: cc,
      policy: noJitter
    })
  })

/** The token a source had before: what `request` is given as `previous`. */
const previousToken: AccessToken.AccessToken = {
  value: Redacted.make(OPAQUE_ACCESS),
  type: "Bearer",
  issuedAt: 0,
  expiresAt: 3_600_000,
  lifetimeSource: "expires_in",
  scopes: ["read"],
  refreshToken: Redacted.make(REFRESH),
  extra: Redacted.make({})
}

/** An endpoint answering `answer`, after a refresh-token request that carries every secret kind we send. */
const refreshAnsweredBy = (answer: Answer) =>
  Effect.gen(function*() {
    const url = yield* rawServer(answer)
    const endpoint = yield* TokenEndpoint.make({
      url,
      clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET))
    })
    const error = yield* Effect.flip(
      endpoint.request(Grant.refreshToken({ refreshToken: Redacted.make(REFRESH) }), previousToken)
    )
    Sweep.failure("refresh error", error)
    return error
  })

describe("server text is hostile", () => {
  describe("1. cleaning runs in linear time", () => {
    // The one test that bounds time: a regular expression that backtracks blocks the thread it runs on,
    // and no timeout inside that thread can stop it. So every cleaning path runs in a worker thread on
    // 1 MiB adversarial inputs, and the worker is terminated when one run (a path on an input) has not
    // finished after 10 s. Linear code takes milliseconds to a few hundred on two busy cores; the
    // backtracking pattern this replaced took about half an hour on one input. Run the fixture by hand
    // for the times: `npx tsx test/fixtures/cleanWorker.ts`.
    it.scopedLive(
      "every cleaning path finishes on 1 MiB adversarial inputs in a worker thread",
      () =>
        Effect.gen(function*() {
          const run = yield* runner("test/fixtures/cleanWorker.ts")
          const worker = yield* Effect.acquireRelease(
            Effect.sync(() =>
              new Worker(run.bundled ? run.args[0]! : "./test/fixtures/cleanWorker.ts", {
                execArgv: run.bundled ? [] : ["--import", "tsx"]
              })
            ),
            (worker) => Effect.promise(() => worker.terminate())
          )
          const timings = yield* Effect.async<ReadonlyArray<string>, string>((resume) => {
            const done: Array<string> = []
            let watchdog: ReturnType<typeof setTimeout> | undefined
            const arm = () => {
              clearTimeout(watchdog)
              watchdog = setTimeout(() => {
                void worker.terminate()
                resume(Effect.fail(`a cleaning path ran for more than 10 s after: ${done.slice(-3).join(", ")}`))
              }, 10_000)
            }
            arm()
            worker.on("message", (message: { path?: string; input?: string; millis?: number; done?: number }) => {
              if (message.done !== undefined) {
                clearTimeout(watchdog)
                resume(
                  message.done === done.length
                    ? Effect.succeed(done)
                    : Effect.fail(`${done.length} runs reported, ${message.done} made`)
                )
              } else {
                done.push(`${message.path} on ${message.input}: ${message.millis?.toFixed(1)} ms`)
                arm()
              }
            })
            worker.on("error", (error) => {
              clearTimeout(watchdog)
              resume(Effect.fail(`the worker failed: ${error.message}`))
            })
          })
          // every path on every input, and the gzip bomb
          assert.isAtLeast(timings.length, 13 * 14 + 1)
        }).pipe(Effect.mapError((reason) => new Error(reason))),
      120_000
    )
  })

  describe("2. an authorized client's errors hold no credential", () => {
    const withToken = <A, E>(
      f: (source: TokenSource.TokenSource) => Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>
    ) => Effect.flatMap(sourceIssuing(OPAQUE_ACCESS), f)

    const assertRedacted = (error: unknown) => {
      assertClean(error, [OPAQUE_ACCESS, API_TOKEN])
      assert.include(JSON.stringify(error), "<redacted>", "the header is there, its value redacted")
    }

    it.scoped("a request that cannot connect: the RequestError, printed every way, has no token or API key", () =>
      withToken((source) =>
        Effect.gen(function*() {
          // a port nothing listens on any more
          const origin = yield* Effect.scoped(rawServer(reply(200, "{}"), ""))
          const client = yield* AuthorizedClient.make(source, { origin })
          const error = yield* Effect.flip(
            client.execute(
              HttpClientRequest.get(`${origin}/v1/me`).pipe(HttpClientRequest.setHeader("x-api-key", API_TOKEN))
            )
          )
          assert.strictEqual(error._tag, "RequestError")
          assertRedacted(error)
        })
      ).pipe(Effect.provide(HttpLive)))

    it.scoped("an error status from a client that filters statuses: the ResponseError has no token", () =>
      withToken((source) =>
        Effect.gen(function*() {
          const origin = yield* rawServer(reply(500, "{\"error\":\"boom\"}"), "")
          const inner = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
          const client = yield* AuthorizedClient.make(source, { origin }).pipe(
            Effect.provideService(HttpClient.HttpClient, inner)
          )
          const error = yield* Effect.flip(client.get(`${origin}/v1/me`))
          assert.strictEqual(error._tag, "ResponseError")
          assertRedacted(error)
        })
      ).pipe(Effect.provide(HttpLive)))

    it.scoped("a response that fails to decode later: that ResponseError has no token either", () =>
      withToken((source) =>
        Effect.gen(function*() {
          const origin = yield* rawServer(reply(200, "not json", { "content-type": "text/plain" }), "")
          const client = yield* AuthorizedClient.make(source, { origin })
          const error = yield* Effect.flip(
            client.get(`${origin}/v1/me`).pipe(
              Effect.flatMap(HttpClientResponse.schemaBodyJson(Schema.Struct({ id: Schema.String })))
            )
          )
          assert.strictEqual(error._tag, "ResponseError")
          assertRedacted(error)
        })
      ).pipe(Effect.provide(HttpLive)))
  })

  describe("3. what we sent is scrubbed, in every form, and the patterns have no gaps", () => {
    it.scoped("an error_description echoing the request in every form keeps none of it", () =>
      Effect.gen(function*() {
        const basic = Buffer.from(`client:${CLIENT_SECRET}`).toString("base64")
        const description = [
          `bearer ${OPAQUE_ACCESS}`,
          `basic ${basic}`,
          `refresh_token: ${REFRESH}`,
          `client_secret = ${CLIENT_SECRET}`,
          `refresh_token%3D${encodeURIComponent(REFRESH)}`,
          `the token ${OPAQUE_ACCESS.toUpperCase()} is old`,
          `bare ${CLIENT_SECRET} and ${ACCESS}`,
          `base64 ${Buffer.from(`x${CLIENT_SECRET}`).toString("base64")}`
        ].join("; ")
        const error = yield* refreshAnsweredBy(
          reply(400, JSON.stringify({ error: "invalid_request", error_description: description }))
        )
        assert.strictEqual(error._tag, "InvalidRequest")
        assert.include(error.message, "refresh_token: ***")
        assertClean(error, [CLIENT_SECRET, OPAQUE_ACCESS, REFRESH, ACCESS])
      }).pipe(Effect.provide(HttpLive)))

    for (const password of [PASSWORD, "my password+123"]) {
      it.scoped(`a password with "&" or a space (${password}) is masked whole, every way it is echoed`, () =>
        Effect.gen(function*() {
          const url = yield* rawServer((req, res, body) => {
            const echo = [body, decodeURIComponent(body.replaceAll("+", " ")), `password: ${password}`].join(" | ")
            reply(400, JSON.stringify({ error: "invalid_grant", error_description: echo }))(req, res, body)
          })
          const endpoint = yield* endpointAt(url)
          const error = yield* Effect.flip(
            endpoint.request(Grant.password({ username: "alice", password: Redacted.make(password) }))
          )
          Sweep.failure("password echo", error)
          assert.strictEqual(error._tag, "InvalidGrant")
          assert.include(error.message, "grant_type=password&username=alice&password=***")
          // the part after the "&" or the space would show if the value were masked only up to it
          assertClean(error, [password, password.split(/[& ]/)[1]!, CLIENT_SECRET])
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("an error code equal to a secret we sent is masked", () =>
      Effect.gen(function*() {
        const error = yield* refreshAnsweredBy(reply(400, JSON.stringify({ error: REFRESH })))
        assert.strictEqual(error._tag, "OAuthError")
        assert.strictEqual((error as TokenError.OAuthError).error, "***")
        assertClean(error, [REFRESH])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("JSON field names that are secrets we sent are masked", () =>
      Effect.gen(function*() {
        const error = yield* refreshAnsweredBy(reply(200, JSON.stringify({ [OPAQUE_ACCESS]: 1, [REFRESH]: 2, ok: 3 })))
        assert.strictEqual(error._tag, "MalformedResponse")
        assert.deepStrictEqual((error as TokenError.MalformedResponse).fields, ["***", "***", "ok"])
        assertClean(error, [OPAQUE_ACCESS, REFRESH])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an API error's message and details echoing the request keep none of it", () =>
      Effect.gen(function*() {
        const body = {
          code: "INVALID_REPRESENTATION",
          message: `cannot use ${REFRESH} with ${CLIENT_SECRET}`,
          errors: [{ code: `X${OPAQUE_ACCESS}`, field: REFRESH, message: `token=${OPAQUE_ACCESS}` }]
        }
        const error = yield* refreshAnsweredBy(reply(400, JSON.stringify(body)))
        assert.strictEqual(error._tag, "InvalidRepresentation")
        assertClean(error, [REFRESH, CLIENT_SECRET, OPAQUE_ACCESS])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a WWW-Authenticate echoing the refused token keeps none of it", () =>
      Effect.gen(function*() {
        const source = yield* sourceIssuing(OPAQUE_ACCESS, `${OPAQUE_ACCESS}-2`)
        const origin = yield* rawServer((req, res) => {
          const token = (req.headers.authorization ?? "").slice("Bearer ".length)
          res.writeHead(401, {
            "www-authenticate":
              `Bearer realm="api", error="${token}", error_description="the token \\"${token}\\" (bearer ${token}) expired"`
          })
          res.end()
        }, "")
        const client = yield* AuthorizedClient.make(source, { origin })
        const error = yield* Effect.flip(client.get(`${origin}/v1/me`))
        assert.strictEqual(error._tag, "Unauthorized")
        const unauthorized = error as AuthorizedClient.Unauthorized
        assert.strictEqual(unauthorized.error, "***")
        assert.include(unauthorized.description ?? "", "expired")
        assertClean(error, [OPAQUE_ACCESS])
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("4. no log forging", () => {
    const forged = "CODE\r\n2030-01-01T00:00:00Z level=INFO message=forged\u001b[31m\u009b2J\u202e" +
      "A".repeat(100_000)

    it.scoped("an API error code with line breaks, terminal escapes and no end is one short line", () =>
      Effect.gen(function*() {
        const url = yield* rawServer(reply(400, JSON.stringify({ code: forged, message: forged })))
        const error = yield* Effect.flip((yield* endpointAt(url)).request(cc))
        assert.strictEqual(error._tag, "BadRequest")
        const bad = error as TokenError.BadRequest
        for (const text of [bad.code, bad.description ?? "", bad.message]) {
          assert.notMatch(text, /[\u0000-\u001f\u007f-\u009f\u202e]/)
        }
        assert.isAtMost(bad.code.length, 65)
        assert.isAtMost(bad.message.length, 500)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("Baack's own errors (403) clean their code the same way", () =>
      Effect.gen(function*() {
        const url = yield* rawServer(reply(403, JSON.stringify({ code: forged, message: forged })), "")
        const clients = yield* Baack.make({ baseUrl: url, rootToken: Redacted.make(API_TOKEN) })
        const error = yield* Effect.flip(clients.list)
        assert.strictEqual(error._tag, "Forbidden")
        const forbidden = error as Baack.Forbidden
        assert.notMatch(forbidden.code ?? "", /[\u0000-\u001f\u007f-\u009f]/)
        assert.isAtMost((forbidden.code ?? "").length, 65)
        assert.notMatch(forbidden.message, /[\r\n\u001b]/)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("5. spans carry no query string and no credential-bearing header", () => {
    interface Recorded {
      readonly name: string
      readonly attributes: Map<string, unknown>
    }
    /** Runs `effect` under a tracer that records every span's name and attributes. */
    const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const spans: Array<Recorded> = []
        const inner = yield* Effect.tracer
        const tracer = Tracer.make({
          context: (f, fiber) => inner.context(f, fiber),
          span: (name, parent, context, links, startTime, kind, options) => {
            const span = inner.span(name, parent, context, links, startTime, kind, options)
            const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
            const attribute = span.attribute.bind(span)
            span.attribute = (key, value) => {
              attributes.set(key, value)
              attribute(key, value)
            }
            spans.push({ name, attributes })
            return span
          }
        })
        const exit = yield* Effect.exit(Effect.withTracer(effect, tracer))
        return { spans, exit }
      })

    const echoingChallenge: Answer = (req, res) => {
      res.writeHead(401, {
        "content-type": "application/json",
        "www-authenticate": `Bearer error="invalid_token", error_description="${req.headers.authorization}"`,
        location: `https://elsewhere.example.com/?token=${API_TOKEN}`
      })
      res.end(JSON.stringify({ error: "invalid_client" }))
    }

    it.scoped("a token request: our span has method, server, path and status; no query, no header", () =>
      Effect.gen(function*() {
        const url = yield* rawServer(echoingChallenge)
        const endpoint = yield* TokenEndpoint.make({
          url: `${url}?tenant=t1&api_key=${API_TOKEN}`,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET))
        })
        const { exit, spans } = yield* traced(endpoint.request(cc))
        assert.isTrue(Exit.isFailure(exit))
        const http = spans.find((s) => s.name === "tokenwarden.http POST")
        assert.isDefined(http, spans.map((s) => s.name).join(", "))
        assert.strictEqual(http!.attributes.get("http.request.method"), "POST")
        assert.strictEqual(http!.attributes.get("server.address"), "127.0.0.1")
        assert.strictEqual(http!.attributes.get("url.path"), "/token")
        assert.strictEqual(http!.attributes.get("http.response.status_code"), 401)
        for (const span of spans) {
          for (const [key, value] of span.attributes) {
            assert.notMatch(key, /^(url\.full|url\.query|http\.request\.header|http\.response\.header)/, span.name)
            const text = Inspectable.toStringUnknown(value)
            assert.notInclude(text, "?", `${span.name} ${key}`)
            assert.deepStrictEqual(found(text, [API_TOKEN, CLIENT_SECRET]), [], `${span.name} ${key}=${text}`)
          }
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an authorized API request: the platform's span redacts WWW-Authenticate and Location", () =>
      Effect.gen(function*() {
        const source = yield* sourceIssuing(OPAQUE_ACCESS)
        const origin = yield* rawServer(echoingChallenge, "")
        const client = yield* AuthorizedClient.make(source, { origin })
        const { spans } = yield* traced(client.get(`${origin}/v1/me`))
        const platform = spans.filter((s) => s.name.startsWith("http.client"))
        assert.isAtLeast(platform.length, 1)
        for (const span of platform) {
          assert.strictEqual(span.attributes.get("http.response.header.www-authenticate"), "<redacted>")
          assert.strictEqual(span.attributes.get("http.response.header.location"), "<redacted>")
          for (const [key, value] of span.attributes) {
            const text = Inspectable.toStringUnknown(value)
            assert.deepStrictEqual(found(text, [API_TOKEN, OPAQUE_ACCESS]), [], `${span.name} ${key}=${text}`)
          }
        }
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("6. decoding: lenient where RFC-safe, strict where it matters, the same with every client", () => {
    const token = (fields: Record<string, unknown>) =>
      JSON.stringify({ access_token: OPAQUE_ACCESS, token_type: "Bearer", expires_in: 3600, ...fields })

    for (const [name, layer] of clients) {
      describe(name, () => {
        const requestFrom = (answer: Answer) =>
          Effect.gen(function*() {
            const endpoint = yield* endpointAt(yield* rawServer(answer))
            return yield* Effect.either(endpoint.request(cc))
          }).pipe(Effect.provide(layer))

        it.scoped("CR/LF, a space or non-ASCII in access_token or token_type is a typed MalformedResponse", () =>
          Effect.gen(function*() {
            for (
              const [field, value] of [
                ["access_token", `${OPAQUE_ACCESS}\r\nX-Injected: 1`],
                ["access_token", `${OPAQUE_ACCESS} more`],
                ["access_token", `${OPAQUE_ACCESS}é`],
                ["token_type", "Bearer\r\nX-Injected: 1"]
              ] as const
            ) {
              const result = yield* requestFrom(reply(200, token({ [field]: value })))
              assert.isTrue(result._tag === "Left", `${field}=${JSON.stringify(value)} was accepted`)
              const error = result._tag === "Left" ? result.left : undefined
              assert.strictEqual(error?._tag, "MalformedResponse")
              assert.include(error!.message, `${field} holds characters a header cannot carry`)
              assertClean(error, [OPAQUE_ACCESS])
            }
          }))

        it.scoped("a BOM before the JSON, and null for expires_in, refresh_token and scope, give a token", () =>
          Effect.gen(function*() {
            const bom = yield* requestFrom(reply(200, "\ufeff" + token({})))
            assert.strictEqual(bom._tag, "Right", JSON.stringify(bom))
            const nulls = yield* requestFrom(reply(200, token({ expires_in: null, refresh_token: null, scope: null })))
            assert.strictEqual(nulls._tag, "Right", JSON.stringify(nulls))
            if (nulls._tag === "Right") {
              assert.isUndefined(nulls.right.refreshToken)
              assert.deepStrictEqual(nulls.right.scopes, ["read"])
              assert.strictEqual(nulls.right.lifetimeSource, "none")
            }
          }))

        it.scoped("a 2xx without a body is a transient MalformedResponse", () =>
          Effect.gen(function*() {
            for (const status of [200, 204]) {
              const result = yield* requestFrom(reply(status, ""))
              const error = result._tag === "Left" ? result.left : undefined
              assert.strictEqual(error?._tag, "MalformedResponse", `${status}: ${JSON.stringify(result)}`)
              assert.isTrue(error!.transient, `${status} is transient`)
              assert.isTrue(TokenError.isTransient(error!))
            }
          }))

        it.scoped("a compressed token response gives the token; a compressed error page is quoted as text", () =>
          Effect.gen(function*() {
            const gzipped = yield* requestFrom(reply(200, Zlib.gzipSync(token({})), { "content-encoding": "gzip" }))
            assert.strictEqual(gzipped._tag, "Right", JSON.stringify(gzipped))
            const deflated = yield* requestFrom(
              reply(200, Zlib.deflateSync(token({})), { "content-encoding": "deflate" })
            )
            assert.strictEqual(deflated._tag, "Right", JSON.stringify(deflated))
            const page = yield* requestFrom(
              reply(403, Zlib.gzipSync("<p>Forbidden by policy</p>"), {
                "content-encoding": "gzip",
                "content-type": "text/html"
              })
            )
            const error = page._tag === "Left" ? page.left : undefined
            assert.strictEqual(error?._tag, "MalformedResponse")
            assert.strictEqual((error as TokenError.MalformedResponse).excerpt, "<p>Forbidden by policy</p>")
            // brotli has no magic bytes: fetch's decoded text and undici's raw bytes read the same
            const brotli = yield* requestFrom(
              reply(200, Zlib.brotliCompressSync(token({})), { "content-encoding": "br" })
            )
            assert.strictEqual(brotli._tag, "Right", JSON.stringify(brotli))
            const brotliPage = yield* requestFrom(
              reply(403, Zlib.brotliCompressSync("<p>Forbidden by policy</p>"), {
                "content-encoding": "br",
                "content-type": "text/html"
              })
            )
            assert.strictEqual(
              brotliPage._tag === "Left" ? (brotliPage.left as TokenError.MalformedResponse).excerpt : undefined,
              "<p>Forbidden by policy</p>"
            )
          }))

        it.scoped("binary bytes and a broken compressed body are never quoted", () =>
          Effect.gen(function*() {
            for (
              const [body, headers] of [
                [Buffer.from("\u0000\u0001binary ZZZZ"), { "content-type": "application/octet-stream" }],
                [Buffer.from("ZZZZ not gzip at all"), { "content-encoding": "zstd", "content-type": "text/plain" }],
                [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x5a, 0x5a]), {
                  "content-encoding": "gzip",
                  "content-type": "text/plain"
                }]
              ] as const
            ) {
              const result = yield* requestFrom(reply(400, body, headers))
              const error = result._tag === "Left" ? result.left : undefined
              assert.strictEqual(error?._tag, "MalformedResponse")
              assert.isUndefined((error as TokenError.MalformedResponse).excerpt, JSON.stringify(error))
            }
          }))
      })
    }

    it.scoped("a token outside RFC 6750 b64token syntax is accepted, with one warning per endpoint", () => {
      const warnings: Array<string> = []
      const keepWarnings = Logger.add(Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      }))
      return Effect.gen(function*() {
        const url = yield* rawServer(reply(200, token({ access_token: `${OPAQUE_ACCESS}:x@y,z` })))
        const endpoint = yield* endpointAt(url)
        const first = yield* endpoint.request(cc)
        yield* endpoint.request(cc)
        assert.strictEqual(Redacted.value(first.value), `${OPAQUE_ACCESS}:x@y,z`)
        assert.strictEqual(warnings.length, 1, warnings.join("\n"))
        assert.include(warnings[0]!, "b64token")
        assert.notInclude(warnings[0]!, OPAQUE_ACCESS)
      }).pipe(Effect.provide(keepWarnings), Effect.provide(HttpLive))
    })
  })
})
