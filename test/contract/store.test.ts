/**
 * The store contract (`store.ts`) against every built-in store: memory, file, Redis.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { describe } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { FileTokenStore, RedisTokenStore, TokenStore } from "tokenwarden"
import * as RedisServer from "../fleet/redis.js"
import { storeContract } from "./store.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-contract-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("store contract", () => {
  describe("memory", () => storeContract(Effect.map(TokenStore.makeMemory, (store) => [store, store] as const)))

  describe("file", () =>
    storeContract(
      Effect.gen(function*() {
        const directory = yield* tempDir
        const make = FileTokenStore.make({ directory }).pipe(Effect.provide(NodeFileSystem.layer))
        return [yield* make, yield* make] as const
      })
    ))

  RedisServer.describeRedis("redis", () =>
    storeContract(
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        return [
          yield* RedisTokenStore.make({ url: server.url }),
          yield* RedisTokenStore.make({ url: server.url })
        ] as const
      })
    ))
})
