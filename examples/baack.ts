/**
 * Baack's root API client minting a narrower client for one use case, offline against the fake Baack
 * on 127.0.0.1 (`npx tsx examples/baack.ts`): create it, read it back, update it, use its own token,
 * rotate the root token without a restart, and delete it.
 *
 * The root token has every permission on the company and must never reach a device or a browser; the
 * narrower client's token is what a device gets. It is read with `Config.redacted` from a mounted file
 * (a Kubernetes secret, say): a token source that reads the file again when Baack answers 401, so a
 * rotated root token is picked up by the next call. With the real Baack, drop `baseUrl` and the fake.
 */
import { PlatformConfigProvider } from "@effect/platform"
import { NodeContext, NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Config, Context, Effect, Layer, Option } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { Baack, LineLogger, type TokenSource } from "tokenwarden"
import { BaackFake } from "tokenwarden/testing"

class BaackRoot extends Context.Tag("example/BaackRoot")<BaackRoot, TokenSource.TokenSource>() {}

/** The part of the program that manages clients: it needs only the service. */
const mintReportsClient = (companyUrn: string) =>
  Effect.gen(function*() {
    const clients = yield* Baack.ApiClients
    const owner = { urn: companyUrn, url: `/n/v1/company/${companyUrn}` }
    const created = yield* clients.create({
      scope: "api.baack.co",
      owner,
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
    // UPDATE sends the whole representation (PUT); retried, like READ, LIST and DELETE, when Baack fails briefly
    const updated = yield* clients.update(created.urn!, {
      scope: "api.baack.co",
      owner,
      clientID: "Bearer",
      fields: { name: "reports-kiosk-lobby" }
    })
    yield* Effect.logInfo("API client updated").pipe(
      Effect.annotateLogs({ urn: updated.urn, name: updated.extra.name })
    )
    return created
  })

const program = Effect.gen(function*() {
  const fake = yield* BaackFake.make({ missingFields: "topLevel" })
  // the mounted secret: one file per variable
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "baack-example-"))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )
  const mount = (token: string) => Effect.promise(() => Fs.writeFile(Path.join(dir, "BAACK_ROOT_TOKEN"), `${token}\n`))
  yield* mount(fake.rootToken)
  const files = yield* PlatformConfigProvider.fromFileTree({ rootDirectory: dir }).pipe(
    Effect.provide(NodeContext.layer)
  )

  // the root token is a token source: the same one could serve an AuthorizedClient or a TokenClient
  const RootLive = Baack.layerRootToken(BaackRoot, { rootToken: Config.redacted("BAACK_ROOT_TOKEN") }).pipe(
    Layer.provide(Layer.setConfigProvider(files))
  )
  const ClientsLive = Baack.layerFromSource(BaackRoot, { baseUrl: fake.url }).pipe(Layer.provideMerge(RootLive))

  yield* Effect.gen(function*() {
    const kiosk = yield* mintReportsClient(fake.companyUrn)

    // the kiosk gets its own token, never the root one: it may not manage clients
    const asKiosk = yield* Baack.make({ baseUrl: fake.url, rootToken: kiosk.token! })
    const refused = yield* Effect.flip(asKiosk.list)
    yield* Effect.logInfo("the kiosk token may not manage clients").pipe(Effect.annotateLogs({ error: refused._tag }))

    // an operator rotates the root token: Baack refuses the old one, the new one is in the file
    yield* mount(yield* fake.rotateRootToken())
    const clients = yield* Baack.ApiClients
    yield* Effect.logInfo("root token rotated; no restart").pipe(
      Effect.annotateLogs({
        clients: (yield* clients.list).length,
        root_token_source: (yield* (yield* BaackRoot).state)._tag
      })
    )

    // a representation missing required fields comes back typed, with the fields Baack named
    const missing = yield* clients.create({ scope: "api.baack.co", owner: { urn: "" }, clientID: "" }).pipe(
      Effect.as([] as ReadonlyArray<string>),
      Effect.catchTag("RepresentationMissingRequiredField", (error) => Effect.succeed(error.missingFields))
    )
    yield* Effect.logInfo("an incomplete representation is refused").pipe(
      Effect.annotateLogs({ missing: missing.join(",") })
    )

    yield* clients.delete(kiosk.urn!)
    yield* Effect.logInfo("API client deleted").pipe(
      Effect.annotateLogs({ clients_left: (yield* clients.list).length })
    )
  }).pipe(Effect.provide(ClientsLive))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
