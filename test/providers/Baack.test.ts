import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { Baack } from "tokenwarden"
import { BaackFake } from "tokenwarden/testing"
import { HttpLive } from "../util.js"

const setup = (options?: BaackFake.Options) =>
  Effect.gen(function*() {
    const fake = yield* BaackFake.make(options)
    const clients = yield* Baack.make({ baseUrl: fake.url, rootToken: Redacted.make(fake.rootToken) })
    return { fake, clients }
  })

const input = (fake: BaackFake.BaackFake, fields?: Record<string, unknown>): Baack.ApiClientInput => ({
  scope: "api.baack.co",
  owner: { urn: fake.companyUrn, url: `/n/v1/company/${fake.companyUrn}` },
  clientID: "Bearer",
  fields
})

const lastRequest = (fake: BaackFake.BaackFake) => Effect.map(fake.requests, (all) => all[all.length - 1]!)

describe("Baack", () => {
  describe("ApiClients CRUD", () => {
    it.scoped("create, read, update, list and delete, with the exact wire", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup({ rootToken: "root-token-0123456789" })
        const created = yield* clients.create(input(fake, { name: "ci-deployments" }))
        const post = yield* lastRequest(fake)
        assert.strictEqual(post.method, "POST")
        assert.strictEqual(post.path, "/n/v1/apiclient/")
        assert.strictEqual(post.headers.authorization, "Bearer root-token-0123456789")
        assert.strictEqual(post.headers["content-type"], "application/json")
        assert.deepStrictEqual(JSON.parse(post.rawBody), {
          name: "ci-deployments",
          scope: "api.baack.co",
          owner: { urn: fake.companyUrn, url: `/n/v1/company/${fake.companyUrn}` },
          clientID: "Bearer"
        })
        assert.strictEqual(post.status, 201, "CREATE_SUCCESS")
        assert.strictEqual(created.scope, "api.baack.co")
        assert.deepStrictEqual(created.owner, { urn: fake.companyUrn, url: `/n/v1/company/${fake.companyUrn}` })
        assert.strictEqual(created.clientID, "Bearer")
        assert.deepStrictEqual(created.extra, { name: "ci-deployments" })
        const urn = created.urn!
        assert.isString(urn)
        assert.isTrue(Redacted.isRedacted(created.token), "the new client's token is Redacted")
        assert.notInclude(JSON.stringify(created), Redacted.value(created.token!))
        assert.notInclude(String(created.token), Redacted.value(created.token!))

        const read = yield* clients.read(urn)
        const get = yield* lastRequest(fake)
        assert.deepStrictEqual([get.method, get.path, get.rawBody], ["GET", `/n/v1/apiclient/${urn}`, ""])
        assert.strictEqual(get.headers.authorization, "Bearer root-token-0123456789")
        assert.isTrue(Option.isSome(read))
        assert.strictEqual(Option.getOrThrow(read).urn, urn)
        assert.isUndefined(Option.getOrThrow(read).token, "a token is shown once, at creation")

        const updated = yield* clients.update(urn, input(fake, { name: "ci-releases" }))
        const put = yield* lastRequest(fake)
        assert.deepStrictEqual([put.method, put.path, put.status], ["PUT", `/n/v1/apiclient/${urn}`, 200])
        assert.strictEqual(JSON.parse(put.rawBody).name, "ci-releases")
        assert.strictEqual(updated.extra.name, "ci-releases")

        const list = yield* clients.list
        const listed = yield* lastRequest(fake)
        assert.deepStrictEqual([listed.method, listed.path], ["GET", "/n/v1/apiclient/"])
        assert.deepStrictEqual(list.map((c) => c.urn), [urn])

        yield* clients.delete(urn)
        const del = yield* lastRequest(fake)
        assert.deepStrictEqual([del.method, del.path, del.status], ["DELETE", `/n/v1/apiclient/${urn}`, 204])
        assert.isTrue(Option.isNone(yield* clients.read(urn)), "READ of a missing client is none")
        assert.strictEqual((yield* Effect.flip(clients.update(urn, input(fake))))._tag, "NotFound")
        assert.strictEqual((yield* Effect.flip(clients.delete(urn)))._tag, "NotFound")
        assert.deepStrictEqual(yield* clients.list, [])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the URN is URL-encoded into the path, and an empty one is refused before sending", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        assert.isTrue(Option.isNone(yield* clients.read("urn:baack/../x?y")))
        assert.strictEqual((yield* lastRequest(fake)).path, "/n/v1/apiclient/urn%3Abaack%2F..%2Fx%3Fy")
        const count = (yield* fake.requests).length
        assert.strictEqual((yield* Effect.flip(clients.read("")))._tag, "InvalidConfiguration")
        assert.strictEqual((yield* fake.requests).length, count)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("errors", () => {
    it.scoped("INVALID_REPRESENTATION keeps its details", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        const noUrn = { ...input(fake), owner: { url: `/n/v1/company/${fake.companyUrn}` } } as never
        const error = yield* Effect.flip(clients.create(noUrn))
        assert.strictEqual(error._tag, "InvalidRepresentation")
        if (error._tag !== "InvalidRepresentation") return
        assert.strictEqual(error.status, 400)
        assert.strictEqual(error.code, "INVALID_REPRESENTATION")
        assert.strictEqual(error.description, "the representation is invalid")
        assert.deepStrictEqual(
          error.details.map((d) => [d.code, d.field]),
          [["REPRESENTATION_MISSING_REQUIRED_FIELD", "owner.urn"]]
        )
        assert.include(error.message, "REPRESENTATION_MISSING_REQUIRED_FIELD owner.urn")

        const several = yield* Effect.flip(
          clients.create({ scope: "", owner: { urn: "00000000-0000-0000-0000-000000000000" }, clientID: "Bearer" })
        )
        assert.deepStrictEqual(
          several._tag === "InvalidRepresentation" && several.details.map((d) => [d.code, d.field]),
          [["REPRESENTATION_MISSING_REQUIRED_FIELD", "scope"], ["REPRESENTATION_INVALID_FIELD", "owner.urn"]]
        )
        assert.lengthOf(yield* fake.clients, 0)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("BAD_REQUEST, a bare 400, and unknown API codes are kept", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        yield* fake.inject(
          BaackFake.Fault.apiError(400, "BAD_REQUEST", "malformed request"),
          BaackFake.Fault.raw(400, "", "text/plain"),
          BaackFake.Fault.apiError(400, "REPRESENTATION_TOO_LARGE"),
          BaackFake.Fault.apiError(409, "CLIENT_LIMIT_REACHED", "at most 10 clients")
        )
        const bad = yield* Effect.flip(clients.create(input(fake)))
        assert.isTrue(
          bad._tag === "BadRequest" && bad.code === "BAD_REQUEST" && bad.description === "malformed request"
        )
        const bare = yield* Effect.flip(clients.list)
        assert.isTrue(bare._tag === "BadRequest" && bare.code === "BAD_REQUEST" && bare.status === 400)
        const unknown = yield* Effect.flip(clients.create(input(fake)))
        assert.isTrue(unknown._tag === "BadRequest" && unknown.code === "REPRESENTATION_TOO_LARGE")
        const conflict = yield* Effect.flip(clients.create(input(fake)))
        assert.isTrue(
          conflict._tag === "BadRequest" && conflict.code === "CLIENT_LIMIT_REACHED" && conflict.status === 409
        )
        assert.include(conflict.message, "CLIENT_LIMIT_REACHED")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a wrong root token is InvalidClient, a narrower client's token Forbidden; no token leaks", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const wrongToken = "wrong-root-token-abcdef123456"
        const wrong = yield* Baack.make({ baseUrl: fake.url, rootToken: Redacted.make(wrongToken) })
        const error = yield* Effect.flip(wrong.list)
        assert.strictEqual(error._tag, "InvalidClient")
        assert.isTrue(error._tag === "InvalidClient" && error.status === 401)
        const root = yield* Baack.make({ baseUrl: fake.url, rootToken: Redacted.make(fake.rootToken) })
        const narrow = yield* root.create(input(fake))
        const narrowToken = Redacted.value(narrow.token!)
        const asNarrow = yield* Baack.make({ baseUrl: fake.url, rootToken: narrow.token! })
        const forbidden = yield* Effect.flip(asNarrow.create(input(fake)))
        assert.strictEqual(forbidden._tag, "Forbidden")
        assert.strictEqual(
          forbidden.message,
          `POST ${fake.url}/n/v1/apiclient/ (HTTP 403): FORBIDDEN - only the root API client manages API clients`
        )
        for (const e of [error, forbidden]) {
          for (const secret of [wrongToken, narrowToken, fake.rootToken]) {
            assert.notInclude(String(e), secret)
            assert.notInclude(JSON.stringify(e), secret)
          }
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("5xx, 429, HTML and a body that is not a representation are typed errors", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        const urn = (yield* clients.create(input(fake))).urn!
        yield* fake.inject(
          BaackFake.Fault.raw(503, "<html>maintenance</html>"),
          { ...BaackFake.Fault.apiError(429, "TOO_MANY_REQUESTS"), headers: { "Retry-After": "30" } },
          BaackFake.Fault.raw(200, "<html><body>Sign in to the proxy</body></html>"),
          BaackFake.Fault.raw(
            200,
            JSON.stringify({ scope: "api.baack.co", token: "leaked-token-value" }),
            "application/json"
          )
        )
        assert.strictEqual((yield* Effect.flip(clients.read(urn)))._tag, "ServerError")
        const limited = yield* Effect.flip(clients.read(urn))
        assert.isTrue(limited._tag === "RateLimited" && limited.retryAfter !== undefined)
        const html = yield* Effect.flip(clients.read(urn))
        assert.isTrue(html._tag === "MalformedResponse" && html.excerpt?.includes("Sign in") === true)
        const partial = yield* Effect.flip(clients.read(urn))
        assert.isTrue(partial._tag === "MalformedResponse")
        assert.deepStrictEqual(partial._tag === "MalformedResponse" && partial.fields, ["scope", "token"])
        assert.notInclude(JSON.stringify(partial), "leaked-token-value")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("fields whose names look secret are Redacted; others are kept as they are", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        const urn = (yield* clients.create(input(fake))).urn!
        const body = {
          urn,
          scope: "api.baack.co",
          owner: { urn: fake.companyUrn, url: `/n/v1/company/${fake.companyUrn}` },
          clientID: "Bearer",
          bearerToken: "bearer-value-123",
          clientSecret: "secret-value-456",
          oauth: { redirect: "https://x.example/cb", privateKey: "key-value-789" },
          name: "reports",
          permissions: ["read:reports"]
        }
        yield* fake.inject(BaackFake.Fault.raw(200, JSON.stringify(body), "application/json"))
        const client = Option.getOrThrow(yield* clients.read(urn))
        assert.strictEqual(Redacted.value(client.token!), "bearer-value-123")
        assert.strictEqual(client.extra.name, "reports")
        assert.deepStrictEqual(client.extra.permissions, ["read:reports"])
        assert.isTrue(Redacted.isRedacted(client.extra.clientSecret))
        const oauth = client.extra.oauth as Record<string, unknown>
        assert.strictEqual(oauth.redirect, "https://x.example/cb")
        assert.isTrue(Redacted.isRedacted(oauth.privateKey))
        const printed = JSON.stringify(client) + String(client.extra.clientSecret)
        for (const secret of ["bearer-value-123", "secret-value-456", "key-value-789"]) {
          assert.notInclude(printed, secret)
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("the root token never appears in logs", () =>
      Effect.gen(function*() {
        const lines: Array<string> = []
        const capture = Logger.make(({ annotations, cause, message }) => {
          lines.push(JSON.stringify({ message, annotations: [...annotations], cause: String(cause) }))
        })
        const logged = Effect.gen(function*() {
          const { clients, fake } = yield* setup({ rootToken: "root-token-for-the-log-test" })
          const created = yield* clients.create(input(fake))
          yield* Effect.logInfo("created", created)
          const failures = [
            yield* Effect.flip(clients.create({ ...input(fake), owner: { urn: "" } })),
            yield* Effect.flip(clients.update("missing", input(fake)))
          ]
          for (const failure of failures) yield* Effect.logError("failed", failure)
          yield* Effect.logError(yield* Effect.exit(clients.delete("missing")))
        })
        yield* logged.pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
          Logger.withMinimumLogLevel(LogLevel.All)
        )
        assert.isAtLeast(lines.length, 4)
        for (const line of lines) assert.notInclude(line, "root-token-for-the-log-test")
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("configuration", () => {
    it.scoped("refuses a non-https base URL and an unusable root token before any request", () =>
      Effect.gen(function*() {
        const http = yield* Effect.flip(Baack.make({ baseUrl: "http://api.baack.co", rootToken: Redacted.make("t") }))
        assert.strictEqual(http._tag, "InvalidConfiguration")
        for (const token of ["", "two words", "line\nbreak"]) {
          const error = yield* Effect.flip(Baack.make({ rootToken: Redacted.make(token) }))
          assert.strictEqual(error._tag, "InvalidConfiguration")
          if (token !== "") assert.notInclude(error.message, token)
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("layerConfig reads BAACK_ROOT_TOKEN and BAACK_BASE_URL; a missing one is named", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const withConfig = (entries: ReadonlyArray<readonly [string, string]>) =>
          Effect.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries))))
        const build = Layer.build(Baack.layerConfig())
        const missing = yield* Effect.exit(build.pipe(withConfig([["BAACK_BASE_URL", fake.url]])))
        assert.include(String(Exit.isFailure(missing) ? missing.cause : ""), "BAACK_ROOT_TOKEN")
        const context = yield* build.pipe(
          withConfig([["BAACK_BASE_URL", fake.url], ["BAACK_ROOT_TOKEN", fake.rootToken]])
        )
        const clients = Context.get(context, Baack.ApiClients)
        assert.deepStrictEqual(yield* clients.list, [])
        assert.strictEqual((yield* fake.requests).length, 1)
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("the fake", () => {
    it.scoped("answers BAD_REQUEST for malformed JSON or another content type, 401 without the root token", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const send = (body: string, headers: Record<string, string>) =>
          Effect.promise(async () => {
            const res = await fetch(`${fake.url}/n/v1/apiclient/`, { method: "POST", body, headers })
            return { status: res.status, json: (await res.json()) as Record<string, unknown> }
          })
        const auth = { Authorization: `Bearer ${fake.rootToken}` }
        const malformed = yield* send("{\"scope\":", { ...auth, "Content-Type": "application/json" })
        assert.deepStrictEqual([malformed.status, malformed.json.code], [400, "BAD_REQUEST"])
        const form = yield* send("scope=x", { ...auth, "Content-Type": "application/x-www-form-urlencoded" })
        assert.deepStrictEqual([form.status, form.json.code], [400, "BAD_REQUEST"])
        const anonymous = yield* send("{}", { "Content-Type": "application/json" })
        assert.deepStrictEqual([anonymous.status, anonymous.json.code], [401, "UNAUTHORIZED"])
        const empty = yield* send("{}", { ...auth, "Content-Type": "application/json" })
        assert.deepStrictEqual(
          (empty.json.errors as Array<{ field: string }>).map((e) => e.field),
          ["scope", "clientID", "owner"]
        )
      }))
  })
})
