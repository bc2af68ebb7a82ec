import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted, Stream } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { ClientAuth, Discovery, Grant } from "tokenwarden"
import * as OidcProvider from "./interop/oidcProvider.js"

const HttpLive = NodeHttpClient.layerUndici

interface Route {
  readonly status?: number
  readonly contentType?: string
  readonly body: string | ((url: string) => unknown)
}

/** A metadata server on 127.0.0.1 answering only the given paths (404 elsewhere), recording what was asked. */
const metadataServer = (routes: Record<string, Route>) =>
  Effect.gen(function*() {
    const requested: Array<string> = []
    let url = ""
    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer((req, res) => {
          requested.push(req.url ?? "")
          const route = routes[req.url ?? ""]
          if (route === undefined) {
            res.writeHead(404, { "Content-Type": "text/plain" })
            return res.end("not found")
          }
          const body = typeof route.body === "string" ? route.body : JSON.stringify(route.body(url))
          res.writeHead(route.status ?? 200, { "Content-Type": route.contentType ?? "application/json" })
          res.end(body)
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    return { url, requested }
  })

const metadata = (issuer: string, extra: Record<string, unknown> = {}) => ({
  issuer,
  token_endpoint: `${issuer}/token`,
  ...extra
})

describe("Discovery", () => {
  it("well-known URLs: RFC 8414 insertion, then OpenID Connect appending, then its inserted form", () => {
    assert.deepStrictEqual(Discovery.wellKnownUrls(new URL("https://as.example.com")), [
      "https://as.example.com/.well-known/oauth-authorization-server",
      "https://as.example.com/.well-known/openid-configuration"
    ])
    assert.deepStrictEqual(Discovery.wellKnownUrls(new URL("https://as.example.com/tenant/1/")), [
      "https://as.example.com/.well-known/oauth-authorization-server/tenant/1",
      "https://as.example.com/tenant/1/.well-known/openid-configuration",
      "https://as.example.com/.well-known/openid-configuration/tenant/1"
    ])
  })

  it.scoped("discovers oidc-provider: no RFC 8414 document there, its OpenID configuration is used", () =>
    Effect.gen(function*() {
      const op = yield* OidcProvider.make()
      const found = yield* Discovery.discover(op.issuer)
      assert.strictEqual(found.issuer, op.issuer)
      assert.strictEqual(found.token_endpoint, op.tokenUrl)
      assert.strictEqual(found.authorization_endpoint, op.authorizationUrl)
      assert.strictEqual(found.revocation_endpoint, op.revocationUrl)
      assert.strictEqual(found.introspection_endpoint, op.introspectionUrl)
      assert.strictEqual(found.device_authorization_endpoint, op.deviceAuthorizationUrl)
      assert.includeMembers(found.grant_types_supported as Array<string>, [
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code"
      ])
      assert.deepStrictEqual(found.code_challenge_methods_supported, ["S256"])
      assert.includeMembers(found.token_endpoint_auth_methods_supported as Array<string>, [
        "client_secret_basic",
        "client_secret_post",
        "none"
      ])
      // fields the schema does not name are kept
      assert.strictEqual(found["end_session_endpoint"], `${op.issuer}/session/end`)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("tokenSource: a working source from an issuer URL, the grant built from the metadata if need be", () =>
    Effect.gen(function*() {
      const op = yield* OidcProvider.make()
      const source = yield* Discovery.tokenSource(op.issuer, {
        clientAuth: ClientAuth.basic(OidcProvider.clients.basic.id, Redacted.make(OidcProvider.clients.basic.secret)),
        grant: Grant.clientCredentials({ scopes: ["api:read"] })
      })
      const token = yield* source.get
      assert.strictEqual((yield* op.introspect(Redacted.value(token.value))).active, true)
      const device = yield* Discovery.tokenSource(op.issuer, {
        clientAuth: ClientAuth.none(OidcProvider.clients.public.id),
        grant: (found) => Grant.deviceCode({ deviceAuthorizationEndpoint: found.device_authorization_endpoint ?? "" })
      })
      const prompt = yield* device.changes.pipe(
        Stream.filter((s) => s._tag === "AwaitingUser"),
        Stream.runHead,
        Effect.timeout("10 seconds")
      )
      assert.isTrue(Option.isSome(prompt) && prompt.value._tag === "AwaitingUser")
      assert.strictEqual(
        Option.isSome(prompt) && prompt.value._tag === "AwaitingUser" && prompt.value.verificationUri,
        `${op.issuer}/device`
      )
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("refuses metadata of another issuer (RFC 8414 section 3.3), compared exactly", () =>
    Effect.gen(function*() {
      const evil = yield* metadataServer({
        "/.well-known/oauth-authorization-server": { body: () => metadata("https://evil.example.com") }
      })
      const error = yield* Effect.flip(Discovery.discover(evil.url))
      assert.strictEqual(error._tag, "IssuerMismatch")
      assert.deepStrictEqual(
        error._tag === "IssuerMismatch" && [error.expected, error.actual],
        [evil.url, "https://evil.example.com"]
      )
      const slash = yield* metadataServer({
        "/.well-known/oauth-authorization-server": { body: (url) => metadata(url) }
      })
      const trailing = yield* Effect.flip(Discovery.discover(`${slash.url}/`))
      assert.strictEqual(trailing._tag, "IssuerMismatch", "a trailing slash is another issuer")
      assert.strictEqual((yield* Discovery.discover(slash.url)).issuer, slash.url)
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("an issuer with a path: the RFC 8414 URL first, then the OpenID Connect one", () =>
    Effect.gen(function*() {
      const oauth = yield* metadataServer({
        "/.well-known/oauth-authorization-server/tenant1": { body: (url) => metadata(`${url}/tenant1`) }
      })
      assert.strictEqual((yield* Discovery.discover(`${oauth.url}/tenant1`)).issuer, `${oauth.url}/tenant1`)
      assert.deepStrictEqual(oauth.requested, ["/.well-known/oauth-authorization-server/tenant1"])

      const oidc = yield* metadataServer({
        // a web app's catch-all page where RFC 8414 metadata would be: not JSON, so not metadata
        "/.well-known/oauth-authorization-server/tenant1": { body: "<html>app</html>", contentType: "text/html" },
        "/tenant1/.well-known/openid-configuration": { body: (url) => metadata(`${url}/tenant1`) }
      })
      const found = yield* Discovery.discover(`${oidc.url}/tenant1`)
      assert.strictEqual(found.token_endpoint, `${oidc.url}/tenant1/token`)
      assert.deepStrictEqual(oidc.requested, [
        "/.well-known/oauth-authorization-server/tenant1",
        "/tenant1/.well-known/openid-configuration"
      ])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("nothing found: MetadataNotFound with the URLs tried; a 5xx fails at once, transient", () =>
    Effect.gen(function*() {
      const empty = yield* metadataServer({})
      const error = yield* Effect.flip(Discovery.discover(`${empty.url}/t`))
      assert.strictEqual(error._tag, "MetadataNotFound")
      assert.deepStrictEqual(error._tag === "MetadataNotFound" && error.tried, [
        `${empty.url}/.well-known/oauth-authorization-server/t`,
        `${empty.url}/t/.well-known/openid-configuration`,
        `${empty.url}/.well-known/openid-configuration/t`
      ])
      const down = yield* metadataServer({
        "/.well-known/oauth-authorization-server": { status: 503, body: "{\"error\":\"temporarily_unavailable\"}" },
        "/.well-known/openid-configuration": { body: (url) => metadata(url) }
      })
      const failed = yield* Effect.flip(Discovery.discover(down.url))
      assert.strictEqual(failed._tag, "ServerError")
      assert.isTrue(failed.transient)
      assert.deepStrictEqual(down.requested, ["/.well-known/oauth-authorization-server"])
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("checks the metadata: required fields, and https (or loopback) endpoints", () =>
    Effect.gen(function*() {
      const server = yield* metadataServer({
        "/a/.well-known/openid-configuration": { body: (url) => ({ issuer: `${url}/a` }) },
        "/b/.well-known/openid-configuration": {
          body: (url) => metadata(`${url}/b`, { revocation_endpoint: "http://as.example.com/revoke" })
        },
        "/c/.well-known/openid-configuration": { body: (url) => metadata(`${url}/c`, { token_endpoint: 42 }) }
      })
      const missing = yield* Effect.flip(Discovery.discover(`${server.url}/a`))
      assert.strictEqual(missing._tag, "MalformedResponse")
      assert.deepStrictEqual(missing._tag === "MalformedResponse" && missing.fields, ["issuer"])
      const insecure = yield* Effect.flip(Discovery.discover(`${server.url}/b`))
      assert.strictEqual(insecure._tag, "InvalidConfiguration")
      assert.include(insecure.message, "revocation_endpoint")
      assert.strictEqual((yield* Effect.flip(Discovery.discover(`${server.url}/c`)))._tag, "MalformedResponse")
    }).pipe(Effect.provide(HttpLive)))

  it.scoped("refuses an issuer that is not https (or loopback), or has a query, before any request", () =>
    Effect.gen(function*() {
      for (const issuer of ["http://as.example.com", "https://as.example.com/?tenant=1", "not a url"]) {
        const error = yield* Effect.flip(Discovery.discover(issuer))
        assert.strictEqual(error._tag, "InvalidConfiguration", issuer)
      }
    }).pipe(Effect.provide(HttpLive)))
})
