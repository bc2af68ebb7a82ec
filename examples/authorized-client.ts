/**
 * An HttpClient that authorizes every request to one API with a token kept fresh by tokenwarden, and
 * recovers by itself when the API refuses the token (401): one refresh, one retry. Offline: the
 * authorization server and the API are the in-process fake on 127.0.0.1.
 *
 *   npx tsx examples/authorized-client.ts
 */
import { HttpClientResponse } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Redacted, Schema } from "effect"
import { AuthorizedClient, ClientAuth, Grant, LineLogger, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"

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

  yield* Effect.logInfo("GET /resource").pipe(Effect.annotateLogs({ ok: (yield* call).ok }))
  // the API stops accepting the token (revoked, rotated keys): the client refreshes and retries once
  yield* server.revokeAccessToken(Redacted.value((yield* source.get).value))
  yield* Effect.logInfo("GET /resource after the token was revoked").pipe(Effect.annotateLogs({ ok: (yield* call).ok }))
  const calls = yield* server.resourceCalls
  yield* Effect.logInfo("done").pipe(
    Effect.annotateLogs({ api_ok: calls.ok, api_rejected: calls.rejected, token_requests: yield* server.count() })
  )

  const error = yield* Effect.flip(api.get("https://elsewhere.example.com/"))
  yield* Effect.logInfo("another origin refused, nothing sent").pipe(Effect.annotateLogs({ error: error._tag }))
}).pipe(Effect.scoped)

main.pipe(
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
