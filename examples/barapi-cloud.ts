/**
 * barapi.cloud: a token from the password grant, valid 366 days and refreshed on time all the same
 * (no single Node.js timer can wait that long; tokenwarden sleeps in chunks).
 *
 * Runs offline: a fake token endpoint from `tokenwarden/testing` stands in for
 * https://barapi.cloud/oauth/token. With a real account, drop the fake and read the credentials from
 * the environment (BARAPI_CLIENT_ID, BARAPI_CLIENT_SECRET, BARAPI_USERNAME, BARAPI_PASSWORD) with
 * `BarapiCloud.layerConfig(BarapiToken)`.
 *
 *   npx tsx examples/barapi-cloud.ts
 */
import { HttpClient } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, DateTime, Duration, Effect, Layer, Redacted } from "effect"
import { AccessToken, BarapiCloud, LineLogger, type TokenSource } from "tokenwarden"
import { BarapiCloudFake } from "tokenwarden/testing"

class BarapiToken extends Context.Tag("example/BarapiToken")<BarapiToken, TokenSource.TokenSource>() {}

// the application: it asks for a token whenever it calls the API, and never handles expiry itself
const callApi = (apiUrl: string) =>
  Effect.gen(function*() {
    const tokens = yield* BarapiToken
    const token = yield* tokens.get
    yield* Effect.logInfo("got a token").pipe(
      Effect.annotateLogs({
        type: token.type,
        expires_at: token.expiresAt === undefined
          ? "unknown"
          : DateTime.formatIso(DateTime.unsafeMake(token.expiresAt)),
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
  const fake = yield* BarapiCloudFake.make({
    clientId: "my-client",
    clientSecret: "my-secret",
    username: "john@doe.com",
    password: "my-password"
  })
  const BarapiTokenLive = BarapiCloud.layer(BarapiToken, {
    clientId: "my-client",
    clientSecret: Redacted.make("my-secret"),
    username: "john@doe.com",
    password: Redacted.make("my-password"),
    // no scopes: `scope=` is sent empty, as the document's example does
    // only for the fake: without `url` the documented endpoint is used
    url: fake.tokenUrl
  })
  yield* callApi(fake.resourceUrl).pipe(Effect.provide(BarapiTokenLive))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
