import { HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Clock, ConfigError, ConfigProvider, Context, Effect, Layer, Redacted, TestClock } from "effect"
import type { TokenSource } from "tokenwarden"
import { AccessToken, Baruwa } from "tokenwarden"
import { AuthServer, BaruwaFake } from "tokenwarden/testing"
import { HttpLive, noJitter, settle, waitFor, waitForNewToken } from "../util.js"

class BaruwaToken extends Context.Tag("test/BaruwaToken")<BaruwaToken, TokenSource.TokenSource>() {}

// reserved characters, so that the form encoding of RFC 6749 section 2.3.1 shows on the wire
const SECRET = "b@ru+wa/s3cret"
const ROTATED = "r0tated+b@ruwa"
const formEncode = (s: string) => new URLSearchParams({ s }).toString().slice(2)

const options = (fake: BaruwaFake.BaruwaFake, overrides?: Partial<Baruwa.Options>): Baruwa.Options => ({
  baseUrl: fake.url,
  clientId: "baruwa-app",
  clientSecret: Redacted.make(SECRET),
  policy: noJitter,
  ...overrides
})

// builds the layer in the test's scope and hands out the source, as `yield* BaruwaToken` would in a program
const start = <E, R>(layer: Layer.Layer<BaruwaToken, E, R>) => Effect.map(Layer.build(layer), Context.get(BaruwaToken))

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

describe("Baruwa", () => {
  it.effect("the token endpoint is /api/v1/oauth/token below the base URL, whatever its path", () =>
    Effect.sync(() => {
      assert.strictEqual(Baruwa.tokenUrl("https://mail.example.com"), "https://mail.example.com/api/v1/oauth/token")
      assert.strictEqual(
        Baruwa.tokenUrl(new URL("https://example.com/baruwa/")),
        "https://example.com/baruwa/api/v1/oauth/token"
      )
      assert.strictEqual(
        Baruwa.tokenUrl("https://mail.example.com/", "/api/v2/token"),
        "https://mail.example.com/api/v2/token"
      )
    }))

  it.scoped("client_credentials with form-encoded Basic; the response's type, refresh token and unknown fields are kept", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET, extraFields: { user_id: 7, api: "beta" } })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake)))
      const token = yield* source.get
      const [request] = yield* fake.requests
      assert.strictEqual(request?.method, "POST")
      assert.strictEqual(request?.path, "/api/v1/oauth/token")
      assert.strictEqual(
        request?.headers.authorization,
        `Basic ${Buffer.from(`baruwa-app:${formEncode(SECRET)}`).toString("base64")}`
      )
      assert.strictEqual(request?.headers["content-type"], "application/x-www-form-urlencoded")
      assert.strictEqual(request?.rawBody, "grant_type=client_credentials")
      assert.strictEqual(token.type, "Bearer")
      assert.isDefined(token.refreshToken)
      assert.strictEqual(token.expiresAt! - token.issuedAt, 3_600_000)
      assert.deepStrictEqual(Redacted.value(token.extra), { user_id: 7, api: "beta" })
      assert.strictEqual(AccessToken.authorizationHeader(token), `Bearer ${value(token)}`)
      assert.strictEqual(yield* callApi(fake.resourceUrl, token), 200)
      assert.strictEqual(source.provider, "baruwa")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("clientAuth \"post\" sends the credentials in the body, with the scopes space-joined", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const source = yield* start(
        Baruwa.layer(BaruwaToken, options(fake, { clientAuth: "post", scopes: ["domains", "users"] }))
      )
      const token = yield* source.get
      const [request] = yield* fake.requests
      assert.isUndefined(request?.headers.authorization)
      assert.strictEqual(
        request?.rawBody,
        `grant_type=client_credentials&scope=domains+users&client_id=baruwa-app&client_secret=${formEncode(SECRET)}`
      )
      assert.deepStrictEqual(token.scopes, ["domains", "users"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("refreshes with the refresh token at the same endpoint before each token expires", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake)))
      let token = yield* source.get
      const sent: Array<string | undefined> = [Redacted.value(token.refreshToken!)]
      for (let i = 0; i < 3; i++) {
        yield* TestClock.adjust("45 minutes")
        token = yield* waitForNewToken(source, token)
        sent.push(Redacted.value(token.refreshToken!))
        assert.strictEqual(yield* callApi(fake.resourceUrl, token), 200)
      }
      const requests = yield* fake.requests
      assert.deepStrictEqual(requests.map((r) => r.grantType), [
        "client_credentials",
        "refresh_token",
        "refresh_token",
        "refresh_token"
      ])
      assert.isTrue(requests.every((r) => r.path === "/api/v1/oauth/token"))
      // each refresh presents the refresh token of the response before it
      assert.deepStrictEqual(requests.slice(1).map((r) => r.form.refresh_token), sent.slice(0, 3))
      assert.isTrue(requests.slice(1).every((r) => r.authMethod === "client_secret_basic"))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a revoked refresh token (invalid_grant) falls back to client_credentials", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake)))
      const token = yield* source.get
      yield* fake.revokeRefreshToken(Redacted.value(token.refreshToken!))
      yield* TestClock.adjust("45 minutes")
      const next = yield* waitForNewToken(source, token)
      assert.strictEqual(yield* fake.count("refresh_token"), 1)
      assert.strictEqual(yield* fake.count("client_credentials"), 2)
      const refused = (yield* fake.requests).find((r) => r.grantType === "refresh_token")
      assert.strictEqual(refused?.outcome, "error")
      assert.strictEqual(yield* callApi(fake.resourceUrl, next), 200)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a wrong secret fails the layer with InvalidClient, and the secret appears nowhere", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const wrong = "not-the-s3cret"
      const error = yield* Effect.flip(
        start(Baruwa.layer(BaruwaToken, options(fake, { clientSecret: Redacted.make(wrong) })))
      )
      assert.strictEqual(error._tag, "InvalidClient")
      assert.isTrue(error._tag === "InvalidClient" && error.status === 401)
      assert.notInclude(String(error), wrong)
      assert.notInclude(JSON.stringify(error), wrong)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the fake refuses other grants, missing credentials and a plain Basic header of a reserved secret", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const basic = (secret: string) => ({
        authorization: `Basic ${Buffer.from(`baruwa-app:${secret}`).toString("base64")}`
      })
      const password = yield* post(
        fake.tokenUrl,
        "grant_type=password&username=u&password=p",
        basic(formEncode(SECRET))
      )
      assert.deepStrictEqual([password.status, password.json.error], [400, "unsupported_grant_type"])
      const none = yield* post(fake.tokenUrl, "grant_type=client_credentials")
      assert.deepStrictEqual([none.status, none.json.error], [401, "invalid_client"])
      const plain = yield* post(fake.tokenUrl, "grant_type=client_credentials", basic(SECRET))
      assert.deepStrictEqual([plain.status, plain.json.error], [401, "invalid_client"])
      const noGrant = yield* post(fake.tokenUrl, "", basic(formEncode(SECRET)))
      assert.deepStrictEqual([noGrant.status, noGrant.json.error], [400, "invalid_request"])
      assert.lengthOf(yield* fake.issued, 0)
    }))

  it.scoped("an HTML page from a proxy: a 5xx is a ServerError, retried; a 200 login page a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake)))
      const token = yield* source.get
      yield* fake.inject(AuthServer.Fault.body("<html><h1>503 Service Unavailable</h1></html>", { status: 503 }))
      yield* TestClock.adjust("45 minutes")
      const retrying = yield* waitFor(source, (s) => s._tag === "Retrying")
      assert.isTrue(retrying._tag === "Retrying" && retrying.error._tag === "ServerError")
      assert.strictEqual(value(yield* source.get), value(token), "the valid token is still served")
      yield* TestClock.adjust("2 seconds")
      yield* waitForNewToken(source, token)

      // a reverse proxy that serves the web interface's login page instead of the API
      yield* fake.inject(AuthServer.Fault.body("<!doctype html><title>Baruwa - Login</title><form>…</form>"))
      const error = yield* Effect.flip(start(Baruwa.layer(BaruwaToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error._tag === "MalformedResponse" && error.status === 200 && error.contentType === "text/html")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 200 whose body is not a token is a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      yield* fake.inject(
        AuthServer.Fault.body(JSON.stringify({ token_type: "Bearer", expires_in: 3600 }), {
          contentType: "application/json"
        })
      )
      const error = yield* Effect.flip(start(Baruwa.layer(BaruwaToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.deepStrictEqual(error._tag === "MalformedResponse" && error.fields, ["token_type", "expires_in"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 429 with Retry-After is RateLimited: Retrying until then, then a new token", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake)))
      const token = yield* source.get
      yield* fake.inject(AuthServer.Fault.rateLimited(300))
      yield* TestClock.adjust("45 minutes")
      const limited = yield* waitFor(source, (s) => s._tag === "Retrying")
      const now = yield* Clock.currentTimeMillis
      assert.isTrue(limited._tag === "Retrying" && limited.error._tag === "RateLimited")
      assert.isTrue(limited._tag === "Retrying" && limited.nextAttemptAt >= now + 300_000, "Retry-After honoured")
      yield* TestClock.adjust("290 seconds")
      yield* settle
      assert.strictEqual(yield* fake.count(), 2, "no attempt before Retry-After")
      // to Retry-After exactly: further would race the request's timeout against the loopback answer
      yield* TestClock.adjust("10 seconds")
      yield* waitForNewToken(source, token)
      assert.strictEqual(yield* fake.count("refresh_token"), 2)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a token granted for another scope than asked is accepted with the granted scopes", () =>
    Effect.gen(function*() {
      const fake = yield* BaruwaFake.make({ clientSecret: SECRET, grantedScope: "domains:read" })
      const source = yield* start(Baruwa.layer(BaruwaToken, options(fake, { scopes: ["domains"] })))
      assert.deepStrictEqual((yield* source.get).scopes, ["domains:read"])
    }).pipe(Effect.provide(HttpLive)))

  describe("layerConfig", () => {
    it.scoped("reads BARUWA_* variables, or those of another prefix", () =>
      Effect.gen(function*() {
        const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
        const source = yield* start(Baruwa.layerConfig(BaruwaToken)).pipe(
          Effect.withConfigProvider(env({
            BARUWA_BASE_URL: fake.url,
            BARUWA_CLIENT_ID: "baruwa-app",
            BARUWA_CLIENT_SECRET: SECRET,
            BARUWA_SCOPES: "domains users"
          }))
        )
        yield* source.get
        const mail = yield* start(Baruwa.layerConfig(BaruwaToken, Baruwa.config("MAIL"))).pipe(
          Effect.withConfigProvider(env({
            MAIL_BASE_URL: fake.url + "/",
            MAIL_CLIENT_ID: "baruwa-app",
            MAIL_CLIENT_SECRET: SECRET,
            MAIL_CLIENT_AUTH: "post"
          }))
        )
        yield* mail.get
        const [first, second] = yield* fake.requests
        assert.deepStrictEqual([first?.form.scope, first?.authMethod], ["domains users", "client_secret_basic"])
        assert.deepStrictEqual([second?.form.scope, second?.authMethod], [undefined, "client_secret_post"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a secret rotated where the configuration reads it is read again after InvalidClient: no restart", () =>
      Effect.gen(function*() {
        const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
        const vars = new Map([
          ["BARUWA_BASE_URL", fake.url],
          ["BARUWA_CLIENT_ID", "baruwa-app"],
          ["BARUWA_CLIENT_SECRET", SECRET]
        ])
        // reads `vars` as they are at each read, as a mounted file is read again
        const live = ConfigProvider.make({
          load: (config) => Effect.suspend(() => ConfigProvider.fromMap(vars).load(config)),
          flattened: ConfigProvider.fromMap(vars).flattened
        })
        const source = yield* start(Baruwa.layerConfig(BaruwaToken)).pipe(Effect.withConfigProvider(live))
        const first = yield* source.get
        // the operator rotates the secret at the server and where the configuration reads it
        yield* fake.setClientSecret("baruwa-app", ROTATED)
        vars.set("BARUWA_CLIENT_SECRET", ROTATED)
        yield* source.invalidate(first)
        const failed = yield* waitFor(source, (state) => state._tag === "Failed")
        assert.strictEqual(failed._tag === "Failed" ? failed.error._tag : "", "InvalidClient")
        const next = yield* source.refresh
        assert.notStrictEqual(value(next), value(first))
        assert.deepStrictEqual((yield* fake.requests).map((r) => r.outcome), ["token", "error", "token"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a missing or invalid variable fails with a ConfigError naming it, and nothing is sent", () =>
      Effect.gen(function*() {
        const fake = yield* BaruwaFake.make({ clientSecret: SECRET })
        const complete = { BARUWA_BASE_URL: fake.url, BARUWA_CLIENT_ID: "baruwa-app", BARUWA_CLIENT_SECRET: SECRET }
        const failure = (entries: Record<string, string>) =>
          start(Baruwa.layerConfig(BaruwaToken)).pipe(
            Effect.withConfigProvider(env(entries)),
            Effect.flip,
            Effect.map((error) => {
              assert.isTrue(ConfigError.isConfigError(error), String(error))
              assert.notInclude(String(error), SECRET)
              return String(error)
            })
          )
        const { BARUWA_BASE_URL: _, ...noBase } = complete
        assert.include(yield* failure(noBase), "BARUWA_BASE_URL")
        assert.include(yield* failure({ ...complete, BARUWA_BASE_URL: "mail.example.com" }), "BARUWA_BASE_URL")
        assert.include(yield* failure({ ...complete, BARUWA_CLIENT_AUTH: "header" }), "BARUWA_CLIENT_AUTH")
        assert.strictEqual(yield* fake.count(), 0)
      }).pipe(Effect.provide(HttpLive)))
  })
})
