/**
 * tokenwarden from a program not written with Effect: `TokenClient.fromLayer` turns a token source
 * layer into Promises. An embedded authorization server on 127.0.0.1 issues 3-second tokens; a plain
 * async loop calls a protected endpoint with `await tokens.get()` while the source refreshes in the
 * background, and an `onChange` listener prints each refresh.
 *
 *   npx tsx examples/promise-facade.ts
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { AccessToken, ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import * as TokenClient from "../src/TokenClient.js"

class ApiToken extends Context.Tag("example/ApiToken")<ApiToken, TokenSource.TokenSource>() {}

const main = async () => {
  // the fake server is an Effect resource; a real program would only have the URL
  const serverScope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(AuthServer.make({ lifetimeSeconds: 3 }), serverScope))

  const tokens = await TokenClient.fromLayer(
    ApiToken,
    TokenSource.layer(ApiToken, {
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant: Grant.clientCredentials({ scopes: ["api"] })
    }).pipe(Layer.provide(NodeHttpClient.layerUndici))
  )
  const unsubscribe = tokens.onChange((state) => console.log(`  token source: ${state._tag}`))

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
  console.log(`${calls} API calls, ${rejected} rejected, ${await Effect.runPromise(server.count())} token requests`)

  await tokens.close()
  await Effect.runPromise(Scope.close(serverScope, Exit.void))
  // errors are the tagged errors themselves
  const error = await tokens.get().catch((e: unknown) => e)
  console.log(`after close: ${error instanceof TokenClient.ClientClosed ? "ClientClosed" : String(error)}`)
  if (rejected > 0) process.exitCode = 1
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
