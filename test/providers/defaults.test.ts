import { HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Redacted } from "effect"
import { Baack, BarapiCloud, Barracuda, Baruwa, Buddy } from "tokenwarden"

/**
 * An HttpClient that answers every request itself and records its method and URL: a provider's default
 * base URL is asserted as the URL a request actually goes to, and nothing leaves the machine.
 */
const recorder = () => {
  const seen: Array<string> = []
  const layer = Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) => {
      seen.push(`${request.method} ${request.url}`)
      const body = request.url.includes("/n/v1/apiclient/")
        ? []
        : { access_token: "t", token_type: "Bearer", expires_in: 3600, refresh_token: "r" }
      return Effect.succeed(HttpClientResponse.fromWeb(
        request,
        new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } })
      ))
    })
  )
  return { seen, layer }
}

const secret = Redacted.make("secret")

describe("each provider's default base URL, as its document gives it", () => {
  it.scoped("Buddy: https://api.buddy.works, /oauth2/authorize and /oauth2/token below it", () =>
    Effect.gen(function*() {
      assert.strictEqual(Buddy.defaultBaseUrl, "https://api.buddy.works")
      const { layer, seen } = recorder()
      yield* Buddy.make({ clientId: "app", clientSecret: secret, scopes: ["WORKSPACE"] }).pipe(Effect.provide(layer))
      assert.deepStrictEqual(seen, ["POST https://api.buddy.works/oauth2/token"])
      const request = yield* Buddy.authorize({ clientId: "app", scopes: ["WORKSPACE"] })
      const url = new URL(request.url)
      assert.strictEqual(`${url.origin}${url.pathname}`, "https://api.buddy.works/oauth2/authorize")
    }))

  it.scoped("Barracuda: login.bts.barracudanetworks.com (US), uk.login.bts.barracudanetworks.com (UK)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(Barracuda.tokenUrls, {
        US: "https://login.bts.barracudanetworks.com/token",
        UK: "https://uk.login.bts.barracudanetworks.com/token"
      })
      const { layer, seen } = recorder()
      const options = { clientId: "app", clientSecret: secret, scopes: ["ess:account:read"] } as const
      const us = yield* Barracuda.make(options).pipe(Effect.provide(layer))
      const uk = yield* Barracuda.make({ ...options, region: "UK" }).pipe(Effect.provide(layer))
      assert.deepStrictEqual([us.provider, uk.provider], ["barracuda-us", "barracuda-uk"])
      assert.deepStrictEqual(seen, [
        "POST https://login.bts.barracudanetworks.com/token",
        "POST https://uk.login.bts.barracudanetworks.com/token"
      ])
    }))

  it.scoped("barapi.cloud: https://barapi.cloud/oauth/token", () =>
    Effect.gen(function*() {
      assert.strictEqual(BarapiCloud.tokenUrl, "https://barapi.cloud/oauth/token")
      const { layer, seen } = recorder()
      yield* BarapiCloud.make({ clientId: "app", clientSecret: secret, username: "john@doe.com", password: secret })
        .pipe(Effect.provide(layer))
      assert.deepStrictEqual(seen, ["POST https://barapi.cloud/oauth/token"])
    }))

  it.scoped("Baack: https://api.baack.co (the representation's scope), /n/v1/apiclient/ below it", () =>
    Effect.gen(function*() {
      assert.strictEqual(Baack.defaultBaseUrl, "https://api.baack.co")
      const { layer, seen } = recorder()
      const clients = yield* Baack.make({ rootToken: Redacted.make("root-token") }).pipe(Effect.provide(layer))
      yield* clients.list
      assert.deepStrictEqual(seen, ["GET https://api.baack.co/n/v1/apiclient/"])
    }))

  it.scoped("Baruwa: self-hosted, so no default: the base URL is required, the token path is below it", () =>
    Effect.gen(function*() {
      assert.strictEqual(Baruwa.tokenPath, "/api/v1/oauth/token")
      const { layer, seen } = recorder()
      yield* Baruwa.make({ baseUrl: "https://mail.example.com", clientId: "app", clientSecret: secret }).pipe(
        Effect.provide(layer)
      )
      assert.deepStrictEqual(seen, ["POST https://mail.example.com/api/v1/oauth/token"])
      const missing = yield* Effect.exit(
        Effect.withConfigProvider(
          Baruwa.config(),
          ConfigProvider.fromMap(new Map([["BARUWA_CLIENT_ID", "app"], ["BARUWA_CLIENT_SECRET", "s"]]))
        )
      )
      assert.isTrue(Exit.isFailure(missing))
      assert.include(String(Exit.isFailure(missing) ? missing.cause : ""), "BARUWA_BASE_URL")
    }))
})
