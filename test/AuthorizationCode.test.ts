import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, TestClock } from "effect"
import * as Crypto from "node:crypto"
import { AuthorizationCode, ClientAuth, Grant, TokenEndpoint, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { HttpLive, noJitter, waitForNewToken } from "./util.js"

const REDIRECT = "http://127.0.0.1:8080/callback"
const s256 = (verifier: string) => Crypto.createHash("sha256").update(verifier).digest("base64url")
// RFC 7636 section 4.1: 43 to 128 unreserved characters
const verifierShape = /^[A-Za-z0-9\-._~]{43,128}$/

const options = (overrides?: Partial<AuthorizationCode.Options>): AuthorizationCode.Options => ({
  authorizationEndpoint: "https://auth.example.com/authorize",
  clientId: "web app",
  redirectUri: REDIRECT,
  scopes: ["read", "write"],
  ...overrides
})

const paramsOf = (request: AuthorizationCode.AuthorizationRequest) => new URL(request.url).searchParams

/** The callback the authorization server would redirect to. */
const callbackUrl = (query: Record<string, string>) => `${REDIRECT}?${new URLSearchParams(query)}`

describe("AuthorizationCode", () => {
  describe("authorize", () => {
    it.effect("builds the authorize URL with code, client, redirect, scope, state and an S256 challenge", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options({ extraParams: { prompt: "consent" } }))
        const url = new URL(request.url)
        assert.strictEqual(`${url.origin}${url.pathname}`, "https://auth.example.com/authorize")
        const params = url.searchParams
        assert.deepStrictEqual([...params.keys()].sort(), [
          "client_id",
          "code_challenge",
          "code_challenge_method",
          "prompt",
          "redirect_uri",
          "response_type",
          "scope",
          "state"
        ])
        assert.strictEqual(params.get("response_type"), "code")
        assert.strictEqual(params.get("client_id"), "web app")
        assert.strictEqual(params.get("redirect_uri"), REDIRECT)
        assert.strictEqual(params.get("scope"), "read write")
        assert.strictEqual(params.get("prompt"), "consent")
        assert.strictEqual(params.get("state"), Redacted.value(request.state))
        assert.strictEqual(params.get("code_challenge_method"), "S256")
        const verifier = Redacted.value(request.codeVerifier!)
        assert.match(verifier, verifierShape)
        assert.strictEqual(params.get("code_challenge"), s256(verifier))
        assert.notInclude(request.url, verifier)
        assert.strictEqual(request.redirectUri, REDIRECT)
        assert.deepStrictEqual(request.scopes, ["read", "write"])
      }))

    it.effect("RFC 7636 appendix B: the challenge is base64url(sha256(verifier))", () =>
      Effect.sync(() => {
        // the RFC's own example pair, so the helper this file checks against is itself right
        assert.strictEqual(
          s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
          "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        )
      }))

    it.effect("keeps the endpoint's own query and joins scopes with a custom separator", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options({
          authorizationEndpoint: "https://auth.example.com/authorize?tenant=acme",
          scopeSeparator: ","
        }))
        const params = paramsOf(request)
        assert.strictEqual(params.get("tenant"), "acme")
        assert.strictEqual(params.get("scope"), "read,write")
      }))

    it.effect("without PKCE: no challenge and no verifier", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options({ pkce: false, scopes: [] }))
        const params = paramsOf(request)
        assert.isNull(params.get("code_challenge"))
        assert.isNull(params.get("code_challenge_method"))
        assert.isNull(params.get("scope"))
        assert.isUndefined(request.codeVerifier)
      }))

    it.effect("state and verifier are fresh and unguessable on every call", () =>
      Effect.gen(function*() {
        const requests = yield* Effect.all(Array.from({ length: 200 }, () => AuthorizationCode.authorize(options())))
        const states = requests.map((r) => Redacted.value(r.state))
        const verifiers = requests.map((r) => Redacted.value(r.codeVerifier!))
        assert.strictEqual(new Set(states).size, 200)
        assert.strictEqual(new Set(verifiers).size, 200)
        assert.strictEqual(new Set([...states, ...verifiers]).size, 400, "no state is reused as a verifier")
        // 32 random bytes each: at least 256 bits
        for (const value of [...states, ...verifiers]) assert.isAtLeast(Buffer.from(value, "base64url").length, 32)
        assert.strictEqual(new Set(requests.map((r) => paramsOf(r).get("code_challenge"))).size, 200)
      }))

    it.effect("state and verifier print redacted", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const verifier = Redacted.value(request.codeVerifier!)
        assert.strictEqual(String(request.state), "<redacted>")
        assert.notInclude(JSON.stringify({ ...request, url: undefined }), Redacted.value(request.state))
        assert.notInclude(JSON.stringify(request), verifier)
      }))

    it.effect("refuses an http authorization endpoint on a non-loopback host", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          AuthorizationCode.authorize(options({ authorizationEndpoint: "http://auth.example.com/authorize" }))
        )
        assert.strictEqual(error._tag, "InvalidConfiguration")
      }))
  })

  describe("callback", () => {
    it.effect("gives the grant with code, the identical redirect_uri, the verifier and the scopes", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const state = Redacted.value(request.state)
        for (
          const callback of [
            callbackUrl({ code: "the-code", state }),
            new URL(callbackUrl({ code: "the-code", state })),
            new URLSearchParams({ code: "the-code", state })
          ]
        ) {
          const grant = yield* AuthorizationCode.callback(request, callback)
          assert.strictEqual(grant._tag, "AuthorizationCode")
          if (grant._tag !== "AuthorizationCode") return
          assert.strictEqual(Redacted.value(grant.code), "the-code")
          assert.strictEqual(grant.redirectUri, REDIRECT)
          assert.strictEqual(grant.codeVerifier, request.codeVerifier)
          assert.deepStrictEqual(grant.scopes, ["read", "write"])
        }
      }))

    it.effect("accepts the request target a server sees (path and query) and a bare query", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const query = new URLSearchParams({ code: "the-code", state: Redacted.value(request.state) })
        for (const callback of [`/callback?${query}`, `?${query}`]) {
          const grant = yield* AuthorizationCode.callback(request, callback)
          assert.strictEqual(grant._tag === "AuthorizationCode" && Redacted.value(grant.code), "the-code", callback)
        }
        const denied = yield* Effect.flip(AuthorizationCode.callback(
          request,
          `/callback?error=access_denied&state=${Redacted.value(request.state)}`
        ))
        assert.strictEqual(denied._tag === "OAuthError" && denied.url, "/callback")
      }))

    it.effect("a different or missing state is StateMismatch", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const other = yield* AuthorizationCode.authorize(options())
        const state = Redacted.value(request.state)
        for (
          const query of [
            { code: "c", state: Redacted.value(other.state) },
            { code: "c", state: state.slice(0, -1) },
            { code: "c", state: state + "x" },
            { code: "c", state: "" },
            { code: "c" },
            // an error without our state is not trusted either
            { error: "access_denied" }
          ]
        ) {
          const error = yield* Effect.flip(AuthorizationCode.callback(request, callbackUrl(query)))
          assert.strictEqual(error._tag, "StateMismatch", JSON.stringify(query))
          assert.isFalse(error.transient)
        }
      }))

    it.effect("error=access_denied is OAuthError with the code and description kept", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const error = yield* Effect.flip(AuthorizationCode.callback(
          request,
          callbackUrl({
            error: "access_denied",
            error_description: "The user said no\r\n",
            state: Redacted.value(request.state)
          })
        ))
        assert.strictEqual(error._tag, "OAuthError")
        if (error._tag !== "OAuthError") return
        assert.strictEqual(error.error, "access_denied")
        assert.strictEqual(error.description, "The user said no")
        assert.strictEqual(error.method, "GET")
        assert.strictEqual(error.url, REDIRECT)
        assert.notInclude(JSON.stringify(error), Redacted.value(request.state))
      }))

    it.effect("a missing or empty code is InvalidRequest", () =>
      Effect.gen(function*() {
        const request = yield* AuthorizationCode.authorize(options())
        const state = Redacted.value(request.state)
        for (const query of [{ state }, { state, code: "" }]) {
          const error = yield* Effect.flip(AuthorizationCode.callback(request, callbackUrl(query)))
          assert.strictEqual(error._tag, "InvalidRequest")
          assert.strictEqual(error._tag === "InvalidRequest" && error.error, "invalid_request")
        }
      }))

    it.scoped("a state mismatch sends nothing", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "web app" }] })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const code = yield* server.issueCode({ clientId: "web app", redirectUri: REDIRECT })
        const error = yield* AuthorizationCode.callback(request, callbackUrl({ code, state: "forged" })).pipe(
          Effect.flatMap((grant) =>
            TokenSource.make({ url: server.tokenUrl, clientAuth: ClientAuth.none("web app"), grant })
          ),
          Effect.flip
        )
        assert.strictEqual(error._tag, "StateMismatch")
        assert.strictEqual(yield* server.count(), 0)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("exchange with PKCE against the fake", () => {
    /** The authorization step: the fake issues a code for what the authorize URL asked. */
    const authorizeAt = (server: AuthServer.AuthServer, request: AuthorizationCode.AuthorizationRequest) =>
      Effect.gen(function*() {
        const params = paramsOf(request)
        const code = yield* server.issueCode({
          clientId: params.get("client_id")!,
          redirectUri: params.get("redirect_uri")!,
          scope: params.get("scope")!,
          codeChallenge: params.get("code_challenge")!,
          codeChallengeMethod: params.get("code_challenge_method") as "S256"
        })
        return callbackUrl({ code, state: params.get("state")! })
      })

    it.scoped("a public client (none) exchanges the code with its verifier, then refreshes", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "web app" }], lifetimeSeconds: 3600 })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const grant = yield* AuthorizationCode.callback(request, yield* authorizeAt(server, request))
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.none("web app"),
          grant,
          policy: noJitter
        })
        const token = yield* source.get
        assert.deepStrictEqual(token.scopes, ["read", "write"])
        assert.isDefined(token.refreshToken)
        const [exchange] = yield* server.requests
        assert.strictEqual(exchange!.grantType, "authorization_code")
        assert.strictEqual(exchange!.outcome, "token")
        assert.strictEqual(exchange!.authMethod, "none")
        assert.strictEqual(exchange!.form.code_verifier, Redacted.value(request.codeVerifier!))
        assert.strictEqual(exchange!.form.redirect_uri, REDIRECT)
        assert.isUndefined(exchange!.form.client_secret)
        assert.isUndefined(exchange!.headers.authorization)
        yield* TestClock.adjust("45 minutes")
        const next = yield* waitForNewToken(source, token)
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        assert.strictEqual(yield* server.count("authorization_code"), 1, "the code is never sent again")
        const refresh = (yield* server.requests)[1]!
        assert.strictEqual(refresh.form.refresh_token, Redacted.value(token.refreshToken!))
        assert.strictEqual(refresh.form.client_id, "web app")
        assert.strictEqual(refresh.outcome, "token")
        assert.deepStrictEqual(next.scopes, ["read", "write"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a confidential client with Basic does the same", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({
          clients: [{ clientId: "web app", clientSecret: "s3cr&t" }],
          lifetimeSeconds: 3600
        })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const grant = yield* AuthorizationCode.callback(request, yield* authorizeAt(server, request))
        const source = yield* TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("web app", Redacted.make("s3cr&t")),
          grant,
          policy: noJitter
        })
        const token = yield* source.get
        const next = yield* source.refresh
        assert.notStrictEqual(Redacted.value(next.value), Redacted.value(token.value))
        const requests = yield* server.requests
        assert.deepStrictEqual(requests.map((r) => [r.grantType, r.authMethod, r.outcome]), [
          ["authorization_code", "client_secret_basic", "token"],
          ["refresh_token", "client_secret_basic", "token"]
        ])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the fake checks PKCE: another request's verifier is InvalidGrant", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "web app" }] })
        const endpoint = yield* TokenEndpoint.make({ url: server.tokenUrl, clientAuth: ClientAuth.none("web app") })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const other = yield* AuthorizationCode.authorize(options({ authorizationEndpoint: server.url + "/authorize" }))
        const grant = yield* AuthorizationCode.callback(request, yield* authorizeAt(server, request))
        assert.strictEqual(grant._tag, "AuthorizationCode")
        if (grant._tag !== "AuthorizationCode") return
        const wrong = Grant.authorizationCode({ ...grant, codeVerifier: other.codeVerifier })
        const error = yield* Effect.flip(endpoint.request(wrong))
        assert.strictEqual(error._tag, "InvalidGrant")
        assert.strictEqual(
          error._tag === "InvalidGrant" && error.description,
          "code_verifier does not match the code_challenge"
        )
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a redirect_uri that is not identical is InvalidGrant", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "web app" }] })
        const endpoint = yield* TokenEndpoint.make({ url: server.tokenUrl, clientAuth: ClientAuth.none("web app") })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const grant = yield* AuthorizationCode.callback(request, yield* authorizeAt(server, request))
        if (grant._tag !== "AuthorizationCode") return assert.fail("not an authorization code grant")
        const error = yield* Effect.flip(
          endpoint.request(Grant.authorizationCode({ ...grant, redirectUri: REDIRECT + "/" }))
        )
        assert.strictEqual(error._tag, "InvalidGrant")
        assert.strictEqual(error._tag === "InvalidGrant" && error.description, "redirect_uri does not match")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a code is single use: a replay is InvalidGrant", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make({ clients: [{ clientId: "web app" }] })
        const endpoint = yield* TokenEndpoint.make({ url: server.tokenUrl, clientAuth: ClientAuth.none("web app") })
        const request = yield* AuthorizationCode.authorize(
          options({ authorizationEndpoint: server.url + "/authorize" })
        )
        const grant = yield* AuthorizationCode.callback(request, yield* authorizeAt(server, request))
        yield* endpoint.request(grant)
        const replay = yield* Effect.flip(endpoint.request(grant))
        assert.strictEqual(replay._tag, "InvalidGrant")
        assert.strictEqual(yield* server.count("authorization_code"), 2)
      }).pipe(Effect.provide(HttpLive)))
  })
})
