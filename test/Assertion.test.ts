import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, Redacted, Ref } from "effect"
import * as Jose from "jose"
import { ClientAuth, Grant, TokenExchange, TokenPool, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { EC_JWK, EC_PEM, EC_PUBLIC, OTHER_JWK, RSA_PEM, RSA_PUBLIC } from "./fixtures/keys.js"
import { CLIENT_SECRET, KEY_SECRETS, OPAQUE_ACCESS } from "./secrets.js"
import { HttpLive } from "./util.js"

const CLIENT = "jwt-client"

/** A server that knows the JWT client by its EC public key and by a shared secret. */
const jwtServer = (options: Partial<AuthServer.Options> = {}) =>
  AuthServer.make({
    clients: [{
      clientId: CLIENT,
      clientSecret: CLIENT_SECRET,
      publicKey: EC_PUBLIC,
      authMethods: ["private_key_jwt", "client_secret_jwt"]
    }],
    ...options
  })

const source = (server: AuthServer.AuthServer, clientAuth: ClientAuth.ClientAuth, grant?: Grant.Grant) =>
  TokenSource.make({
    url: server.tokenUrl,
    clientAuth,
    grant: grant ?? Grant.clientCredentials({ scopes: ["read"] }),
    timeout: "30 days"
  })

const assertionsOf = (server: AuthServer.AuthServer, field = "client_assertion") =>
  Effect.map(server.requests, (requests) => requests.map((r) => r.form[field]!).filter((a) => a !== undefined))

const failure = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Option.getOrThrow(Cause.failureOption((exit as Exit.Failure<A, E>).cause))
}

describe("Assertion", () => {
  describe("private_key_jwt", () => {
    it.scoped("signs a fresh assertion per request: iss and sub the client, aud the endpoint, a new jti", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const tokens = yield* source(
          server,
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "ES256", keyId: "k1" })
        )
        yield* tokens.get
        yield* tokens.refresh
        const requests = yield* server.requests
        assert.deepStrictEqual(requests.map((r) => [r.authMethod, r.outcome]), [
          ["private_key_jwt", "token"],
          ["private_key_jwt", "token"]
        ])
        const assertions = yield* assertionsOf(server)
        assert.strictEqual(assertions.length, 2)
        const claims = assertions.map((a) => Jose.decodeJwt(a))
        for (const c of claims) {
          assert.strictEqual(c.iss, CLIENT)
          assert.strictEqual(c.sub, CLIENT)
          assert.strictEqual(c.aud, server.tokenUrl)
          assert.strictEqual(c.exp! - c.iat!, 60)
        }
        assert.notStrictEqual(claims[0]!.jti, claims[1]!.jti)
        assert.deepStrictEqual(Jose.decodeProtectedHeader(assertions[0]!), { alg: "ES256", typ: "JWT", kid: "k1" })
        assert.strictEqual(
          requests[0]!.form.client_assertion_type,
          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("takes the key as a PEM, a JWK (JSON or object) or a non-extractable CryptoKey", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const cryptoKey = yield* Effect.promise(() =>
          Jose.importJWK(EC_JWK, "ES256", { extractable: false }) as Promise<Jose.CryptoKey>
        )
        const keys: ReadonlyArray<Parameters<typeof ClientAuth.privateKeyJwt>[1]> = [
          Redacted.make(EC_PEM),
          Redacted.make(JSON.stringify(EC_JWK)),
          Redacted.make(EC_JWK),
          cryptoKey
        ]
        for (const key of keys) {
          const tokens = yield* source(server, ClientAuth.privateKeyJwt(CLIENT, key, { algorithm: "ES256" }))
          yield* tokens.get
        }
        const requests = yield* server.requests
        assert.deepStrictEqual(requests.map((r) => r.outcome), ["token", "token", "token", "token"])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a malformed key or a key of another algorithm fails make with InvalidConfiguration, before any request", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const bad = [
          ClientAuth.privateKeyJwt(
            CLIENT,
            Redacted.make("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----"),
            {
              algorithm: "ES256"
            }
          ),
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(`{"kty":"EC","d":"${EC_JWK.d}"`), { algorithm: "ES256" }),
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "RS256" }),
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(RSA_PEM), { algorithm: "ES256" }),
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "HS256" as never }),
          ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "ES256", lifetime: "2 hours" })
        ]
        for (const clientAuth of bad) {
          const error = failure(yield* Effect.exit(source(server, clientAuth)))
          assert.strictEqual(error._tag, "InvalidConfiguration")
          const text = `${error.message} ${JSON.stringify(error)} ${String(error)}`
          for (const secret of KEY_SECRETS) assert.notInclude(text, secret)
        }
        assert.strictEqual(yield* server.count(), 0)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a key the server does not know is InvalidClient", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const error = failure(
          yield* Effect.exit(
            source(server, ClientAuth.privateKeyJwt(CLIENT, Redacted.make(OTHER_JWK), { algorithm: "ES256" }))
          )
        )
        assert.strictEqual(error._tag, "InvalidClient")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an expired or misaddressed assertion refused by the server is InvalidClient", () =>
      Effect.gen(function*() {
        // the server's clock is two hours ahead of ours: every assertion has expired on arrival
        const late = yield* jwtServer({ now: () => 2 * 3600_000 })
        const expired = failure(
          yield* Effect.exit(
            source(late, ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "ES256" }))
          )
        )
        assert.strictEqual(expired._tag, "InvalidClient")
        const server = yield* jwtServer()
        const misaddressed = failure(
          yield* Effect.exit(
            source(
              server,
              ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), {
                algorithm: "ES256",
                audience: "https://elsewhere.example/token"
              })
            )
          )
        )
        assert.strictEqual(misaddressed._tag, "InvalidClient")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a key given as an effect is read once, and again only after an InvalidClient (rotation, no restart)", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const mounted = yield* Ref.make<Redacted.Redacted<Jose.JWK>>(Redacted.make(EC_JWK))
        const reads = yield* Ref.make(0)
        const key = Ref.update(reads, (n) => n + 1).pipe(Effect.zipRight(Ref.get(mounted)))
        const tokens = yield* source(server, ClientAuth.privateKeyJwt(CLIENT, key, { algorithm: "ES256" }))
        yield* tokens.get
        yield* tokens.refresh
        assert.strictEqual(yield* Ref.get(reads), 1, "read once for two requests")
        // the operator rotates the key at the server and in the mounted file
        const { d: _d, ...otherPublic } = OTHER_JWK
        yield* server.rotateClientKey(CLIENT, otherPublic)
        yield* Ref.set(mounted, Redacted.make(OTHER_JWK))
        const refused = failure(yield* Effect.exit(tokens.refresh))
        assert.strictEqual(refused._tag, "InvalidClient")
        yield* tokens.refresh
        assert.strictEqual(yield* Ref.get(reads), 2, "read again after the refusal only")
        const outcomes = (yield* server.requests).map((r) => r.outcome)
        assert.deepStrictEqual(outcomes, ["token", "token", "error", "token"])
      }).pipe(Effect.provide(HttpLive)))
  })

  it.scoped("a server that echoes the client assertion, the bearer assertion or the subject token has them scrubbed", () =>
    Effect.gen(function*() {
      const echo = (field: string) =>
        AuthServer.make({
          clients: [{ clientId: CLIENT, publicKey: EC_PUBLIC, authMethods: ["private_key_jwt"] }],
          jwtBearer: { issuer: "svc", publicKey: { ...RSA_PUBLIC, alg: "RS256" } },
          tokenExchange: { validSubject: () => true },
          check: (request) => ({ error: "invalid_request", description: `you sent ${field}=${request.form[field]}` })
        })
      const clientAuth = ClientAuth.privateKeyJwt(CLIENT, Redacted.make(EC_PEM), { algorithm: "ES256" })
      const cases = [
        ["client_assertion", Grant.clientCredentials()],
        ["assertion", Grant.jwtBearer({ issuer: "svc", key: Redacted.make(RSA_PEM) })],
        ["subject_token", Grant.tokenExchange({ subjectToken: Redacted.make(OPAQUE_ACCESS) })]
      ] as const
      for (const [field, grant] of cases) {
        const server = yield* echo(field)
        const error = failure(yield* Effect.exit(source(server, clientAuth, grant)))
        assert.strictEqual(error._tag, "InvalidRequest")
        const sent = (yield* server.requests)[0]!.form[field]!
        const text = `${error.message} ${JSON.stringify(error)} ${String(error)}`
        assert.include(text, `you sent ${field}=`)
        assert.notInclude(text, sent)
        assert.notInclude(text, sent.slice(0, 40))
      }
    }).pipe(Effect.provide(HttpLive)))

  describe("client_secret_jwt", () => {
    it.scoped("signs with the secret (HS256) and never sends it", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const tokens = yield* source(server, ClientAuth.clientSecretJwt(CLIENT, Redacted.make(CLIENT_SECRET)))
        yield* tokens.get
        const [request] = yield* server.requests
        assert.strictEqual(request!.authMethod, "client_secret_jwt")
        assert.notInclude(request!.rawBody, CLIENT_SECRET)
        assert.strictEqual(Jose.decodeProtectedHeader(request!.form.client_assertion!).alg, "HS256")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a wrong secret is InvalidClient, and an empty one InvalidConfiguration", () =>
      Effect.gen(function*() {
        const server = yield* jwtServer()
        const wrong = failure(
          yield* Effect.exit(source(server, ClientAuth.clientSecretJwt(CLIENT, Redacted.make("not-the-secret"))))
        )
        assert.strictEqual(wrong._tag, "InvalidClient")
        const empty = failure(yield* Effect.exit(source(server, ClientAuth.clientSecretJwt(CLIENT, Redacted.make("")))))
        assert.strictEqual(empty._tag, "InvalidConfiguration")
        assert.strictEqual(yield* server.count(), 1)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("JWT bearer grant (RFC 7523 section 2.1)", () => {
    const ISSUER = "svc-reports@example.iam"
    const bearerServer = AuthServer.make({
      clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
      jwtBearer: { issuer: ISSUER, publicKey: { ...RSA_PUBLIC, alg: "RS256" } }
    })
    const bearer = (server: AuthServer.AuthServer, options: Partial<Parameters<typeof Grant.jwtBearer>[0]> = {}) =>
      source(
        server,
        ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
        Grant.jwtBearer({ issuer: ISSUER, key: Redacted.make(RSA_PEM), scopes: ["reports"], ...options })
      )

    it.scoped("a service account gets tokens with a new signed assertion each time, its claims configurable", () =>
      Effect.gen(function*() {
        const server = yield* bearerServer
        const tokens = yield* bearer(server, { subject: "alice@example.com", claims: { tenant: "t1", iss: "ignored" } })
        const token = yield* tokens.get
        yield* tokens.refresh
        assert.deepStrictEqual(token.scopes, ["reports"])
        const assertions = yield* assertionsOf(server, "assertion")
        assert.strictEqual(assertions.length, 2)
        const [a, b] = assertions.map((x) => Jose.decodeJwt(x))
        assert.strictEqual(a!.iss, ISSUER, "registered claims cannot be replaced")
        assert.strictEqual(a!.sub, "alice@example.com")
        assert.strictEqual(a!.aud, server.tokenUrl)
        assert.strictEqual(a!.tenant, "t1")
        assert.notStrictEqual(a!.jti, b!.jti)
        assert.deepStrictEqual(
          (yield* server.requests).map((r) => [r.grantType, r.outcome]),
          [["urn:ietf:params:oauth:grant-type:jwt-bearer", "token"], [
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "token"
          ]]
        )
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("an assertion signed with a key the server does not trust, or misaddressed, is InvalidGrant", () =>
      Effect.gen(function*() {
        const server = yield* bearerServer
        const untrusted = failure(
          yield* Effect.exit(bearer(server, { key: Redacted.make(OTHER_JWK), algorithm: "ES256" }))
        )
        assert.strictEqual(untrusted._tag, "InvalidGrant")
        const misaddressed = failure(
          yield* Effect.exit(bearer(server, { audience: "https://elsewhere.example/token" }))
        )
        assert.strictEqual(misaddressed._tag, "InvalidGrant")
        assert.strictEqual(yield* server.count(), 2)
      }).pipe(Effect.provide(HttpLive)))

    it("the grant's key and claims are part of the credential's key; the key itself is not", () => {
      const parts = (grant: Grant.Grant) =>
        TokenStore.key({ url: "https://auth.example/token", clientAuth: ClientAuth.none("c"), grant })
      const grant = (options: Partial<Parameters<typeof Grant.jwtBearer>[0]>) =>
        Grant.jwtBearer({ issuer: ISSUER, key: Redacted.make(RSA_PEM), ...options })
      assert.strictEqual(parts(grant({})), parts(grant({ key: Redacted.make(EC_PEM) })))
      assert.notStrictEqual(parts(grant({})), parts(grant({ subject: "bob" })))
      assert.notStrictEqual(parts(grant({})), parts(grant({ claims: { tenant: "t2" } })))
    })

    it.scoped("claims that are not JSON (a bigint) are InvalidConfiguration for a source and a pool, nothing sent", () =>
      Effect.gen(function*() {
        const server = yield* AuthServer.make()
        const grant = Grant.jwtBearer({ issuer: ISSUER, key: Redacted.make(RSA_PEM), claims: { quota: 10n } })
        const credential = { url: server.tokenUrl, clientAuth: ClientAuth.none("c"), grant }
        const fromSource = yield* Effect.flip(TokenSource.make(credential))
        assert.strictEqual(fromSource._tag, "InvalidConfiguration")
        assert.include(fromSource.message, "JSON values")
        const pool = yield* TokenPool.make()
        const fromPool = yield* Effect.flip(pool.get(credential))
        assert.strictEqual(fromPool._tag, "InvalidConfiguration")
        assert.strictEqual(yield* server.count(), 0)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("token exchange (RFC 8693)", () => {
    const upstreamOf = (server: AuthServer.AuthServer) =>
      source(server, ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)))

    const pair = Effect.gen(function*() {
      const users = yield* AuthServer.make({ clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }] })
      const issued = new Set<string>()
      const downstreamServer = yield* AuthServer.make({
        clients: [{ clientId: "agent", clientSecret: CLIENT_SECRET }],
        tokenExchange: { validSubject: (token) => issued.has(token) }
      })
      const upstream = yield* upstreamOf(users)
      const remember = Effect.map(upstream.get, (t) => void issued.add(Redacted.value(t.value)))
      yield* remember
      return { users, downstreamServer, upstream, remember, issued }
    })

    const exchange = (
      server: AuthServer.AuthServer,
      upstream: TokenSource.TokenSource,
      options: Partial<TokenExchange.Options> = {}
    ) =>
      TokenExchange.make({
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("agent", Redacted.make(CLIENT_SECRET)),
        upstream,
        audience: "https://api.example",
        requestedTokenType: Grant.TokenType.accessToken,
        timeout: "30 days",
        ...options
      })

    it.scoped("trades the upstream's current token, and again each time the upstream token changes", () =>
      Effect.gen(function*() {
        const { downstreamServer, remember, upstream } = yield* pair
        const downstream = yield* exchange(downstreamServer, upstream)
        yield* downstream.get
        const first = (yield* downstreamServer.requests)[0]!
        assert.strictEqual(first.grantType, "urn:ietf:params:oauth:grant-type:token-exchange")
        assert.strictEqual(first.form.subject_token, Redacted.value((yield* upstream.get).value))
        assert.strictEqual(first.form.subject_token_type, Grant.TokenType.accessToken)
        assert.strictEqual(first.form.audience, "https://api.example")
        assert.strictEqual(first.form.requested_token_type, Grant.TokenType.accessToken)
        const identity = downstream.identity
        // the upstream refreshes: the downstream follows with one request carrying the new token
        yield* upstream.refresh
        yield* remember
        const upstreamToken = Redacted.value((yield* upstream.get).value)
        for (let i = 0; i < 200 && (yield* downstreamServer.count()) < 2; i++) {
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        }
        const requests = yield* downstreamServer.requests
        assert.deepStrictEqual(requests.map((r) => r.outcome), ["token", "token"])
        assert.strictEqual(requests[1]!.form.subject_token, upstreamToken)
        // keyed by the upstream credential, not its token: the same identity after the upstream changed
        const again = yield* exchange(downstreamServer, upstream)
        assert.strictEqual(again.identity, identity)
        assert.isString(identity)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("different upstream credentials or audiences give different keys", () =>
      Effect.gen(function*() {
        const { downstreamServer, issued, upstream, users } = yield* pair
        const other = yield* source(
          users,
          ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          Grant.clientCredentials({ scopes: ["write"] })
        )
        issued.add(Redacted.value((yield* other.get).value))
        const a = yield* exchange(downstreamServer, upstream)
        const b = yield* exchange(downstreamServer, other)
        const c = yield* exchange(downstreamServer, upstream, { audience: "https://other.example" })
        assert.notStrictEqual(a.identity, b.identity)
        assert.notStrictEqual(a.identity, c.identity)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a failing upstream fails the exchange with the upstream's own typed error", () =>
      Effect.gen(function*() {
        const { downstreamServer, upstream, users } = yield* pair
        const downstream = yield* exchange(downstreamServer, upstream)
        yield* users.inject(AuthServer.Fault.status(400), AuthServer.Fault.status(400))
        yield* upstream.invalidate(yield* upstream.get)
        const error = failure(yield* Effect.exit(downstream.refresh))
        assert.strictEqual(error._tag, "InvalidRequest")
        assert.strictEqual(yield* downstreamServer.count(), 1, "no exchange was sent without a subject token")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a subject token the server refuses is InvalidGrant; a fixed subject token in a store needs a subject", () =>
      Effect.gen(function*() {
        const { downstreamServer } = yield* pair
        const refused = failure(
          yield* Effect.exit(source(
            downstreamServer,
            ClientAuth.basic("agent", Redacted.make(CLIENT_SECRET)),
            Grant.tokenExchange({ subjectToken: Redacted.make("not-a-token-we-issued") })
          ))
        )
        assert.strictEqual(refused._tag, "InvalidGrant")
        const needsSubject = failure(
          yield* Effect.exit(
            TokenSource.make({
              url: downstreamServer.tokenUrl,
              clientAuth: ClientAuth.basic("agent", Redacted.make(CLIENT_SECRET)),
              grant: Grant.tokenExchange({ subjectToken: Redacted.make("x") }),
              store: true
            }).pipe(Effect.provide(TokenStore.layerMemory))
          )
        )
        assert.strictEqual(needsSubject._tag, "InvalidConfiguration")
      }).pipe(Effect.provide(HttpLive)))
  })
})
