// What test/CredentialKey.test.ts leaves out: `keyOf` against `check` over every grant, the
// injectivity of `encode` field by field (the JWT bearer and token exchange fields, the JWT client
// authentication methods), and `endpointOf` itself.
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc, Redacted } from "effect"
import { ClientAuth, Grant } from "tokenwarden"
import * as Key from "../../src/internal/engine/key.js"

const secret = Redacted.make("secret")
const where = { keyOption: "key", sharedBy: "in a TokenPool" }

// a small alphabet with the characters that join and quote, as in CredentialKey.test.ts
const text = fc.string({
  unit: fc.constantFrom("a", "b", "&", "=", " ", "\"", "\\", ",", "[", "]", ":", "\u0000"),
  maxLength: 4
})
const list = fc.uniqueArray(text, { maxLength: 3 })

type GrantKind =
  | "client_credentials"
  | "password"
  | "authorization_code"
  | "refresh_token"
  | "device_code"
  | "jwt_bearer"
  | "token_exchange"

const grantKinds: ReadonlyArray<GrantKind> = [
  "client_credentials",
  "password",
  "authorization_code",
  "refresh_token",
  "device_code",
  "jwt_bearer",
  "token_exchange"
]

type AuthKind = "basic" | "post" | "none" | "private_key_jwt" | "client_secret_jwt"

/** Every field of the encoding's tuple, whatever the grant (only the grant's own are used). */
interface Spec {
  readonly url: string
  readonly clientId: string
  readonly auth: AuthKind
  readonly grant: GrantKind
  readonly username: string
  readonly subject: string | undefined
  readonly scopes: ReadonlyArray<string>
  readonly params: ReadonlyArray<readonly [string, string]>
  // JWT bearer
  readonly issuer: string
  readonly jwtSubject: string
  readonly jwtAudience: string | undefined
  readonly claims: ReadonlyArray<readonly [string, string | number]>
  // token exchange
  readonly subjectTokenType: string
  readonly actorTokenType: string | undefined
  readonly audience: ReadonlyArray<string>
  readonly resource: ReadonlyArray<string>
  readonly requestedTokenType: string | undefined
  readonly exchangeSubject: string | undefined
}

const fields = {
  url: fc.constantFrom(
    "https://a.example/token",
    "https://b.example/token",
    "https://a.example/oauth/token",
    "https://a.example/token?p=1",
    "https://a.example/token?p=2",
    "https://a.example:8443/token",
    "http://127.0.0.1/token"
  ),
  clientId: text,
  auth: fc.constantFrom<AuthKind>("basic", "post", "none", "private_key_jwt", "client_secret_jwt"),
  grant: fc.constantFrom(...grantKinds),
  username: text,
  subject: fc.option(text, { nil: undefined }),
  scopes: list,
  params: fc.uniqueArray(fc.tuple(text, text), { maxLength: 3, selector: ([name]) => name }),
  issuer: text,
  jwtSubject: text,
  jwtAudience: fc.option(text, { nil: undefined }),
  claims: fc.uniqueArray(fc.tuple(text, fc.oneof(text, fc.integer())), { maxLength: 3, selector: ([name]) => name }),
  subjectTokenType: text,
  actorTokenType: fc.option(text, { nil: undefined }),
  audience: list,
  resource: list,
  requestedTokenType: fc.option(text, { nil: undefined }),
  exchangeSubject: fc.option(text, { nil: undefined })
} satisfies { readonly [K in keyof Spec]: fc.Arbitrary<Spec[K]> }

const spec: fc.Arbitrary<Spec> = fc.record(fields)

/** The fields a credential of this grant has: changing another one changes nothing. */
const relevant = (s: Spec): ReadonlyArray<keyof Spec> => {
  const common: Array<keyof Spec> = ["url", "clientId", "auth", "grant", "subject", "scopes", "params"]
  switch (s.grant) {
    case "password":
      return [...common, "username"]
    case "jwt_bearer":
      return [...common, "issuer", "jwtSubject", "jwtAudience", "claims"]
    case "token_exchange":
      return [
        ...common,
        "subjectTokenType",
        "actorTokenType",
        "audience",
        "resource",
        "requestedTokenType",
        "exchangeSubject"
      ]
    default:
      return common
  }
}

// lists are sets, and pairs are keyed by name: compare them as the encoding does
const canonical = (value: unknown): string =>
  JSON.stringify(
    Array.isArray(value)
      ? value.map((v) => JSON.stringify(v)).sort()
      : value === undefined
      ? "<undefined>"
      : value
  )

const build = (s: Spec): Key.Credential => {
  const options = { scopes: s.scopes, extraParams: Object.fromEntries(s.params) }
  const clientAuth = s.auth === "basic"
    ? ClientAuth.basic(s.clientId, secret)
    : s.auth === "post"
    ? ClientAuth.post(s.clientId, secret)
    : s.auth === "none"
    ? ClientAuth.none(s.clientId)
    : s.auth === "private_key_jwt"
    ? ClientAuth.privateKeyJwt(s.clientId, Redacted.make("pem"))
    : ClientAuth.clientSecretJwt(s.clientId, secret)
  const grant = s.grant === "client_credentials"
    ? Grant.clientCredentials(options)
    : s.grant === "password"
    ? Grant.password({ username: s.username, password: secret, ...options })
    : s.grant === "authorization_code"
    ? Grant.authorizationCode({ code: secret, ...options })
    : s.grant === "refresh_token"
    ? Grant.refreshToken({ refreshToken: secret, ...options })
    : s.grant === "device_code"
    ? Grant.deviceCode({ deviceAuthorizationEndpoint: "https://a.example/device", ...options })
    : s.grant === "jwt_bearer"
    ? Grant.jwtBearer({
      issuer: s.issuer,
      key: Redacted.make("pem"),
      subject: s.jwtSubject,
      audience: s.jwtAudience,
      claims: Object.fromEntries(s.claims),
      ...options
    })
    : Grant.tokenExchange({
      subjectToken: secret,
      subjectTokenType: s.subjectTokenType,
      actorToken: s.actorTokenType === undefined ? undefined : secret,
      actorTokenType: s.actorTokenType,
      audience: s.audience,
      resource: s.resource,
      requestedTokenType: s.requestedTokenType,
      subject: s.exchangeSubject,
      ...options
    })
  return { url: s.url, clientAuth, grant, subject: s.subject }
}

/** A spec and the same spec with one of its relevant fields changed. */
const neighbours: fc.Arbitrary<readonly [Spec, Spec, keyof Spec]> = spec.chain((s) =>
  fc.constantFrom(...relevant(s)).chain((field) =>
    (fields[field] as fc.Arbitrary<unknown>)
      .filter((value) => canonical(value) !== canonical(s[field]))
      .map((value) => [s, { ...s, [field]: value } as Spec, field] as const)
      // a token exchange's subject slot is the credential's, else the grant's: a credential subject
      // equal to the grant's own names the same user (the grant's subject counts on its own too)
      .filter(([a, b]) =>
        a.grant !== "token_exchange" || field !== "subject" ||
        (a.subject ?? a.exchangeSubject) !== (b.subject ?? b.exchangeSubject)
      )
  )
)

describe("credential key", () => {
  describe("keyOf and check", () => {
    it.prop(
      "keyOf is undefined exactly when check refuses for lack of a subject; an explicit key is the key",
      [
        fc.constantFrom(...grantKinds),
        fc.option(fc.string({ minLength: 1, maxLength: 4 }), { nil: undefined }),
        fc.option(fc.string({ minLength: 1, maxLength: 4 }), { nil: undefined }),
        fc.option(fc.string({ minLength: 1, maxLength: 4 }), { nil: undefined })
      ],
      ([grant, subject, key, exchangeSubject]) => {
        const s = fc.sample(spec, { numRuns: 1, seed: 42 })[0]!
        const credential = build({ ...s, grant, subject, exchangeSubject })
        const keyOf = Key.keyOf(credential, key)
        const refused = Key.check(credential, key, where)
        assert.strictEqual(keyOf === undefined, refused !== undefined)
        if (refused !== undefined) {
          assert.strictEqual(refused._tag, "InvalidConfiguration")
          assert.include(refused.reason, "needs a subject")
          assert.include(refused.reason, Grant.grantType(credential.grant))
        }
        if (key !== undefined) assert.strictEqual(keyOf, key)
        else if (keyOf !== undefined) assert.strictEqual(keyOf, Key.identity(credential))
      },
      { fastCheck: { numRuns: 300 } }
    )

    it("which grants need a subject: those acting for a person, a token exchange without its own subject", () => {
      const needs = grantKinds.filter((grant) => {
        const s = fc.sample(spec, { numRuns: 1, seed: 7 })[0]!
        return Key.keyOf(build({ ...s, grant, subject: undefined, exchangeSubject: undefined }), undefined) ===
          undefined
      })
      assert.deepStrictEqual(needs, ["authorization_code", "refresh_token", "device_code", "token_exchange"])
      const exchange = Grant.tokenExchange({ subjectToken: secret, subject: "alice" })
      const credential = { url: "https://a.example/token", clientAuth: ClientAuth.none("c"), grant: exchange }
      assert.isDefined(Key.keyOf(credential, undefined))
      assert.isUndefined(Key.check(credential, undefined, where))
    })

    it("an empty subject is refused by check though keyOf has a key for it; an empty key is refused too", () => {
      const credential = {
        url: "https://a.example/token",
        clientAuth: ClientAuth.none("c"),
        grant: Grant.clientCredentials(),
        subject: ""
      }
      assert.strictEqual(Key.check(credential, undefined, where)?.reason, "subject is empty")
      assert.match(Key.keyOf(credential, undefined)!, /^[0-9a-f]{64}$/)
      assert.strictEqual(Key.check({ ...credential, subject: "t" }, "", where)?.reason, "key is empty")
    })
  })

  describe("encode", () => {
    it.prop(
      "two credentials that differ in any one field of the tuple have different encodings",
      [neighbours],
      ([[a, b, field]]) => {
        const x = Key.encode(build(a))
        const y = Key.encode(build(b))
        assert.notStrictEqual(x, y, `changing ${field} did not change the encoding`)
        assert.notStrictEqual(Key.identity(build(a)), Key.identity(build(b)))
      },
      { fastCheck: { numRuns: 3000 } }
    )

    it("every client authentication method is its own credential; so is every grant type", () => {
      const auths = [
        ClientAuth.basic("c", secret),
        ClientAuth.post("c", secret),
        ClientAuth.none("c"),
        ClientAuth.privateKeyJwt("c", Redacted.make("pem")),
        ClientAuth.clientSecretJwt("c", secret)
      ]
      const grant = Grant.clientCredentials()
      const byAuth = auths.map((clientAuth) => Key.encode({ url: "https://a.example/token", clientAuth, grant }))
      assert.strictEqual(new Set(byAuth).size, auths.length)
      assert.deepStrictEqual(auths.map(Key.authMethod), [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
        "client_secret_jwt"
      ])
    })

    it("the JWT bearer grant's key and signing options are not part of it; its subject defaults to the issuer", () => {
      const at = (grant: Grant.Grant) =>
        Key.encode({ url: "https://a.example/token", clientAuth: ClientAuth.none("c"), grant })
      const base = { issuer: "svc", key: Redacted.make("pem-1") }
      assert.strictEqual(
        at(Grant.jwtBearer(base)),
        at(Grant.jwtBearer({ ...base, key: Redacted.make("pem-2"), keyId: "k2", lifetime: "5 minutes" }))
      )
      assert.strictEqual(at(Grant.jwtBearer(base)), at(Grant.jwtBearer({ ...base, subject: "svc" })))
      assert.notInclude(at(Grant.jwtBearer(base)), "pem-1")
      // claims are a set of names: their order does not count
      assert.strictEqual(
        at(Grant.jwtBearer({ ...base, claims: { a: 1, b: "x" } })),
        at(Grant.jwtBearer({ ...base, claims: { b: "x", a: 1 } }))
      )
      // as signed: a claim set to undefined is left out of the assertion, one set to null is sent
      assert.strictEqual(at(Grant.jwtBearer({ ...base, claims: { a: undefined } })), at(Grant.jwtBearer(base)))
      assert.notStrictEqual(
        at(Grant.jwtBearer({ ...base, claims: { a: null } })),
        at(Grant.jwtBearer({ ...base, claims: { a: undefined } }))
      )
    })

    it("a token exchange: neither token is part of it, audience and resource are sets", () => {
      const at = (grant: Grant.Grant) =>
        Key.encode({ url: "https://a.example/token", clientAuth: ClientAuth.none("c"), grant, subject: "u" })
      const base = { subjectToken: Redacted.make("subject-token-1"), audience: ["a", "b"], resource: ["r", "s"] }
      const one = at(Grant.tokenExchange(base))
      assert.strictEqual(
        one,
        at(Grant.tokenExchange({ ...base, subjectToken: Redacted.make("subject-token-2"), audience: ["b", "a"] }))
      )
      assert.strictEqual(one, at(Grant.tokenExchange({ ...base, resource: ["s", "r"] })))
      assert.notInclude(one, "subject-token")
      assert.notInclude(
        at(Grant.tokenExchange({ ...base, actorToken: Redacted.make("actor-token") })),
        "actor-token"
      )
    })

    // Two exchanges of different users' subject tokens under one credential subject (a tenant, say)
    // must never share a key, or a pool or a store would hand alice's token to bob.
    it("a token exchange's own subject counts even when the credential has a subject too", () => {
      const exchange = (subject: string) => ({
        url: "https://a.example/token",
        clientAuth: ClientAuth.none("c"),
        grant: Grant.tokenExchange({ subjectToken: secret, subject }),
        subject: "tenant-1"
      })
      assert.notStrictEqual(Key.identity(exchange("alice")), Key.identity(exchange("bob")))
    })
  })

  describe("endpointOf", () => {
    it("lower-cases the scheme and host, drops the default port, userinfo and fragment; keeps path and query", () => {
      assert.strictEqual(
        Key.endpointOf("HTTPS://Auth.Example.COM:443/Token?A=B#frag"),
        "https://auth.example.com/Token?A=B"
      )
      assert.strictEqual(Key.endpointOf("http://LOCALHOST:80/token"), "http://localhost/token")
      assert.strictEqual(Key.endpointOf("http://localhost:443/token"), "http://localhost:443/token")
      assert.strictEqual(Key.endpointOf("https://auth.example.com:80/token"), "https://auth.example.com:80/token")
      assert.strictEqual(
        Key.endpointOf("https://user:p%40ss@auth.example.com:443/token?x=1#f"),
        "https://auth.example.com/token?x=1"
      )
      assert.strictEqual(Key.endpointOf(new URL("https://u@auth.example.com/t#f")), "https://auth.example.com/t")
      // an empty query and an empty fragment are nothing
      assert.strictEqual(Key.endpointOf("https://auth.example.com/token?#"), "https://auth.example.com/token")
      // a host alone has the root path
      assert.strictEqual(Key.endpointOf("https://auth.example.com"), "https://auth.example.com/")
    })

    it("a string that is not a URL stays as it is (it is refused before any key is used)", () => {
      assert.strictEqual(Key.endpointOf("not a url"), "not a url")
      assert.strictEqual(Key.endpointOf("/token"), "/token")
    })

    it("the same text gives the same endpoint every time, from the cache or not", () => {
      for (let i = 0; i < 300; i++) Key.endpointOf(`https://host-${i}.example/token`)
      const urls = ["HTTPS://A.example:443/t", "https://u:p@A.example/t", "https://a.example/t#x"]
      for (let round = 0; round < 3; round++) {
        for (const url of urls) assert.strictEqual(Key.endpointOf(url), "https://a.example/t")
      }
    })
  })
})
