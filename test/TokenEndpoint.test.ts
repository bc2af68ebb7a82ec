import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Fiber, Option, Redacted, TestClock } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { ClientAuth, Grant, TokenEndpoint, TokenError, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET, REFRESH, WRONG_SECRET } from "./secrets.js"
import { HttpLive, noJitter, settle } from "./util.js"

type Tag = TokenError.TokenError["_tag"]
type ErrorOf<T extends Tag> = Extract<TokenError.TokenError, { readonly _tag: T }>

/** Asserts the tag and narrows to that class. */
const expectTag = <T extends Tag>(error: TokenError.TokenError, tag: T): ErrorOf<T> => {
  assert.strictEqual(error._tag, tag, error.message)
  return error as ErrorOf<T>
}

/** The error as JSON: every field it keeps, and nothing else. */
const fieldsOf = (error: TokenError.TokenError): Record<string, unknown> => JSON.parse(JSON.stringify(error))

const cc = Grant.clientCredentials({ scopes: ["read", "write"] })

const withServer = (server?: AuthServer.Options, options?: Partial<TokenEndpoint.Options>) =>
  Effect.gen(function*() {
    const fake = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }], ...server })
    const endpoint = yield* TokenEndpoint.make({
      url: fake.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
      ...options
    })
    return { server: fake, endpoint }
  })

/** Sends one client-credentials request answered by `fault`; the request must have reached the server once. */
const failWith = (fault: AuthServer.Fault, options?: Partial<TokenEndpoint.Options>) =>
  Effect.gen(function*() {
    const { endpoint, server } = yield* withServer(undefined, options)
    yield* server.inject(fault)
    const error = yield* Effect.flip(endpoint.request(cc))
    assert.strictEqual(yield* server.count(), 1)
    return { error, server }
  })

/** A 200 with this JSON body. */
const okJson = (body: unknown) => AuthServer.Fault.body(JSON.stringify(body), { contentType: "application/json" })

const succeedWith = (body: unknown, grant: Grant.Grant = cc) =>
  Effect.gen(function*() {
    const { endpoint, server } = yield* withServer()
    yield* server.inject(okJson(body))
    return yield* endpoint.request(grant)
  })

const malformedWith = (fault: AuthServer.Fault) =>
  Effect.map(failWith(fault), ({ error, server }) => ({ error: expectTag(error, "MalformedResponse"), server }))

const oauthBody = (error: string, description?: string) =>
  JSON.stringify({ error, ...(description === undefined ? {} : { error_description: description }) })

/** A bare node:http server for answers the fake cannot give (chunked bodies without Content-Length). */
const rawServer = (listener: Http.RequestListener) =>
  Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer(listener)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`))

describe("TokenEndpoint", () => {
  describe("OAuth error responses (RFC 6749 section 5.2)", () => {
    const codes = [
      ["invalid_request", "InvalidRequest"],
      ["invalid_client", "InvalidClient"],
      ["invalid_grant", "InvalidGrant"],
      ["unauthorized_client", "UnauthorizedClient"],
      ["unsupported_grant_type", "UnsupportedGrantType"],
      ["invalid_scope", "InvalidScope"]
    ] as const
    for (const [code, tag] of codes) {
      it.scoped(`400 ${code} is ${tag}, permanent, with what the server said`, () =>
        Effect.gen(function*() {
          const body = JSON.stringify({
            error: code,
            error_description: `the ${code} description`,
            error_uri: "https://docs.example.com/errors"
          })
          const { error, server } = yield* failWith(AuthServer.Fault.status(400, { body }))
          const e = expectTag(error, tag)
          assert.isFalse(e.transient)
          assert.isFalse(TokenError.isTransient(e))
          assert.isTrue(TokenError.isTokenError(e))
          assert.deepStrictEqual(fieldsOf(e), {
            _tag: tag,
            method: "POST",
            url: server.tokenUrl,
            status: 400,
            error: code,
            description: `the ${code} description`,
            errorUri: "https://docs.example.com/errors"
          })
          assert.strictEqual(e.message, `POST ${server.tokenUrl} (HTTP 400): ${code} - the ${code} description`)
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("an unknown code is OAuthError with the code verbatim", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(
          AuthServer.Fault.status(400, { body: oauthBody("Vendor.Quota_Exceeded", "monthly quota") })
        )
        const e = expectTag(error, "OAuthError")
        assert.strictEqual(e.error, "Vendor.Quota_Exceeded")
        assert.strictEqual(e.description, "monthly quota")
        assert.isFalse(e.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a 403 access_denied from the server is AccessDenied", () =>
      Effect.gen(function*() {
        // the fake's default body for a 403 is {"error":"access_denied"}
        const { error } = yield* failWith(AuthServer.Fault.status(403))
        const e = expectTag(error, "AccessDenied")
        assert.strictEqual(e.status, 403)
        assert.strictEqual(e.error, "access_denied")
      }).pipe(Effect.provide(HttpLive)))

    for (const code of ["server_error", "temporarily_unavailable"]) {
      it.scoped(`the code ${code} is a transient ServerError whatever the status`, () =>
        Effect.gen(function*() {
          const { error } = yield* failWith(AuthServer.Fault.status(400, { body: oauthBody(code) }))
          const e = expectTag(error, "ServerError")
          assert.strictEqual(e.status, 400)
          assert.strictEqual(e.error, code)
          assert.isTrue(e.transient)
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("a 200 carrying an error body is that error, not a token", () =>
      Effect.gen(function*() {
        const grant = yield* failWith(okJson({ error: "invalid_grant", error_description: "code expired" }))
        const e = expectTag(grant.error, "InvalidGrant")
        assert.strictEqual(e.status, 200)
        assert.strictEqual(e.description, "code expired")
        const later = yield* failWith(okJson({ error: "temporarily_unavailable" }))
        assert.isTrue(expectTag(later.error, "ServerError").transient)
        const vendor = yield* failWith(okJson({ error: "slow_down" }))
        assert.strictEqual(expectTag(vendor.error, "OAuthError").error, "slow_down")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the code a body names wins over the status (401 invalid_grant), except 429 and 5xx", () =>
      Effect.gen(function*() {
        const grant = yield* failWith(AuthServer.Fault.status(401, { body: oauthBody("invalid_grant") }))
        assert.strictEqual(expectTag(grant.error, "InvalidGrant").status, 401)
        const down = yield* failWith(AuthServer.Fault.status(503, { body: oauthBody("invalid_request") }))
        assert.strictEqual(expectTag(down.error, "ServerError").error, "invalid_request")
        const limited = yield* failWith(AuthServer.Fault.status(429, { body: oauthBody("invalid_scope") }))
        assert.strictEqual(expectTag(limited.error, "RateLimited").error, "invalid_scope")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("status mapping when the body names no OAuth error", () => {
    it.scoped("401 with an error body, with an empty body and with HTML is InvalidClient", () =>
      Effect.gen(function*() {
        const withBody = yield* failWith(AuthServer.Fault.status(401))
        const a = expectTag(withBody.error, "InvalidClient")
        assert.strictEqual(a.error, "invalid_client")
        assert.strictEqual(a.description, "injected fault")
        const empty = yield* failWith(AuthServer.Fault.status(401, { body: "" }))
        const b = expectTag(empty.error, "InvalidClient")
        assert.deepStrictEqual(fieldsOf(b), {
          _tag: "InvalidClient",
          method: "POST",
          url: empty.server.tokenUrl,
          status: 401,
          error: "invalid_client"
        })
        const html = yield* failWith(
          AuthServer.Fault.status(401, { body: "<html><body>Unauthorized</body></html>", contentType: "text/html" })
        )
        assert.isFalse(expectTag(html.error, "InvalidClient").transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a real wrong secret is InvalidClient", () =>
      Effect.gen(function*() {
        const { endpoint } = yield* withServer(undefined, {
          clientAuth: ClientAuth.basic("client", Redacted.make(WRONG_SECRET))
        })
        const error = expectTag(yield* Effect.flip(endpoint.request(cc)), "InvalidClient")
        assert.strictEqual(error.status, 401)
        assert.strictEqual(error.description, "wrong client secret")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a 401 with an API error representation is still InvalidClient", () =>
      Effect.gen(function*() {
        const body = JSON.stringify({ code: "UNAUTHORIZED", message: "bad credentials" })
        const { error } = yield* failWith(AuthServer.Fault.status(401, { body }))
        const e = expectTag(error, "InvalidClient")
        assert.strictEqual(e.error, "invalid_client")
        assert.strictEqual(e.description, "bad credentials")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("429 with Retry-After in seconds is RateLimited with that Duration", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(AuthServer.Fault.rateLimited(120))
        const e = expectTag(error, "RateLimited")
        assert.strictEqual(e.status, 429)
        assert.isTrue(e.transient)
        assert.isTrue(e.retryAfter !== undefined && Duration.equals(e.retryAfter, Duration.seconds(120)))
        // a duration as people write it, not Duration(2m)
        assert.include(e.message, ", retry after 2m")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("429 with an HTTP-date Retry-After is the time left until that date, by the Clock", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.parse("2030-01-01T00:00:00Z"))
        const { error } = yield* failWith(
          AuthServer.Fault.status(429, {
            body: "<html>slow down</html>",
            contentType: "text/html",
            headers: { "Retry-After": "Tue, 01 Jan 2030 00:02:30 GMT" }
          })
        )
        const e = expectTag(error, "RateLimited")
        assert.strictEqual(Duration.toMillis(e.retryAfter!), 150_000)
        assert.isUndefined(e.error)
        // a date in the past means now, and garbage means no hint at all
        const past = yield* failWith(
          AuthServer.Fault.status(429, { headers: { "Retry-After": "Mon, 31 Dec 2029 23:00:00 GMT" } })
        )
        assert.strictEqual(Duration.toMillis(expectTag(past.error, "RateLimited").retryAfter!), 0)
        const garbage = yield* failWith(AuthServer.Fault.status(429, { headers: { "Retry-After": "soon" } }))
        assert.isUndefined(expectTag(garbage.error, "RateLimited").retryAfter)
      }).pipe(Effect.provide(HttpLive)))

    for (const status of [500, 502, 503, 504, 408]) {
      it.scoped(`${status} is a transient ServerError`, () =>
        Effect.gen(function*() {
          const { error } = yield* failWith(
            AuthServer.Fault.status(status, { body: "<html>upstream broke</html>", contentType: "text/html" })
          )
          const e = expectTag(error, "ServerError")
          assert.strictEqual(e.status, status)
          assert.isUndefined(e.error)
          assert.isTrue(e.transient)
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("503 keeps Retry-After", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(AuthServer.Fault.unavailable(30))
        const e = expectTag(error, "ServerError")
        assert.strictEqual(e.error, "temporarily_unavailable")
        assert.strictEqual(Duration.toSeconds(e.retryAfter!), 30)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("404 with HTML is a permanent MalformedResponse with status, content type and excerpt", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(
          AuthServer.Fault.status(404, {
            body: "<html>\n<body><h1>404 Not Found</h1></body>\n</html>",
            contentType: "text/html; charset=utf-8"
          })
        )
        assert.strictEqual(error.status, 404)
        assert.strictEqual(error.contentType, "text/html; charset=utf-8")
        assert.strictEqual(error.reason, "unexpected HTTP status 404: not JSON")
        assert.strictEqual(error.excerpt, "<html> <body><h1>404 Not Found</h1></body> </html>")
        assert.isUndefined(error.fields)
        assert.isFalse(error.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("another 4xx with JSON that is no error body is MalformedResponse with its field names", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(
          AuthServer.Fault.status(403, { body: JSON.stringify({ message: "forbidden", error: 42 }) })
        )
        assert.strictEqual(error.status, 403)
        assert.deepStrictEqual(error.fields, ["message", "error"])
        assert.isUndefined(error.excerpt)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("API error representations", () => {
    it.scoped("400 INVALID_REPRESENTATION is InvalidRepresentation with its details", () =>
      Effect.gen(function*() {
        const body = JSON.stringify({
          code: "INVALID_REPRESENTATION",
          message: "The representation is invalid",
          errors: [{ code: "REPRESENTATION_MISSING_REQUIRED_FIELD", field: "owner.urn" }, "not a detail"]
        })
        const { error } = yield* failWith(AuthServer.Fault.status(400, { body }))
        const e = expectTag(error, "InvalidRepresentation")
        assert.strictEqual(e.code, "INVALID_REPRESENTATION")
        assert.strictEqual(e.description, "The representation is invalid")
        assert.strictEqual(e.details.length, 1)
        assert.strictEqual(e.details[0]!.field, "owner.urn")
        assert.include(e.message, "[REPRESENTATION_MISSING_REQUIRED_FIELD owner.urn]")
        assert.isFalse(e.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("400 BAD_REQUEST and other API codes are BadRequest with the code kept", () =>
      Effect.gen(function*() {
        for (const code of ["BAD_REQUEST", "QUOTA_EXCEEDED"]) {
          const { error } = yield* failWith(
            AuthServer.Fault.status(400, { body: JSON.stringify({ code, message: "nope" }) })
          )
          const e = expectTag(error, "BadRequest")
          assert.strictEqual(e.code, code)
          assert.deepStrictEqual(e.details, [])
          assert.isFalse(e.transient)
        }
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("ReauthorizationRequired", () => {
    it.scoped("a refused refresh token with no grant to fall back on needs reauthorization", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
        const error = yield* Effect.flip(TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: Grant.refreshToken({ refreshToken: Redacted.make(REFRESH) }),
          policy: noJitter
        }))
        const e = expectTag(error, "ReauthorizationRequired")
        assert.strictEqual(e.reason?._tag, "InvalidGrant")
        assert.isFalse(e.transient)
        assert.strictEqual(yield* server.count("refresh_token"), 1)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("malformed success bodies", () => {
    it.scoped("an HTML page from a proxy with status 200", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(
          AuthServer.Fault.body("<!doctype html><title>Proxy login</title><p>Sign in to continue</p>")
        )
        assert.strictEqual(error.status, 200)
        assert.strictEqual(error.contentType, "text/html")
        assert.strictEqual(error.reason, "not a token response: not JSON")
        assert.strictEqual(error.excerpt, "<!doctype html><title>Proxy login</title><p>Sign in to continue</p>")
        assert.isFalse(error.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a long HTML page is quoted in a short excerpt", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(AuthServer.Fault.body(`<p>${"lorem ipsum ".repeat(500)}</p>`))
        assert.strictEqual(error.excerpt!.length, 201)
        assert.isTrue(error.excerpt!.endsWith("…"))
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("truncated JSON is not JSON, quoted with its token values masked", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(AuthServer.Fault.body(
          "{\"access_token\":\"SlAV32hkKG\",\"token_type\":\"Bearer\",\"refresh_token\":\"8xLOxBtZp8\",\"exp",
          { contentType: "application/json" }
        ))
        assert.strictEqual(error.reason, "not a token response: not JSON")
        assert.strictEqual(error.contentType, "application/json")
        assert.include(error.excerpt!, "\"access_token\":\"***")
        assert.include(error.excerpt!, "\"refresh_token\":\"***")
        assert.notInclude(error.excerpt!, "SlAV32hkKG")
        assert.notInclude(error.excerpt!, "8xLOxBtZp8")
      }).pipe(Effect.provide(HttpLive)))

    const shapes = [
      ["a JSON array", "[{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}]"],
      ["JSON null", "null"],
      ["a JSON number", "42"],
      ["a JSON string", "\"abc.def\""],
      ["a JSON boolean", "true"]
    ] as const
    for (const [shape, body] of shapes) {
      it.scoped(`${shape} is MalformedResponse naming the shape, keeping no value`, () =>
        Effect.gen(function*() {
          const { error } = yield* malformedWith(AuthServer.Fault.body(body, { contentType: "application/json" }))
          assert.strictEqual(error.reason, `not a token response: ${shape}`)
          assert.deepStrictEqual(error.fields, [])
          assert.isUndefined(error.excerpt)
          assert.notInclude(JSON.stringify(error), "abc")
        }).pipe(Effect.provide(HttpLive)))
    }

    const badTokens: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
      ["expires_in: -5", { access_token: "tok", token_type: "Bearer", expires_in: -5 }],
      ["expires_in: \"abc\"", { access_token: "tok", token_type: "Bearer", expires_in: "abc" }],
      ["expires_in: \"1e3\"", { access_token: "tok", token_type: "Bearer", expires_in: "1e3" }],
      ["expires_in: \" 3600\"", { access_token: "tok", token_type: "Bearer", expires_in: " 3600" }],
      ["expires_in: \"-5\"", { access_token: "tok", token_type: "Bearer", expires_in: "-5" }],
      ["expires_in: 0", { access_token: "tok", token_type: "Bearer", expires_in: 0 }],
      ["expires_in: \"0\"", { access_token: "tok", token_type: "Bearer", expires_in: "0" }],
      ["expires_in: 3600.5", { access_token: "tok", token_type: "Bearer", expires_in: 3600.5 }],
      ["missing access_token", { token_type: "Bearer", expires_in: 3600 }],
      ["empty access_token", { access_token: "", token_type: "Bearer", expires_in: 3600 }],
      ["numeric access_token", { access_token: 12345, token_type: "Bearer" }],
      ["missing token_type (RFC 6749 section 5.1: required)", { access_token: "tok", expires_in: 3600 }],
      ["empty refresh_token", { access_token: "tok", token_type: "Bearer", refresh_token: "" }]
    ]
    for (const [name, body] of badTokens) {
      it.scoped(`a token with ${name} is MalformedResponse with its field names only`, () =>
        Effect.gen(function*() {
          const { error } = yield* malformedWith(okJson(body))
          assert.strictEqual(error.reason, "not a valid token response")
          assert.strictEqual(error.status, 200)
          assert.strictEqual(error.contentType, "application/json")
          assert.deepStrictEqual(error.fields, Object.keys(body))
          assert.isUndefined(error.excerpt)
          assert.notInclude(JSON.stringify(error), "tok\"")
        }).pipe(Effect.provide(HttpLive)))
    }

    it.scoped("an empty 200 body", () =>
      Effect.gen(function*() {
        const { error } = yield* malformedWith(AuthServer.Fault.body("", { contentType: "application/json" }))
        assert.strictEqual(error.reason, "not a token response: empty body")
        assert.isUndefined(error.excerpt)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("bodies are read up to exactly 1 MiB", () =>
      Effect.gen(function*() {
        const padded = (size: number) => {
          const head = JSON.stringify({ access_token: "tok", token_type: "Bearer", expires_in: 60, pad: "" })
          return head.slice(0, -2) + "x".repeat(size - head.length) + "\"}"
        }
        assert.strictEqual(Buffer.byteLength(padded(1024 * 1024)), 1024 * 1024)
        const token = yield* succeedWith(JSON.parse(padded(1024 * 1024)))
        assert.strictEqual(Redacted.value(token.value), "tok")
        const { error } = yield* malformedWith(
          AuthServer.Fault.body(padded(1024 * 1024 + 1), { contentType: "application/json" })
        )
        assert.strictEqual(error.reason, "body larger than 1 MiB")
        assert.isUndefined(error.excerpt)
        assert.isUndefined(error.fields)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a chunked body with no Content-Length is cut at 1 MiB, not buffered whole", () =>
      Effect.gen(function*() {
        const limit = 64 * 1024 * 1024
        const hungUp = yield* Deferred.make<number>()
        const url = yield* rawServer((req, res) => {
          req.resume()
          res.writeHead(200, { "content-type": "application/json" })
          res.on("error", () => {})
          const chunk = Buffer.alloc(64 * 1024, "a")
          let sent = 0
          res.on("close", () => Deferred.unsafeDone(hungUp, Effect.succeed(sent)))
          const write = (): void => {
            while (sent < limit && !res.destroyed) {
              sent += chunk.length
              if (!res.write(chunk)) return void res.once("drain", write)
            }
            res.end()
          }
          write()
        })
        const endpoint = yield* TokenEndpoint.make({ url, clientAuth: ClientAuth.post("c", Redacted.make("s")) })
        const error = expectTag(yield* Effect.flip(endpoint.request(cc)), "MalformedResponse")
        assert.strictEqual(error.reason, "body larger than 1 MiB")
        assert.strictEqual(error.status, 200)
        const sent = yield* Deferred.await(hungUp)
        assert.isBelow(sent, 16 * 1024 * 1024, "the client hung up long before the server finished")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("accepted token responses", () => {
    it.scoped("expires_in as a number and as a string of digits", () =>
      Effect.gen(function*() {
        for (const expires_in of [3600, "3600"]) {
          const token = yield* succeedWith({ access_token: "tok", token_type: "Bearer", expires_in })
          assert.strictEqual(token.issuedAt, 0)
          assert.strictEqual(token.expiresAt, 3_600_000)
          assert.strictEqual(token.lifetimeSource, "expires_in")
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the fake's string expires_in (Barracuda style) over the whole path", () =>
      Effect.gen(function*() {
        const { endpoint } = yield* withServer({ expiresIn: "string", lifetimeSeconds: 7200 })
        const token = yield* endpoint.request(cc)
        assert.strictEqual(token.expiresAt! - token.issuedAt, 7_200_000)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("token_type is case-insensitive for bearer, other types are kept", () =>
      Effect.gen(function*() {
        const cases = [["bearer", "Bearer"], ["BEARER", "Bearer"], ["BeArEr", "Bearer"], ["mac", "mac"], [
          "DPoP",
          "DPoP"
        ]]
        for (const [sent, kept] of cases) {
          const token = yield* succeedWith({ access_token: "tok", token_type: sent })
          assert.strictEqual(token.type, kept, sent)
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("scope: granted scopes are the response's, split on whitespace", () =>
      Effect.gen(function*() {
        const split = yield* succeedWith({ access_token: "tok", token_type: "Bearer", scope: " read  write\tadmin " })
        assert.deepStrictEqual(split.scopes, ["read", "write", "admin"])
        // the server may grant less than asked for (RFC 6749 section 3.3): what it granted is recorded
        const narrowed = yield* succeedWith({ access_token: "tok", token_type: "Bearer", scope: "read" })
        assert.deepStrictEqual(narrowed.scopes, ["read"])
        // without scope, the requested scopes were granted
        const requested = yield* succeedWith({ access_token: "tok", token_type: "Bearer" })
        assert.deepStrictEqual(requested.scopes, ["read", "write"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("refresh_token is kept redacted; unknown fields are kept in extra, redacted", () =>
      Effect.gen(function*() {
        const idToken = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."
        const token = yield* succeedWith({
          access_token: "live-access-value",
          token_type: "Bearer",
          expires_in: 60,
          refresh_token: "live-refresh-value",
          id_token: idToken,
          vendor: { region: "eu", tier: 2 }
        })
        assert.strictEqual(Redacted.value(token.value), "live-access-value")
        assert.strictEqual(Redacted.value(token.refreshToken!), "live-refresh-value")
        assert.deepStrictEqual(Redacted.value(token.extra), { id_token: idToken, vendor: { region: "eu", tier: 2 } })
        const printed = JSON.stringify(token)
        for (const secret of ["live-access-value", "live-refresh-value", idToken, "region"]) {
          assert.notInclude(printed, secret)
        }
        assert.strictEqual(String(token.extra), "<redacted>")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("without expires_in: a JWT exp, else the default lifetime, else none", () =>
      Effect.gen(function*() {
        const { endpoint } = yield* withServer({ jwtAccessTokens: true, expiresIn: "omit", lifetimeSeconds: 600 })
        const jwt = yield* endpoint.request(cc)
        assert.strictEqual(jwt.lifetimeSource, "jwt")
        assert.strictEqual(jwt.expiresAt, 600_000)
        const plain = yield* succeedWith({ access_token: "tok", token_type: "Bearer" })
        assert.strictEqual(plain.lifetimeSource, "none")
        assert.isUndefined(plain.expiresAt)
        const fallback = yield* withServer({ expiresIn: "omit" }, { defaultLifetime: "5 minutes" })
        const defaulted = yield* fallback.endpoint.request(cc)
        assert.strictEqual(defaulted.lifetimeSource, "default")
        assert.strictEqual(defaulted.expiresAt, 300_000)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("request shape", () => {
    it.scoped("POST form-urlencoded, Accept: application/json, no trace headers, extra headers kept", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(undefined, { headers: { "x-tenant": "acme" } })
        yield* endpoint.request(Grant.clientCredentials({ extraParams: { audience: "https://api.example.com" } }))
        const [request] = yield* server.requests
        assert.strictEqual(request!.method, "POST")
        assert.strictEqual(request!.path, "/token")
        assert.strictEqual(request!.headers["content-type"], "application/x-www-form-urlencoded")
        assert.strictEqual(request!.headers.accept, "application/json")
        assert.strictEqual(request!.headers["x-tenant"], "acme")
        assert.isUndefined(request!.headers.traceparent)
        assert.isUndefined(request!.headers.b3)
        assert.deepStrictEqual(request!.form, { grant_type: "client_credentials", audience: "https://api.example.com" })
        assert.strictEqual(request!.outcome, "token")
      }).pipe(Effect.provide(HttpLive)))

    const secret = "a:b+c/ü&="

    it.scoped("client_secret_basic form-encodes id and secret before base64 by default (RFC 6749 2.3.1)", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(
          { clients: [{ clientId: "app id", clientSecret: secret, basicEncoding: "form" }] },
          { clientAuth: ClientAuth.basic("app id", Redacted.make(secret)) }
        )
        yield* endpoint.request(cc)
        const [request] = yield* server.requests
        const expected = Buffer.from("app+id:a%3Ab%2Bc%2F%C3%BC%26%3D", "utf8").toString("base64")
        assert.strictEqual(request!.headers.authorization, `Basic ${expected}`)
        assert.strictEqual(request!.authMethod, "client_secret_basic")
        assert.strictEqual(request!.clientId, "app id")
        assert.isUndefined(request!.form.client_secret)
        assert.isUndefined(request!.form.client_id)
        assert.strictEqual(request!.outcome, "token")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("client_secret_basic with plain encoding is base64(id:secret), for providers that want it", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(
          { clients: [{ clientId: "app", clientSecret: secret, basicEncoding: "plain" }] },
          { clientAuth: ClientAuth.basic("app", Redacted.make(secret), { encoding: "plain" }) }
        )
        yield* endpoint.request(cc)
        const [request] = yield* server.requests
        assert.strictEqual(
          request!.headers.authorization,
          `Basic ${Buffer.from("app:a:b+c/ü&=", "utf8").toString("base64")}`
        )
        assert.strictEqual(request!.outcome, "token")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the two Basic encodings differ for such a secret: each is refused where the other is expected", () =>
      Effect.gen(function*() {
        const plainOnly = yield* withServer(
          { clients: [{ clientId: "app", clientSecret: secret, basicEncoding: "plain" }] },
          { clientAuth: ClientAuth.basic("app", Redacted.make(secret)) }
        )
        expectTag(yield* Effect.flip(plainOnly.endpoint.request(cc)), "InvalidClient")
        const formOnly = yield* withServer(
          { clients: [{ clientId: "app", clientSecret: secret, basicEncoding: "form" }] },
          { clientAuth: ClientAuth.basic("app", Redacted.make(secret), { encoding: "plain" }) }
        )
        expectTag(yield* Effect.flip(formOnly.endpoint.request(cc)), "InvalidClient")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("client_secret_post sends id and secret in the form, no Authorization header", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(
          { clients: [{ clientId: "app", clientSecret: secret }] },
          { clientAuth: ClientAuth.post("app", Redacted.make(secret)) }
        )
        yield* endpoint.request(cc)
        const [request] = yield* server.requests
        assert.isUndefined(request!.headers.authorization)
        assert.strictEqual(request!.form.client_id, "app")
        assert.strictEqual(request!.form.client_secret, secret)
        assert.include(request!.rawBody, "client_secret=a%3Ab%2Bc%2F%C3%BC%26%3D")
        assert.strictEqual(request!.authMethod, "client_secret_post")
        assert.strictEqual(request!.outcome, "token")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("none sends only the client id", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(
          { clients: [{ clientId: "public" }] },
          { clientAuth: ClientAuth.none("public") }
        )
        yield* endpoint.request(Grant.password({ username: "user", password: Redacted.make("pass") }))
        const [request] = yield* server.requests
        assert.isUndefined(request!.headers.authorization)
        assert.deepStrictEqual(request!.form, {
          grant_type: "password",
          username: "user",
          password: "pass",
          client_id: "public"
        })
        assert.strictEqual(request!.authMethod, "none")
        assert.strictEqual(request!.outcome, "token")
        // the fake refuses client_credentials without a secret: UnauthorizedClient from a real answer
        const refused = expectTag(yield* Effect.flip(endpoint.request(cc)), "UnauthorizedClient")
        assert.strictEqual(refused.error, "unauthorized_client")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("scopes are joined by a space, written + on the wire", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer()
        const token = yield* endpoint.request(cc)
        const [request] = yield* server.requests
        assert.include(request!.rawBody, "scope=read+write")
        assert.strictEqual(request!.form.scope, "read write")
        assert.deepStrictEqual(token.scopes, ["read", "write"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a custom scopeSeparator joins the scopes", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(undefined, { scopeSeparator: "," })
        yield* endpoint.request(cc)
        const [request] = yield* server.requests
        assert.include(request!.rawBody, "scope=read%2Cwrite")
        assert.strictEqual(request!.form.scope, "read,write")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a client id that plain Basic cannot carry and an empty id are refused at build", () =>
      Effect.gen(function*() {
        const colon = yield* Effect.flip(TokenEndpoint.make({
          url: "https://auth.example.com/token",
          clientAuth: ClientAuth.basic("a:b", Redacted.make("s"), { encoding: "plain" })
        }))
        assert.strictEqual(colon._tag, "InvalidConfiguration")
        const empty = yield* Effect.flip(TokenEndpoint.make({
          url: "https://auth.example.com/token",
          clientAuth: ClientAuth.post("", Redacted.make("s"))
        }))
        assert.strictEqual(empty._tag, "InvalidConfiguration")
        // form encoding escapes the colon, so the same id is fine there
        const formed = yield* TokenEndpoint.make({
          url: "https://auth.example.com/token",
          clientAuth: ClientAuth.basic("a:b", Redacted.make("s"))
        })
        assert.strictEqual(formed.url, "https://auth.example.com/token")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("transport", () => {
    it.scoped("a dropped connection is a transient TransportError(Connection), sent once", () =>
      Effect.gen(function*() {
        const { error, server } = yield* failWith(AuthServer.Fault.drop())
        const e = expectTag(error, "TransportError")
        assert.strictEqual(e.reason, "Connection")
        assert.strictEqual(e.method, "POST")
        assert.strictEqual(e.url, server.tokenUrl)
        assert.isTrue(e.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a refused connection is a TransportError(Connection)", () =>
      Effect.gen(function*() {
        // a port that was just free: bind, note it, close
        const url = yield* Effect.scoped(rawServer(() => {}))
        const endpoint = yield* TokenEndpoint.make({ url, clientAuth: ClientAuth.post("c", Redacted.make("s")) })
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "TransportError")
        assert.strictEqual(e.reason, "Connection")
        assert.strictEqual(e.url, url)
        assert.isTrue(e.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.live("a server slower than the timeout is a TransportError(Timeout), on time", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer(undefined, { timeout: "200 millis" })
        yield* server.inject(AuthServer.Fault.delay(10_000))
        const start = yield* Clock.currentTimeMillis
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "TransportError")
        const elapsed = (yield* Clock.currentTimeMillis) - start
        assert.strictEqual(e.reason, "Timeout")
        assert.isTrue(e.transient)
        assert.isAtLeast(elapsed, 190)
        assert.isBelow(elapsed, 3_000)
      }).pipe(Effect.scoped, Effect.provide(HttpLive)), { timeout: 10_000 })

    it.scoped("the default timeout is 30 seconds", () =>
      Effect.gen(function*() {
        const { endpoint, server } = yield* withServer()
        yield* server.inject(AuthServer.Fault.delay(60_000))
        const fiber = yield* Effect.fork(endpoint.request(cc))
        while ((yield* server.count()) === 0) yield* settle
        yield* TestClock.adjust("29 seconds")
        yield* settle
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "still waiting after 29 s")
        yield* TestClock.adjust("1 second")
        const e = expectTag(yield* Effect.flip(Fiber.join(fiber)), "TransportError")
        assert.strictEqual(e.reason, "Timeout")
      }).pipe(Effect.provide(HttpLive)))

    for (
      const [client, layer] of [["undici", HttpLive], ["fetch", FetchHttpClient.layer]] as const
    ) {
      for (const status of [302, 307]) {
        it.scoped(`a ${status} is refused, never followed (${client})`, () =>
          Effect.gen(function*() {
            const target = yield* AuthServer.make()
            const { error, server } = yield* failWith(
              AuthServer.Fault.status(status, {
                headers: { Location: target.tokenUrl },
                body: "<a href=\"/token\">moved</a>",
                contentType: "text/html"
              })
            )
            const e = expectTag(error, "MalformedResponse")
            assert.strictEqual(e.status, status)
            assert.strictEqual(e.reason, "redirect refused")
            assert.isUndefined(e.excerpt)
            assert.strictEqual(e.url, server.tokenUrl)
            assert.isFalse(e.transient)
            assert.strictEqual((yield* target.requests).length, 0, "the Location was never requested")
          }).pipe(Effect.provide(layer)))
      }
    }

    it.scoped("the user's fetch options are kept, with redirects still refused", () =>
      Effect.gen(function*() {
        const target = yield* AuthServer.make()
        const { endpoint, server } = yield* withServer()
        yield* endpoint.request(cc)
        yield* server.inject(AuthServer.Fault.status(307, { headers: { Location: target.tokenUrl } }))
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "MalformedResponse")
        assert.strictEqual(e.reason, "redirect refused")
        assert.strictEqual((yield* target.requests).length, 0)
        const [first] = yield* server.requests
        assert.strictEqual(first!.headers["x-proxy-tenant"], "corp")
      }).pipe(
        Effect.provideService(FetchHttpClient.RequestInit, {
          headers: { "x-proxy-tenant": "corp" },
          redirect: "follow"
        }),
        Effect.provide(FetchHttpClient.layer)
      ))

    it.scoped("a body that breaks off is a transient TransportError(Body)", () =>
      Effect.gen(function*() {
        const url = yield* rawServer((req, res) => {
          req.resume()
          res.writeHead(200, { "content-type": "application/json", "content-length": "500" })
          res.write("{\"access_token\":\"abc", () => res.destroy())
        })
        const endpoint = yield* TokenEndpoint.make({ url, clientAuth: ClientAuth.post("c", Redacted.make("s")) })
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "TransportError")
        assert.strictEqual(e.reason, "Body")
        assert.isTrue(e.transient)
      }).pipe(Effect.provide(HttpLive)))

    it.live("a body that stalls after the headers times out too", () =>
      Effect.gen(function*() {
        const url = yield* rawServer((req, res) => {
          req.resume()
          res.writeHead(200, { "content-type": "application/json", "content-length": "500" })
          res.write("{\"access_token\":")
        })
        const endpoint = yield* TokenEndpoint.make({
          url,
          clientAuth: ClientAuth.post("c", Redacted.make("s")),
          timeout: "200 millis"
        })
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "TransportError")
        assert.strictEqual(e.reason, "Timeout")
      }).pipe(Effect.scoped, Effect.provide(HttpLive)), { timeout: 10_000 })
  })

  describe("endpoint URL", () => {
    it.scoped("http:// to a non-loopback host is refused at build; https and loopback http are accepted", () =>
      Effect.gen(function*() {
        for (const url of ["http://auth.example.com/token", "http://10.0.0.1/token", "ftp://auth.example.com/x"]) {
          const e = yield* Effect.flip(
            TokenEndpoint.make({ url, clientAuth: ClientAuth.post("c", Redacted.make("s")) })
          )
          assert.strictEqual(e._tag, "InvalidConfiguration", url)
        }
        const notUrl = yield* Effect.flip(
          TokenEndpoint.make({ url: "not a url", clientAuth: ClientAuth.post("c", Redacted.make("s")) })
        )
        assert.strictEqual(notUrl._tag, "InvalidConfiguration")
        for (
          const url of [
            "https://auth.example.com/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/token"
          ]
        ) {
          const endpoint = yield* TokenEndpoint.make({ url, clientAuth: ClientAuth.post("c", Redacted.make("s")) })
          assert.strictEqual(endpoint.url, url)
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("credentials in the URL are refused, and the error does not repeat them", () =>
      Effect.gen(function*() {
        for (const url of ["https://me:hunter2@auth.example.com/token", "http://me:hunter2@127.0.0.1/token"]) {
          const e = yield* Effect.flip(
            TokenEndpoint.make({ url: new URL(url), clientAuth: ClientAuth.post("c", Redacted.make("s")) })
          )
          assert.strictEqual(e._tag, "InvalidConfiguration")
          assert.notInclude(String(e), "hunter2")
          assert.notInclude(JSON.stringify(e), "hunter2")
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("errors show the URL without its query; the query is still sent", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const endpoint = yield* TokenEndpoint.make({
          url: `${server.tokenUrl}?tenant=acme&sig=query-secret`,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret"))
        })
        assert.strictEqual(endpoint.url, server.tokenUrl)
        yield* server.inject(AuthServer.Fault.status(500))
        const e = expectTag(yield* Effect.flip(endpoint.request(cc)), "ServerError")
        assert.strictEqual(e.url, server.tokenUrl)
        assert.notInclude(String(e), "query-secret")
        assert.notInclude(JSON.stringify(e), "query-secret")
        assert.strictEqual((yield* server.requests)[0]!.path, "/token")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("what a server says is cleaned", () => {
    it.scoped("error_description is capped at 256 characters", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(
          AuthServer.Fault.status(400, { body: oauthBody("invalid_grant", "x".repeat(5000)) })
        )
        const e = expectTag(error, "InvalidGrant")
        assert.strictEqual(e.description, "x".repeat(256) + "…")
        assert.isBelow(e.message.length, 400)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("control characters are stripped from description and code", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(
          AuthServer.Fault.status(400, {
            body: oauthBody("vendor\u001b[2Jcode", "bad\r\n2030-01-01 INFO forged log line\u0007\u009b \u001b[31mred")
          })
        )
        const e = expectTag(error, "OAuthError")
        const control = /[\u0000-\u001f\u007f-\u009f]/
        assert.isFalse(control.test(e.description!), e.description)
        assert.isFalse(control.test(e.error), e.error)
        assert.isFalse(control.test(e.message))
        assert.include(e.description!, "forged log line")
        assert.include(e.error, "vendor")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a description of only control characters is no description", () =>
      Effect.gen(function*() {
        const { error } = yield* failWith(AuthServer.Fault.status(400, { body: oauthBody("invalid_scope", "\r\n\t") }))
        assert.isUndefined(expectTag(error, "InvalidScope").description)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("transient", () => {
    it("is true exactly for RateLimited, ServerError and TransportError", () => {
      const at = { method: "POST", url: "https://auth.example.com/token" }
      const oauth = { ...at, status: 400, error: "x" }
      const api = { ...at, status: 400, code: "X", details: [] }
      const errors: ReadonlyArray<readonly [TokenError.TokenError, boolean]> = [
        [new TokenError.InvalidRequest(oauth), false],
        [new TokenError.InvalidClient(oauth), false],
        [new TokenError.InvalidGrant(oauth), false],
        [new TokenError.UnauthorizedClient(oauth), false],
        [new TokenError.UnsupportedGrantType(oauth), false],
        [new TokenError.InvalidScope(oauth), false],
        [new TokenError.OAuthError(oauth), false],
        [new TokenError.AccessDenied(oauth), false],
        [new TokenError.DeviceCodeExpired(oauth), false],
        [new TokenError.InvalidRepresentation(api), false],
        [new TokenError.BadRequest(api), false],
        [new TokenError.RateLimited({ ...at, status: 429 }), true],
        [new TokenError.ServerError({ ...at, status: 503 }), true],
        [new TokenError.TransportError({ ...at, reason: "Timeout" }), true],
        [new TokenError.MalformedResponse({ ...at, status: 200, reason: "x" }), false],
        [new TokenError.InvalidConfiguration({ reason: "x" }), false],
        [new TokenError.StateMismatch(), false],
        [new TokenError.OwnerGone({ provider: "p", detail: "x" }), false],
        [new TokenError.ReauthorizationRequired({ detail: "x" }), false]
      ]
      assert.strictEqual(new Set(errors.map(([e]) => e._tag)).size, TokenError.TokenError.members.length)
      for (const [error, transient] of errors) {
        assert.strictEqual(error.transient, transient, error._tag)
        assert.strictEqual(TokenError.isTransient(error), transient, error._tag)
        assert.isTrue(TokenError.isTokenError(error))
      }
      assert.isFalse(TokenError.isTokenError(new Error("x")))
    })
  })
})
