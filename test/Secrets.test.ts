import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, HashMap, Inspectable, Layer, List, Logger, LogLevel, Redacted, TestClock } from "effect"
import * as Util from "node:util"
import type { AccessToken } from "tokenwarden"
import { ClientAuth, Grant, TokenEndpoint, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { ACCESS, CLIENT_SECRET, ID_TOKEN, PASSWORD, REFRESH, renderings, WRONG_SECRET } from "./secrets.js"
import { HttpLive, noJitter, waitFor } from "./util.js"

const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)
const base64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

/** Every way a secret could show up in text: as is, form-encoded, in a Basic header, and a distinctive part. */
const forms = (secret: string): ReadonlyArray<string> => [
  secret,
  form(secret),
  base64(`client:${secret}`),
  base64(`client:${form(secret)}`),
  // a secret masked only in part leaks the rest
  secret.slice(0, 6),
  secret.slice(-6)
]

const SECRETS: ReadonlyArray<string> = [CLIENT_SECRET, WRONG_SECRET, PASSWORD, ACCESS, REFRESH, ID_TOKEN].flatMap(
  forms
)

const assertClean = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>) => {
  assert.isAbove(texts.join("").length, 0)
  for (const text of texts) {
    for (const secret of secrets) assert.notInclude(text, secret, `a secret leaked into: ${text}`)
  }
}

/** A logger that keeps everything it is given, rendered every way a user's logger might. */
const capture = (lines: Array<string>) =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make((options) => {
        lines.push(Logger.logfmtLogger.log(options))
        lines.push(Logger.jsonLogger.log(options))
        lines.push(Inspectable.format(options.message))
        lines.push(Cause.pretty(options.cause))
        for (const [key, value] of HashMap.toEntries(options.annotations)) {
          lines.push(`${key}=${Inspectable.format(value)}`)
        }
        for (const span of List.toArray(options.spans)) lines.push(span.label)
      })
    ),
    Logger.minimumLogLevel(LogLevel.All)
  )

const html = (inner: string) => `<html><head><title>Proxy error</title></head><body><pre>${inner}</pre></body></html>`

/** A proxy page that echoes the request body it received. */
const echoBody = html(
  `client_secret=${form(CLIENT_SECRET)}&password=${form(PASSWORD)}&refresh_token=${REFRESH}&grant_type=password`
)
/** A proxy page that echoes the request headers it received. */
const echoHeaders = html(
  `Authorization: Bearer ${ACCESS}\nAuthorization: Basic ${base64(`client:${CLIENT_SECRET}`)}`
)

const confidential = { clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] }
const alice = { users: [{ username: "alice", password: PASSWORD }] }
const passwordGrant = Grant.password({ username: "alice", password: Redacted.make(PASSWORD), scopes: ["read"] })

const withEndpoint = (clientSecret = CLIENT_SECRET) =>
  Effect.gen(function*() {
    const server = yield* AuthServer.make({ ...confidential, ...alice })
    const endpoint = yield* TokenEndpoint.make({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make(clientSecret))
    })
    return { server, endpoint }
  })

const failWith = (fault: AuthServer.Fault) =>
  Effect.gen(function*() {
    const { endpoint, server } = yield* withEndpoint()
    yield* server.inject(fault)
    return yield* Effect.flip(endpoint.request(passwordGrant))
  })

describe("secret hygiene", () => {
  describe("errors from real failures", () => {
    it.scoped("a token body with live tokens and an invalid expires_in keeps field names only", () =>
      Effect.gen(function*() {
        const error = yield* failWith(AuthServer.Fault.body(
          JSON.stringify({
            access_token: ACCESS,
            token_type: "Bearer",
            expires_in: -5,
            refresh_token: REFRESH,
            id_token: ID_TOKEN
          }),
          { contentType: "application/json" }
        ))
        assert.strictEqual(error._tag, "MalformedResponse")
        assert.deepStrictEqual(
          error._tag === "MalformedResponse" && error.fields,
          ["access_token", "token_type", "expires_in", "refresh_token", "id_token"]
        )
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an error_description that echoes the request keeps its prose and loses the secrets", () =>
      Effect.gen(function*() {
        const description = `bad request body: grant_type=password&password=${
          form(PASSWORD)
        }&client_secret=${CLIENT_SECRET}; "refresh_token": "${REFRESH}" Bearer ${ACCESS} \u202egnp.exe token: expired`
        const error = yield* failWith(AuthServer.Fault.status(400, {
          body: JSON.stringify({ error: "invalid_request", error_description: description })
        }))
        assert.strictEqual(error._tag, "InvalidRequest")
        const kept = error._tag === "InvalidRequest" ? error.description ?? "" : ""
        assert.include(kept, "bad request body: grant_type=password&password=***")
        assert.include(kept, "token: expired", "prose about tokens is not masked")
        assert.notInclude(kept, "\u202e", "bidi overrides are stripped")
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a truncated token body is quoted with its tokens masked", () =>
      Effect.gen(function*() {
        const body = JSON.stringify({ access_token: ACCESS, refresh_token: REFRESH, id_token: ID_TOKEN }).slice(0, -3)
        const error = yield* failWith(AuthServer.Fault.body(body, { contentType: "application/json" }))
        assert.strictEqual(error._tag, "MalformedResponse")
        const excerpt = error._tag === "MalformedResponse" ? error.excerpt ?? "" : ""
        assert.include(excerpt, "\"access_token\":\"***")
        assert.include(excerpt, "\"refresh_token\":\"***")
        assert.include(excerpt, "\"id_token\":\"***")
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))

    for (const status of [200, 400, 403]) {
      it.scoped(`an HTML proxy page (${status}) echoing the request body is quoted masked`, () =>
        Effect.gen(function*() {
          const error = yield* failWith(AuthServer.Fault.body(echoBody, { status }))
          assert.strictEqual(error._tag, "MalformedResponse")
          const excerpt = error._tag === "MalformedResponse" ? error.excerpt ?? "" : ""
          // the secrets sat inside the quoted window, so it is the masking that keeps them out
          assert.include(excerpt, "client_secret=***&password=***&refresh_token=***")
          assertClean(renderings(error), SECRETS)
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("an HTML proxy page echoing the Authorization headers is quoted masked", () =>
      Effect.gen(function*() {
        const error = yield* failWith(AuthServer.Fault.body(echoHeaders))
        assert.strictEqual(error._tag, "MalformedResponse")
        const excerpt = error._tag === "MalformedResponse" ? error.excerpt ?? "" : ""
        // the Basic value is the one this request sent: scrubbed whole, scheme included
        assert.include(excerpt, "Authorization: Bearer *** Authorization: ***")
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a debugging proxy's page quoting the parsed form as JSON is masked up to each closing quote", () =>
      Effect.gen(function*() {
        const page = html(JSON.stringify(
          { form: { client_secret: "a:b+c/ü&=x9Q,;z", password: PASSWORD, note: "it's \"quoted\"" } },
          null,
          1
        ))
        const error = yield* failWith(AuthServer.Fault.body(page))
        assert.strictEqual(error._tag, "MalformedResponse")
        const excerpt = error._tag === "MalformedResponse" ? error.excerpt ?? "" : ""
        assert.include(excerpt, "\"client_secret\": \"***\"")
        assert.include(excerpt, "\"password\": \"***\"")
        assert.include(excerpt, "\"note\": \"it's \\\"quoted\\\"\"", "text that is no credential is kept")
        assertClean(renderings(error), [...SECRETS, ...forms("a:b+c/ü&=x9Q,;z"), "&=x9Q", ";z"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("echoing pages with error statuses keep no body at all", () =>
      Effect.gen(function*() {
        for (const [status, tag] of [[401, "InvalidClient"], [429, "RateLimited"], [502, "ServerError"]] as const) {
          const error = yield* failWith(AuthServer.Fault.body(echoBody + echoHeaders, { status }))
          assert.strictEqual(error._tag, tag)
          assertClean(renderings(error), SECRETS)
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a wrong client secret is InvalidClient without the secret", () =>
      Effect.gen(function*() {
        const { endpoint } = yield* withEndpoint(WRONG_SECRET)
        const error = yield* Effect.flip(endpoint.request(passwordGrant))
        assert.strictEqual(error._tag, "InvalidClient")
        assert.include(error.message, "wrong client secret")
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a wrong password is InvalidGrant without the password", () =>
      Effect.gen(function*() {
        const { endpoint } = yield* withEndpoint()
        const error = yield* Effect.flip(
          endpoint.request(Grant.password({ username: "alice", password: Redacted.make(PASSWORD + "x") }))
        )
        assert.strictEqual(error._tag, "InvalidGrant")
        assertClean(renderings(error), [...SECRETS, PASSWORD + "x"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a refused refresh token: ReauthorizationRequired and its reason hold no token", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make(confidential)
        const error = yield* Effect.flip(TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: Grant.refreshToken({ refreshToken: Redacted.make(REFRESH) })
        }))
        assert.strictEqual(error._tag, "ReauthorizationRequired")
        assert.strictEqual(error._tag === "ReauthorizationRequired" && error.reason?._tag, "InvalidGrant")
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("logs", () => {
    it.scoped("a token source's own logs through failures, retries and a refused refresh token hold no secret", () => {
      const lines: Array<string> = []
      return Effect.gen(function*() {
        const server = yield* AuthServer.make({ ...confidential, ...alice, lifetimeSeconds: 3600 })
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: passwordGrant,
          policy: noJitter
        })
        const first = yield* source.get
        // a proxy answers the refresh with a page echoing the request: permanent
        yield* server.inject(AuthServer.Fault.body(echoBody + echoHeaders))
        yield* TestClock.adjust("45 minutes")
        const failed = yield* waitFor(source, (s) => s._tag === "Failed")
        // then an echoing 502 and a dropped connection: transient, retried
        yield* server.inject(
          AuthServer.Fault.status(502, { body: echoBody, contentType: "text/html" }),
          AuthServer.Fault.drop()
        )
        const retrying = yield* Effect.fork(source.refresh)
        yield* waitFor(source, (s) => s._tag === "Retrying" && s.attempt === 1)
        yield* TestClock.adjust("2 seconds")
        yield* waitFor(source, (s) => s._tag === "Retrying" && s.attempt === 2)
        yield* TestClock.adjust("5 seconds")
        const recovered = yield* waitFor(source, (s) => s._tag === "Valid" && s.token !== first)
        yield* retrying.await
        // the user revokes the app: the refresh token is refused and the password grant runs again
        yield* server.revokeAll
        yield* source.refresh
        assert.strictEqual(yield* server.count("password"), 2)

        const issued = (yield* server.issued).flatMap((
          t
        ) => [t.accessToken, ...(t.refreshToken ? [t.refreshToken] : [])])
        assert.isAtLeast(issued.length, 6)
        const log = lines.join("\n")
        // the capture works: the library's messages are all there
        for (
          const message of [
            "token received",
            "token request failed permanently",
            "token request failed; retrying",
            "refresh token refused; running the original grant again",
            "MalformedResponse",
            "ServerError",
            "TransportError"
          ]
        ) {
          assert.include(log, message)
        }
        assertClean(lines, [...SECRETS, ...issued])
        const states = [failed, recovered, yield* source.state]
        assertClean(states.flatMap((s) => [String(s), JSON.stringify(s), Inspectable.format(s)]), [
          ...SECRETS,
          ...issued
        ])
      }).pipe(Effect.provide(Layer.merge(capture(lines), HttpLive)))
    })

    it.scoped("a source that cannot start (wrong secret) logs nothing secret", () => {
      const lines: Array<string> = []
      return Effect.gen(function*() {
        const server = yield* AuthServer.make({ ...confidential, ...alice })
        const error = yield* Effect.flip(TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.post("client", Redacted.make(WRONG_SECRET)),
          grant: passwordGrant
        }))
        assert.strictEqual(error._tag, "InvalidClient")
        yield* Effect.logError("startup failed", Cause.fail(error))
        assert.include(lines.join("\n"), "startup failed")
        assertClean(lines, SECRETS)
        assertClean(renderings(error), SECRETS)
      }).pipe(Effect.provide(Layer.merge(capture(lines), HttpLive)))
    })
  })

  describe("AccessToken", () => {
    it.scoped("prints <redacted> for value, refresh token and extra, every way", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make(confidential)
        yield* server.inject(AuthServer.Fault.body(
          JSON.stringify({
            access_token: ACCESS,
            token_type: "bearer",
            expires_in: 3600,
            refresh_token: REFRESH,
            id_token: ID_TOKEN
          }),
          { contentType: "application/json" }
        ))
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: Grant.clientCredentials({ scopes: ["read"] })
        })
        const token: AccessToken.AccessToken = yield* source.get
        // the values are there, for whoever unwraps them on purpose
        assert.strictEqual(Redacted.value(token.value), ACCESS)
        assert.strictEqual(Redacted.value(token.refreshToken!), REFRESH)
        assert.deepStrictEqual(Redacted.value(token.extra), { id_token: ID_TOKEN })
        const json = JSON.parse(JSON.stringify(token))
        assert.strictEqual(json.value, "<redacted>")
        assert.strictEqual(json.refreshToken, "<redacted>")
        assert.strictEqual(json.extra, "<redacted>")
        assert.strictEqual(json.type, "Bearer")
        const formatted = Inspectable.format(token)
        assert.include(formatted, "\"value\": \"<redacted>\"")
        assert.include(formatted, "\"refreshToken\": \"<redacted>\"")
        assert.include(formatted, "\"extra\": \"<redacted>\"")
        for (const field of [token.value, token.refreshToken!, token.extra]) {
          assert.strictEqual(String(field), "<redacted>")
          assert.strictEqual(Inspectable.toStringUnknown(field), "\"<redacted>\"")
          assert.strictEqual(Util.inspect(field), "<redacted>")
        }
        const state = yield* source.state
        assertClean(
          [
            String(token),
            JSON.stringify(token),
            formatted,
            Inspectable.toStringUnknown(token),
            Util.inspect(token, { depth: 10 }),
            String(state),
            JSON.stringify(state),
            Util.inspect(state, { depth: 10 })
          ],
          SECRETS
        )
      }).pipe(Effect.provide(HttpLive)))
  })
})
