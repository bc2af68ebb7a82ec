/**
 * An HttpClient that authorizes every request to one API with a token kept fresh by tokenwarden, and
 * recovers by itself when the API refuses the token (401): one refresh, one retry. Offline: the
 * authorization server and the API are the in-process fake on 127.0.0.1.
 *
 *   npx tsx examples/authorized-client.ts
 */
import { HttpClientResponse } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Redacted, Schema } from "effect"
import { AuthorizedClient, ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
// `import { AuthorizedClient } from "tokenwarden"` once the barrel exports it

const Ok = Schema.Struct({ ok: Schema.Boolean })

const main = Effect.gen(function*() {
  const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
  const source = yield* TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.clientCredentials({ scopes: ["read"] })
  })
  // the token goes to this origin only; other origins fail with ForeignOrigin
  const api = yield* AuthorizedClient.make(source, { origin: server.url })
  const call = api.get(server.resourceUrl).pipe(Effect.flatMap(HttpClientResponse.schemaBodyJson(Ok)))

  yield* Console.log("GET /resource:", yield* call)
  // the API stops accepting the token (revoked, rotated keys): the client refreshes and retries once
  yield* server.revokeAccessToken(Redacted.value((yield* source.get).value))
  yield* Console.log("GET /resource after the token was revoked:", yield* call)
  yield* Console.log("API calls:", yield* server.resourceCalls, "token requests:", yield* server.count())

  const error = yield* Effect.flip(api.get("https://elsewhere.example.com/"))
  yield* Console.log("another origin:", error._tag)
}).pipe(Effect.scoped)

main.pipe(
  Effect.provide(NodeHttpClient.layerUndici),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
