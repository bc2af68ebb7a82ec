/**
 * A token source layer handed to code not written with Effect: `TokenClient.fromLayer` turns it into
 * Promises (for a program without any Effect, `tokenwarden/node` builds the layer too: see
 * examples/node.mjs). An embedded authorization server on 127.0.0.1 issues 3-second tokens; a plain
 * async loop calls a protected endpoint with `await tokens.get()` while the source refreshes in the
 * background, and an `onChange` listener reports each state.
 *
 *   npx tsx examples/promise-facade.ts
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Layer, Redacted } from "effect"
import { AccessToken, ClientAuth, Grant, LineLogger, TokenClient, TokenSource } from "tokenwarden"
import { log } from "tokenwarden/node"
import { AuthServer } from "tokenwarden/testing"

class ApiToken extends Context.Tag("example/ApiToken")<ApiToken, TokenSource.TokenSource>() {}

const main = async () => {
  const server = await AuthServer.start({ lifetimeSeconds: 3 })

  const tokens = await TokenClient.fromLayer(
    ApiToken,
    TokenSource.layer(ApiToken, {
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant: Grant.clientCredentials({ scopes: ["api"] })
    }).pipe(Layer.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)))
  )
  const unsubscribe = tokens.onChange((state) => log("info", "token source changed", { state: state._tag }))

  let calls = 0
  let rejected = 0
  const until = Date.now() + 4_000
  while (Date.now() < until) {
    // resolves at once from the cached token; the network is used only by the background refresh
    const token = await tokens.get()
    const response = await fetch(server.resourceUrl, {
      headers: { authorization: AccessToken.authorizationHeader(token) }
    })
    calls++
    if (response.status !== 200) rejected++
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  unsubscribe()
  log("info", "done", { api_calls: calls, rejected, token_requests: await server.count() })

  await tokens.close()
  await server.close()
  // errors are the tagged errors themselves
  const error = await tokens.get().catch((e: unknown) => e)
  log("info", "after close", { error: error instanceof TokenClient.ClientClosed ? error._tag : String(error) })
  if (rejected > 0) process.exitCode = 1
}

main().catch((error: unknown) => {
  log("error", "failed", { error: String(error) })
  process.exitCode = 1
})
