import { HttpClient, PlatformConfigProvider } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import {
  Chunk,
  Clock,
  ConfigProvider,
  Context,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TokenSource } from "tokenwarden"
import { AuthorizedClient, Baack, RefreshPolicy, TokenClient, TokenError } from "tokenwarden"
import { BaackFake } from "tokenwarden/testing"
import { HttpLive, settle } from "../util.js"

const setup = (options?: BaackFake.Options, client?: Omit<Baack.Options, "rootToken">) =>
  Effect.gen(function*() {
    const fake = yield* BaackFake.make(options)
    const clients = yield* Baack.make({ ...client, baseUrl: fake.url, rootToken: Redacted.make(fake.rootToken) })
    return { fake, clients }
  })

// no retries, for tests about one answer
const noRetry = RefreshPolicy.make({ retry: Schedule.stop })
// no jitter: the retries come after 1, 2, 4… seconds
const steady = RefreshPolicy.make({ retry: Schedule.exponential("1 second") })
// TestClock.adjust must never reach an exchange's timeout while a request is in flight
const retrySetup = (options?: BaackFake.Options) => setup(options, { policy: steady, timeout: "30 days" })

/**
 * The delay of the retry the call now sleeps for, waiting (bounded, in real time) for the call to get
 * there; the exchanges' 30-day timeouts are sleeps too, told apart by their length.
 */
const nextRetryDelay = Effect.gen(function*() {
  for (let i = 0; i < 500; i++) {
    const now = yield* Clock.currentTimeMillis
    const due = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((at) => at > now && at < now + 86_400_000)
    if (due.length > 0) return Math.min(...due) - now
    yield* settle
  }
  return yield* Effect.dieMessage("the call never waited for a retry")
})

const statuses = (fake: BaackFake.BaackFake, method?: string) =>
  Effect.map(
    fake.requests,
    (all) => all.filter((r) => method === undefined || r.method === method).map((r) => r.status)
  )

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

    it.scoped("a root token given as a value and refused is ReauthorizationRequired (reason: the 401); a narrower client's token is Forbidden; no token leaks", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const wrongToken = "wrong-root-token-abcdef123456"
        const wrong = yield* Baack.make({ baseUrl: fake.url, rootToken: Redacted.make(wrongToken) })
        const error = yield* Effect.flip(wrong.list)
        assert.strictEqual(error._tag, "ReauthorizationRequired")
        if (error._tag !== "ReauthorizationRequired") return
        assert.isTrue(error.reason?._tag === "InvalidClient" && error.reason.status === 401)
        assert.include(error.message, "it was given as a value")
        // nothing can replace a value: the next call fails at once, without a request
        const count = (yield* fake.requests).length
        assert.strictEqual((yield* Effect.flip(wrong.list))._tag, "ReauthorizationRequired")
        assert.strictEqual((yield* fake.requests).length, count)
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
        const { clients, fake } = yield* setup(undefined, { policy: noRetry })
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

  describe("REPRESENTATION_MISSING_REQUIRED_FIELD", () => {
    it.scoped("as the answer's own code it is RepresentationMissingRequiredField, with the missing fields", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup({ missingFields: "topLevel" })
        const error = yield* Effect.flip(
          clients.create({ scope: "", owner: { urn: "" }, clientID: "Bearer", fields: { name: "kiosk" } })
        )
        assert.strictEqual(error._tag, "RepresentationMissingRequiredField")
        if (error._tag !== "RepresentationMissingRequiredField") return
        assert.instanceOf(error, Baack.RepresentationMissingRequiredField)
        assert.strictEqual(error.status, 400)
        assert.strictEqual(error.code, "REPRESENTATION_MISSING_REQUIRED_FIELD")
        assert.deepStrictEqual(error.missingFields, ["scope", "owner.urn"])
        assert.deepStrictEqual(
          error.details.map((d) => [d.code, d.field]),
          [["REPRESENTATION_MISSING_REQUIRED_FIELD", "scope"], ["REPRESENTATION_MISSING_REQUIRED_FIELD", "owner.urn"]]
        )
        assert.strictEqual(
          error.message,
          `POST ${fake.url}/n/v1/apiclient/ (HTTP 400): REPRESENTATION_MISSING_REQUIRED_FIELD - required fields are missing [missing: scope, owner.urn]`
        )
        assert.isFalse(error.transient)
        assert.isTrue(TokenError.isTokenwardenError(error))
        assert.isFalse(TokenError.isTokenError(error), "a Baack API error, not a token endpoint's")
        const caught = yield* clients.create({ ...input(fake), clientID: "" }).pipe(
          Effect.as([] as ReadonlyArray<string>),
          Effect.catchTag("RepresentationMissingRequiredField", (e) => Effect.succeed(e.missingFields))
        )
        assert.deepStrictEqual(caught, ["clientID"])
        // an invalid field besides: INVALID_REPRESENTATION, the missing field nested in its details
        const mixed = yield* Effect.flip(
          clients.create({ scope: "", owner: { urn: "00000000-0000-0000-0000-000000000000" }, clientID: "Bearer" })
        )
        assert.strictEqual(mixed._tag, "InvalidRepresentation")
        assert.deepStrictEqual(
          mixed._tag === "InvalidRepresentation" && mixed.details.map((d) => d.code),
          ["REPRESENTATION_MISSING_REQUIRED_FIELD", "REPRESENTATION_INVALID_FIELD"]
        )
        // UPDATE meets it too, and a permanent error is not retried
        const urn = (yield* clients.create(input(fake))).urn!
        const update = yield* Effect.flip(clients.update(urn, { ...input(fake), scope: "" }))
        assert.deepStrictEqual(update._tag === "RepresentationMissingRequiredField" && update.missingFields, ["scope"])
        assert.deepStrictEqual(yield* statuses(fake, "PUT"), [400])
        assert.lengthOf(yield* fake.clients, 1)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("returned instead of CREATE_SUCCESS, with a 2xx status, it is the same error", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup({ missingFields: "topLevel", missingFieldsStatus: 201 })
        const error = yield* Effect.flip(clients.create({ ...input(fake), owner: { urn: "" } }))
        assert.isTrue(error._tag === "RepresentationMissingRequiredField" && error.status === 201)
        assert.deepStrictEqual(error._tag === "RepresentationMissingRequiredField" && error.missingFields, [
          "owner.urn"
        ])
        assert.lengthOf(yield* fake.clients, 0)
        // a field named at the top level (no `errors` list), on any call
        const urn = (yield* clients.create(input(fake))).urn!
        yield* fake.inject(
          BaackFake.Fault.raw(
            200,
            JSON.stringify({ code: "REPRESENTATION_MISSING_REQUIRED_FIELD", field: "clientID" }),
            "application/json"
          )
        )
        const read = yield* Effect.flip(clients.read(urn))
        assert.deepStrictEqual(read._tag === "RepresentationMissingRequiredField" && read.missingFields, ["clientID"])
        // an error representation with another code in a 2xx is not taken for a client either
        yield* fake.inject(BaackFake.Fault.apiError(200, "BAD_REQUEST", "malformed"))
        assert.strictEqual((yield* Effect.flip(clients.read(urn)))._tag, "BadRequest")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("nested under INVALID_REPRESENTATION (the fake's default) it stays a detail", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup()
        const error = yield* Effect.flip(clients.create({ ...input(fake), clientID: "" }))
        assert.strictEqual(error._tag, "InvalidRepresentation")
        assert.deepStrictEqual(
          error._tag === "InvalidRepresentation" && error.details.map((d) => [d.code, d.field]),
          [["REPRESENTATION_MISSING_REQUIRED_FIELD", "clientID"]]
        )
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("retries", () => {
    it.scoped("READ, LIST, UPDATE and DELETE are retried on transient failures, spaced by the policy's schedule", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* retrySetup()
        const urn = (yield* clients.create(input(fake))).urn!

        yield* fake.inject(BaackFake.Fault.unavailable(), BaackFake.Fault.drop())
        const listing = yield* Effect.fork(clients.list)
        assert.strictEqual(yield* nextRetryDelay, 1000)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* nextRetryDelay, 2000, "after the dropped connection, the schedule's next step")
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual((yield* Fiber.join(listing)).map((c) => c.urn), [urn])
        assert.deepStrictEqual(yield* statuses(fake, "GET"), [503, 0, 200])

        yield* fake.inject(BaackFake.Fault.raw(502, "<html>Bad Gateway</html>"))
        const reading = yield* Effect.fork(clients.read(urn))
        assert.strictEqual(yield* nextRetryDelay, 1000)
        yield* TestClock.adjust("1 second")
        assert.isTrue(Option.isSome(yield* Fiber.join(reading)))

        yield* fake.inject(BaackFake.Fault.rateLimited(30))
        const updating = yield* Effect.fork(clients.update(urn, input(fake, { name: "retried" })))
        assert.strictEqual(yield* nextRetryDelay, 30_000, "Retry-After, longer than the schedule's 1 second")
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual((yield* Fiber.join(updating)).extra.name, "retried")
        assert.deepStrictEqual(yield* statuses(fake, "PUT"), [429, 200])

        yield* fake.inject(BaackFake.Fault.unavailable())
        const deleting = yield* Effect.fork(clients.delete(urn))
        assert.strictEqual(yield* nextRetryDelay, 1000)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(deleting)
        assert.deepStrictEqual(yield* statuses(fake, "DELETE"), [503, 204])
        assert.lengthOf(yield* fake.clients, 0)
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("a retried DELETE answered 404 counts as done; a first one is NotFound", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* retrySetup()
        for (const lost of [BaackFake.Fault.unavailable(), BaackFake.Fault.drop()]) {
          const urn = (yield* clients.create(input(fake))).urn!
          // the server deletes the client, then its answer is lost
          yield* fake.inject(BaackFake.Fault.afterApplying(lost))
          const deleting = yield* Effect.fork(clients.delete(urn))
          assert.strictEqual(yield* nextRetryDelay, 1000)
          yield* TestClock.adjust("1 second")
          assert.isTrue(Exit.isSuccess(yield* Fiber.await(deleting)))
          assert.deepStrictEqual((yield* statuses(fake, "DELETE")).slice(-2), [lost.drop === true ? 0 : 503, 404])
          assert.strictEqual((yield* Effect.flip(clients.delete(urn)))._tag, "NotFound", "not retried: NotFound")
        }
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("CREATE is never retried, and permanent failures are not retried", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* retrySetup()
        yield* fake.inject(BaackFake.Fault.unavailable())
        assert.strictEqual((yield* Effect.flip(clients.create(input(fake))))._tag, "ServerError")
        // its answer lost after the server created it: one client, not two
        yield* fake.inject(BaackFake.Fault.afterApplying(BaackFake.Fault.drop()))
        assert.strictEqual((yield* Effect.flip(clients.create(input(fake))))._tag, "TransportError")
        assert.deepStrictEqual(yield* statuses(fake, "POST"), [503, 0])
        assert.lengthOf(yield* fake.clients, 1)
        const [{ urn }] = (yield* clients.list) as unknown as [{ urn: string }]
        yield* fake.inject(BaackFake.Fault.apiError(400, "BAD_REQUEST"), BaackFake.Fault.apiError(403, "FORBIDDEN"))
        assert.strictEqual((yield* Effect.flip(clients.read(urn)))._tag, "BadRequest")
        assert.strictEqual((yield* Effect.flip(clients.delete(urn)))._tag, "Forbidden")
        assert.deepStrictEqual((yield* statuses(fake)).slice(-2), [400, 403])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("by default a call gives up after 4 retries", () =>
      Effect.gen(function*() {
        const { clients, fake } = yield* setup(undefined, { timeout: "30 days" })
        yield* fake.inject(...Array.from({ length: 6 }, () => BaackFake.Fault.unavailable()))
        const listing = yield* Effect.fork(clients.list)
        for (let retry = 1; retry <= 4; retry++) {
          const delay = yield* nextRetryDelay
          // the default schedule: exponential from 1 second, jittered (80% to 120%)
          assert.isTrue(delay >= 800 * 2 ** (retry - 1) && delay <= 1200 * 2 ** (retry - 1), `${retry}: ${delay}`)
          yield* TestClock.adjust(delay)
        }
        const error = yield* Effect.flip(Fiber.join(listing))
        assert.strictEqual(error._tag, "ServerError")
        assert.deepStrictEqual(yield* statuses(fake), [503, 503, 503, 503, 503])
      }).pipe(Effect.provide(HttpLive)))
  })

  describe("the root token as a TokenSource", () => {
    class BaackRoot extends Context.Tag("test/BaackRoot")<BaackRoot, TokenSource.TokenSource>() {}

    it.effect("never refreshed: the same token without expiry, a year later", () =>
      Effect.gen(function*() {
        const source = yield* Baack.makeRootToken({ rootToken: Redacted.make("root-token-0123456789\n") })
        const token = yield* source.get
        assert.strictEqual(Redacted.value(token.value), "root-token-0123456789", "a file's final newline dropped")
        assert.strictEqual(token.type, "Bearer")
        assert.isUndefined(token.expiresAt)
        assert.strictEqual(token.lifetimeSource, "none")
        assert.strictEqual(source.provider, "baack")
        yield* TestClock.adjust("365 days")
        assert.strictEqual(yield* source.get, token)
        assert.strictEqual(yield* source.getValidFor("3650 days"), token)
        assert.strictEqual(yield* source.refresh, token)
        assert.strictEqual((yield* source.state)._tag, "Valid")
        assert.notInclude(JSON.stringify(token) + String(token.value), "root-token-0123456789")
        for (const bad of ["", "two words", "quo\"te"]) {
          const error = yield* Effect.flip(Baack.makeRootToken({ rootToken: Redacted.make(bad) }))
          assert.strictEqual(error._tag, "InvalidConfiguration")
          if (bad !== "") assert.notInclude(error.message, bad)
        }
      }))

    it.scoped("read from a mounted file with Config.redacted, and read again after a 401: a rotated token needs no restart", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "baack-"))),
          (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
        )
        const write = (name: string, value: string) => Effect.promise(() => Fs.writeFile(Path.join(dir, name), value))
        yield* write("BAACK_ROOT_TOKEN", `${fake.rootToken}\n`)
        yield* write("BAACK_BASE_URL", fake.url)
        const files = yield* PlatformConfigProvider.fromFileTree({ rootDirectory: dir }).pipe(
          Effect.provide(NodeContext.layer)
        )
        // the provider is in force while the layer is built only: the re-read uses it all the same
        const clients = Context.get(
          yield* Layer.build(Baack.layerConfig()).pipe(Effect.withConfigProvider(files)),
          Baack.ApiClients
        )
        assert.deepStrictEqual(yield* clients.list, [])
        const rotated = yield* fake.rotateRootToken()
        yield* write("BAACK_ROOT_TOKEN", `${rotated}\n`)
        assert.deepStrictEqual(yield* clients.list, [])
        const requests = yield* fake.requests
        assert.deepStrictEqual(requests.map((r) => r.status), [200, 401, 200])
        assert.deepStrictEqual(requests.map((r) => r.headers.authorization), [
          `Bearer ${fake.rootToken}`,
          `Bearer ${fake.rootToken}`,
          `Bearer ${rotated}`
        ])
        assert.deepStrictEqual(yield* clients.list, [])
        assert.strictEqual((yield* fake.requests).length, 4, "the new token is kept: no further 401")
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("after a 401 with no new value, invalidate ends in ReauthorizationRequired; a value written later is read by a later call", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const stored = yield* Ref.make(fake.rootToken)
        let reads = 0
        const source = yield* Baack.makeRootToken({
          rootToken: Effect.map(Ref.get(stored), (value) => {
            reads++
            return Redacted.make(value)
          })
        })
        const clients = yield* Baack.make({ baseUrl: fake.url, rootToken: source })
        const token = yield* source.get
        yield* clients.list
        assert.strictEqual(reads, 1, "read once at start, not per call")
        const rotated = yield* fake.rotateRootToken()
        // five calls meet the 401 at once: the token is read again once
        const errors = yield* Effect.all(Array.from({ length: 5 }, () => Effect.flip(clients.list)), {
          concurrency: "unbounded"
        })
        for (const error of errors) {
          assert.strictEqual(error._tag, "ReauthorizationRequired")
          assert.isTrue(error._tag === "ReauthorizationRequired" && error.reason?._tag === "InvalidClient")
        }
        assert.strictEqual(reads, 2, "read again once, after the 401s")
        const state = yield* source.state
        assert.isTrue(state._tag === "Failed" && state.error._tag === "ReauthorizationRequired")
        assert.isTrue(Option.isNone(state._tag === "Failed" ? state.token : Option.some(token)))
        // the same refused token invalidated again, by another caller: nothing more happens
        yield* source.invalidate(token)
        assert.strictEqual(reads, 2)
        const sent = (yield* fake.requests).length
        assert.strictEqual((yield* Effect.flip(clients.list))._tag, "ReauthorizationRequired")
        assert.strictEqual((yield* fake.requests).length, sent, "no request with a refused token")
        // the operator writes the rotated token: a call reads it (at most once a second), with no restart
        yield* Ref.set(stored, rotated)
        assert.strictEqual((yield* Effect.flip(clients.list))._tag, "ReauthorizationRequired", "read a moment ago")
        assert.strictEqual(reads, 2)
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* clients.list, [])
        assert.strictEqual(reads, 3)
        const valid = yield* source.state
        assert.isTrue(valid._tag === "Valid" && Redacted.value(valid.token.value) === rotated)
        assert.deepStrictEqual((yield* fake.requests).map((r) => r.status), [200, 401, 401, 401, 401, 401, 200])
      }).pipe(Effect.provide(HttpLive)))

    it.scoped("one source for ApiClients, AuthorizedClient and TokenClient", () =>
      Effect.gen(function*() {
        const fake = yield* BaackFake.make()
        const stored = yield* Ref.make(fake.rootToken)
        const RootLive = Baack.layerRootToken(BaackRoot, { rootToken: Effect.map(Ref.get(stored), Redacted.make) })
        const context = yield* Layer.build(
          Layer.mergeAll(
            Baack.layerFromSource(BaackRoot, { baseUrl: fake.url }),
            AuthorizedClient.layer(BaackRoot, { origin: fake.url })
          ).pipe(
            Layer.provideMerge(RootLive),
            Layer.provide(HttpLive)
          )
        )
        const clients = Context.get(context, Baack.ApiClients)
        const api = Context.get(context, HttpClient.HttpClient)
        const source = Context.get(context, BaackRoot)
        const created = yield* clients.create(input(fake))
        const listed = yield* api.get(`${fake.url}/n/v1/apiclient/`)
        assert.strictEqual(listed.status, 200)

        // rotated: AuthorizedClient meets the 401, the source reads the new token, the request is sent again
        const rotated = yield* fake.rotateRootToken()
        yield* Ref.set(stored, rotated)
        assert.strictEqual((yield* api.get(`${fake.url}/n/v1/apiclient/${created.urn}`)).status, 200)
        // ApiClients shares the source: it goes straight out with the new token
        assert.strictEqual(Option.getOrThrow(yield* clients.read(created.urn!)).urn, created.urn)
        const requests = yield* fake.requests
        assert.deepStrictEqual(requests.map((r) => r.status), [201, 200, 401, 200, 200])
        assert.strictEqual(requests[4]!.headers.authorization, `Bearer ${rotated}`)

        // the Promise facade over the same source, and over a layer of its own
        const facade = yield* TokenClient.make(source)
        assert.strictEqual(Redacted.value((yield* Effect.promise(() => facade.get())).value), rotated)
        const own = yield* Effect.promise(() => TokenClient.fromLayer(BaackRoot, RootLive))
        assert.strictEqual(Redacted.value((yield* Effect.promise(() => own.get())).value), rotated)
        assert.strictEqual(Redacted.value(own.current()!.value), rotated)
        yield* Effect.promise(() => own.close())
      }))
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
