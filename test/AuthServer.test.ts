import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, TestClock } from "effect"
import * as Crypto from "node:crypto"
import * as AuthServer from "../src/testing/AuthServer.js"

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: Record<string, unknown>
}

const call = (url: string, init: RequestInit = {}) =>
  Effect.tryPromise(async (): Promise<Answer> => {
    const res = await fetch(url, init)
    const text = await res.text()
    let json: Record<string, unknown> = {}
    try {
      json = JSON.parse(text)
    } catch {
      // non-JSON bodies are asserted through `text`
    }
    return { status: res.status, headers: res.headers, text, json }
  })

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  call(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
    body
  })

const basic = (id: string, secret: string) => ({
  Authorization: `Basic ${Buffer.from(`${id}:${secret}`, "utf8").toString("base64")}`
})
// RFC 6749 section 2.3.1 / appendix B
const formEncode = (s: string) => encodeURIComponent(s).replace(/%20/g, "+")

const getResource = (server: AuthServer.AuthServer, token: string) =>
  call(server.resourceUrl, { headers: { Authorization: `Bearer ${token}` } })

const CC = "grant_type=client_credentials"

describe("AuthServer", () => {
  it.scoped("client_credentials with Basic, form-encoded per RFC 6749 2.3.1", () =>
    Effect.gen(function*() {
      const secret = "s3c:r+t ü/&="
      const server = yield* AuthServer.make({
        clients: [{ clientId: "app id", clientSecret: secret, basicEncoding: "form" }]
      })
      const ok = yield* post(server.tokenUrl, CC, basic(formEncode("app id"), formEncode(secret)))
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.headers.get("content-type"), "application/json")
      assert.strictEqual(ok.headers.get("cache-control"), "no-store")
      assert.strictEqual(ok.json.token_type, "Bearer")
      assert.strictEqual(ok.json.expires_in, 3600)
      assert.isString(ok.json.access_token)
      assert.isUndefined(ok.json.refresh_token) // RFC 6749 4.4.3
      // the same credentials without form encoding: '+' decodes to a space, so the secret differs
      const plain = yield* post(server.tokenUrl, CC, basic("app id", secret))
      assert.strictEqual(plain.status, 401)
      assert.strictEqual(plain.json.error, "invalid_client")
      assert.strictEqual(plain.headers.get("www-authenticate"), "Basic realm=\"fake\"")
      const [first, second] = yield* server.requests
      assert.strictEqual(first?.authMethod, "client_secret_basic")
      assert.strictEqual(first?.clientId, "app id")
      assert.strictEqual(first?.outcome, "token")
      assert.strictEqual(second?.outcome, "error")
    }))

  it.scoped("client_credentials with Basic, plain encoding", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({
        clients: [{ clientId: "buddy", clientSecret: "a+b/c", basicEncoding: "plain" }]
      })
      const ok = yield* post(server.tokenUrl, CC, basic("buddy", "a+b/c"))
      assert.strictEqual(ok.status, 200)
      const formed = yield* post(server.tokenUrl, CC, basic("buddy", formEncode("a+b/c")))
      assert.strictEqual(formed.status, 401)
      // "either" (the default) accepts both
      const either = yield* AuthServer.make({ clients: [{ clientId: "x", clientSecret: "a+b" }] })
      assert.strictEqual((yield* post(either.tokenUrl, CC, basic("x", "a+b"))).status, 200)
      assert.strictEqual((yield* post(either.tokenUrl, CC, basic("x", "a%2Bb"))).status, 200)
    }))

  it.scoped("client_secret_post, and two methods at once is invalid_request", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const ok = yield* post(server.tokenUrl, `${CC}&client_id=client&client_secret=secret`)
      assert.strictEqual(ok.status, 200)
      const both = yield* post(
        server.tokenUrl,
        `${CC}&client_id=client&client_secret=secret`,
        basic("client", "secret")
      )
      assert.strictEqual(both.status, 400)
      assert.strictEqual(both.json.error, "invalid_request")
      const requests = yield* server.requests
      assert.deepStrictEqual(requests.map((r) => r.authMethod), ["client_secret_post", "client_secret_basic"])
      assert.strictEqual(requests[0]?.clientId, "client")
    }))

  it.scoped("wrong secret or unknown client is 401 invalid_client", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const viaPost = yield* post(server.tokenUrl, `${CC}&client_id=client&client_secret=nope`)
      assert.strictEqual(viaPost.status, 401)
      assert.strictEqual(viaPost.json.error, "invalid_client")
      assert.isString(viaPost.json.error_description)
      assert.isNull(viaPost.headers.get("www-authenticate"))
      const viaBasic = yield* post(server.tokenUrl, CC, basic("client", "nope"))
      assert.strictEqual(viaBasic.status, 401)
      assert.strictEqual(viaBasic.headers.get("www-authenticate"), "Basic realm=\"fake\"")
      const unknown = yield* post(server.tokenUrl, CC, basic("stranger", "secret"))
      assert.strictEqual(unknown.json.error, "invalid_client")
      const none = yield* post(server.tokenUrl, CC)
      assert.strictEqual(none.status, 401)
      assert.lengthOf(yield* server.issued, 0)
    }))

  it.scoped("password grant", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const ok = yield* post(
        server.tokenUrl,
        "grant_type=password&username=user&password=pass",
        basic("client", "secret")
      )
      assert.strictEqual(ok.status, 200)
      assert.isString(ok.json.refresh_token)
      const wrong = yield* post(
        server.tokenUrl,
        "grant_type=password&username=user&password=x",
        basic("client", "secret")
      )
      assert.strictEqual(wrong.status, 400)
      assert.strictEqual(wrong.json.error, "invalid_grant")
      const issued = yield* server.issued
      assert.deepStrictEqual(issued.map((t) => t.grantType), ["password"])
      assert.strictEqual(issued[0]?.accessToken, ok.json.access_token)
      assert.strictEqual(issued[0]?.expiresAt, 3600_000) // TestClock starts at 0
    }))

  it.scoped("refresh rotates: the old refresh token is refused afterwards", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const auth = basic("client", "secret")
      const first = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass&scope=read", auth)
      const old = String(first.json.refresh_token)
      const refreshed = yield* post(server.tokenUrl, `grant_type=refresh_token&refresh_token=${old}`, auth)
      assert.strictEqual(refreshed.status, 200)
      assert.strictEqual(refreshed.json.scope, "read") // the original scope
      assert.isString(refreshed.json.refresh_token)
      assert.notStrictEqual(refreshed.json.refresh_token, old)
      assert.notStrictEqual(refreshed.json.access_token, first.json.access_token)
      const reused = yield* post(server.tokenUrl, `grant_type=refresh_token&refresh_token=${old}`, auth)
      assert.strictEqual(reused.status, 400)
      assert.strictEqual(reused.json.error, "invalid_grant")
      const next = yield* post(
        server.tokenUrl,
        `grant_type=refresh_token&refresh_token=${refreshed.json.refresh_token}`,
        auth
      )
      assert.strictEqual(next.status, 200)
      yield* server.revokeRefreshToken(String(next.json.refresh_token))
      const revoked = yield* post(
        server.tokenUrl,
        `grant_type=refresh_token&refresh_token=${next.json.refresh_token}`,
        auth
      )
      assert.strictEqual(revoked.json.error, "invalid_grant")
    }))

  it.scoped("refresh without rotation omits refresh_token and keeps the old one valid", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ rotateRefreshTokens: false })
      const auth = basic("client", "secret")
      const first = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass", auth)
      const body = `grant_type=refresh_token&refresh_token=${first.json.refresh_token}`
      const a = yield* post(server.tokenUrl, body, auth)
      const b = yield* post(server.tokenUrl, body, auth)
      assert.deepStrictEqual([a.status, b.status], [200, 200])
      assert.isFalse("refresh_token" in a.json)
    }))

  it.scoped("authorization_code with PKCE S256 and redirect_uri", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({ clients: [{ clientId: "spa" }] })
      const verifier = Crypto.randomBytes(32).toString("base64url")
      const challenge = Crypto.createHash("sha256").update(verifier).digest("base64url")
      const redirectUri = "http://127.0.0.1/cb"
      const issue = server.issueCode({
        clientId: "spa",
        redirectUri,
        scope: "openid profile",
        codeChallenge: challenge,
        codeChallengeMethod: "S256"
      })
      const redeem = (code: string, extra: string) =>
        post(server.tokenUrl, `grant_type=authorization_code&client_id=spa&code=${code}&${extra}`)
      const redirect = `redirect_uri=${encodeURIComponent(redirectUri)}`

      const code = yield* issue
      const ok = yield* redeem(code, `${redirect}&code_verifier=${verifier}`)
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(ok.json.scope, "openid profile")
      assert.isString(ok.json.refresh_token)
      const again = yield* redeem(code, `${redirect}&code_verifier=${verifier}`)
      assert.strictEqual(again.json.error, "invalid_grant") // single use

      const wrongVerifier = yield* redeem(yield* issue, `${redirect}&code_verifier=${verifier}x`)
      assert.strictEqual(wrongVerifier.status, 400)
      assert.strictEqual(wrongVerifier.json.error, "invalid_grant")
      const noVerifier = yield* redeem(yield* issue, redirect)
      assert.strictEqual(noVerifier.json.error, "invalid_grant")
      const otherRedirect = yield* redeem(yield* issue, `redirect_uri=http://127.0.0.1/cb/&code_verifier=${verifier}`)
      assert.strictEqual(otherRedirect.json.error, "invalid_grant")

      const requests = yield* server.requests
      assert.strictEqual(requests[0]?.authMethod, "none")
      assert.strictEqual(yield* server.count("authorization_code"), 5)
    }))

  it.scoped("faults: status, rate limit, raw body, drop, delay, in FIFO order", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const auth = basic("client", "secret")
      yield* server.inject(
        AuthServer.Fault.rateLimited(7),
        AuthServer.Fault.unavailable(),
        AuthServer.Fault.status(400, { body: "{\"error\":\"invalid_grant\"}" }),
        AuthServer.Fault.body("<html>Bad gateway</html>", { status: 502 }),
        AuthServer.Fault.drop(),
        AuthServer.Fault.delay(200)
      )
      const limited = yield* post(server.tokenUrl, CC, auth)
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.headers.get("retry-after"), "7")
      assert.strictEqual(limited.json.error, "temporarily_unavailable")
      const unavailable = yield* post(server.tokenUrl, CC, auth)
      assert.strictEqual(unavailable.status, 503)
      assert.strictEqual(unavailable.json.error, "temporarily_unavailable")
      assert.isNull(unavailable.headers.get("retry-after"))
      const custom = yield* post(server.tokenUrl, CC, auth)
      assert.strictEqual(custom.status, 400)
      assert.strictEqual(custom.text, "{\"error\":\"invalid_grant\"}")
      const html = yield* post(server.tokenUrl, CC, auth)
      assert.strictEqual(html.status, 502)
      assert.strictEqual(html.text, "<html>Bad gateway</html>")
      assert.strictEqual(html.headers.get("content-type"), "text/html")
      const dropped = yield* Effect.either(post(server.tokenUrl, CC, auth))
      assert.isTrue(Either.isLeft(dropped))
      const start = performance.now()
      const delayed = yield* post(server.tokenUrl, CC, auth) // real time: no TestClock.adjust needed
      assert.isAtLeast(performance.now() - start, 180)
      assert.strictEqual(delayed.status, 200)
      assert.strictEqual((yield* post(server.tokenUrl, CC, auth)).status, 200)

      const requests = yield* server.requests
      assert.deepStrictEqual(
        requests.map((r) => r.outcome),
        ["fault", "fault", "fault", "fault", "fault", "token", "token"]
      )
      assert.strictEqual(yield* server.count(), 7)
      assert.lengthOf(yield* server.issued, 2)
    }))

  it.scoped("expires_in as a string, omitted, and changed by setLifetime", () =>
    Effect.gen(function*() {
      const auth = basic("client", "secret")
      const asString = yield* AuthServer.make({ expiresIn: "string", lifetimeSeconds: 60 })
      const a = yield* post(asString.tokenUrl, CC, auth)
      assert.strictEqual(a.json.expires_in, "60")
      assert.include(a.text, "\"expires_in\":\"60\"")

      const omitted = yield* AuthServer.make({ expiresIn: "omit" })
      const b = yield* post(omitted.tokenUrl, CC, auth)
      assert.isFalse("expires_in" in b.json)
      // the token still expires server-side: the client just is not told
      assert.strictEqual((yield* omitted.issued)[0]?.expiresAt, 3600_000)

      const server = yield* AuthServer.make()
      yield* server.setLifetime(120)
      assert.strictEqual((yield* post(server.tokenUrl, CC, auth)).json.expires_in, 120)
      yield* server.setLifetime(undefined)
      const forever = yield* post(server.tokenUrl, CC, auth)
      assert.isFalse("expires_in" in forever.json)
      assert.isUndefined((yield* server.issued)[1]?.expiresAt)
    }))

  it.scoped("count per grant_type", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const auth = basic("client", "secret")
      yield* post(server.tokenUrl, CC, auth)
      yield* post(server.tokenUrl, CC, auth)
      const pw = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass", auth)
      yield* post(server.tokenUrl, `grant_type=refresh_token&refresh_token=${pw.json.refresh_token}`, auth)
      yield* post(server.tokenUrl, "grant_type=password&username=user&password=bad", auth)
      yield* call(server.url + "/elsewhere")
      assert.strictEqual(yield* server.count(), 5)
      assert.strictEqual(yield* server.count("client_credentials"), 2)
      assert.strictEqual(yield* server.count("password"), 2)
      assert.strictEqual(yield* server.count("refresh_token"), 1)
      assert.strictEqual(yield* server.count("authorization_code"), 0)
    }))

  it.scoped("/resource accepts live tokens and rejects unknown, revoked and expired ones", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const auth = basic("client", "secret")
      const token = String((yield* post(server.tokenUrl, CC, auth)).json.access_token)
      const ok = yield* getResource(server, token)
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(ok.json, { ok: true })
      const bogus = yield* getResource(server, "bogus")
      assert.strictEqual(bogus.status, 401)
      assert.strictEqual(bogus.headers.get("www-authenticate"), "Bearer error=\"invalid_token\"")
      assert.strictEqual((yield* call(server.resourceUrl)).status, 401)

      const revoked = String((yield* post(server.tokenUrl, CC, auth)).json.access_token)
      yield* server.revokeAccessToken(revoked)
      assert.strictEqual((yield* getResource(server, revoked)).status, 401)

      // the server's clock defaults to the caller's Clock, here the TestClock
      yield* TestClock.adjust(Duration.seconds(3599))
      assert.strictEqual((yield* getResource(server, token)).status, 200)
      yield* TestClock.adjust(Duration.seconds(1))
      assert.strictEqual((yield* getResource(server, token)).status, 401)

      const fresh = String((yield* post(server.tokenUrl, CC, auth)).json.access_token)
      yield* server.revokeAll
      assert.strictEqual((yield* getResource(server, fresh)).status, 401)
      assert.deepStrictEqual(yield* server.resourceCalls, { ok: 2, rejected: 5 })
      assert.lengthOf(yield* server.requests, 3) // resource calls are counted, not recorded
    }))

  it.scoped("rawBody keeps the bytes as sent", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      const auth = basic("client", "secret")
      const plus = yield* post(server.tokenUrl, `${CC}&scope=A+B`, auth)
      assert.strictEqual(plus.json.scope, "A B")
      yield* post(server.tokenUrl, `${CC}&scope=A%2BB`, auth)
      const [first, second] = yield* server.requests
      assert.strictEqual(first?.rawBody, `${CC}&scope=A+B`)
      assert.strictEqual(first?.form.scope, "A B")
      assert.strictEqual(second?.rawBody, `${CC}&scope=A%2BB`)
      assert.strictEqual(second?.form.scope, "A+B")
      assert.strictEqual(first?.headers["content-type"], "application/x-www-form-urlencoded")
      assert.strictEqual(first?.grantType, "client_credentials")
    }))

  it.scoped("malformed token requests", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({
        clients: [{ clientId: "client", clientSecret: "secret" }, { clientId: "pub" }]
      })
      const auth = basic("client", "secret")
      assert.strictEqual((yield* call(server.tokenUrl)).status, 405)
      assert.strictEqual((yield* call(server.url + "/nope", { method: "POST" })).status, 404)
      const json = yield* call(server.tokenUrl, {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json" },
        body: "{}"
      })
      assert.strictEqual(json.json.error, "invalid_request")
      assert.strictEqual((yield* post(server.tokenUrl, "scope=x", auth)).json.error, "invalid_request")
      assert.strictEqual((yield* post(server.tokenUrl, "grant_type=magic", auth)).json.error, "unsupported_grant_type")
      assert.strictEqual((yield* post(server.tokenUrl, `${CC}&${CC}`, auth)).json.error, "invalid_request")
      const publicClient = yield* post(server.tokenUrl, `${CC}&client_id=pub`)
      assert.strictEqual(publicClient.json.error, "unauthorized_client")
      const publicPost = yield* post(server.tokenUrl, `${CC}&client_id=pub&client_secret=x`)
      assert.strictEqual(publicPost.json.error, "invalid_client")
      assert.lengthOf(yield* server.issued, 0)
    }))

  it.scoped("JWT access tokens carry exp", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(Duration.seconds(1000))
      const server = yield* AuthServer.make({ jwtAccessTokens: true, lifetimeSeconds: 300 })
      const token = String((yield* post(server.tokenUrl, `${CC}&scope=a`, basic("client", "secret"))).json.access_token)
      const [header, payload, signature] = token.split(".")
      assert.deepStrictEqual(JSON.parse(Buffer.from(header!, "base64url").toString()), { alg: "none", typ: "JWT" })
      const claims = JSON.parse(Buffer.from(payload!, "base64url").toString())
      assert.strictEqual(claims.exp, 1300)
      assert.strictEqual(claims.scope, "a")
      assert.strictEqual(signature, "")
      assert.strictEqual((yield* getResource(server, token)).status, 200)
    }))

  it.live("closing the scope ends held requests and keep-alive connections", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* AuthServer.make()
        yield* post(server.tokenUrl, CC, basic("client", "secret")) // leaves a keep-alive socket open
        yield* server.inject(AuthServer.Fault.delay(60_000))
        const fiber = yield* Effect.forkDaemon(Effect.either(post(server.tokenUrl, CC, basic("client", "secret"))))
        while ((yield* server.count()) < 2) yield* Effect.sleep(Duration.millis(10))
        return fiber
      })).pipe(Effect.timeout(Duration.seconds(5)))
      const held = yield* Fiber.join(fiber)
      assert.isTrue(Either.isLeft(held))
    }))

  describe("provider hooks", () => {
    it.scoped("grantTypes narrows the grants: others are unsupported_grant_type once the client is known", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ grantTypes: ["client_credentials"] })
        const auth = basic("client", "secret")
        assert.strictEqual((yield* post(server.tokenUrl, CC, auth)).status, 200)
        const password = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass", auth)
        assert.deepStrictEqual([password.status, password.json.error], [400, "unsupported_grant_type"])
        // client authentication comes first (RFC 6749 section 3.2.1)
        const stranger = yield* post(server.tokenUrl, "grant_type=password", basic("client", "nope"))
        assert.deepStrictEqual([stranger.status, stranger.json.error], [401, "invalid_client"])
        assert.deepStrictEqual((yield* server.issued).map((t) => t.grantType), ["client_credentials"])
        assert.strictEqual(yield* server.count("password"), 2)
      }))

    it.scoped("check sees the authenticated request and refuses with an RFC 6749 5.2 error", () =>
      Effect.gen(function*() {
        const seen: Array<AuthServer.TokenRequest> = []
        const server = yield* AuthServer.make({
          check: (request) => {
            seen.push(request)
            if (request.form.scope === undefined) return { error: "invalid_scope", description: "scope is required" }
            return request.authMethod === "client_secret_post"
              ? { status: 401, error: "invalid_client", description: "Basic only" }
              : undefined
          }
        })
        const auth = basic("client", "secret")
        const ok = yield* post(server.tokenUrl, `${CC}&scope=a`, auth)
        assert.strictEqual(ok.status, 200)
        const noScope = yield* post(server.tokenUrl, CC, auth)
        assert.deepStrictEqual([noScope.status, noScope.json], [400, {
          error: "invalid_scope",
          error_description: "scope is required"
        }])
        assert.strictEqual(noScope.headers.get("cache-control"), "no-store")
        const viaPost = yield* post(server.tokenUrl, `${CC}&scope=a&client_id=client&client_secret=secret`)
        assert.deepStrictEqual([viaPost.status, viaPost.json.error], [401, "invalid_client"])
        assert.isNull(viaPost.headers.get("www-authenticate"))
        // a request that fails client authentication never reaches the hook
        assert.strictEqual((yield* post(server.tokenUrl, CC, basic("client", "nope"))).status, 401)
        const { headers, ...first } = seen[0]!
        assert.deepStrictEqual(first, {
          grantType: "client_credentials",
          clientId: "client",
          authMethod: "client_secret_basic",
          form: { grant_type: "client_credentials", scope: "a" }
        })
        assert.strictEqual(headers["content-type"], "application/x-www-form-urlencoded")
        assert.lengthOf(seen, 3)
        assert.deepStrictEqual((yield* server.requests).map((r) => r.outcome), ["token", "error", "error", "error"])
        assert.lengthOf(yield* server.issued, 1)
      }))

    it.scoped("a 401 refusal after Basic authentication carries WWW-Authenticate", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({
          check: () => ({ status: 401, error: "invalid_client", description: "not today" })
        })
        const refused = yield* post(server.tokenUrl, CC, basic("client", "secret"))
        assert.deepStrictEqual([refused.status, refused.json.error], [401, "invalid_client"])
        assert.strictEqual(refused.headers.get("www-authenticate"), "Basic realm=\"fake\"")
      }))

    it.scoped("shapeToken rewrites token answers only, and sees the request", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({
          lifetimeSeconds: 60,
          shapeToken: ({ refresh_token: _, ...body }, request) => ({
            ...body,
            expires_in: String(body.expires_in),
            grant: request.grantType
          })
        })
        const auth = basic("client", "secret")
        const ok = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass&scope=a", auth)
        assert.deepStrictEqual(Object.keys(ok.json), ["access_token", "token_type", "expires_in", "scope", "grant"])
        assert.deepStrictEqual([ok.json.expires_in, ok.json.grant], ["60", "password"])
        assert.strictEqual(ok.headers.get("pragma"), "no-cache")
        // the refresh token was issued all the same: only the answer was rewritten
        const refresh = (yield* server.issued)[0]?.refreshToken
        const refreshed = yield* post(server.tokenUrl, `grant_type=refresh_token&refresh_token=${refresh}`, auth)
        assert.strictEqual(refreshed.json.grant, "refresh_token")
        const wrong = yield* post(server.tokenUrl, "grant_type=password&username=user&password=x", auth)
        assert.deepStrictEqual(Object.keys(wrong.json), ["error", "error_description"])
        yield* server.inject(AuthServer.Fault.body("{\"access_token\":\"x\"}", { contentType: "application/json" }))
        assert.strictEqual((yield* post(server.tokenUrl, CC, auth)).text, "{\"access_token\":\"x\"}")
      }))

    it.scoped("an empty scope= is not echoed, nor carried into a refresh or a JWT", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ jwtAccessTokens: true })
        const auth = basic("client", "secret")
        const first = yield* post(server.tokenUrl, "grant_type=password&username=user&password=pass&scope=", auth)
        assert.strictEqual(first.status, 200)
        assert.isFalse("scope" in first.json)
        const claims = JSON.parse(Buffer.from(String(first.json.access_token).split(".")[1]!, "base64url").toString())
        assert.isFalse("scope" in claims)
        const refreshed = yield* post(
          server.tokenUrl,
          `grant_type=refresh_token&refresh_token=${first.json.refresh_token}`,
          auth
        )
        assert.isFalse("scope" in refreshed.json)
        const [request] = yield* server.requests
        assert.strictEqual(request?.form.scope, "", "the request is recorded as sent")
      }))
  })
})
