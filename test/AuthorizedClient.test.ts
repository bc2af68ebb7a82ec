import { FetchHttpClient, HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Schema, Stream } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { AuthorizedClient, ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "./secrets.js"
import { HttpLive, noJitter } from "./util.js"

interface Seen {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
}

/** A loopback API whose answers the test decides; it records every request it gets. */
const api = (answer: (req: Http.IncomingMessage, res: Http.ServerResponse) => void) =>
  Effect.gen(function*() {
    const seen: Array<Seen> = []
    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer((req, res) => {
          seen.push({ method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization })
          req.resume()
          req.on("end", () => answer(req, res))
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
  })

const refuseAll = (res: Http.ServerResponse, challenge?: string) => {
  res.writeHead(401, {
    "Content-Type": "application/json",
    ...(challenge === undefined ? {} : { "WWW-Authenticate": challenge })
  })
  res.end(JSON.stringify({ error: "invalid_token" }))
}

const setup = Effect.gen(function*() {
  const server = yield* AuthServer.make({
    lifetimeSeconds: 3600,
    clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }]
  })
  const source = yield* TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
    grant: Grant.clientCredentials({ scopes: ["read"] }),
    policy: noJitter
  })
  const client = yield* AuthorizedClient.make(source, { origin: server.url })
  return { server, source, client }
})

const bearer = (token: { readonly value: Redacted.Redacted }) => `Bearer ${Redacted.value(token.value)}`

describe("AuthorizedClient", () => {
  it.scoped("sends the source's token in the Authorization header", () =>
    Effect.gen(function*() {
      const { client, server, source } = yield* setup
      const response = yield* client.get(server.resourceUrl)
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(yield* response.json, { ok: true })
      assert.deepStrictEqual(yield* server.resourceCalls, { ok: 1, rejected: 0 })
      const recorder = yield* api((_, res) => res.end("ok"))
      const token = yield* source.get
      const authorized = yield* AuthorizedClient.make(source, { origin: `${recorder.url}/ignored/path` })
      yield* authorized.post(`${recorder.url}/things?x=1`, { body: undefined })
      assert.deepStrictEqual(recorder.seen, [{ method: "POST", path: "/things?x=1", authorization: bearer(token) }])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a revoked token: 401, invalidate, one refresh, the request sent again with the fresh token", () =>
    Effect.gen(function*() {
      const { client, server, source } = yield* setup
      const stale = yield* source.get
      yield* server.revokeAccessToken(Redacted.value(stale.value))
      const response = yield* client.get(server.resourceUrl)
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(yield* server.resourceCalls, { ok: 1, rejected: 1 })
      assert.strictEqual(yield* server.count(), 2)
      assert.notStrictEqual(Redacted.value((yield* source.get).value), Redacted.value(stale.value))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("50 concurrent requests refused with the same token cause one refresh", () =>
    Effect.gen(function*() {
      const { client, server, source } = yield* setup
      yield* server.revokeAccessToken(Redacted.value((yield* source.get).value))
      const responses = yield* Effect.all(Array.from({ length: 50 }, () => client.get(server.resourceUrl)), {
        concurrency: "unbounded"
      })
      assert.isTrue(responses.every((r) => r.status === 200))
      assert.strictEqual(yield* server.count(), 2, "one initial token, one refresh")
      assert.deepStrictEqual(yield* server.resourceCalls, { ok: 50, rejected: 50 })
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a second 401 fails with Unauthorized, carrying the challenge and no token", () =>
    Effect.gen(function*() {
      const { server, source } = yield* setup
      const refusing = yield* api((_, res) =>
        refuseAll(
          res,
          "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"audience \\\"x\\\" unknown\""
        )
      )
      const client = yield* AuthorizedClient.make(source, { origin: refusing.url })
      const error = yield* Effect.flip(client.get(`${refusing.url}/me?secret=q`))
      assert.strictEqual(error._tag, "Unauthorized")
      if (error._tag !== "Unauthorized") return
      assert.strictEqual(error.status, 401)
      assert.strictEqual(error.error, "invalid_token")
      assert.strictEqual(error.description, "audience \"x\" unknown")
      assert.strictEqual(error.url, `${refusing.url}/me`, "no query in errors")
      assert.strictEqual(refusing.seen.length, 2, "sent twice, never more")
      assert.notStrictEqual(
        refusing.seen[0]?.authorization,
        refusing.seen[1]?.authorization,
        "the second with a fresh token"
      )
      assert.strictEqual(yield* server.count(), 2)
      const text = String(error) + JSON.stringify(error) + error.message
      for (const seen of refusing.seen) assert.notInclude(text, seen.authorization!.slice("Bearer ".length))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 401 without WWW-Authenticate is retried too", () =>
    Effect.gen(function*() {
      const { source } = yield* setup
      let calls = 0
      const flaky = yield* api((_, res) => {
        if (calls++ === 0) return refuseAll(res)
        res.end("ok")
      })
      const client = yield* AuthorizedClient.make(source, { origin: flaky.url })
      const response = yield* client.get(`${flaky.url}/x`)
      assert.strictEqual(response.status, 200)
      assert.strictEqual(flaky.seen.length, 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a streamed body is not sent twice: the token is invalidated and the 401 is an Unauthorized", () =>
    Effect.gen(function*() {
      const { server, source } = yield* setup
      const refusing = yield* api((_, res) => refuseAll(res))
      const client = yield* AuthorizedClient.make(source, { origin: refusing.url })
      const first = yield* source.get
      const request = HttpClientRequest.post(`${refusing.url}/upload`).pipe(
        HttpClientRequest.bodyStream(Stream.make(new TextEncoder().encode("data")))
      )
      const error = yield* Effect.flip(client.execute(request))
      assert.strictEqual(error._tag, "Unauthorized")
      assert.strictEqual(refusing.seen.length, 1)
      // the next request gets a fresh token
      const next = yield* source.get
      assert.notStrictEqual(Redacted.value(next.value), Redacted.value(first.value))
      assert.strictEqual(yield* server.count(), 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("never sends the token to another origin: ForeignOrigin by default, or no header", () =>
    Effect.gen(function*() {
      const { client, source } = yield* setup
      const other = yield* api((_, res) => res.end("ok"))
      const error = yield* Effect.flip(client.get(`${other.url}/steal`))
      assert.strictEqual(error._tag, "ForeignOrigin")
      assert.strictEqual(other.seen.length, 0, "nothing sent")
      const lenient = yield* AuthorizedClient.make(source, {
        origin: "http://127.0.0.1:1",
        otherOrigins: "withoutToken"
      })
      const response = yield* lenient.get(`${other.url}/public`)
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(other.seen, [{ method: "GET", path: "/public", authorization: undefined }])
      // same host, other scheme or port: another origin
      const sameHost = yield* AuthorizedClient.make(source, { origin: other.url.replace(/:\d+$/, ":1") })
      assert.strictEqual((yield* Effect.flip(sameHost.get(`${other.url}/x`)))._tag, "ForeignOrigin")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a redirect to another origin never carries the token", () =>
    Effect.gen(function*() {
      const { source } = yield* setup
      const elsewhere = yield* api((_, res) => res.end("downloaded"))
      const home = yield* api((req, res) => {
        const target = req.url === "/moved" ? "/here" : `${elsewhere.url}/file`
        if (req.url === "/here") return res.end("same origin")
        res.writeHead(302, { Location: target })
        res.end()
      })
      const client = yield* AuthorizedClient.make(source, { origin: home.url })
      const token = yield* source.get

      // not followed: the 302 comes back
      const response = yield* client.get(`${home.url}/download`)
      assert.strictEqual(response.status, 302)
      // followed on top of the authorized client: each hop passes the origin check
      const following = client.pipe(HttpClient.followRedirects())
      assert.strictEqual((yield* Effect.flip(following.get(`${home.url}/download`)))._tag, "ForeignOrigin")
      assert.strictEqual(elsewhere.seen.length, 0)
      const same = yield* following.get(`${home.url}/moved`)
      assert.strictEqual(yield* same.text, "same origin")
      assert.deepStrictEqual(home.seen.slice(-2).map((s) => s.authorization), [bearer(token), bearer(token)])

      const lenient = (yield* AuthorizedClient.make(source, { origin: home.url, otherOrigins: "withoutToken" })).pipe(
        HttpClient.followRedirects()
      )
      const downloaded = yield* lenient.get(`${home.url}/download`)
      assert.strictEqual(yield* downloaded.text, "downloaded")
      assert.deepStrictEqual(elsewhere.seen, [{ method: "GET", path: "/file", authorization: undefined }])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("over fetch, which follows redirects by default, the redirect is not followed", () =>
    Effect.gen(function*() {
      const { source } = yield* setup.pipe(Effect.provide(HttpLive))
      const elsewhere = yield* api((_, res) => res.end("downloaded"))
      const home = yield* api((_, res) => {
        res.writeHead(302, { Location: `${elsewhere.url}/file` })
        res.end()
      })
      const client = yield* AuthorizedClient.make(source, { origin: home.url })
      const response = yield* client.get(`${home.url}/download`)
      assert.strictEqual(response.status, 302)
      assert.strictEqual(elsewhere.seen.length, 0)
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scoped("the source's typed errors come through", () =>
    Effect.gen(function*() {
      const { client, server, source } = yield* setup
      yield* source.invalidate()
      yield* server.inject(AuthServer.Fault.status(400, { body: JSON.stringify({ error: "invalid_scope" }) }))
      const error = yield* Effect.flip(client.get(server.resourceUrl))
      assert.strictEqual(error._tag, "InvalidScope")
      assert.deepStrictEqual(yield* server.resourceCalls, { ok: 0, rejected: 0 })
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("refuses an http origin on a non-loopback host", () =>
    Effect.gen(function*() {
      const { source } = yield* setup
      const error = yield* Effect.flip(AuthorizedClient.make(source, { origin: "http://api.example.com" }))
      assert.strictEqual(error._tag, "InvalidConfiguration")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("layer provides HttpClient.HttpClient; typed errors arrive as the cause of a RequestError", () =>
    Effect.gen(function*() {
      class ApiToken extends Context.Tag("test/ApiToken")<ApiToken, TokenSource.TokenSource>() {}
      const server = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
      const refusing = yield* api((_, res) => refuseAll(res))
      const SourceLive = TokenSource.layer(ApiToken, {
        url: server.tokenUrl,
        clientAuth: ClientAuth.post("client", Redacted.make(CLIENT_SECRET)),
        grant: Grant.clientCredentials()
      })
      const ClientLive = (origin: string) =>
        AuthorizedClient.layer(ApiToken, { origin }).pipe(Layer.provide(SourceLive), Layer.provide(HttpLive))
      const program = (url: string) =>
        Effect.flatMap(HttpClient.HttpClient, (client) => client.get(url)).pipe(
          Effect.flatMap(HttpClientResponse.schemaBodyJson(Schema.Struct({ ok: Schema.Boolean })))
        )
      const ok = yield* program(server.resourceUrl).pipe(Effect.provide(ClientLive(server.url)))
      assert.deepStrictEqual(ok, { ok: true })
      const error = yield* Effect.flip(program(`${refusing.url}/x`).pipe(Effect.provide(ClientLive(refusing.url))))
      assert.strictEqual(error._tag, "RequestError")
      const cause = error._tag === "RequestError" ? error.cause : undefined
      assert.isTrue(cause instanceof AuthorizedClient.Unauthorized)
      assert.notInclude(JSON.stringify(error.message), "Bearer ")
    }).pipe(Effect.provide(HttpLive)))
})
