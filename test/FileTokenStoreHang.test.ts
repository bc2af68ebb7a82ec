/**
 * A file system that stops answering (a hung network mount): the file store's read gives up after 5
 * seconds instead of holding the source's start. `node:fs/promises` is replaced here so that opening
 * one chosen path never returns, which no real file can be made to do on demand.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import * as Fs from "node:fs"
import type * as FsPromises from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { ClientAuth, FileTokenStore, Grant, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { vi } from "vitest"
import { HttpLive, noJitter, settle } from "./util.js"

const hanging = new Set<string>()

vi.mock("node:fs/promises", async (importOriginal) => {
  const original = await importOriginal<typeof FsPromises>()
  const open: typeof original.open = (path, ...rest) =>
    hanging.has(String(path)) ? new Promise(() => {}) : original.open(path, ...rest)
  return { ...original, default: { ...original, open }, open }
})

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-hang-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("FileTokenStore on a file system that stops answering", () => {
  it.scoped("a load gives up after 5 seconds (Unavailable); a source starts on a token of its own", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
      const options: TokenSource.StoredOptions = {
        store: true,
        url: server.tokenUrl,
        clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
        grant: Grant.clientCredentials({ scopes: ["read"] }),
        policy: noJitter,
        timeout: "30 days"
      }
      const key = TokenStore.key(options)
      hanging.add(Path.join(dir, `${key}.json`))
      const store = yield* FileTokenStore.make({ directory: dir }).pipe(Effect.provide(NodeFileSystem.layer))
      const load = yield* Effect.fork(Effect.flip(store.load(key)))
      yield* settle // the read under way, its 5 seconds counting
      yield* TestClock.adjust("4999 millis")
      assert.isNull(load.unsafePoll(), "still waiting before 5 seconds")
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(load)
      assert.deepStrictEqual([error.reason, error.transient], ["Unavailable", true])
      const started = yield* Effect.fork(
        TokenSource.make(options).pipe(
          Effect.provide(Layer.merge(
            HttpLive,
            FileTokenStore.layer({ directory: dir }).pipe(
              Layer.provide(NodeFileSystem.layer)
            )
          ))
        )
      )
      // its start reads the directory for real before the load: the clock is moved on in steps
      for (let step = 0; step < 50 && started.unsafePoll() === null; step++) {
        yield* settle
        yield* TestClock.adjust("500 millis")
      }
      const source = yield* Fiber.join(started)
      yield* source.get
      assert.strictEqual(yield* server.count(), 1)
    }))
})
