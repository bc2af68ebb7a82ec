/**
 * Interop suite: tokenwarden against a real authorization server, oidc-provider 9, over real HTTP on
 * 127.0.0.1, with 4-second access tokens. Every wait is bounded.
 */
import { HttpClientResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Effect, Exit, Option, Redacted, Schema, Stream } from "effect"
import type { AccessToken, TokenState } from "tokenwarden"
import {
  AuthorizationCode,
  AuthorizedClient,
  ClientAuth,
  DeviceFlow,
  Grant,
  RefreshPolicy,
  Revocation,
  TokenEndpoint,
  TokenExchange,
  TokenSource
} from "tokenwarden"
import { EC_PEM, OTHER_JWK } from "../fixtures/keys.js"
import * as OidcProvider from "./oidcProvider.js"

const HttpLive = NodeHttpClient.layerUndici
const { clients, redirectUri } = OidcProvider

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

/** The first state that matches, within `seconds` of real time. */
const waitFor = (source: TokenSource.TokenSource, predicate: (s: TokenState.TokenState) => boolean, seconds = 15) =>
  source.changes.pipe(
    Stream.filter(predicate),
    Stream.runHead,
    Effect.map(Option.getOrThrow),
    Effect.timeoutFail({ duration: `${seconds} seconds`, onTimeout: () => new Error("timed out waiting for a state") })
  )

const newToken = (source: TokenSource.TokenSource, token: AccessToken.AccessToken) =>
  waitFor(source, (s) => s._tag === "Valid" && value(s.token) !== value(token)).pipe(
    Effect.map((s) => (s as Extract<TokenState.TokenState, { _tag: "Valid" }>).token)
  )

/** Logs in and consents as a user, headlessly, and gives the authorization-code grant. */
const authorizationCode = (op: OidcProvider.OidcProvider, clientId: string) =>
  Effect.gen(function*() {
    const request = yield* AuthorizationCode.authorize({
      authorizationEndpoint: op.authorizationUrl,
      clientId,
      redirectUri,
      scopes: ["openid", "offline_access", "api:read"]
    })
    const url = new URL(request.url)
    assert.strictEqual(url.searchParams.get("code_challenge_method"), "S256")
    const callback = yield* op.authorize(request.url)
    return { request, callback, grant: yield* AuthorizationCode.callback(request, callback) }
  })

const publicSource = (op: OidcProvider.OidcProvider, grant: Grant.Grant) =>
  TokenSource.make({
    url: op.tokenUrl,
    clientAuth: ClientAuth.none(clients.public.id),
    grant,
    policy: RefreshPolicy.make({ jitterFraction: 0 })
  })

describe("interop: oidc-provider 9", () => {
  describe("client credentials", () => {
    it.live("with client_secret_basic (RFC 6749 form encoding of a secret with reserved characters)", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const source = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.basic(clients.basic.id, Redacted.make(clients.basic.secret)),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        const token = yield* source.get
        assert.strictEqual(token.type, "Bearer")
        assert.deepStrictEqual(token.scopes, ["api:read"])
        assert.strictEqual(token.lifetimeSource, "expires_in")
        assert.strictEqual(token.expiresAt! - token.issuedAt, 4_000)
        const introspection = yield* op.introspect(value(token))
        assert.strictEqual(introspection.active, true)
        assert.strictEqual(introspection["client_id"], clients.basic.id)
        assert.deepStrictEqual(yield* op.tokenRequests, [{
          grantType: "client_credentials",
          clientId: clients.basic.id,
          auth: "basic",
          refreshToken: undefined,
          status: 200,
          error: undefined
        }])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("with client_secret_post", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const source = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.post(clients.post.id, Redacted.make(clients.post.secret)),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        const token = yield* source.get
        assert.strictEqual((yield* op.introspect(value(token))).active, true)
        const [request] = yield* op.tokenRequests
        assert.strictEqual(request?.auth, "post")
        assert.strictEqual(request?.clientId, clients.post.id)
        assert.strictEqual(request?.status, 200)
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("a wrong secret fails make with InvalidClient, for both methods, and the secret is nowhere", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        for (
          const clientAuth of [
            ClientAuth.basic(clients.basic.id, Redacted.make("wrong-secret-1")),
            ClientAuth.post(clients.post.id, Redacted.make("wrong-secret-2"))
          ]
        ) {
          const error = yield* Effect.flip(
            TokenSource.make({ url: op.tokenUrl, clientAuth, grant: Grant.clientCredentials() })
          )
          assert.strictEqual(error._tag, "InvalidClient")
          assert.strictEqual(error._tag === "InvalidClient" && error.status, 401)
          assert.notMatch(String(error) + JSON.stringify(error), /wrong-secret/)
        }
        assert.deepStrictEqual((yield* op.tokenRequests).map((r) => r.error), ["invalid_client", "invalid_client"])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("a token that expires during the test is replaced before it expires", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make({ accessTokenTtl: 4 })
        const source = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.basic(clients.basic.id, Redacted.make(clients.basic.secret)),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        let token = yield* source.get
        for (let i = 0; i < 2; i++) {
          const next = yield* newToken(source, token)
          const now = yield* Clock.currentTimeMillis
          assert.isTrue(now < token.expiresAt!, `replaced ${now - token.expiresAt!} ms after expiry`)
          assert.strictEqual((yield* op.introspect(value(token))).active, true, "the old token was still live")
          token = next
        }
        assert.strictEqual((yield* op.tokenRequests).length, 3)
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })

  describe("authorization code with PKCE", () => {
    it.live("S256, with login and consent completed headlessly", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const { callback, grant } = yield* authorizationCode(op, clients.public.id)
        assert.strictEqual(new URL(callback).searchParams.get("iss"), op.issuer)
        const source = yield* publicSource(op, grant)
        const token = yield* source.get
        assert.isDefined(token.refreshToken)
        assert.includeMembers(token.scopes as Array<string>, ["openid", "api:read"])
        assert.strictEqual((yield* op.introspect(value(token))).active, true)
        const [request] = yield* op.tokenRequests
        assert.deepStrictEqual([request?.grantType, request?.auth, request?.status], [
          "authorization_code",
          "none",
          200
        ])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("the server enforces the verifier: a wrong one is InvalidGrant", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const { grant } = yield* authorizationCode(op, clients.public.id)
        const forged = grant._tag === "AuthorizationCode"
          ? Grant.authorizationCode({ ...grant, codeVerifier: Redacted.make("x".repeat(43)) })
          : grant
        const error = yield* Effect.flip(publicSource(op, forged))
        assert.strictEqual(error._tag, "InvalidGrant")
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })

  describe("refresh tokens", () => {
    it.live("rotation: each refresh token is sent once, the one last received; reuse would revoke the grant", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make({ accessTokenTtl: 4 })
        const { grant } = yield* authorizationCode(op, clients.public.id)
        const source = yield* publicSource(op, grant)
        const tokens = [yield* source.get]
        for (let i = 0; i < 3; i++) tokens.push(yield* newToken(source, tokens[tokens.length - 1]!))
        const refreshes = (yield* op.tokenRequests).filter((r) => r.grantType === "refresh_token")
        assert.strictEqual(refreshes.length, 3)
        assert.isTrue(refreshes.every((r) => r.status === 200))
        // the refresh token sent each time is the one the previous response rotated in
        assert.deepStrictEqual(
          refreshes.map((r) => r.refreshToken),
          tokens.slice(0, 3).map((t) => Redacted.value(t.refreshToken!))
        )
        assert.strictEqual(new Set(tokens.map((t) => Redacted.value(t.refreshToken!))).size, 4, "rotated every time")
        const events = yield* op.events
        assert.strictEqual(events.filter((e) => e.name === "refresh_token.consumed").length, 3)
        assert.deepStrictEqual(events.filter((e) => e.name === "grant.revoked" || e.name === "grant.error"), [])

        // what the client never did, the server would have noticed: a rotated token revokes the grant
        const reuse = yield* op.tokenRequest({
          grant_type: "refresh_token",
          refresh_token: Redacted.value(tokens[0]!.refreshToken!),
          client_id: clients.public.id
        })
        assert.strictEqual(reuse.body.error, "invalid_grant")
        assert.isTrue((yield* op.events).some((e) => e.name === "grant.revoked"))
        // and the source, whose current refresh token died with the grant, needs the user again
        const error = yield* Effect.flip(source.refresh)
        assert.strictEqual(error._tag, "ReauthorizationRequired")
        assert.strictEqual(error._tag === "ReauthorizationRequired" && error.reason?._tag, "InvalidGrant")
        assert.strictEqual((yield* op.tokenRequests).filter((r) => r.grantType === "authorization_code").length, 1)
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("a revoked refresh token is InvalidGrant; an authorization-code source then needs reauthorization", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make({ accessTokenTtl: 60 })
        const { grant } = yield* authorizationCode(op, clients.basic.id)
        const clientAuth = ClientAuth.basic(clients.basic.id, Redacted.make(clients.basic.secret))
        const source = yield* TokenSource.make({ url: op.tokenUrl, clientAuth, grant })
        const token = yield* source.get
        yield* Revocation.revoke(op.revocationUrl, token.refreshToken!, "refresh_token", clientAuth)
        assert.strictEqual((yield* op.introspect(Redacted.value(token.refreshToken!))).active, false)
        const endpoint = yield* TokenEndpoint.make({ url: op.tokenUrl, clientAuth })
        const refused = yield* Effect.flip(endpoint.request(Grant.refreshToken({ refreshToken: token.refreshToken! })))
        assert.strictEqual(refused._tag, "InvalidGrant")
        const error = yield* Effect.flip(source.refresh)
        assert.strictEqual(error._tag, "ReauthorizationRequired")
        assert.strictEqual(error._tag === "ReauthorizationRequired" && error.reason?._tag, "InvalidGrant")
        const state = yield* source.state
        assert.strictEqual(state._tag, "Failed")
        assert.strictEqual((yield* op.tokenRequests).filter((r) => r.grantType === "authorization_code").length, 1)
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })

  describe("device authorization grant", () => {
    it.live("approved by the user headlessly; then refreshed with its refresh token", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make({ accessTokenTtl: 4 })
        const source = yield* publicSource(
          op,
          Grant.deviceCode({ deviceAuthorizationEndpoint: op.deviceAuthorizationUrl, scopes: ["openid", "api:read"] })
        )
        const prompt = yield* waitFor(source, (s) => s._tag === "AwaitingUser")
        if (prompt._tag !== "AwaitingUser") return assert.fail()
        assert.match(prompt.userCode, /^[A-Z]{4}-[A-Z]{4}$/)
        assert.strictEqual(prompt.verificationUri, `${op.issuer}/device`)
        const page = yield* op.completeDevice(Option.getOrThrow(prompt.verificationUriComplete), "approve")
        assert.include(page, "Sign-in Success")
        const token = yield* source.get.pipe(Effect.timeout("15 seconds"))
        assert.isDefined(token.refreshToken)
        assert.strictEqual((yield* op.introspect(value(token))).active, true)
        const pending = (yield* op.tokenRequests).filter((r) => r.error === "authorization_pending")
        assert.isTrue(pending.every((r) => r.grantType === "urn:ietf:params:oauth:grant-type:device_code"))
        const next = yield* newToken(source, token)
        assert.notStrictEqual(value(next), value(token))
        const refreshes = (yield* op.tokenRequests).filter((r) => r.grantType === "refresh_token")
        assert.deepStrictEqual(refreshes.map((r) => [r.refreshToken, r.status]), [[
          Redacted.value(token.refreshToken!),
          200
        ]])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("refused by the user: access_denied, permanent and typed", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const source = yield* publicSource(
          op,
          Grant.deviceCode({ deviceAuthorizationEndpoint: op.deviceAuthorizationUrl, scopes: ["openid"] })
        )
        const prompt = yield* waitFor(source, (s) => s._tag === "AwaitingUser")
        if (prompt._tag !== "AwaitingUser") return assert.fail()
        yield* op.completeDevice(Option.getOrThrow(prompt.verificationUriComplete), "deny")
        const failed = yield* waitFor(source, (s) => s._tag === "Failed")
        assert.isTrue(failed._tag === "Failed" && DeviceFlow.isAccessDenied(failed.error))
        assert.isTrue(failed._tag === "Failed" && failed.error._tag === "AccessDenied" && failed.error.status === 400)
        const error = yield* Effect.flip(source.get)
        assert.isTrue(DeviceFlow.isAccessDenied(error))
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })

  describe("client authentication without shared secrets", () => {
    const privateKeyJwt = (key: Parameters<typeof ClientAuth.privateKeyJwt>[1]) =>
      ClientAuth.privateKeyJwt(clients.privateKeyJwt.id, key, {
        algorithm: "ES256",
        keyId: clients.privateKeyJwt.keyId
      })
    const tagOf = <A, E extends { readonly _tag: string }>(exit: Exit.Exit<A, E>) =>
      Exit.isFailure(exit) ? Option.getOrThrow(Cause.failureOption(exit.cause))._tag : "success"

    it.live("private_key_jwt: client credentials with a signed assertion per request; an unknown key is InvalidClient", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const source = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: privateKeyJwt(Redacted.make(EC_PEM)),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        const token = yield* source.get
        const second = yield* source.refresh
        const introspection = yield* op.introspect(value(second))
        assert.isTrue(introspection.active)
        assert.strictEqual(introspection["client_id"], clients.privateKeyJwt.id)
        assert.notStrictEqual(value(token), value(second))
        const unknown = yield* Effect.exit(TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.privateKeyJwt(clients.privateKeyJwt.id, Redacted.make(OTHER_JWK), {
            algorithm: "ES256"
          }),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        }))
        assert.strictEqual(tagOf(unknown), "InvalidClient")
        const requests = yield* op.tokenRequests
        assert.deepStrictEqual(requests.map((r) => [r.auth, r.status, r.error ?? null]), [
          ["jwt", 200, null],
          ["jwt", 200, null],
          ["jwt", 401, "invalid_client"]
        ])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("private_key_jwt: an expired or misaddressed assertion is refused as InvalidClient", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const make = (clientAuth: ClientAuth.ClientAuth) =>
          Effect.exit(TokenSource.make({
            url: op.tokenUrl,
            clientAuth,
            grant: Grant.clientCredentials({ scopes: ["api:read"] })
          }))
        // signed on a clock two hours slow: expired at the server on arrival
        const live = Clock.make()
        const slow: Clock.Clock = {
          [Clock.ClockTypeId]: Clock.ClockTypeId,
          unsafeCurrentTimeMillis: () => live.unsafeCurrentTimeMillis() - 7_200_000,
          currentTimeMillis: Effect.sync(() => live.unsafeCurrentTimeMillis() - 7_200_000),
          unsafeCurrentTimeNanos: () => live.unsafeCurrentTimeNanos() - 7_200_000_000_000n,
          currentTimeNanos: Effect.sync(() => live.unsafeCurrentTimeNanos() - 7_200_000_000_000n),
          sleep: (duration) => live.sleep(duration)
        }
        const expired = yield* make(privateKeyJwt(Redacted.make(EC_PEM))).pipe(Effect.withClock(slow))
        assert.strictEqual(tagOf(expired), "InvalidClient")
        const misaddressed = yield* make(ClientAuth.privateKeyJwt(clients.privateKeyJwt.id, Redacted.make(EC_PEM), {
          algorithm: "ES256",
          audience: "https://elsewhere.example/token"
        }))
        assert.strictEqual(tagOf(misaddressed), "InvalidClient")
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("client_secret_jwt: the secret signs the assertion and never travels", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const source = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.clientSecretJwt(
            clients.clientSecretJwt.id,
            Redacted.make(clients.clientSecretJwt.secret)
          ),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        const introspection = yield* op.introspect(value(yield* source.get))
        assert.strictEqual(introspection["client_id"], clients.clientSecretJwt.id)
        const wrong = yield* Effect.exit(TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.clientSecretJwt(clients.clientSecretJwt.id, Redacted.make("x".repeat(48))),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        }))
        assert.strictEqual(tagOf(wrong), "InvalidClient")
      }).pipe(Effect.provide(HttpLive), Effect.scoped))

    it.live("token exchange (a fake registered through registerGrantType): follows the upstream source", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make()
        const upstream = yield* TokenSource.make({
          url: op.tokenUrl,
          clientAuth: ClientAuth.basic(clients.basic.id, Redacted.make(clients.basic.secret)),
          grant: Grant.clientCredentials({ scopes: ["api:read"] })
        })
        const downstream = yield* TokenExchange.make({
          url: op.tokenUrl,
          clientAuth: privateKeyJwt(Redacted.make(EC_PEM)),
          upstream,
          audience: "https://api.example",
          scopes: ["api:read"]
        })
        const token = yield* downstream.get
        assert.strictEqual((yield* op.introspect(value(token)))["client_id"], clients.privateKeyJwt.id)
        yield* upstream.refresh
        const next = yield* newToken(downstream, token)
        assert.isTrue((yield* op.introspect(value(next))).active)
        const exchanges = (yield* op.tokenRequests).filter((r) => r.grantType === OidcProvider.TOKEN_EXCHANGE)
        assert.deepStrictEqual(exchanges.map((r) => [r.auth, r.status]), [["jwt", 200], ["jwt", 200]])
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })

  describe("AuthorizedClient", () => {
    it.live("a token dropped at the server: the userinfo endpoint's 401 leads to one refresh and a retry", () =>
      Effect.gen(function*() {
        const op = yield* OidcProvider.make({ accessTokenTtl: 60 })
        const { grant } = yield* authorizationCode(op, clients.public.id)
        const source = yield* publicSource(op, grant)
        const api = yield* AuthorizedClient.make(source, { origin: op.issuer })
        const UserInfo = Schema.Struct({ sub: Schema.String })
        const me = yield* api.get(`${op.issuer}/me`).pipe(Effect.flatMap(HttpClientResponse.schemaBodyJson(UserInfo)))
        assert.strictEqual(me.sub, "alice")
        const token = yield* source.get
        yield* op.dropAccessToken(value(token))
        const again = yield* api.get(`${op.issuer}/me`).pipe(
          Effect.flatMap(HttpClientResponse.schemaBodyJson(UserInfo))
        )
        assert.strictEqual(again.sub, "alice")
        assert.notStrictEqual(value(yield* source.get), value(token))
        assert.strictEqual((yield* op.tokenRequests).filter((r) => r.grantType === "refresh_token").length, 1)
      }).pipe(Effect.provide(HttpLive), Effect.scoped))
  })
})
