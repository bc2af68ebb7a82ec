import { HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigError, ConfigProvider, Context, Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import type { TokenSource } from "tokenwarden"
import { AccessToken, BarapiCloud } from "tokenwarden"
import { AuthServer, BarapiCloudFake } from "tokenwarden/testing"
import { HttpLive, noJitter, settle, waitFor, waitForNewToken } from "../util.js"

class BarapiToken extends Context.Tag("test/BarapiToken")<BarapiToken, TokenSource.TokenSource>() {}

const SECRET = "937it3ow87i4ery69876wqire"
const PASSWORD = "my password+123"
const DAY = 86_400_000

const options = (
  fake: BarapiCloudFake.BarapiCloudFake,
  overrides?: Partial<BarapiCloud.Options>
): BarapiCloud.Options => ({
  clientId: "332269999912132097",
  clientSecret: Redacted.make(SECRET),
  username: "john@doe.com",
  password: Redacted.make(PASSWORD),
  url: fake.tokenUrl,
  policy: noJitter,
  ...overrides
})

const makeFake = (overrides?: BarapiCloudFake.Options) =>
  BarapiCloudFake.make({ clientId: "332269999912132097", clientSecret: SECRET, password: PASSWORD, ...overrides })

// builds the layer in the test's scope and hands out the source, as `yield* BarapiToken` would in a program
const start = <E, R>(layer: Layer.Layer<BarapiToken, E, R>) => Effect.map(Layer.build(layer), Context.get(BarapiToken))

// Steps the clock to the refresh instant (no jitter: three quarters into the 366 days) and no further:
// a later time would also fire the request's 30-second timeout before the loopback request has answered.
const refreshInstant = (token: AccessToken.AccessToken) => TestClock.setTime(token.issuedAt + 274.5 * DAY)

const value = (token: AccessToken.AccessToken) => Redacted.value(token.value)

const callApi = (url: string, token: AccessToken.AccessToken) =>
  HttpClient.get(url, { headers: { authorization: AccessToken.authorizationHeader(token) } }).pipe(
    Effect.map((response) => response.status)
  )

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body
    })
    return { status: response.status, json: await response.json() as Record<string, unknown> }
  })

const env = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))

describe("BarapiCloud", () => {
  it.scoped("the password grant with client_secret in the body and an empty scope, as the document's example", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      const token = yield* source.get
      const [request] = yield* fake.requests
      assert.strictEqual(request?.method, "POST")
      assert.strictEqual(request?.path, "/oauth/token")
      assert.isUndefined(request?.headers.authorization)
      assert.strictEqual(request?.headers["content-type"], "application/x-www-form-urlencoded")
      assert.strictEqual(
        request?.rawBody,
        "grant_type=password&username=john%40doe.com&password=my+password%2B123&scope=" +
          `&client_id=332269999912132097&client_secret=${SECRET}`
      )
      assert.strictEqual(token.type, "Bearer")
      assert.strictEqual(token.expiresAt! - token.issuedAt, 31_622_400_000)
      assert.isDefined(token.refreshToken)
      assert.deepStrictEqual(token.scopes, [])
      assert.strictEqual(source.provider, "barapi.cloud")
      assert.strictEqual(yield* callApi(fake.resourceUrl, token), 200)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("scopes are sent space-joined", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake, { scopes: ["read", "write"] })))
      assert.deepStrictEqual((yield* source.get).scopes, ["read", "write"])
      const [request] = yield* fake.requests
      assert.include(request?.rawBody, "&scope=read+write&")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the fake answers the document's four fields, and requires every documented field", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake({ password: "mypassword123" })
      const client = `client_id=332269999912132097&client_secret=${SECRET}`
      const ok = yield* post(
        fake.tokenUrl,
        `grant_type=password&${client}&username=john%40doe.com&password=mypassword123&scope=`
      )
      assert.strictEqual(ok.status, 200)
      assert.deepStrictEqual(Object.keys(ok.json), ["token_type", "expires_in", "access_token", "refresh_token"])
      assert.strictEqual(ok.json.expires_in, 31_622_400)
      const noScope = yield* post(fake.tokenUrl, `grant_type=password&${client}&username=john%40doe.com&password=x`)
      assert.deepStrictEqual([noScope.status, noScope.json.error], [400, "invalid_request"])
      const noSecret = yield* post(
        fake.tokenUrl,
        "grant_type=password&client_id=332269999912132097&username=john%40doe.com&password=mypassword123&scope="
      )
      assert.deepStrictEqual([noSecret.status, noSecret.json.error], [401, "invalid_client"])
      const basic = `Basic ${Buffer.from(`332269999912132097:${SECRET}`).toString("base64")}`
      const viaBasic = yield* post(
        fake.tokenUrl,
        "grant_type=password&username=john%40doe.com&password=mypassword123&scope=",
        { authorization: basic }
      )
      assert.deepStrictEqual([viaBasic.status, viaBasic.json.error], [401, "invalid_client"])
      const cc = yield* post(fake.tokenUrl, `grant_type=client_credentials&${client}&scope=`)
      assert.deepStrictEqual([cc.status, cc.json.error], [400, "unsupported_grant_type"])
      const wrongPassword = yield* post(
        fake.tokenUrl,
        `grant_type=password&${client}&username=john%40doe.com&password=nope&scope=`
      )
      assert.deepStrictEqual([wrongPassword.status, wrongPassword.json.error], [400, "invalid_grant"])
      assert.lengthOf(yield* fake.issued, 1)
    }))

  it.scoped("a 366-day token is refreshed on time, with the refresh token (TestClock over two lifetimes)", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      let token = yield* source.get
      for (let lifetime = 0; lifetime < 2; lifetime++) {
        // no jitter: due at three quarters of 366 days, 274.5 days in, far beyond one 24.8-day timer
        yield* TestClock.setTime(token.issuedAt + 274 * DAY)
        yield* settle
        assert.strictEqual(yield* fake.count(), 1 + lifetime, "not refreshed early")
        yield* refreshInstant(token)
        const next = yield* waitForNewToken(source, token)
        assert.strictEqual(next.issuedAt - token.issuedAt, 274.5 * DAY)
        assert.strictEqual(next.expiresAt! - next.issuedAt, 366 * DAY)
        assert.strictEqual(yield* callApi(fake.resourceUrl, next), 200)
        token = next
      }
      assert.strictEqual(yield* fake.count("password"), 1)
      assert.strictEqual(yield* fake.count("refresh_token"), 2)
      const [, refresh] = yield* fake.requests
      assert.deepStrictEqual(Object.keys(refresh!.form), ["grant_type", "refresh_token", "client_id", "client_secret"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a refused refresh token (invalid_grant) falls back to the password grant", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      const token = yield* source.get
      yield* fake.revokeAll
      assert.strictEqual(yield* callApi(fake.resourceUrl, token), 401)
      yield* refreshInstant(token)
      const next = yield* waitForNewToken(source, token)
      const requests = yield* fake.requests
      assert.deepStrictEqual(requests.map((r) => [r.grantType, r.outcome]), [
        ["password", "token"],
        ["refresh_token", "error"],
        ["password", "token"]
      ])
      assert.strictEqual(requests[2]?.form.scope, "", "the fallback sends scope= too")
      assert.strictEqual(yield* callApi(fake.resourceUrl, next), 200)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a wrong client secret is InvalidClient, a wrong password InvalidGrant; neither secret appears", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const wrong = "wr0ng-s3cret"
      const client = yield* Effect.flip(
        start(BarapiCloud.layer(BarapiToken, options(fake, { clientSecret: Redacted.make(wrong) })))
      )
      assert.strictEqual(client._tag, "InvalidClient")
      assert.isTrue(client._tag === "InvalidClient" && client.status === 401)
      const user = yield* Effect.flip(
        start(BarapiCloud.layer(BarapiToken, options(fake, { password: Redacted.make(wrong) })))
      )
      assert.strictEqual(user._tag, "InvalidGrant")
      for (const error of [client, user]) {
        assert.notInclude(String(error), wrong)
        assert.notInclude(JSON.stringify(error), wrong)
      }
      assert.strictEqual(yield* fake.count(), 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("an HTML page from a proxy: a 5xx is a ServerError, retried; any other status a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      yield* fake.inject(AuthServer.Fault.body("<html><title>502 Bad Gateway</title></html>", { status: 502 }))
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      const retrying = yield* source.state
      assert.isTrue(retrying._tag === "Retrying" && retrying.error._tag === "ServerError")
      // a caller waits for the retry (due within maxWait) and gets its token
      const waiting = yield* Effect.fork(source.get)
      yield* TestClock.adjust("2 seconds")
      const token = yield* Fiber.join(waiting)
      assert.strictEqual((yield* waitFor(source, (s) => s._tag === "Valid"))._tag, "Valid")
      assert.strictEqual(value(yield* source.get), value(token))

      yield* fake.inject(AuthServer.Fault.body("<html><h1>Request blocked</h1></html>", { status: 406 }))
      const error = yield* Effect.flip(start(BarapiCloud.layer(BarapiToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error._tag === "MalformedResponse" && error.status === 406)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 200 whose body is not a token is a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      yield* fake.inject(AuthServer.Fault.body("[]", { contentType: "application/json" }))
      const error = yield* Effect.flip(start(BarapiCloud.layer(BarapiToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error._tag === "MalformedResponse" && error.status === 200)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 429 with Retry-After is RateLimited: Retrying until then, then a new token", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake()
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      const token = yield* source.get
      yield* fake.inject(AuthServer.Fault.rateLimited(3600))
      yield* refreshInstant(token)
      const limited = yield* waitFor(source, (s) => s._tag === "Retrying")
      const now = yield* Clock.currentTimeMillis
      assert.isTrue(limited._tag === "Retrying" && limited.error._tag === "RateLimited")
      assert.isTrue(limited._tag === "Retrying" && limited.nextAttemptAt >= now + 3_600_000, "Retry-After honoured")
      assert.strictEqual(value(yield* source.get), value(token), "the valid token is still served")
      yield* TestClock.adjust("59 minutes")
      yield* settle
      assert.strictEqual(yield* fake.count(), 2, "no attempt before Retry-After")
      yield* TestClock.adjust("1 minute")
      yield* waitForNewToken(source, token)
      assert.strictEqual(yield* fake.count("refresh_token"), 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a token granted for a scope that was not asked for is accepted with the granted scopes", () =>
    Effect.gen(function*() {
      const fake = yield* makeFake({ grantedScope: "profile admin" })
      const source = yield* start(BarapiCloud.layer(BarapiToken, options(fake)))
      assert.deepStrictEqual((yield* source.get).scopes, ["profile", "admin"])
    }).pipe(Effect.provide(HttpLive)))

  describe("layerConfig", () => {
    const complete = (url: string) => ({
      BARAPI_CLIENT_ID: "332269999912132097",
      BARAPI_CLIENT_SECRET: SECRET,
      BARAPI_USERNAME: "john@doe.com",
      BARAPI_PASSWORD: PASSWORD,
      BARAPI_TOKEN_URL: url
    })

    it.scoped("reads BARAPI_* variables, or those of another prefix", () =>
      Effect.gen(function*() {
        const fake = yield* makeFake()
        const source = yield* start(BarapiCloud.layerConfig(BarapiToken)).pipe(
          Effect.withConfigProvider(env(complete(fake.tokenUrl)))
        )
        yield* source.get
        const staging = yield* start(BarapiCloud.layerConfig(BarapiToken, BarapiCloud.config("STAGING"))).pipe(
          Effect.withConfigProvider(env({
            STAGING_CLIENT_ID: "332269999912132097",
            STAGING_CLIENT_SECRET: SECRET,
            STAGING_USERNAME: "john@doe.com",
            STAGING_PASSWORD: PASSWORD,
            STAGING_SCOPES: "read,write",
            STAGING_TOKEN_URL: fake.tokenUrl
          }))
        )
        yield* staging.get
        const [first, second] = yield* fake.requests
        assert.deepStrictEqual([first?.form.scope, second?.form.scope], ["", "read write"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a missing or invalid variable fails with a ConfigError naming it, and nothing is sent", () =>
      Effect.gen(function*() {
        const fake = yield* makeFake()
        const failure = (entries: Record<string, string>) =>
          start(BarapiCloud.layerConfig(BarapiToken)).pipe(
            Effect.withConfigProvider(env(entries)),
            Effect.flip,
            Effect.map((error) => {
              assert.isTrue(ConfigError.isConfigError(error), String(error))
              assert.notInclude(String(error), SECRET)
              assert.notInclude(String(error), PASSWORD)
              return String(error)
            })
          )
        const { BARAPI_PASSWORD: _, ...noPassword } = complete(fake.tokenUrl)
        assert.include(yield* failure(noPassword), "BARAPI_PASSWORD")
        assert.include(yield* failure({ ...complete(fake.tokenUrl), BARAPI_USERNAME: "" }), "BARAPI_USERNAME")
        assert.include(yield* failure({ ...complete(fake.tokenUrl), BARAPI_TOKEN_URL: "barapi" }), "BARAPI_TOKEN_URL")
        assert.strictEqual(yield* fake.count(), 0)
      }).pipe(Effect.provide(HttpLive)))
  })
})
