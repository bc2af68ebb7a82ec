/**
 * Baruwa: a token for the API of a Baruwa mail security server, from the application's client id
 * and secret, renewed with its refresh token.
 *
 * Runs offline: a fake Baruwa token endpoint from `tokenwarden/testing` stands in for your server.
 * With a real server, drop the fake and read the configuration from the environment
 * (BARUWA_BASE_URL, BARUWA_CLIENT_ID, BARUWA_CLIENT_SECRET) with `Baruwa.layerConfig(BaruwaToken)`.
 *
 *   npx tsx examples/baruwa.ts
 */
import { HttpClient } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { AccessToken, Baruwa, LineLogger, type TokenSource } from "tokenwarden"
import { BaruwaFake } from "tokenwarden/testing"

class BaruwaToken extends Context.Tag("example/BaruwaToken")<BaruwaToken, TokenSource.TokenSource>() {}

// the application: it asks for a token whenever it calls the API, and never handles expiry itself
const callApi = (apiUrl: string) =>
  Effect.gen(function*() {
    const tokens = yield* BaruwaToken
    const token = yield* tokens.get
    yield* Effect.logInfo("got a token").pipe(
      Effect.annotateLogs({
        type: token.type,
        has_refresh_token: token.refreshToken !== undefined,
        lifetime: token.expiresAt === undefined ? "unknown" : Duration.millis(token.expiresAt - token.issuedAt),
        // Baruwa's syntax is `Authorization: {tokenType} {accessToken}`; only its shape is printed
        authorization: `${token.type} <redacted>`
      })
    )
    const response = yield* HttpClient.get(apiUrl, {
      headers: { authorization: AccessToken.authorizationHeader(token) }
    })
    yield* Effect.logInfo("API answered").pipe(Effect.annotateLogs({ status: response.status }))
  })

const program = Effect.gen(function*() {
  const fake = yield* BaruwaFake.make({ clientId: "my-app", clientSecret: "my-secret" })
  const BaruwaTokenLive = Baruwa.layer(BaruwaToken, {
    // your server, e.g. https://mail.example.com: the token endpoint is /api/v1/oauth/token below it
    baseUrl: fake.url,
    clientId: "my-app",
    clientSecret: Redacted.make("my-secret")
  })
  yield* callApi(fake.resourceUrl).pipe(Effect.provide(BaruwaTokenLive))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
