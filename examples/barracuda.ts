/**
 * Barracuda Token Service: a client-credentials token for Barracuda's APIs, renewed before each
 * 1-hour token expires.
 *
 * Runs offline: a fake token service from `tokenwarden/testing` stands in for
 * https://login.bts.barracudanetworks.com/token. With a real application, drop the fake and read the
 * credentials from the environment (BARRACUDA_CLIENT_ID, BARRACUDA_CLIENT_SECRET, BARRACUDA_SCOPES,
 * BARRACUDA_REGION) with `Barracuda.layerConfig(BtsToken)`.
 *
 *   npx tsx examples/barracuda.ts
 */
import { HttpClient } from "@effect/platform"
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
        type: token.type,
        scopes: token.scopes.join(" "),
        lifetime: token.expiresAt === undefined ? "unknown" : Duration.millis(token.expiresAt - token.issuedAt),
        // the shape of the header only: the token itself is never printed
        authorization: `${token.type} <redacted>`
      })
    )
    const response = yield* HttpClient.get(apiUrl, {
      headers: { authorization: AccessToken.authorizationHeader(token) }
    })
    yield* Effect.logInfo("API answered").pipe(Effect.annotateLogs({ status: response.status }))
  })

const program = Effect.gen(function*() {
  const fake = yield* BarracudaFake.make({ clientId: "my-app", clientSecret: "my-secret" })
  const BtsTokenLive = Barracuda.layer(BtsToken, {
    clientId: "my-app",
    clientSecret: Redacted.make("my-secret"),
    region: "US",
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
