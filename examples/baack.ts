/**
 * Baack's root API client minting a narrower client for one use case, offline against the fake Baack
 * on 127.0.0.1 (`npx tsx examples/baack.ts`): create it, read it back, use its own token, delete it.
 *
 * The root token has every permission on the company and must never reach a device or a browser; the
 * narrower client's token is what a device gets. With the real Baack, drop `baseUrl` and read the root
 * token from `BAACK_ROOT_TOKEN` with `Baack.layerConfig()`.
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Redacted } from "effect"
import { Baack, LineLogger } from "tokenwarden"
import { BaackFake } from "tokenwarden/testing"

/** The part of the program that manages clients: it needs only the service. */
const mintReportsClient = (companyUrn: string) =>
  Effect.gen(function*() {
    const clients = yield* Baack.ApiClients
    const created = yield* clients.create({
      scope: "api.baack.co",
      owner: { urn: companyUrn, url: `/n/v1/company/${companyUrn}` },
      clientID: "Bearer",
      fields: { name: "reports-kiosk" }
    })
    // the token prints as <redacted>: a secret is never logged
    yield* Effect.logInfo("API client created").pipe(
      Effect.annotateLogs({ urn: created.urn, name: created.extra.name, token: created.token })
    )
    const read = yield* clients.read(created.urn!)
    yield* Effect.logInfo("read back").pipe(
      Effect.annotateLogs({ urn: Option.map(read, (c) => c.urn).pipe(Option.getOrElse(() => "gone")) })
    )
    return created
  })

const program = Effect.gen(function*() {
  const fake = yield* BaackFake.make()
  const RootClients = Baack.layer({ baseUrl: fake.url, rootToken: Redacted.make(fake.rootToken) })

  const kiosk = yield* mintReportsClient(fake.companyUrn).pipe(Effect.provide(RootClients))

  // the kiosk gets its own token, never the root one: it may not manage clients
  const asKiosk = yield* Baack.make({ baseUrl: fake.url, rootToken: kiosk.token! })
  const refused = yield* Effect.flip(asKiosk.list)
  yield* Effect.logInfo("the kiosk token may not manage clients").pipe(Effect.annotateLogs({ error: refused._tag }))

  // a mistake in the representation comes back typed, with the server's details
  const invalid = yield* Effect.gen(function*() {
    const clients = yield* Baack.ApiClients
    return yield* Effect.flip(clients.create({ scope: "api.baack.co", owner: { urn: "" }, clientID: "Bearer" }))
  }).pipe(Effect.provide(RootClients))
  yield* Effect.logInfo("an invalid representation is refused").pipe(Effect.annotateLogs({ detail: invalid.message }))

  yield* Effect.gen(function*() {
    const clients = yield* Baack.ApiClients
    yield* clients.delete(kiosk.urn!)
    yield* Effect.logInfo("API client deleted").pipe(
      Effect.annotateLogs({ clients_left: (yield* clients.list).length })
    )
  }).pipe(Effect.provide(RootClients))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
