import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, HashMap, Layer, Logger, Redacted, Scope, Stream } from "effect"
import { AuthorizationCode, ClientAuth, Grant, Revocation, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import * as OidcProvider from "./interop/oidcProvider.js"
import { CLIENT_SECRET, PASSWORD } from "./secrets.js"

const HttpLive = NodeHttpClient.layerUndici
const { clients } = OidcProvider
const basicAuth = ClientAuth.basic(clients.basic.id, Redacted.make(clients.basic.secret))

/** A confidential client's authorization-code grant, login and consent done headlessly. */
const codeGrant = (op: OidcProvider.OidcProvider) =>
  Effect.gen(function*() {
    const request = yield* AuthorizationCode.authorize({
      authorizationEndpoint: op.authorizationUrl,
      clientId: clients.basic.id,
      redirectUri: OidcProvider.redirectUri,
      scopes: ["openid", "api:read"]
    })
    return yield* AuthorizationCode.callback(request, yield* op.authorize(request.url))
  })

const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    lines.push(
      JSON.stringify({
        level: logLevel.label,
        message,
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    )
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("Revocation", () => {
  it.live("revokeOnClose: after the scope closes, introspection says the (rotated) refresh token is inactive", () =>
    Effect.gen(function*() {
      const op = yield* OidcProvider.make({ accessTokenTtl: 4 })
      const grant = yield* codeGrant(op)
      const held = yield* Effect.scoped(
        Effect.gen(function*() {
          const source = yield* TokenSource.make({ url: op.tokenUrl, clientAuth: basicAuth, grant }).pipe(
            Effect.flatMap(Revocation.revokeOnClose({ url: op.revocationUrl, clientAuth: basicAuth }))
          )
          const first = yield* source.get
          // let one rotation happen: what is revoked is the refresh token held at closing time
          const valid = yield* source.changes.pipe(
            Stream.filter((s) => s._tag === "Valid" && Redacted.value(s.token.value) !== Redacted.value(first.value)),
            Stream.runHead,
            Effect.timeout("10 seconds")
          )
          const token = valid._tag === "Some" && valid.value._tag === "Valid" ? valid.value.token : first
          assert.notStrictEqual(Redacted.value(token.refreshToken!), Redacted.value(first.refreshToken!))
          const refreshToken = Redacted.value(token.refreshToken!)
          assert.strictEqual((yield* op.introspect(refreshToken)).active, true)
          assert.strictEqual((yield* op.introspect(Redacted.value(token.value))).active, true)
          return { refreshToken, accessToken: Redacted.value(token.value) }
        })
      )
      assert.strictEqual((yield* op.introspect(held.refreshToken)).active, false)
      assert.strictEqual((yield* op.introspect(held.accessToken)).active, false)
    }).pipe(Effect.provide(HttpLive), Effect.scoped))

  it.live("Revocation.layer, built on the source's layer, revokes on release", () =>
    Effect.gen(function*() {
      class Api extends Context.Tag("test/Api")<Api, TokenSource.TokenSource>() {}
      const op = yield* OidcProvider.make({ accessTokenTtl: 60 })
      const SourceLive = TokenSource.layer(Api, {
        url: op.tokenUrl,
        clientAuth: basicAuth,
        grant: Grant.clientCredentials({ scopes: ["api:read"] })
      })
      const Live = Revocation.layer(Api, { url: op.revocationUrl, clientAuth: basicAuth }).pipe(
        Layer.provideMerge(SourceLive),
        Layer.provide(HttpLive)
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Live, scope)
      const token = Redacted.value((yield* Context.get(context, Api).get).value)
      assert.strictEqual((yield* op.introspect(token)).active, true)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* op.introspect(token)).active, false)
    }).pipe(Effect.provide(HttpLive), Effect.scoped))

  it.live("revoke: RFC 7009 with a hint; an unknown token is a success too", () =>
    Effect.gen(function*() {
      const op = yield* OidcProvider.make({ accessTokenTtl: 60 })
      const source = yield* TokenSource.make({
        url: op.tokenUrl,
        clientAuth: basicAuth,
        grant: Grant.clientCredentials({ scopes: ["api:read"] })
      })
      const token = yield* source.get
      yield* Revocation.revoke(op.revocationUrl, token.value, "access_token", basicAuth)
      assert.strictEqual((yield* op.introspect(Redacted.value(token.value))).active, false)
      yield* Revocation.revoke(op.revocationUrl, Redacted.make("never-issued"), undefined, basicAuth)
      const wrong = yield* Effect.flip(
        Revocation.revoke(
          op.revocationUrl,
          token.value,
          "access_token",
          ClientAuth.basic(clients.basic.id, Redacted.make("x"))
        )
      )
      assert.strictEqual(wrong._tag, "InvalidClient")
    }).pipe(Effect.provide(HttpLive), Effect.scoped))

  it.scoped("a failed revocation is logged without the token and never fails the shutdown", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make({
        clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
        users: [{ username: "user", password: PASSWORD }]
      })
      const { layer, lines } = capture()
      const clientAuth = ClientAuth.basic("client", Redacted.make(CLIENT_SECRET))
      const scope = yield* Scope.make()
      const token = yield* Effect.gen(function*() {
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth,
          grant: Grant.password({ username: "user", password: Redacted.make(PASSWORD) })
        })
        // the fake has no revocation endpoint: 404 invalid_request; port 1: no answer at all
        yield* Revocation.revokeOnClose(source, { url: `${server.url}/revoke`, clientAuth })
        yield* Revocation.revokeOnClose(source, { url: "http://127.0.0.1:1/revoke", clientAuth, accessToken: false })
        return yield* source.get
      }).pipe(Scope.extend(scope), Effect.provide(layer))
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      assert.isTrue(Exit.isSuccess(exit))
      const warnings = lines.filter((l) => l.includes("token revocation failed"))
      assert.strictEqual(warnings.length, 3)
      assert.isTrue(warnings.some((l) => l.includes("TransportError")))
      assert.strictEqual(warnings.filter((l) => l.includes("InvalidRequest")).length, 2)
      const revocations = (yield* server.requests).filter((r) => r.path === "/revoke")
      assert.deepStrictEqual(revocations.map((r) => [r.form.token_type_hint, r.authMethod]), [
        ["refresh_token", undefined],
        ["access_token", undefined]
      ])
      assert.strictEqual(revocations[0]?.form.token, Redacted.value(token.refreshToken!))
      assert.strictEqual(revocations[0]?.headers.authorization?.startsWith("Basic "), true)
      for (const secret of [Redacted.value(token.value), Redacted.value(token.refreshToken!), "c2VjcmV0"]) {
        assert.isFalse(lines.some((l) => l.includes(secret)), "no secret in the logs")
      }
    }).pipe(Effect.provide(HttpLive)))
})
