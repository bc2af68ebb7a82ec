/**
 * Barracuda Token Service: a client-credentials token for Barracuda's APIs from the UK region, renewed
 * before each 1-hour token expires.
 *
 * Runs offline: a fake token service from `tokenwarden/testing` stands in for
 * https://uk.login.bts.barracudanetworks.com/token, and answers `expires_in` as the String the document's
 * table types it as (`"3600"`, where its sample shows the number). With a real application, drop the fake
 * and `url`, and read the credentials from the environment (BARRACUDA_CLIENT_ID, BARRACUDA_CLIENT_SECRET,
 * BARRACUDA_SCOPES, BARRACUDA_REGION=UK) with `Barracuda.layerConfig(BtsToken)`.
 *
 *   npx tsx examples/barracuda.ts
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { AccessToken, Barracuda, LineLogger, type TokenSource } from "tokenwarden"
import { BarracudaFake } from "tokenwarden/testing"

// one tag per credential: a program with a US and a UK application has two
class BtsToken extends Context.Tag("example/BtsToken")<BtsToken, TokenSource.TokenSource>() {}

// the application: it asks for a token whenever it calls the API, and never handles expiry itself
const callApi = (apiUrl: string) =>
  Effect.gen(function*() {
    const tokens = yield* BtsToken
    const token = yield* tokens.get
    yield* Effect.logInfo("got a token").pipe(
      Effect.annotateLogs({
        source: tokens.provider,
        type: token.type,
        scopes: token.scopes.join(" "),
        // "3600" on the wire, a lifetime of one hour here
        lifetime: token.expiresAt === undefined ? "unknown" : Duration.millis(token.expiresAt - token.issuedAt),
        lifetime_from: token.lifetimeSource,
        // the shape of the header only: the token itself is never printed
        authorization: `${token.type} <redacted>`
      })
    )
    const response = yield* HttpClient.get(apiUrl, {
      headers: { authorization: AccessToken.authorizationHeader(token) }
    })
    yield* Effect.logInfo("API answered").pipe(Effect.annotateLogs({ status: response.status }))
  })

// what the service answers, as the document's sample request (`curl -u id:secret`) gets it; the token masked
const showWire = (tokenUrl: string) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.execute(
      HttpClientRequest.post(tokenUrl).pipe(
        HttpClientRequest.basicAuth("my-app", "my-secret"),
        HttpClientRequest.bodyUrlParams({ grant_type: "client_credentials", scope: "ess:account:read" })
      )
    )
    const body = (yield* response.json) as Record<string, unknown>
    yield* Effect.logInfo("the service's answer on the wire").pipe(
      Effect.annotateLogs({ body: JSON.stringify({ ...body, access_token: "<masked>" }) })
    )
  })

const program = Effect.gen(function*() {
  const fake = yield* BarracudaFake.make({ clientId: "my-app", clientSecret: "my-secret", expiresIn: "string" })
  yield* showWire(fake.tokenUrl)
  const BtsTokenLive = Barracuda.layer(BtsToken, {
    clientId: "my-app",
    clientSecret: Redacted.make("my-secret"),
    // https://uk.login.bts.barracudanetworks.com/token, and the source is named barracuda-uk
    region: "UK",
    scopes: ["ess:account:read", "forensics:account:read"],
    // only for the fake: without `url` the region's endpoint is used
    url: fake.tokenUrl
  })
  yield* callApi(fake.resourceUrl).pipe(Effect.provide(BtsTokenLive))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
