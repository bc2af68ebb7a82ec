import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc, Redacted } from "effect"
import { ClientAuth, Grant, TokenStore } from "tokenwarden"
import * as Key from "../src/internal/engine/key.js"
import * as Legacy from "../src/internal/legacyKey.js"

// What a credential is, as a person would describe it; `build` renders it as options, in any of the
// ways that must not matter (scope order and repeats, parameter order, Basic encoding, secrets, URL
// spelling). Two descriptions are the same credential exactly when `same` says so.
interface Description {
  readonly host: string
  readonly path: string
  readonly query: string
  readonly clientId: string
  readonly method: "basic" | "post" | "none"
  readonly grant: "client_credentials" | "password" | "refresh_token" | "authorization_code" | "device_code"
  readonly username: string
  readonly subject: string | undefined
  readonly scopes: ReadonlyArray<string>
  readonly params: ReadonlyArray<readonly [string, string]>
}

interface Rendering {
  readonly seed: number
  readonly plainBasic: boolean
  readonly upperHost: boolean
  readonly explicitPort: boolean
  readonly urlObject: boolean
  readonly secret: string
}

// a small alphabet with the characters that join and quote: concatenation collisions show up quickly
const tricky = fc.string({
  unit: fc.constantFrom("a", "b", "&", "=", " ", "\"", "\\", ",", "[", "]", ":", "\u0000", "é", "\ud800"),
  maxLength: 4
})

// the joiners a hand-made encoding would use between parts and within a pair
const joiner = fc.constantFrom<readonly [string, string]>(
  ["&", "="],
  ["\u0000", "\u0000"],
  [" ", "="],
  [",", ","],
  ["\",\"", "\",\""],
  ["\"],[\"", "\",\""]
)

const description: fc.Arbitrary<Description> = fc.record({
  host: fc.constantFrom("auth.example.com", "auth.example.org", "127.0.0.1"),
  path: fc.constantFrom("/token", "/oauth/token", "/token/"),
  query: fc.constantFrom("", "?p=a", "?p=b"),
  clientId: tricky,
  method: fc.constantFrom("basic", "post", "none"),
  grant: fc.constantFrom("client_credentials", "password", "refresh_token", "authorization_code", "device_code"),
  username: tricky,
  subject: fc.option(tricky, { nil: undefined }),
  scopes: fc.uniqueArray(tricky, { maxLength: 3 }),
  params: fc.uniqueArray(fc.tuple(tricky, tricky), { maxLength: 3, selector: ([name]) => name })
})

const rendering: fc.Arbitrary<Rendering> = fc.record({
  seed: fc.integer(),
  plainBasic: fc.boolean(),
  upperHost: fc.boolean(),
  explicitPort: fc.boolean(),
  urlObject: fc.boolean(),
  secret: fc.string({ minLength: 1 }).map((s) => `SECRET-${s}`)
})

// one field of a description changed, so near neighbours are tried, not only strangers
const neighbour = (d: Description): fc.Arbitrary<Description> => {
  const change = <K extends keyof Description>(key: K, arbitrary: fc.Arbitrary<Description[K]>) =>
    arbitrary.map((value): Description => ({ ...d, [key]: value }))
  return fc.oneof(
    description,
    change("clientId", tricky),
    change("method", fc.constantFrom("basic", "post", "none")),
    change("grant", fc.constantFrom("client_credentials", "password", "refresh_token")),
    change("username", tricky),
    change("subject", fc.option(tricky, { nil: undefined })),
    change("query", fc.constantFrom("", "?p=a", "?p=b")),
    change("scopes", fc.uniqueArray(tricky, { maxLength: 3 })),
    change("params", fc.constant(d.params.slice(1))),
    fc.tuple(tricky, tricky).map(([name, value]) => ({
      ...d,
      params: [...d.params.filter(([n]) => n !== name), [name, value] as const]
    })),
    fc.constant({ ...d, username: d.subject ?? "", subject: d.username }),
    // what a joined encoding cannot tell apart: two parameters written as one, two scopes as one
    { arbitrary: joiner.map(([a, b]) => joinParams(d, a, b)), weight: 4 },
    { arbitrary: joiner.map(([a]) => joinScopes(d, a)), weight: 2 }
  )
}

const joinParams = (d: Description, a: string, b: string): Description => {
  const [first, second, ...rest] = [...d.params].sort(([x], [y]) => x < y ? -1 : x > y ? 1 : 0)
  if (first === undefined || second === undefined) return d
  return { ...d, params: [[first[0], `${first[1]}${a}${second[0]}${b}${second[1]}`], ...rest] }
}

const joinScopes = (d: Description, a: string): Description => {
  const [first, second, ...rest] = [...d.scopes].sort()
  return first === undefined || second === undefined ? d : { ...d, scopes: [`${first}${a}${second}`, ...rest] }
}

const shuffled = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const out = [...items]
  let state = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1_103_515_245 + 12_345) >>> 0
    const j = state % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const build = (d: Description, r: Rendering): Key.Credential => {
  const host = r.upperHost ? d.host.toUpperCase() : d.host
  const text = `https://${host}${r.explicitPort ? ":443" : ""}${d.path}${d.query}`
  const secret = Redacted.make(r.secret)
  const clientAuth = d.method === "basic"
    ? ClientAuth.basic(d.clientId, secret, { encoding: r.plainBasic ? "plain" : "form" })
    : d.method === "post"
    ? ClientAuth.post(d.clientId, secret)
    : ClientAuth.none(d.clientId)
  // repeated scopes, in another order; parameters inserted in another order
  const scopes = shuffled([...d.scopes, ...d.scopes.slice(0, r.seed & 1)], r.seed)
  const extraParams = Object.fromEntries(shuffled(d.params, r.seed ^ 0x5bd1e995))
  const options = { scopes, extraParams }
  const grant = d.grant === "client_credentials"
    ? Grant.clientCredentials(options)
    : d.grant === "password"
    ? Grant.password({ username: d.username, password: secret, ...options })
    : d.grant === "refresh_token"
    ? Grant.refreshToken({ refreshToken: secret, ...options })
    : d.grant === "authorization_code"
    ? Grant.authorizationCode({ code: secret, codeVerifier: secret, redirectUri: "https://app/cb", ...options })
    : Grant.deviceCode({ deviceAuthorizationEndpoint: "https://auth.example.com/device", ...options })
  return { url: r.urlObject ? new URL(text) : text, clientAuth, grant, subject: d.subject }
}

const sameSet = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) => {
  const x = new Set(a)
  const y = new Set(b)
  return x.size === y.size && [...x].every((scope) => y.has(scope))
}

const same = (a: Description, b: Description): boolean =>
  a.host === b.host && a.path === b.path && a.query === b.query && a.clientId === b.clientId &&
  a.method === b.method && a.grant === b.grant && (a.grant !== "password" || a.username === b.username) &&
  a.subject === b.subject && sameSet(a.scopes, b.scopes) &&
  a.params.length === b.params.length &&
  a.params.every(([name, value]) => b.params.some(([n, v]) => n === name && v === value))

const base = {
  url: "https://auth.example.com/token",
  clientAuth: ClientAuth.basic("client", Redacted.make("secret"))
}

describe("credential identity", () => {
  it.prop(
    "equal credentials always share an identity, whatever the order of scopes and parameters",
    [description, rendering, rendering],
    ([d, r1, r2]) => {
      const a = Key.identity(build(d, r1))
      assert.match(a, /^[0-9a-f]{64}$/)
      assert.strictEqual(Key.identity(build(d, r2)), a)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "different credentials never share an identity",
    [description.chain((d) => fc.tuple(fc.constant(d), neighbour(d))), rendering, rendering],
    ([[d1, d2], r1, r2]) => {
      assert.strictEqual(Key.identity(build(d1, r1)) === Key.identity(build(d2, r2)), same(d1, d2))
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it.prop(
    "no secret goes into the encoding",
    [description, rendering],
    ([d, r]) => {
      assert.notInclude(Key.encode(build(d, r)), "SECRET-")
    },
    { fastCheck: { numRuns: 300 } }
  )

  it("the collisions of 0.1.0: extra parameters, joined parameters, users, authentication methods", () => {
    const cc = (extraParams: Grant.ExtraParams) =>
      Key.identity({ ...base, grant: Grant.clientCredentials({ extraParams }) })
    assert.notStrictEqual(cc({ audience: "a" }), cc({ audience: "b" }))
    assert.notStrictEqual(cc({ audience: "a&resource=b" }), cc({ audience: "a", resource: "b" }))
    assert.notStrictEqual(cc({}), cc({ audience: "a" }))
    assert.strictEqual(cc({ audience: "a", resource: "b" }), cc({ resource: "b", audience: "a" }))

    const rt = Grant.refreshToken({ refreshToken: Redacted.make("rt") })
    assert.notStrictEqual(
      Key.identity({ ...base, grant: rt, subject: "alice" }),
      Key.identity({ ...base, grant: rt, subject: "bob" })
    )
    const grant = Grant.clientCredentials()
    const secret = Redacted.make("s")
    const withAuth = (clientAuth: ClientAuth.ClientAuth) => Key.identity({ ...base, clientAuth, grant })
    assert.notStrictEqual(withAuth(ClientAuth.basic("client", secret)), withAuth(ClientAuth.post("client", secret)))
    assert.notStrictEqual(withAuth(ClientAuth.post("client", secret)), withAuth(ClientAuth.none("client")))
    // the Basic encoding and the secret are how the same client authenticates, not another client
    assert.strictEqual(
      withAuth(ClientAuth.basic("client", secret, { encoding: "plain" })),
      withAuth(ClientAuth.basic("client", Redacted.make("other"), { encoding: "form" }))
    )
    // a password grant's username and a subject are two things, never confused
    const password = (username: string, subject?: string) =>
      Key.identity({ ...base, grant: Grant.password({ username, password: secret }), subject })
    assert.notStrictEqual(password("a", "b"), password("b", "a"))
    assert.notStrictEqual(password("a"), password("b"))
  })

  it("the endpoint as requests go to it: case, default port and fragment do not count, the query does", () => {
    const at = (url: string | URL) => Key.identity({ ...base, url, grant: Grant.clientCredentials() })
    const plain = at("https://auth.example.com/token")
    assert.strictEqual(at("HTTPS://Auth.Example.COM:443/token"), plain)
    assert.strictEqual(at(new URL("https://auth.example.com/token")), plain)
    assert.strictEqual(at("https://auth.example.com/token#x"), plain)
    assert.notStrictEqual(at("https://auth.example.com/token?p=b2c_1_signin"), plain)
    assert.notStrictEqual(at("https://auth.example.com:8443/token"), plain)
    assert.strictEqual(Key.endpointOf("https://user:pass@auth.example.com/token"), "https://auth.example.com/token")
  })

  it("TokenStore.key is the identity", () => {
    const credential = { ...base, grant: Grant.clientCredentials({ scopes: ["b", "a"] }), subject: "tenant" }
    assert.strictEqual(TokenStore.key(credential), Key.identity(credential))
  })

  it("a grant for a person the library cannot name needs a subject or a key", () => {
    const where = { keyOption: "storeKey", sharedBy: "with a TokenStore" }
    const code = Grant.authorizationCode({ code: Redacted.make("c") })
    for (
      const grant of [
        code,
        Grant.refreshToken({ refreshToken: Redacted.make("rt") }),
        Grant.deviceCode({ deviceAuthorizationEndpoint: "https://auth.example.com/device" })
      ]
    ) {
      const refused = Key.check({ ...base, grant }, undefined, where)
      assert.strictEqual(refused?._tag, "InvalidConfiguration")
      assert.include(refused?.message, "storeKey")
      assert.isUndefined(Key.keyOf({ ...base, grant }, undefined))
      assert.isUndefined(Key.check({ ...base, grant, subject: "alice" }, undefined, where))
      assert.isUndefined(Key.check({ ...base, grant }, "alice's key", where))
    }
    assert.isUndefined(Key.check({ ...base, grant: Grant.clientCredentials() }, undefined, where))
    assert.strictEqual(Key.check({ ...base, grant: code, subject: "" }, undefined, where)?.reason, "subject is empty")
    assert.strictEqual(Key.check({ ...base, grant: code }, "", where)?.reason, "storeKey is empty")
  })

  it("the 0.1.0 key is kept exactly, to find entries written under it", () => {
    // values computed by tokenwarden 0.1.0's TokenStore.key
    assert.strictEqual(
      Legacy.legacyKey({
        endpoint: "https://auth.example.com/token",
        clientId: "client",
        grantType: "refresh_token",
        scopes: ["b", "a"]
      }),
      "5e6957447e39c547b42936e9480df710c175b33d13b372f379e40fc8a9bfe871"
    )
    assert.strictEqual(
      Legacy.legacyKeyOf("https://auth.example.com/token", {
        clientAuth: ClientAuth.post("client", Redacted.make("s")),
        grant: Grant.password({ username: "john@doe.com", password: Redacted.make("p"), scopes: ["read"] })
      }),
      "eff6bcc665269317450c9e609b8fe6ed4fafe223befb225181aed104f3601295"
    )
  })
})
