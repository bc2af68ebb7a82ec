import { HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Config, ConfigError, ConfigProvider, Context, Effect, Layer, Redacted, TestClock } from "effect"
import type { TokenSource } from "tokenwarden"
import { AccessToken, Barracuda } from "tokenwarden"
import { AuthServer, BarracudaFake } from "tokenwarden/testing"
import { collectLogs, HttpLive, type LogLine, noJitter, settle, waitFor, waitForNewToken } from "../util.js"

class BtsToken extends Context.Tag("test/BtsToken")<BtsToken, TokenSource.TokenSource>() {}

// a reserved character or two, so plain and form Basic encodings differ on the wire
const SECRET = "s3cr+t/="

const options = (fake: BarracudaFake.BarracudaFake, overrides?: Partial<Barracuda.Options>): Barracuda.Options => ({
  clientId: "bts-client",
  clientSecret: Redacted.make(SECRET),
  scopes: ["ess:account:read"],
  url: fake.tokenUrl,
  policy: noJitter,
  ...overrides
})

// builds the layer in the test's scope and hands out the source, as `yield* BtsToken` would in a program
const start = <E, R>(layer: Layer.Layer<BtsToken, E, R>) => Effect.map(Layer.build(layer), Context.get(BtsToken))

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

const basic = (id: string, secret: string) => ({
  authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`
})

const env = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))

describe("Barracuda", () => {
  it.scoped("sends client_credentials with plain Basic and space-joined scopes; decodes the documented answer", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const source = yield* start(
        Barracuda.layer(BtsToken, options(fake, { scopes: ["ess:account:read", "forensics:account:read"] }))
      )
      const token = yield* source.get
      const [request] = yield* fake.requests
      assert.strictEqual(request?.method, "POST")
      assert.strictEqual(request?.path, "/token")
      assert.strictEqual(
        request?.headers.authorization,
        `Basic ${Buffer.from(`bts-client:${SECRET}`).toString("base64")}`
      )
      assert.strictEqual(request?.headers["content-type"], "application/x-www-form-urlencoded")
      assert.strictEqual(
        request?.rawBody,
        "grant_type=client_credentials&scope=ess%3Aaccount%3Aread+forensics%3Aaccount%3Aread"
      )
      assert.strictEqual(token.type, "Bearer")
      assert.deepStrictEqual(token.scopes, ["ess:account:read", "forensics:account:read"])
      assert.strictEqual(token.lifetimeSource, "expires_in")
      assert.strictEqual(token.expiresAt! - token.issuedAt, 3_600_000)
      assert.isUndefined(token.refreshToken)
      assert.strictEqual(source.provider, "barracuda-us")
      assert.strictEqual(yield* callApi(fake.resourceUrl, token), 200)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the fake answers the document's four fields, expires_in as a number or as the String \"3600\"", () =>
    Effect.gen(function*() {
      const body = "grant_type=client_credentials&scope=ess%3Aaccount%3Aread"
      const numeric = yield* BarracudaFake.make()
      const answer = yield* post(numeric.tokenUrl, body, basic("bts-client", "bts-secret"))
      assert.deepStrictEqual(Object.keys(answer.json), ["access_token", "expires_in", "token_type", "scope"])
      assert.strictEqual(answer.json.expires_in, 3600)
      assert.strictEqual(answer.json.scope, "ess:account:read")
      const stringly = yield* BarracudaFake.make({ expiresIn: "string" })
      assert.strictEqual(
        (yield* post(stringly.tokenUrl, body, basic("bts-client", "bts-secret"))).json.expires_in,
        "3600"
      )
      const source = yield* start(
        Barracuda.layer(BtsToken, options(stringly, { clientSecret: Redacted.make("bts-secret") }))
      )
      const token = yield* source.get
      assert.strictEqual(token.lifetimeSource, "expires_in")
      assert.strictEqual(token.expiresAt! - token.issuedAt, 3_600_000)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("the fake takes the credentials as Basic or in the body, never both, and only what the document lists", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make()
      const cc = "grant_type=client_credentials&scope=ess%3Aaccount%3Aread"
      const inBody = yield* post(fake.tokenUrl, `${cc}&client_id=bts-client&client_secret=bts-secret`)
      assert.strictEqual(inBody.status, 200)
      const both = yield* post(
        fake.tokenUrl,
        `${cc}&client_id=bts-client&client_secret=bts-secret`,
        basic("bts-client", "bts-secret")
      )
      assert.deepStrictEqual([both.status, both.json.error], [400, "invalid_request"])
      const missing = yield* post(fake.tokenUrl, cc)
      assert.deepStrictEqual([missing.status, missing.json.error], [401, "invalid_client"])
      const formEncoded = yield* BarracudaFake.make({ clientSecret: "a+b" })
      const wrongBasic = yield* post(formEncoded.tokenUrl, cc, basic("bts-client", "a%2Bb"))
      assert.deepStrictEqual([wrongBasic.status, wrongBasic.json.error], [401, "invalid_client"])
      const refresh = yield* post(
        fake.tokenUrl,
        "grant_type=refresh_token&refresh_token=x",
        basic("bts-client", "bts-secret")
      )
      assert.deepStrictEqual([refresh.status, refresh.json.error], [400, "unsupported_grant_type"])
      const noScope = yield* post(fake.tokenUrl, "grant_type=client_credentials", basic("bts-client", "bts-secret"))
      assert.deepStrictEqual([noScope.status, noScope.json.error], [400, "invalid_request"])
      const badScope = yield* post(
        fake.tokenUrl,
        "grant_type=client_credentials&scope=admin",
        basic("bts-client", "bts-secret")
      )
      assert.deepStrictEqual([badScope.status, badScope.json.error], [400, "invalid_scope"])
      assert.strictEqual(yield* fake.count(), 6)
      assert.strictEqual((yield* fake.issued).length, 1)
    }))

  it.scoped("clientAuth \"post\" sends the id and secret in the body instead", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const source = yield* start(Barracuda.layer(BtsToken, options(fake, { clientAuth: "post" })))
      yield* source.get
      const [request] = yield* fake.requests
      assert.isUndefined(request?.headers.authorization)
      assert.strictEqual(
        request?.rawBody,
        "grant_type=client_credentials&scope=ess%3Aaccount%3Aread&client_id=bts-client&client_secret=s3cr%2Bt%2F%3D"
      )
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("re-runs the grant before each 1-hour token expires: one client_credentials request per lifetime", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const source = yield* start(Barracuda.layer(BtsToken, options(fake)))
      let token = yield* source.get
      for (let i = 0; i < 8; i++) {
        yield* TestClock.adjust("45 minutes")
        const next = yield* waitForNewToken(source, token)
        assert.strictEqual(next.issuedAt - token.issuedAt, 45 * 60_000)
        assert.isTrue(token.expiresAt! > next.issuedAt, "replaced while still valid")
        assert.strictEqual(yield* callApi(fake.resourceUrl, next), 200)
        token = next
      }
      assert.strictEqual(yield* fake.count(), 9)
      assert.strictEqual(yield* fake.count("client_credentials"), 9)
      assert.isTrue((yield* fake.requests).every((r) => r.form.refresh_token === undefined))
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a wrong secret fails the layer with InvalidClient, and the secret appears nowhere", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const wrong = "wr0ng-s3cret"
      const error = yield* Effect.flip(
        start(Barracuda.layer(BtsToken, options(fake, { clientSecret: Redacted.make(wrong) })))
      )
      assert.strictEqual(error._tag, "InvalidClient")
      assert.isTrue(error._tag === "InvalidClient" && error.status === 401)
      assert.notInclude(String(error), wrong)
      assert.notInclude(JSON.stringify(error), wrong)
      assert.strictEqual(yield* fake.count(), 1)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("no refresh token: revoked tokens are replaced by running the grant again", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const source = yield* start(Barracuda.layer(BtsToken, options(fake)))
      const token = yield* source.get
      yield* fake.revokeAll
      assert.strictEqual(yield* callApi(fake.resourceUrl, token), 401)
      yield* source.invalidate(token)
      const next = yield* source.get
      assert.notStrictEqual(value(next), value(token))
      assert.strictEqual(yield* callApi(fake.resourceUrl, next), 200)
      assert.strictEqual(yield* fake.count("client_credentials"), 2)
      assert.strictEqual(yield* fake.count("refresh_token"), 0)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("an HTML page from a proxy: a 5xx is a ServerError, retried; any other status a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
      yield* fake.inject(AuthServer.Fault.body(page, { status: 502 }))
      const source = yield* start(Barracuda.layer(BtsToken, options(fake)))
      const retrying = yield* source.state
      assert.isTrue(retrying._tag === "Retrying" && retrying.error._tag === "ServerError")
      yield* TestClock.adjust("2 seconds")
      yield* waitFor(source, (s) => s._tag === "Valid")
      assert.strictEqual(yield* fake.count(), 2)

      yield* fake.inject(AuthServer.Fault.body("<html><body>Access denied by policy</body></html>", { status: 403 }))
      const error = yield* Effect.flip(start(Barracuda.layer(BtsToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error._tag === "MalformedResponse" && error.status === 403 && error.excerpt !== undefined)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 200 whose body is not a token is a MalformedResponse", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      yield* fake.inject(
        AuthServer.Fault.body(JSON.stringify({ status: "ok", message: "welcome" }), { contentType: "application/json" })
      )
      const error = yield* Effect.flip(start(Barracuda.layer(BtsToken, options(fake))))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.isTrue(error._tag === "MalformedResponse" && error.status === 200)
      assert.deepStrictEqual(error._tag === "MalformedResponse" && error.fields, ["status", "message"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a 429 with Retry-After is RateLimited: Retrying until then, then a new token", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const source = yield* start(Barracuda.layer(BtsToken, options(fake)))
      const token = yield* source.get
      yield* fake.inject(AuthServer.Fault.rateLimited(120))
      yield* TestClock.adjust("45 minutes")
      const limited = yield* waitFor(source, (s) => s._tag === "Retrying")
      const now = yield* Clock.currentTimeMillis
      assert.isTrue(limited._tag === "Retrying" && limited.error._tag === "RateLimited")
      assert.isTrue(limited._tag === "Retrying" && limited.nextAttemptAt >= now + 120_000, "Retry-After honoured")
      assert.strictEqual(value(yield* source.get), value(token), "the valid token is still served")
      yield* TestClock.adjust("110 seconds")
      yield* settle
      assert.strictEqual(yield* fake.count(), 2, "no attempt before Retry-After")
      // to Retry-After exactly: further would race the request's timeout against the loopback answer
      yield* TestClock.adjust("10 seconds")
      yield* waitForNewToken(source, token)
      assert.strictEqual(yield* fake.count(), 3)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a token granted for another scope than asked is accepted with the granted scopes", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET, grantedScope: "forensics:account:write" })
      const source = yield* start(Barracuda.layer(BtsToken, options(fake)))
      const token = yield* source.get
      assert.deepStrictEqual(token.scopes, ["forensics:account:write"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("no scope at all, or one that is no scope-token, is refused before any request", () =>
    Effect.gen(function*() {
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
      const error = yield* Effect.flip(start(Barracuda.layer(BtsToken, options(fake, { scopes: [] }))))
      assert.strictEqual(error._tag, "InvalidConfiguration")
      for (const scope of ["ess:account:read forensics:account:read", "", "a\\b"]) {
        const invalid = yield* Effect.flip(start(Barracuda.layer(BtsToken, options(fake, { scopes: [scope] }))))
        assert.strictEqual(invalid._tag, "InvalidConfiguration", scope)
      }
      assert.strictEqual(yield* fake.count(), 0)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("a scope the document does not list is requested as given, with one warning per source", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const fake = yield* BarracudaFake.make({ clientSecret: SECRET, extraScopes: ["xdr:account:read"] })
      const source = yield* start(
        Barracuda.layer(BtsToken, options(fake, { scopes: ["xdr:account:read", "ess:account:read"], region: "UK" }))
      ).pipe(collectLogs(lines))
      const token = yield* source.get
      assert.deepStrictEqual(token.scopes, ["xdr:account:read", "ess:account:read"])
      assert.strictEqual((yield* fake.requests)[0]?.form.scope, "xdr:account:read ess:account:read")
      yield* TestClock.adjust("45 minutes")
      yield* waitForNewToken(source, token).pipe(collectLogs(lines))
      const warnings = lines.filter((l) => l.level === "WARN")
      assert.strictEqual(warnings.length, 1, "one warning, at construction, not at each refresh")
      assert.deepStrictEqual(warnings[0]!.annotations, { provider: "barracuda-uk", unknown_scopes: "xdr:account:read" })
      // the fake, as the service would, refuses a scope it does not know
      const strict = yield* BarracudaFake.make({ clientSecret: SECRET })
      const refused = yield* Effect.flip(
        start(Barracuda.layer(BtsToken, options(strict, { scopes: ["xdr:account:read"] })))
      )
      assert.strictEqual(refused._tag, "InvalidScope")
    }).pipe(Effect.provide(HttpLive)))

  describe("layerConfig", () => {
    it.scoped("reads BARRACUDA_* variables, or those of another prefix", () =>
      Effect.gen(function*() {
        const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
        const source = yield* start(Barracuda.layerConfig(BtsToken)).pipe(
          Effect.withConfigProvider(env({
            BARRACUDA_CLIENT_ID: "bts-client",
            BARRACUDA_CLIENT_SECRET: SECRET,
            BARRACUDA_REGION: "UK",
            BARRACUDA_SCOPES: "ess:account:read,forensics:account:read",
            BARRACUDA_TOKEN_URL: fake.tokenUrl
          }))
        )
        yield* source.get
        assert.strictEqual(source.provider, "barracuda-uk")
        const eu = yield* start(Barracuda.layerConfig(BtsToken, Barracuda.config("EU_BTS"))).pipe(
          Effect.withConfigProvider(env({
            EU_BTS_CLIENT_ID: "bts-client",
            EU_BTS_CLIENT_SECRET: SECRET,
            EU_BTS_SCOPES: "forensics:account:write",
            EU_BTS_TOKEN_URL: fake.tokenUrl,
            EU_BTS_CLIENT_AUTH: "post"
          }))
        )
        yield* eu.get
        const [first, second] = yield* fake.requests
        assert.strictEqual(first?.form.scope, "ess:account:read forensics:account:read")
        assert.strictEqual(second?.form.scope, "forensics:account:write")
        assert.strictEqual(second?.authMethod, "client_secret_post")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("takes a struct of Configs too (Config.Wrap), for names of the program's own", () =>
      Effect.gen(function*() {
        const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
        const source = yield* start(Barracuda.layerConfig(BtsToken, {
          clientId: Config.string("APP_BTS_ID"),
          clientSecret: Config.redacted("APP_BTS_SECRET"),
          scopes: Config.succeed(["forensics:account:read"]),
          url: Config.succeed(fake.tokenUrl)
        })).pipe(Effect.withConfigProvider(env({ APP_BTS_ID: "bts-client", APP_BTS_SECRET: SECRET })))
        assert.deepStrictEqual((yield* source.get).scopes, ["forensics:account:read"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a missing or invalid variable fails with a ConfigError naming it, and nothing is sent", () =>
      Effect.gen(function*() {
        const fake = yield* BarracudaFake.make({ clientSecret: SECRET })
        const complete = {
          BARRACUDA_CLIENT_ID: "bts-client",
          BARRACUDA_CLIENT_SECRET: SECRET,
          BARRACUDA_SCOPES: "ess:account:read",
          BARRACUDA_TOKEN_URL: fake.tokenUrl
        }
        const failure = (entries: Record<string, string>) =>
          start(Barracuda.layerConfig(BtsToken)).pipe(
            Effect.withConfigProvider(env(entries)),
            Effect.flip,
            Effect.map((error) => {
              assert.isTrue(ConfigError.isConfigError(error), String(error))
              assert.notInclude(String(error), SECRET)
              return String(error)
            })
          )
        const { BARRACUDA_CLIENT_SECRET: _, ...noSecret } = complete
        assert.include(yield* failure(noSecret), "BARRACUDA_CLIENT_SECRET")
        assert.include(yield* failure({ ...complete, BARRACUDA_SCOPES: " " }), "BARRACUDA_SCOPES")
        assert.include(yield* failure({ ...complete, BARRACUDA_REGION: "EU" }), "BARRACUDA_REGION")
        assert.include(yield* failure({ ...complete, BARRACUDA_TOKEN_URL: "not a url" }), "BARRACUDA_TOKEN_URL")
        assert.strictEqual(yield* fake.count(), 0)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("accepts a scope the document does not list, with one warning when the source is built", () =>
      Effect.gen(function*() {
        const fake = yield* BarracudaFake.make({ clientSecret: SECRET, extraScopes: ["xdr:account:read"] })
        const lines: Array<LogLine> = []
        const source = yield* start(Barracuda.layerConfig(BtsToken)).pipe(
          Effect.withConfigProvider(env({
            BARRACUDA_CLIENT_ID: "bts-client",
            BARRACUDA_CLIENT_SECRET: SECRET,
            BARRACUDA_SCOPES: "ess:account:read xdr:account:read",
            BARRACUDA_TOKEN_URL: fake.tokenUrl
          })),
          collectLogs(lines)
        )
        assert.deepStrictEqual((yield* source.get).scopes, ["ess:account:read", "xdr:account:read"])
        const warnings = lines.filter((l) => l.level === "WARN")
        assert.deepStrictEqual(warnings.map((l) => l.annotations), [
          { provider: "barracuda-us", unknown_scopes: "xdr:account:read" }
        ])
      }).pipe(Effect.provide(HttpLive)))
  })
})
