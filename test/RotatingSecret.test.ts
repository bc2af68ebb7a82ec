import { assert, describe, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Effect, Exit, Redacted } from "effect"
import * as Jose from "jose"
import { ClientAuth, Grant, TokenPool, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { endpointKeyOf } from "../src/internal/endpointKey.js"
import * as Key from "../src/internal/engine/key.js"
import { CLIENT_SECRET, forms, JWT_SECRET, renderings, WRONG_SECRET } from "./secrets.js"
import { collectLogs, HttpLive, type LogLine, noJitter, waitFor } from "./util.js"

/**
 * `CLIENT_SECRET` read through a ConfigProvider over `env`, rebuilt at each read (`fromMap` copies its
 * map), as a mounted file is read again: `reads.count` counts the evaluations.
 */
const secretFrom = (env: Map<string, string>, reads: { count: number }) =>
  Effect.suspend(() =>
    Config.redacted("CLIENT_SECRET").pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(env)),
      Effect.tap(() => void reads.count++)
    )
  )

const assertClean = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>) => {
  for (const text of texts) {
    for (const secret of secrets.flatMap(forms)) assert.notInclude(text, secret, `a secret leaked into: ${text}`)
  }
}

/** The secret a recorded request carried: its Basic password, its form `client_secret`, or its assertion's HMAC key (the signature only). */
const carried = async (
  request: AuthServer.RecordedRequest,
  candidates: ReadonlyArray<string>
): Promise<string | undefined> => {
  const header = request.headers["authorization"]
  if (header !== undefined && /^basic /i.test(header)) {
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8")
    return decodeURIComponent(decoded.slice(decoded.indexOf(":") + 1))
  }
  if (request.form["client_secret"] !== undefined) return request.form["client_secret"]
  const assertion = request.form["client_assertion"]
  if (assertion === undefined) return undefined
  for (const candidate of candidates) {
    const verified = await Jose.compactVerify(assertion, new TextEncoder().encode(candidate)).then(
      () => true,
      () => false
    )
    if (verified) return candidate
  }
  return "?"
}

const carriedAll = (server: AuthServer.AuthServer, candidates: ReadonlyArray<string>) =>
  Effect.flatMap(
    server.requests,
    (requests) => Effect.promise(() => Promise.all(requests.map((r) => carried(r, candidates))))
  )

const rotation = (method: "basic" | "post" | "jwt", before: string) =>
  Effect.gen(function*() {
    const env = new Map([["CLIENT_SECRET", before]])
    const reads = { count: 0 }
    const secret = secretFrom(env, reads)
    const server = yield* AuthServer.make({
      clients: [{
        clientId: "client",
        clientSecret: before,
        ...(method === "jwt" ? { authMethods: ["client_secret_jwt"] as const } : {})
      }]
    })
    const clientAuth = method === "basic"
      ? ClientAuth.basic("client", secret)
      : method === "post"
      ? ClientAuth.post("client", secret)
      : ClientAuth.clientSecretJwt("client", secret)
    const source = yield* TokenSource.make({
      url: server.tokenUrl,
      clientAuth,
      grant: Grant.clientCredentials(),
      policy: noJitter,
      timeout: "30 days"
    })
    return { env, reads, server, source }
  })

describe("Rotating secrets", () => {
  it.scoped("an invalidate after a rotation gets InvalidClient once, then reads the secret again and succeeds", () =>
    Effect.gen(function*() {
      const { env, reads, server, source } = yield* rotation("basic", CLIENT_SECRET)
      const first = yield* source.get
      assert.strictEqual(reads.count, 1)
      // the operator rotates the secret at the server and in the file
      yield* server.setClientSecret("client", WRONG_SECRET)
      env.set("CLIENT_SECRET", WRONG_SECRET)
      yield* source.invalidate(first)
      const failed = yield* waitFor(source, (s) => s._tag === "Failed")
      assert.strictEqual(failed._tag === "Failed" ? failed.error._tag : "", "InvalidClient")
      // the refused attempt used the secret kept from the first read
      assert.strictEqual(reads.count, 1)
      const next = yield* source.refresh
      assert.notStrictEqual(Redacted.value(next.value), Redacted.value(first.value))
      assert.strictEqual(reads.count, 2)
      assert.deepStrictEqual(yield* carriedAll(server, []), [CLIENT_SECRET, CLIENT_SECRET, WRONG_SECRET])
      assert.deepStrictEqual((yield* server.requests).map((r) => r.outcome), ["token", "error", "token"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a refresh after a rotation gets InvalidClient once; the next refresh reads the secret again (post)", () =>
    Effect.gen(function*() {
      const { env, reads, server, source } = yield* rotation("post", CLIENT_SECRET)
      yield* source.get
      yield* server.setClientSecret("client", WRONG_SECRET)
      env.set("CLIENT_SECRET", WRONG_SECRET)
      const error = yield* Effect.flip(source.refresh)
      assert.strictEqual(error._tag, "InvalidClient")
      yield* source.refresh
      assert.strictEqual(reads.count, 2)
      assert.deepStrictEqual(yield* carriedAll(server, []), [CLIENT_SECRET, CLIENT_SECRET, WRONG_SECRET])
      assert.isTrue((yield* server.requests).every((r) => r.authMethod === "client_secret_post"))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("client_secret_jwt signs with the secret read again after InvalidClient", () =>
    Effect.gen(function*() {
      const rotated = JWT_SECRET.split("").reverse().join("")
      const { env, reads, server, source } = yield* rotation("jwt", JWT_SECRET)
      yield* source.get
      yield* source.refresh
      yield* server.setClientSecret("client", rotated)
      env.set("CLIENT_SECRET", rotated)
      assert.strictEqual((yield* Effect.flip(source.refresh))._tag, "InvalidClient")
      yield* source.refresh
      assert.strictEqual(reads.count, 2)
      assert.deepStrictEqual(yield* carriedAll(server, [JWT_SECRET, rotated]), [
        JWT_SECRET,
        JWT_SECRET,
        JWT_SECRET,
        rotated
      ])
      assert.isTrue(
        (yield* server.requests).every((r) => r.authMethod === "client_secret_jwt" || r.outcome === "error")
      )
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a pool given a rotated secret as a new value in a new credential object sends it", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
      const pool = yield* TokenPool.make({ policy: noJitter })
      // the application builds its credentials again from its own data, as the pool expects
      const credential = (secret: string) => ({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make(secret)),
        grant: Grant.clientCredentials(),
        timeout: "30 days" as const
      })
      const first = yield* pool.get(credential(CLIENT_SECRET))
      yield* server.setClientSecret("client", WRONG_SECRET)
      // the API refuses the token; the credential the application now builds carries the new secret
      yield* pool.invalidate(credential(WRONG_SECRET), first)
      const next = yield* pool.get(credential(WRONG_SECRET))
      assert.notStrictEqual(Redacted.value(next.value), Redacted.value(first.value))
      assert.deepStrictEqual(yield* carriedAll(server, []), [CLIENT_SECRET, WRONG_SECRET])
      assert.deepStrictEqual((yield* server.requests).map((r) => r.outcome), ["token", "token"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the secret is read once while it works, not for every request", () =>
    Effect.gen(function*() {
      const { reads, server, source } = yield* rotation("basic", CLIENT_SECRET)
      for (let i = 0; i < 5; i++) yield* source.refresh
      assert.strictEqual(yield* server.count(), 6)
      assert.strictEqual(reads.count, 1)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a secret that cannot be read is InvalidConfiguration at make, nothing sent, no value in it", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
      const lines: Array<LogLine> = []
      for (
        const secret of [
          // missing from the provider
          Config.redacted("CLIENT_SECRET").pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))),
          // a read whose own error quotes the value
          Config.redacted(
            Config.string("CLIENT_SECRET").pipe(Config.validate({
              message: `not a secret: ${CLIENT_SECRET}`,
              validation: () => false
            }))
          ).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["CLIENT_SECRET", CLIENT_SECRET]])))),
          // an empty secret
          Effect.succeed(Redacted.make(""))
        ]
      ) {
        const exit = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", secret),
          grant: Grant.clientCredentials()
        }).pipe(collectLogs(lines), Effect.exit)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
        assert.isTrue(error?._tag === "Some", "a typed failure, not a defect")
        if (error?._tag !== "Some") continue
        assert.strictEqual(error.value._tag, "InvalidConfiguration")
        assert.match(error.value.message, /the client secret (could not be read|read is empty)/)
        assertClean(renderings(error.value), [CLIENT_SECRET])
      }
      assert.strictEqual(yield* server.count(), 0)
      assertClean(lines.map((l) => JSON.stringify(l)), [CLIENT_SECRET])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("Basic, post and client_secret_jwt each get a token with a secret given as an effect", () =>
    Effect.gen(function*() {
      for (const method of ["basic", "post", "jwt"] as const) {
        const secret = method === "jwt" ? JWT_SECRET : CLIENT_SECRET
        const { reads, server, source } = yield* rotation(method, secret)
        yield* source.get
        assert.strictEqual(reads.count, 1)
        assert.deepStrictEqual((yield* server.requests).map((r) => r.authMethod), [
          method === "basic" ? "client_secret_basic" : method === "post" ? "client_secret_post" : "client_secret_jwt"
        ])
      }
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the rotated secrets never show in errors or logs", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const { env, server, source } = yield* rotation("basic", CLIENT_SECRET)
      yield* source.get
      yield* server.setClientSecret("client", WRONG_SECRET)
      const error = yield* Effect.flip(source.refresh.pipe(collectLogs(lines)))
      assert.strictEqual(error._tag, "InvalidClient")
      assertClean(renderings(error), [CLIENT_SECRET, WRONG_SECRET])
      env.set("CLIENT_SECRET", WRONG_SECRET)
      yield* source.refresh.pipe(collectLogs(lines))
      assertClean(lines.map((l) => JSON.stringify(l)), [CLIENT_SECRET, WRONG_SECRET])
    }).pipe(Effect.provide(HttpLive)))

  it("the credential key and the endpoint key neither read an effect secret nor differ from a Redacted one", () => {
    const reads = { count: 0 }
    const secret = secretFrom(new Map([["CLIENT_SECRET", CLIENT_SECRET]]), reads)
    const grant = Grant.clientCredentials({ scopes: ["read"] })
    const url = "https://auth.example.com/token"
    for (
      const [read, given] of [
        [ClientAuth.basic("client", secret), ClientAuth.basic("client", Redacted.make(CLIENT_SECRET))],
        [ClientAuth.post("client", secret), ClientAuth.post("client", Redacted.make(CLIENT_SECRET))],
        [ClientAuth.clientSecretJwt("client", secret), ClientAuth.clientSecretJwt("client", Redacted.make(JWT_SECRET))]
      ] as const
    ) {
      assert.strictEqual(Key.encode({ url, clientAuth: read, grant }), Key.encode({ url, clientAuth: given, grant }))
      assert.strictEqual(
        Key.identity({ url, clientAuth: read, grant }),
        Key.identity({ url, clientAuth: given, grant })
      )
      assert.strictEqual(endpointKeyOf({ url, clientAuth: read }), endpointKeyOf({ url, clientAuth: given }))
      assertClean([Key.encode({ url, clientAuth: read, grant }), endpointKeyOf({ url, clientAuth: read })], [
        CLIENT_SECRET
      ])
    }
    assert.strictEqual(reads.count, 0)
  })
})
