import { NodeFileSystem } from "@effect/platform-node"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import {
  ConfigProvider,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  Redacted,
  Stream,
  TestClock
} from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import type { AccessToken } from "tokenwarden"
import { ClientAuth, FileTokenStore, Grant, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { legacyKey } from "../src/internal/legacyKey.js"
import { leaseContract } from "./contract/storeLease.js"
import { runner } from "./fixtures/spawn.js"
import * as Sweep from "./sweep.js"
import { elapsed, HttpLive, noJitter } from "./util.js"

const value = (t: { readonly value: Redacted.Redacted }) => Redacted.value(t.value)

const token = (v: string, refreshToken?: string): AccessToken.AccessToken => ({
  value: Redacted.make(v),
  type: "Bearer",
  issuedAt: 0,
  expiresAt: 3_600_000,
  lifetimeSource: "expires_in",
  scopes: ["read"],
  ...(refreshToken === undefined ? {} : { refreshToken: Redacted.make(refreshToken) }),
  extra: Redacted.make({})
})

interface Line {
  readonly message: string
  readonly annotations: Record<string, unknown>
}

const collectLogs = () => {
  const lines: Array<Line> = []
  const logger = Logger.make(({ annotations, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    lines.push({ message: text, annotations: Object.fromEntries(annotations) })
  })
  return { lines, layer: Logger.add(logger) }
}

/** A fresh directory under the system's temporary one, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-file-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

// how the store names this process's table of pids in a lock or lease: the host, and the pid namespace on Linux
const host = (() => {
  try {
    return `${Os.hostname()} ${Fs.readlinkSync("/proc/self/ns/pid")}`
  } catch {
    return Os.hostname()
  }
})()

const mode = (path: string) => Fs.statSync(path).mode & 0o777

const hexKey = () => Crypto.randomBytes(32).toString("hex")

const passwordSource = (server: AuthServer.AuthServer) =>
  TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
    policy: noJitter,
    timeout: "30 days",
    store: true
  })

const credentialKey = (server: AuthServer.AuthServer) =>
  TokenStore.key({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] })
  })

const withStore = (options: FileTokenStore.Options) =>
  Layer.merge(HttpLive, FileTokenStore.layer(options).pipe(Layer.provide(NodeFileSystem.layer)))

const makeStore = (options: FileTokenStore.Options) =>
  FileTokenStore.make(options).pipe(Effect.provide(NodeFileSystem.layer))

describe("FileTokenStore", () => {
  describe("with a TokenSource", () => {
    it.scoped("a restarted process loads the stored token; once it expired, it uses the stored refresh token", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const run = <A, E>(body: (source: TokenSource.TokenSource) => Effect.Effect<A, E>) =>
          Effect.scoped(Effect.flatMap(passwordSource(server), body)).pipe(
            Effect.provide(withStore({ directory: dir }))
          )
        const first = yield* run((source) => source.get)
        assert.strictEqual(yield* server.count(), 1)
        // a new process, same directory: no request at all
        const again = yield* run((source) => source.get)
        assert.strictEqual(value(again), value(first))
        assert.strictEqual(yield* server.count(), 1)
        // after the access token expired: its refresh token, not the password
        yield* TestClock.adjust("2 hours")
        const refreshed = yield* run((source) => source.get)
        assert.notStrictEqual(value(refreshed), value(first))
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        assert.strictEqual(yield* server.count("password"), 1)
        assert.strictEqual(yield* server.count(), 2)
      }))

    for (
      const [name, content] of [
        ["a corrupted file", "{\"format\":\"tokenwarden/v1\",\"version\":1,\"token\":{\"value\":42}}"],
        ["a truncated file", "{\"format\":\"tokenwarden/v1\",\"version\":1,\"token\":{\"val"],
        ["an empty file", ""],
        ["foreign JSON", "{\"access_token\":\"abc\",\"expires_in\":3600}"]
      ] as const
    ) {
      it.scoped(`${name}: a Corrupted StoreError, logged; the source gets a fresh grant and heals the file`, () =>
        Effect.gen(function*() {
          const logs = collectLogs()
          const dir = yield* tempDir
          const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
          const file = Path.join(dir, `${credentialKey(server)}.json`)
          Fs.writeFileSync(file, content, { mode: 0o600 })
          const store = yield* makeStore({ directory: dir })
          const error = yield* Effect.flip(store.load(credentialKey(server)))
          assert.strictEqual(error.reason, "Corrupted")
          const source = yield* passwordSource(server).pipe(
            Effect.provide(Layer.merge(withStore({ directory: dir }), logs.layer))
          )
          const fresh = yield* source.get
          assert.strictEqual(yield* server.count("password"), 1)
          const warning = logs.lines.find((l) => l.message === "token store failed; going on without it")
          assert.strictEqual(warning?.annotations.reason, "Corrupted")
          const healed = Option.getOrThrow(yield* store.load(credentialKey(server)))
          assert.strictEqual(value(healed.token), value(fresh))
        }))
    }

    it.scoped("an encrypted entry under the 0.1.0 key is adopted without a request, sealed anew under the new key", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const encryptionKey = Redacted.make(hexKey())
        const store = yield* makeStore({ directory: dir, encryptionKey })
        const old = legacyKey({ endpoint: server.tokenUrl, clientId: "client", grantType: "refresh_token", scopes: [] })
        yield* store.save(old, { token: token("stored-access", "stored-refresh"), version: 4 })
        const options: TokenSource.StoredOptions = {
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.refreshToken({ refreshToken: Redacted.make("rt-from-config") }),
          subject: "alice",
          store: true
        }
        const adopted = yield* Effect.scoped(Effect.flatMap(TokenSource.make(options), (s) => s.get)).pipe(
          Effect.provide(withStore({ directory: dir, encryptionKey }))
        )
        assert.strictEqual(value(adopted), "stored-access")
        assert.strictEqual(yield* server.count(), 0)
        assert.deepStrictEqual(Fs.readdirSync(dir), [`${TokenStore.key(options)}.json`])
        const moved = Option.getOrThrow(yield* store.load(TokenStore.key(options)))
        assert.strictEqual(moved.version, 4)
        assert.strictEqual(Redacted.value(moved.token.refreshToken!), "stored-refresh")
      }))

    it.scoped("a wrong encryption key: a Decryption StoreError, logged, and a fresh grant", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const dir = yield* tempDir
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const right = Redacted.make(hexKey())
        const wrong = Redacted.make(hexKey())
        const first = yield* Effect.scoped(Effect.flatMap(passwordSource(server), (s) => s.get)).pipe(
          Effect.provide(withStore({ directory: dir, encryptionKey: right }))
        )
        const store = yield* makeStore({ directory: dir, encryptionKey: wrong })
        const error = yield* Effect.flip(store.load(credentialKey(server)))
        assert.strictEqual(error.reason, "Decryption")
        assert.notInclude(`${String(error)} ${JSON.stringify(error)}`, Redacted.value(wrong))
        const source = yield* passwordSource(server).pipe(
          Effect.provide(Layer.merge(withStore({ directory: dir, encryptionKey: wrong }), logs.layer))
        )
        const fresh = yield* source.get
        assert.notStrictEqual(value(fresh), value(first))
        assert.strictEqual(yield* server.count("password"), 2)
        assert.isTrue(logs.lines.some((l) => l.annotations.reason === "Decryption"))
        for (const line of logs.lines) assert.notInclude(JSON.stringify(line), Redacted.value(wrong))
      }))
  })

  describe("files", () => {
    it.scoped("entry files are 0600, a created directory 0700, and nothing else is left in it", () =>
      Effect.gen(function*() {
        const root = yield* tempDir
        const dir = Path.join(root, "nested", "tokens")
        const store = yield* makeStore({ directory: dir })
        assert.strictEqual(mode(dir), 0o700)
        const file = Path.join(dir, "k.json")
        for (let version = 1; version <= 5; version++) {
          // a reader holding the previous file open keeps reading it whole: the save renamed a new
          // file over it instead of writing in place
          const before = Fs.existsSync(file) ? Fs.openSync(file, "r") : undefined
          const content = before === undefined ? undefined : Fs.readFileSync(file, "utf8")
          assert.isTrue(yield* store.save("k", { token: token(`t${version}`), version }))
          if (before !== undefined) {
            assert.strictEqual(Fs.readFileSync(before, "utf8"), content)
            Fs.closeSync(before)
          }
          assert.strictEqual(mode(file), 0o600)
        }
        assert.deepStrictEqual(Fs.readdirSync(dir), ["k.json"], "no temporary or lock file left")
        assert.strictEqual(Option.getOrThrow(yield* store.load("k")).version, 5)
      }))

    it.scoped("an existing directory open to others is tightened to 0700 (logged); a sticky one is refused", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const root = yield* tempDir
        const open = Path.join(root, "open")
        Fs.mkdirSync(open)
        Fs.chmodSync(open, 0o755)
        yield* makeStore({ directory: open }).pipe(Effect.provide(logs.layer))
        assert.strictEqual(mode(open), 0o700)
        assert.isTrue(logs.lines.some((l) => l.message.includes("changed its mode to 0700")))
        const sticky = Path.join(root, "sticky")
        Fs.mkdirSync(sticky)
        Fs.chmodSync(sticky, 0o1777)
        const error = yield* Effect.flip(makeStore({ directory: sticky }))
        assert.strictEqual(error._tag, "StoreError")
        assert.include(error.message, "sticky")
        assert.strictEqual(Fs.statSync(sticky).mode & 0o7777, 0o1777, "left as it was")
      }))

    // load, save, remove, refresh, changes and notices as every store keeps them: test/contract/store.ts
    it.scoped("remove leaves nothing behind in the directory", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const store = yield* makeStore({ directory: dir })
        yield* store.save("k", { token: token("v3"), version: 3 })
        yield* store.save("other", { token: token("o"), version: 1 })
        yield* store.remove("k")
        assert.deepStrictEqual(Fs.readdirSync(dir), ["other.json"])
      }))

    it.scoped("a key that is not a plain name is hashed: it never leaves the directory", () =>
      Effect.gen(function*() {
        const root = yield* tempDir
        const dir = Path.join(root, "store")
        const store = yield* makeStore({ directory: dir })
        assert.isTrue(yield* store.save("../escape", { token: token("x"), version: 1 }))
        assert.deepStrictEqual(Fs.readdirSync(root), ["store"])
        const [name] = Fs.readdirSync(dir)
        assert.match(name!, /^[0-9a-f]{64}\.json$/)
        assert.strictEqual(value(Option.getOrThrow(yield* store.load("../escape")).token), "x")
      }))

    it.live("a crashed writer's old temporary file is removed at start; a stale lock is broken", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        Fs.chmodSync(dir, 0o700)
        const orphan = Path.join(dir, "k.json.12345.0123456789ab.tmp")
        Fs.writeFileSync(orphan, "secret", { mode: 0o600 })
        const old = new Date(Date.now() - 60_000)
        Fs.utimesSync(orphan, old, old)
        // a lock left by a process that is gone (pid 2^22+1 is beyond Linux's default pid_max)
        Fs.writeFileSync(Path.join(dir, "k.json.lock"), JSON.stringify({ pid: 4_194_305, host }))
        const store = yield* makeStore({ directory: dir, lockTimeout: "2 seconds" })
        assert.isFalse(Fs.existsSync(orphan))
        assert.isTrue(yield* store.save("k", { token: token("x"), version: 1 }))
        assert.deepStrictEqual(Fs.readdirSync(dir), ["k.json"])
      }).pipe(Effect.scoped))

    it.live("a lock held by a live process: the save waits, then fails as Unavailable", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        Fs.chmodSync(dir, 0o700)
        Fs.writeFileSync(Path.join(dir, "k.json.lock"), JSON.stringify({ pid: process.pid, host }), {
          mode: 0o600
        })
        const store = yield* makeStore({ directory: dir, lockTimeout: "300 millis" })
        const started = Date.now()
        const error = yield* Effect.flip(store.save("k", { token: token("x"), version: 1 }))
        assert.strictEqual(error.reason, "Unavailable")
        assert.isAtLeast(Date.now() - started, 250)
        assert.isTrue(Fs.existsSync(Path.join(dir, "k.json.lock")), "someone else's lock is left alone")
        assert.isFalse(Fs.existsSync(Path.join(dir, "k.json")))
      }).pipe(Effect.scoped))
  })

  describe("one directory watch", () => {
    // the FileSystem service with its watches counted: opened, and open now
    const countingWatches = () => {
      const count = { opened: 0, open: 0 }
      const layer = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (fs) => ({
          ...fs,
          watch: (path: string, options?: FileSystem.WatchOptions) =>
            Stream.unwrapScoped(
              Effect.acquireRelease(
                Effect.sync(() => {
                  count.opened++
                  count.open++
                }),
                () => Effect.sync(() => void count.open--)
              ).pipe(Effect.as(fs.watch(path, options)))
            )
        }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      return { count, layer }
    }

    it.live("1,000 changes streams and 20 waiting refreshes share one watch, closed after the last leaves", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const { count, layer } = countingWatches()
        const store = yield* FileTokenStore.make({ directory: dir }).pipe(Effect.provide(layer))
        const writer = yield* makeStore({ directory: dir })
        assert.strictEqual(count.opened, 0, "nobody listens yet")
        const followers = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i),
          (i) => Effect.fork(store.changes(`k${i}`).pipe(Stream.runHead)),
          { concurrency: "unbounded" }
        )
        // another process holds the lease of "held": these refreshes wait on the same watch
        const gate = yield* Deferred.make<void>()
        const holding = yield* Effect.fork(
          writer.refresh("held", 0, Deferred.await(gate).pipe(Effect.as(token("from-holder"))))
        )
        yield* Effect.sleep("100 millis")
        const waiters = yield* Effect.fork(Effect.all(
          Array.from({ length: 20 }, () => store.refresh("held", 0, Effect.succeed(token("own")))),
          { concurrency: "unbounded" }
        ))
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(count, { opened: 1, open: 1 })
        // the one watch carries every key and the lease file: a write wakes its stream and the waiters
        yield* writer.save("k500", { token: token("five hundred"), version: 1 })
        const heard = yield* Fiber.join(followers[500]!).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(value(Option.getOrThrow(heard).token), "five hundred")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holding)
        const [results, millis] = yield* elapsed(Fiber.join(waiters).pipe(Effect.timeout("5 seconds")))
        assert.isTrue(results.every((r) => !r.fetched && value(r.entry.token) === "from-holder"))
        assert.isBelow(millis, 2000, "woken by the write, not by the lease's bound")
        yield* Effect.forEach(followers, Fiber.interrupt, { concurrency: "unbounded", discard: true })
        assert.deepStrictEqual(count, { opened: 1, open: 0 }, "closed after the last listener")
        // the next listener opens it again
        const again = yield* Effect.fork(store.notices.pipe(Stream.runHead))
        yield* Effect.sleep("200 millis")
        yield* writer.save("k1", { token: token("one"), version: 1 })
        assert.deepStrictEqual(
          Option.getOrThrow(yield* Fiber.join(again).pipe(Effect.timeout("5 seconds"))),
          { key: "k1", version: undefined }
        )
        assert.deepStrictEqual(count, { opened: 2, open: 0 })
      }).pipe(Effect.scoped))

    it.live("notices: a hashed file name is named by the key this process met; unmet, it reads as a key of 64 hex digits", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const [met, stranger, writer] = [
          yield* makeStore({ directory: dir }),
          yield* makeStore({ directory: dir }),
          yield* makeStore({ directory: dir })
        ]
        const odd = "../not a file name"
        yield* met.load(odd)
        const heard = (store: TokenStore.TokenStore) =>
          Effect.fork(store.notices.pipe(Stream.take(3), Stream.runCollect, Effect.timeout("5 seconds")))
        const [byMet, byStranger] = [yield* heard(met), yield* heard(stranger)]
        yield* Effect.sleep("150 millis")
        yield* writer.save(odd, { token: token("odd"), version: 1 })
        yield* writer.save("plain", { token: token("plain"), version: 1 })
        yield* writer.save(odd, { token: token("odd"), version: 2 })
        const keys = (notices: Iterable<TokenStore.Notice>) => [...notices].map((n) => n.key)
        assert.deepStrictEqual(keys(yield* Fiber.join(byMet)), [odd, "plain", odd])
        // the stranger cannot tell the hash from an identity key (64 hex digits too): nobody follows it
        const hash = Crypto.createHash("sha256").update(odd).digest("hex")
        assert.deepStrictEqual(keys(yield* Fiber.join(byStranger)), [hash, "plain", hash])
        const refused = yield* Effect.flip(stranger.load(hash))
        assert.deepStrictEqual([refused.reason, refused.detail], [
          "Untrusted",
          "the entry was written under another key"
        ])
      }).pipe(Effect.scoped))
  })

  describe("encryption", () => {
    it.scoped("round trip: the file is an AES-256-GCM envelope with no secret in clear, a new IV per write", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const key = Redacted.make(Crypto.randomBytes(32).toString("base64"))
        const store = yield* makeStore({ directory: dir, encryptionKey: key })
        const entry = { token: token("access-in-clear?", "refresh-in-clear?"), version: 1 }
        yield* store.save("k", entry)
        const first = Fs.readFileSync(Path.join(dir, "k.json"), "utf8")
        const envelope = JSON.parse(first)
        assert.deepStrictEqual(Object.keys(envelope).sort(), ["data", "format", "iv", "tag"])
        assert.strictEqual(envelope.format, "tokenwarden/aes-256-gcm/v1")
        assert.strictEqual(Buffer.from(envelope.iv, "base64").length, 12)
        assert.notInclude(first, "in-clear")
        const loaded = Option.getOrThrow(yield* store.load("k"))
        assert.strictEqual(TokenStore.encode(loaded, "k"), TokenStore.encode(entry, "k"))
        yield* store.save("k", { ...entry, version: 2 })
        const second = JSON.parse(Fs.readFileSync(Path.join(dir, "k.json"), "utf8"))
        assert.notStrictEqual(second.iv, envelope.iv)
      }))

    it.scoped("clear text with a key, an envelope without one, a file moved from another credential: Decryption", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const key = Redacted.make(hexKey())
        const plain = yield* makeStore({ directory: dir })
        const sealed = yield* makeStore({ directory: dir, encryptionKey: key })
        yield* plain.save("clear", { token: token("x"), version: 1 })
        assert.strictEqual((yield* Effect.flip(sealed.load("clear"))).reason, "Decryption")
        yield* sealed.save("sealed", { token: token("y"), version: 1 })
        assert.strictEqual((yield* Effect.flip(plain.load("sealed"))).reason, "Decryption")
        Fs.copyFileSync(Path.join(dir, "sealed.json"), Path.join(dir, "moved.json"))
        assert.strictEqual((yield* Effect.flip(sealed.load("moved"))).reason, "Decryption")
        // a tampered ciphertext
        const envelope = JSON.parse(Fs.readFileSync(Path.join(dir, "sealed.json"), "utf8"))
        const data = Buffer.from(envelope.data, "base64")
        data[0] = data[0]! ^ 1
        Fs.writeFileSync(Path.join(dir, "sealed.json"), JSON.stringify({ ...envelope, data: data.toString("base64") }))
        assert.strictEqual((yield* Effect.flip(sealed.load("sealed"))).reason, "Decryption")
        // the next write replaces what cannot be read
        assert.isTrue(yield* sealed.save("clear", { token: token("z"), version: 1 }))
        assert.strictEqual(value(Option.getOrThrow(yield* sealed.load("clear")).token), "z")
      }))

    it.effect("keys: 64 hex digits or base64 of 32 bytes; anything else is refused without repeating it", () =>
      Effect.gen(function*() {
        const bytes = Crypto.randomBytes(32)
        for (const good of [bytes.toString("hex"), bytes.toString("base64"), bytes.toString("base64url")]) {
          assert.isTrue(FileTokenStore.parseEncryptionKey(Redacted.make(good))._tag === "Right")
        }
        const short = Crypto.randomBytes(16).toString("hex")
        for (const bad of [short, "not a key at all!", Crypto.randomBytes(31).toString("base64"), ""]) {
          assert.isTrue(FileTokenStore.parseEncryptionKey(Redacted.make(bad))._tag === "Left")
        }
        const error = yield* Effect.flip(
          FileTokenStore.make({ directory: "/nonexistent", encryptionKey: Redacted.make(short) }).pipe(
            Effect.provide(NodeFileSystem.layer)
          )
        )
        assert.strictEqual(error._tag, "InvalidConfiguration")
        assert.notInclude(`${String(error)} ${JSON.stringify(error)}`, short)
      }))

    it.scoped("layerConfig: TOKENWARDEN_STORE_DIRECTORY and a redacted TOKENWARDEN_STORE_KEY; a bad key names the variable", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const env = (map: Record<string, string>) =>
          Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map))))
        const key = hexKey()
        const context = yield* Layer.build(
          FileTokenStore.layerConfig().pipe(
            Layer.provide(env({ TOKENWARDEN_STORE_DIRECTORY: dir, TOKENWARDEN_STORE_KEY: key })),
            Layer.provide(NodeFileSystem.layer)
          )
        )
        const store = yield* TokenStore.TokenStoreTag.pipe(Effect.provide(context))
        yield* store.save("k", { token: token("x"), version: 1 })
        assert.strictEqual(
          JSON.parse(Fs.readFileSync(Path.join(dir, "k.json"), "utf8")).format,
          FileTokenStore.encryptedFormat
        )
        const bad = "abcdef"
        const exit = yield* Effect.exit(Layer.build(
          FileTokenStore.layerConfig().pipe(
            Layer.provide(env({ TOKENWARDEN_STORE_DIRECTORY: dir, TOKENWARDEN_STORE_KEY: bad })),
            Layer.provide(NodeFileSystem.layer)
          )
        ))
        assert.isTrue(Exit.isFailure(exit))
        const text = Exit.isFailure(exit) ? String(exit.cause) : ""
        assert.include(text, "TOKENWARDEN_STORE_KEY")
        assert.notInclude(text, bad)
      }))
  })

  describe("the lease", () => {
    leaseContract((options) =>
      Effect.flatMap(tempDir, (directory) =>
        Effect.all([
          makeStore({ directory, leaseTtl: options.leaseTtl }),
          makeStore({ directory, leaseTtl: options.leaseTtl })
        ]))
    )

    const plantLease = (
      dir: string,
      lease: { readonly pid: number; readonly expiresIn: number; readonly fence: number }
    ) =>
      Fs.writeFileSync(
        Path.join(dir, "k.lease"),
        JSON.stringify({
          format: "tokenwarden/lease/v1",
          fence: lease.fence,
          nonce: "other",
          pid: lease.pid,
          host,
          expiresAt: Date.now() + lease.expiresIn,
          held: true
        }),
        { mode: 0o600 }
      )

    it.live("a holder whose process is gone is taken over at once; a live one only once its lease expires", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const dir = yield* tempDir
        const store = yield* makeStore({ directory: dir, leaseTtl: "1 second" })
        // pid 2^22+1 is beyond Linux's default pid_max: a process that is gone
        plantLease(dir, { pid: 4_194_305, expiresIn: 60_000, fence: 41 })
        const [gone, fast] = yield* elapsed(
          store.refresh("k", 0, Effect.succeed(token("t1"))).pipe(Effect.provide(logs.layer))
        )
        assert.isTrue(gone.fetched)
        assert.isBelow(fast, 500, "no wait for the expiry")
        assert.strictEqual(
          JSON.parse(Fs.readFileSync(Path.join(dir, "k.lease"), "utf8")).fence,
          42,
          "the counter goes on"
        )
        // a live holder (this very process, under another nonce), 800 ms left
        plantLease(dir, { pid: process.pid, expiresIn: 800, fence: 50 })
        const [live, waited] = yield* elapsed(
          store.refresh("k", 1, Effect.succeed(token("t2"))).pipe(Effect.provide(logs.layer))
        )
        assert.isTrue(live.fetched)
        assert.isAtLeast(waited, 750, "waited for the lease")
        assert.isBelow(waited, 800 + 1000, "took over soon after it expired")
        const reasons = logs.lines.filter((l) => l.message === "token store lease taken over").map((l) =>
          l.annotations.reason
        )
        assert.deepStrictEqual(reasons, ["holder process gone", "lease expired"])
      }).pipe(Effect.scoped))

    it.live("fencing: a holder whose lease passed to another process does not write; its token is still returned", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const dir = yield* tempDir
        const store = yield* makeStore({ directory: dir })
        // while the request runs, the lease expires and another process takes it (fence 99)
        const fetch = Effect.sync(() => plantLease(dir, { pid: process.pid, expiresIn: 5000, fence: 99 })).pipe(
          Effect.as(token("late"))
        )
        const result = yield* store.refresh("k", 0, fetch).pipe(Effect.provide(logs.layer))
        assert.isTrue(result.fetched)
        assert.strictEqual(value(result.entry.token), "late")
        assert.isTrue(Option.isNone(yield* store.load("k")), "not written")
        const lease = JSON.parse(Fs.readFileSync(Path.join(dir, "k.lease"), "utf8"))
        assert.deepStrictEqual([lease.fence, lease.held], [99, true], "not released")
        assert.isTrue(logs.lines.some((l) => l.message.includes("lease passed to another process")))
      }).pipe(Effect.scoped))
  })

  describe("vouching: what the store refuses", () => {
    const asRoot = process.getuid?.() === 0
    const mkfifo = (path: string) => ChildProcess.execFileSync("mkfifo", ["-m", "600", path])
    /** A well-formed entry that is not the store's: another process's planting. */
    const plantedText = (key: string) =>
      TokenStore.encode({ token: token("planted", "planted-refresh"), version: 9 }, key)
    // each way a file at one of the store's paths can be something the store did not write; `outside`
    // is a directory beside the store's, for a link's target
    const plants: ReadonlyArray<
      readonly [string, (path: string, text: string, outside: string) => void, boolean?]
    > = [
      ["a symbolic link (to a private file of ours)", (path, text, outside) => {
        const target = Path.join(outside, Path.basename(path))
        Fs.writeFileSync(target, text, { mode: 0o600 })
        Fs.symlinkSync(target, path)
      }],
      ["a FIFO", (path) => mkfifo(path)],
      ["a file readable by others (0644)", (path, text) => {
        Fs.writeFileSync(path, text)
        Fs.chmodSync(path, 0o644)
      }],
      ["a file writable by the group (0620)", (path, text) => {
        Fs.writeFileSync(path, text)
        Fs.chmodSync(path, 0o620)
      }],
      ["a file owned by another user", (path, text) => {
        Fs.writeFileSync(path, text, { mode: 0o600 })
        Fs.chownSync(path, 4242, 4242)
      }, true]
    ]

    for (const [name, plant, needsRoot] of plants) {
      it.scoped.skipIf(needsRoot === true && !asRoot)(
        `entry: ${name} is refused as Untrusted, logged; the source fetches its own token and replaces it`,
        () =>
          Effect.gen(function*() {
            const logs = collectLogs()
            const dir = yield* tempDir
            const outside = yield* tempDir
            const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
            const key = credentialKey(server)
            const file = Path.join(dir, `${key}.json`)
            plant(file, plantedText(key), outside)
            const store = yield* makeStore({ directory: dir })
            const error = yield* Effect.flip(store.load(key))
            assert.strictEqual(error.reason, "Untrusted")
            const source = yield* passwordSource(server).pipe(
              Effect.provide(Layer.merge(withStore({ directory: dir }), logs.layer))
            )
            const fresh = yield* source.get
            assert.notStrictEqual(value(fresh), "planted")
            assert.strictEqual(yield* server.count("password"), 1)
            assert.isTrue(logs.lines.some((l) => l.annotations.reason === "Untrusted"))
            const info = Fs.lstatSync(file)
            assert.isTrue(info.isFile(), "replaced by a regular file")
            assert.strictEqual(info.mode & 0o777, 0o600)
            assert.strictEqual(value(Option.getOrThrow(yield* store.load(key)).token), value(fresh))
            for (const name of Fs.readdirSync(outside)) {
              assert.strictEqual(
                Fs.readFileSync(Path.join(outside, name), "utf8"),
                plantedText(key),
                "link target untouched"
              )
            }
          })
      )

      it.scoped.skipIf(needsRoot === true && !asRoot)(
        `lease: ${name} holds nothing: logged as Untrusted, the refresh takes the lease and fetches at once`,
        () =>
          Effect.gen(function*() {
            const logs = collectLogs()
            const dir = yield* tempDir
            const outside = yield* tempDir
            // a lease held by this very process for an hour: honoured, had the store written it
            const lease = JSON.stringify({
              format: "tokenwarden/lease/v1",
              fence: 7,
              nonce: "planted",
              pid: process.pid,
              host,
              expiresAt: Date.now() + 3_600_000,
              held: true
            })
            plant(Path.join(dir, "k.lease"), lease, outside)
            const store = yield* makeStore({ directory: dir, waitTimeout: "2 seconds" })
            const refreshed = yield* store.refresh("k", 0, Effect.succeed(token("fresh"))).pipe(
              Effect.provide(logs.layer)
            )
            assert.isTrue(refreshed.fetched)
            assert.isTrue(logs.lines.some((l) => l.annotations.reason === "Untrusted"))
            const info = Fs.lstatSync(Path.join(dir, "k.lease"))
            assert.isTrue(info.isFile())
            assert.strictEqual(info.mode & 0o777, 0o600)
            for (const name of Fs.readdirSync(outside)) {
              assert.strictEqual(Fs.readFileSync(Path.join(outside, name), "utf8"), lease, "link target untouched")
            }
          })
      )

      it.live.skipIf(needsRoot === true && !asRoot)(
        `lock: ${name} claiming a live owner is broken, never honoured; the save goes through`,
        () =>
          Effect.gen(function*() {
            const dir = yield* tempDir
            const outside = yield* tempDir
            const lock = JSON.stringify({ pid: process.pid, host, nonce: "planted" })
            plant(Path.join(dir, "k.json.lock"), lock, outside)
            const store = yield* makeStore({ directory: dir, lockTimeout: "2 seconds" })
            assert.isTrue(yield* store.save("k", { token: token("x"), version: 1 }))
            assert.deepStrictEqual(Fs.readdirSync(dir), ["k.json"])
            for (const name of Fs.readdirSync(outside)) {
              assert.strictEqual(Fs.readFileSync(Path.join(outside, name), "utf8"), lock, "link target untouched")
            }
          }).pipe(Effect.scoped)
      )
    }

    it.scoped("temporary files: a link or a FIFO named like one is reported and left alone, never followed", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const dir = yield* tempDir
        const outside = yield* tempDir
        const target = Path.join(outside, "precious")
        Fs.writeFileSync(target, "precious", { mode: 0o600 })
        const old = new Date(Date.now() - 60_000)
        Fs.utimesSync(target, old, old)
        Fs.symlinkSync(target, Path.join(dir, "k.json.12345.0123456789ab.tmp"))
        mkfifo(Path.join(dir, "k.json.12346.0123456789ab.tmp"))
        yield* makeStore({ directory: dir }).pipe(Effect.provide(logs.layer))
        assert.strictEqual(logs.lines.filter((l) => l.annotations.reason === "Untrusted").length, 2)
        assert.strictEqual(Fs.readFileSync(target, "utf8"), "precious")
        assert.strictEqual(Fs.readdirSync(dir).length, 2)
      }))

    it.scoped.skipIf(!asRoot)("a store directory owned by another user is refused", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        Fs.chownSync(dir, 4242, 4242)
        const error = yield* Effect.flip(makeStore({ directory: dir }))
        assert.strictEqual(error._tag, "StoreError")
        assert.strictEqual((error as TokenStore.StoreError).reason, "Untrusted")
      }))

    it.scoped("an entry planted while the directory was open to everyone is not adopted after tightening", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        Fs.chmodSync(dir, 0o777)
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const key = credentialKey(server)
        Fs.writeFileSync(Path.join(dir, `${key}.json`), plantedText(key))
        Fs.chmodSync(Path.join(dir, `${key}.json`), 0o666)
        const fresh = yield* Effect.scoped(Effect.flatMap(passwordSource(server), (s) => s.get)).pipe(
          Effect.provide(withStore({ directory: dir }))
        )
        assert.strictEqual(mode(dir), 0o700)
        assert.notStrictEqual(value(fresh), "planted")
        assert.strictEqual(yield* server.count(), 1)
      }))

    it.scoped("an entry copied from another key's file is refused as Untrusted (written under another key)", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const store = yield* makeStore({ directory: dir })
        yield* store.save("a", { token: token("for-a"), version: 1 })
        Fs.copyFileSync(Path.join(dir, "a.json"), Path.join(dir, "b.json"))
        const error = yield* Effect.flip(store.load("b"))
        assert.strictEqual(error.reason, "Untrusted")
        assert.include(error.detail, "another key")
        assert.strictEqual(value(Option.getOrThrow(yield* store.load("a")).token), "for-a")
      }))

    it.live("two credentials given one storeKey: each refuses the other's entry, at start and as it is written", () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const dir = yield* tempDir
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        // a store each, as two processes would have
        const source = (scopes: Array<string>) =>
          Effect.flatMap(makeStore({ directory: dir }), (store) =>
            TokenSource.make({
              url: server.tokenUrl,
              clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
              grant: Grant.clientCredentials({ scopes }),
              storeKey: "shared",
              policy: noJitter,
              store: true
            }).pipe(Effect.provideService(TokenStore.TokenStoreTag, store), Effect.provide(logs.layer)))
        const read = yield* source(["read"])
        const write = yield* source(["write"])
        const writeToken = yield* write.get
        assert.notStrictEqual(value(writeToken), value(yield* read.get))
        assert.strictEqual(yield* server.count(), 2)
        const refusal = logs.lines.find((l) => l.annotations.reason === "Untrusted")
        assert.include(String(refusal?.annotations.detail), "another credential")
        // the reader refreshes, writing a newer entry under the shared key: the writer's watch sees it,
        // and leaves it alone
        const newer = yield* read.refresh
        yield* Effect.sleep("300 millis")
        assert.strictEqual(value(yield* write.get), value(writeToken))
        assert.notStrictEqual(value(newer), value(writeToken))
        assert.strictEqual(yield* server.count(), 3)
      }).pipe(Effect.scoped, Effect.provide(HttpLive)))

    it.scoped("an entry of 0.1.0's format is read once and rewritten bound to its key; its refresh token is used", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const server = yield* AuthServer.make({ lifetimeSeconds: 3600 })
        const key = credentialKey(server)
        // 0.1.0 wrote the entry without a key; this one's access token has expired, its refresh token has not
        const first = yield* Effect.scoped(Effect.flatMap(passwordSource(server), (s) => s.get)).pipe(
          Effect.provide(withStore({ directory: dir }))
        )
        const file = Path.join(dir, `${key}.json`)
        const current = JSON.parse(Fs.readFileSync(file, "utf8"))
        const legacy = JSON.stringify({
          format: "tokenwarden/v1",
          version: current.version,
          token: { ...current.token, issuedAt: -3_600_000, expiresAt: 0 }
        })
        Fs.writeFileSync(file, legacy, { mode: 0o600 })
        const again = yield* Effect.scoped(Effect.flatMap(passwordSource(server), (s) => s.get)).pipe(
          Effect.provide(withStore({ directory: dir }))
        )
        assert.notStrictEqual(value(again), value(first))
        assert.strictEqual(yield* server.count("password"), 1, "no new grant: the stored refresh token was used")
        assert.strictEqual(yield* server.count("refresh_token"), 1)
        const rewritten = JSON.parse(Fs.readFileSync(file, "utf8"))
        assert.strictEqual(rewritten.format, "tokenwarden/v3")
        assert.strictEqual(rewritten.key, key)
        // a direct load rewrites too, keeping the entry as it was
        Fs.writeFileSync(file, legacy, { mode: 0o600 })
        const store = yield* makeStore({ directory: dir })
        const loaded = Option.getOrThrow(yield* store.load(key))
        assert.strictEqual(loaded.version, current.version)
        const upgraded = JSON.parse(Fs.readFileSync(file, "utf8"))
        assert.deepStrictEqual([upgraded.format, upgraded.key, upgraded.version], [
          "tokenwarden/v3",
          key,
          current.version
        ])
        assert.strictEqual(upgraded.token.refreshToken, current.token.refreshToken)
      }))
  })

  describe("two processes", () => {
    it.live(
      "concurrent writers of one key: the file is always one whole entry, and ends at the highest version",
      () =>
        Effect.gen(function*() {
          const dir = yield* tempDir
          const count = 150
          const encryptionKey = hexKey()
          const run = yield* runner("test/fixtures/file-writer.ts")
          const writers = ["a", "b"].map((writer) =>
            ChildProcess.spawn(run.command, run.args, {
              env: {
                ...process.env,
                DIRECTORY: dir,
                KEY: "k",
                COUNT: String(count),
                WRITER: writer,
                ENCRYPTION_KEY: encryptionKey
              },
              stdio: ["pipe", "pipe", "pipe"]
            })
          )
          yield* Effect.addFinalizer(() => Effect.sync(() => writers.forEach((w) => w.kill("SIGKILL"))))
          const lines = writers.map((w) => {
            const out: Array<string> = []
            Readline.createInterface({ input: w.stdout! }).on("line", (line) => {
              Sweep.output("writer stdout", line)
              out.push(line)
            })
            return out
          })
          const stderr = writers.map((w) => {
            let text = ""
            w.stderr!.on("data", (chunk: Buffer) => {
              Sweep.output("writer stderr", chunk.toString("utf8"))
              text += chunk.toString("utf8")
            })
            return () => text
          })
          const exited = writers.map((w) =>
            new Promise<number | null>((resolve) => w.once("exit", (code) => resolve(code)))
          )
          // both ready, then both go at once
          yield* Effect.gen(function*() {
            while (!lines.every((out) => out.includes("ready"))) yield* Effect.sleep("20 millis")
          }).pipe(Effect.timeoutFail({
            duration: "20 seconds",
            onTimeout: () => new Error(`writers not ready: ${stderr.map((f) => f()).join("\n")}`)
          }))
          writers.forEach((w) => w.stdin!.write("go\n"))
          const reader = yield* makeStore({ directory: dir, encryptionKey: Redacted.make(encryptionKey) })
          let reads = 0
          let last = 0
          let done = false
          void Promise.all(exited).then(() => {
            done = true
          })
          while (!done) {
            const entry = yield* reader.load("k")
            reads++
            if (Option.isSome(entry)) {
              assert.isAtLeast(entry.value.version, last, "versions never go back")
              const writer = Redacted.value(entry.value.token.extra).writer
              assert.strictEqual(
                value(entry.value.token),
                `${writer}-${entry.value.version}`,
                "one writer's whole entry"
              )
              last = entry.value.version
            }
            yield* Effect.sleep("1 millis")
          }
          const codes = yield* Effect.promise(() => Promise.all(exited))
          assert.deepStrictEqual(codes, [0, 0], stderr.map((f) => f()).join("\n"))
          const results = lines.map((out) => JSON.parse(out.find((l) => l.startsWith("{"))!))
          assert.strictEqual(
            results[0].written + results[1].written + results[0].refused + results[1].refused,
            2 * count
          )
          assert.isAtLeast(results[0].written + results[1].written, count, "every version written once at least")
          assert.isTrue(
            results[0].start < results[1].end && results[1].start < results[0].end,
            "the two writers ran at the same time"
          )
          const final = Option.getOrThrow(yield* reader.load("k"))
          assert.strictEqual(final.version, count)
          assert.isAbove(reads, 10)
          assert.deepStrictEqual(Fs.readdirSync(dir), ["k.json"])
        }).pipe(Effect.scoped),
      { timeout: 40_000 }
    )
  })
})
