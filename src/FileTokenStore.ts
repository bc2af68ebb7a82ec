/**
 * A token store in a directory: one file per credential, replaced atomically (a temporary file,
 * fsync, rename, fsync of the directory), so a reader always sees one whole entry and a restarted
 * daemon reuses its token. Optionally encrypted at rest with AES-256-GCM.
 *
 * The store coordinates writes between processes sharing the directory (a lock file per entry, and a
 * write never replaces a newer version), not refreshes: two processes may each refresh the same
 * credential. For a fleet sharing one credential, use `RedisTokenStore`.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Os from "node:os"
import * as Path from "node:path"
import { InvalidConfiguration } from "./TokenError.js"
import * as TokenStore from "./TokenStore.js"

/**
 * Options of a file store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The store's own directory. Created with mode 0700 when missing; an existing one readable or
   * writable by others is tightened to 0700 (a warning is logged), and a shared sticky directory
   * such as `/tmp` is refused.
   */
  readonly directory: string
  /**
   * Enables AES-256-GCM at rest: 32 bytes, as 64 hex digits or base64 (`openssl rand -base64 32`).
   * With a key, an entry stored in clear is refused (`Decryption`), and without one an encrypted
   * entry is; the next write replaces either.
   */
  readonly encryptionKey?: Redacted.Redacted<string> | undefined
  /** A lock file older than this, or whose process is gone, is broken; 10 seconds by default. */
  readonly staleLockAfter?: Duration.DurationInput | undefined
  /** How long a write waits for another process's lock; 5 seconds by default. */
  readonly lockTimeout?: Duration.DurationInput | undefined
}

/**
 * The format of an encrypted file: `{ "format", "iv", "tag", "data" }`, base64 fields.
 *
 * @since 0.1.0
 * @category models
 */
export const encryptedFormat = "tokenwarden/aes-256-gcm/v1"

const STORE = "file"
const PLAIN_FORMAT = "tokenwarden/v1"
const IV_BYTES = 12
const TAG_BYTES = 16

const storeError = (reason: TokenStore.StoreError["reason"], detail: string) =>
  new TokenStore.StoreError({ store: STORE, reason, detail })

// the platform error's message names the method, the path and the system error; its `cause` is dropped
const ioError = (what: string) => (error: PlatformError.PlatformError) =>
  storeError("Io", `${what}: ${error._tag === "SystemError" ? `${error.reason} (${error.method})` : error.message}`)

const isSystemError = (reason: PlatformError.SystemErrorReason) => (error: PlatformError.PlatformError) =>
  error._tag === "SystemError" && error.reason === reason

/**
 * Reads an AES-256 key given as 64 hex digits or base64 (standard or URL-safe). The message of a
 * refused key says what is expected, never what was given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseEncryptionKey = (
  text: Redacted.Redacted<string>
): Either.Either<Redacted.Redacted<Buffer>, string> => {
  const trimmed = Redacted.value(text).trim()
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
    ? Buffer.from(trimmed, "base64")
    : undefined
  return bytes !== undefined && bytes.length === 32
    ? Either.right(Redacted.make(bytes))
    : Either.left("the encryption key must be 32 bytes, given as 64 hex digits or 44 base64 characters")
}

// a key is a file name: the default keys are hex hashes; any other key is hashed, so a user's
// `storeKey` can never climb out of the directory or collide with a lock or temporary file
const fileStem = (key: string) =>
  /^[A-Za-z0-9_-][A-Za-z0-9_-]{0,127}$/.test(key) ? key : Crypto.createHash("sha256").update(key).digest("hex")

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists, under another user
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

// the additional authenticated data binds a ciphertext to its credential: a file copied over
// another credential's file fails to decrypt instead of handing out the wrong token
const aad = (key: string) => Buffer.from(`${encryptedFormat}\n${key}`, "utf8")

const seal = (secret: Redacted.Redacted<Buffer>, key: string, plaintext: string): string => {
  const iv = Crypto.randomBytes(IV_BYTES)
  const cipher = Crypto.createCipheriv("aes-256-gcm", Redacted.value(secret), iv)
  cipher.setAAD(aad(key))
  const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return JSON.stringify({
    format: encryptedFormat,
    iv: iv.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
    data: data.toString("base64")
  })
}

const base64Field = (value: unknown): Buffer | undefined =>
  typeof value === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(value) ? Buffer.from(value, "base64") : undefined

// what a stored file holds: the entry text in clear, or an envelope to open
const open = (
  secret: Redacted.Redacted<Buffer> | undefined,
  key: string,
  text: string
): Effect.Effect<string, TokenStore.StoreError> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return Effect.fail(storeError("Corrupted", "the stored entry is not JSON (truncated or foreign)"))
  }
  const format = typeof parsed === "object" && parsed !== null ? (parsed as { format?: unknown }).format : undefined
  if (format === PLAIN_FORMAT) {
    // a file planted in clear beside encrypted ones is not trusted
    return secret === undefined
      ? Effect.succeed(text)
      : Effect.fail(storeError("Decryption", "the entry is stored in clear, but an encryption key is configured"))
  }
  if (format !== encryptedFormat) {
    return Effect.fail(storeError("Corrupted", "the stored entry is not a tokenwarden token"))
  }
  if (secret === undefined) {
    return Effect.fail(storeError("Decryption", "the entry is encrypted, but no encryption key is configured"))
  }
  const envelope = parsed as { iv?: unknown; tag?: unknown; data?: unknown }
  const [iv, tag, data] = [base64Field(envelope.iv), base64Field(envelope.tag), base64Field(envelope.data)]
  if (iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || data === undefined) {
    return Effect.fail(storeError("Corrupted", "the encrypted envelope is malformed"))
  }
  return Effect.try({
    try: () => {
      const decipher = Crypto.createDecipheriv("aes-256-gcm", Redacted.value(secret), iv)
      decipher.setAAD(aad(key))
      decipher.setAuthTag(tag)
      return Buffer.concat([decipher.update(data), decipher.final()]).toString("utf8")
    },
    // GCM authentication failed: another key, or a file altered or moved from another credential
    catch: () => storeError("Decryption", "the entry does not decrypt with the configured key")
  })
}

/**
 * Builds a file store in `options.directory`, creating the directory (mode 0700) if needed, and
 * removing temporary files a crashed writer left behind.
 *
 * Guarantees: a reader always sees one whole entry (the file is only ever replaced by a rename);
 * a write never replaces a newer version while no lock holder stalls longer than `staleLockAfter`
 * (the lock is then broken, and the rename still keeps each file whole). Entry files have mode
 * 0600 from creation on. `refresh` does not coordinate processes: each may refresh; the newest
 * write wins.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenStore.TokenStore, TokenStore.StoreError | InvalidConfiguration, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const directory = Path.resolve(options.directory)
    const secret = options.encryptionKey === undefined
      ? undefined
      : yield* Either.match(parseEncryptionKey(options.encryptionKey), {
        onLeft: (reason) => Effect.fail(new InvalidConfiguration({ reason })),
        onRight: Effect.succeed
      })
    const staleAfter = Duration.toMillis(options.staleLockAfter ?? Duration.seconds(10))
    const lockTimeout = Duration.toMillis(options.lockTimeout ?? Duration.seconds(5))
    const host = Os.hostname()
    const posix = process.platform !== "win32"

    const existing = yield* fs.stat(directory).pipe(
      Effect.map(Option.some),
      Effect.catchIf(isSystemError("NotFound"), () => Effect.succeed(Option.none())),
      Effect.mapError(ioError("cannot read the store directory"))
    )
    if (Option.isNone(existing)) {
      yield* fs.makeDirectory(directory, { recursive: true, mode: 0o700 }).pipe(
        Effect.mapError(ioError("cannot create the store directory"))
      )
    } else if (existing.value.type !== "Directory") {
      return yield* Effect.fail(storeError("Io", "the store directory is not a directory"))
    } else if (posix && (existing.value.mode & 0o1000) !== 0) {
      // in a sticky directory anyone may create files: a planted entry would be adopted as a token
      return yield* Effect.fail(
        storeError("Io", "the store directory is shared (sticky, like /tmp); give the store a directory of its own")
      )
    } else if (posix && (existing.value.mode & 0o077) !== 0) {
      yield* fs.chmod(directory, 0o700).pipe(Effect.mapError(ioError("cannot make the store directory private")))
      yield* Effect.logWarning("token store directory was readable or writable by others; changed its mode to 0700")
    }

    const pathOf = (key: string) => Path.join(directory, `${fileStem(key)}.json`)

    // temporary files are written for milliseconds: an old one is a crashed writer's, and holds a token
    const now = yield* Clock.currentTimeMillis
    const names = yield* fs.readDirectory(directory).pipe(Effect.mapError(ioError("cannot list the store directory")))
    yield* Effect.forEach(
      names.filter((name) => /\.json\.\d+\.[0-9a-f]+\.tmp$/.test(name)),
      (name) =>
        fs.stat(Path.join(directory, name)).pipe(
          Effect.flatMap((info) =>
            Option.getOrElse(info.mtime, () => new Date(now)).getTime() < now - staleAfter
              ? fs.remove(Path.join(directory, name))
              : Effect.void
          ),
          Effect.ignore
        ),
      { discard: true }
    )

    const load = (key: string): Effect.Effect<Option.Option<TokenStore.StoredToken>, TokenStore.StoreError> =>
      fs.readFileString(pathOf(key)).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isSystemError("NotFound"), () => Effect.succeed(Option.none<string>())),
        Effect.mapError(ioError("cannot read the entry")),
        Effect.flatMap(Option.match({
          onNone: () => Effect.succeed(Option.none()),
          onSome: (text) =>
            open(secret, key, text).pipe(
              Effect.flatMap((plain) => TokenStore.decode(STORE, plain)),
              Effect.map(Option.some)
            )
        }))
      )

    const fsyncDirectory = Effect.scoped(Effect.flatMap(fs.open(directory, { flag: "r" }), (dir) => dir.sync)).pipe(
      // durability of the rename; some platforms cannot open a directory, and the rename stands anyway
      Effect.ignore
    )

    // names from the system's generator, never the program's `Random` (seeded alike in tests)
    const randomHex = Effect.sync(() => Crypto.randomBytes(6).toString("hex"))

    const writeAtomically = (path: string, text: string) =>
      Effect.gen(function*() {
        const temporary = `${path}.${process.pid}.${yield* randomHex}.tmp`
        const write = Effect.scoped(
          Effect.gen(function*() {
            // 0600 from creation: the token is never readable by others, not even for a moment
            const file = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
            yield* file.writeAll(new TextEncoder().encode(text))
            yield* file.sync
          })
        )
        yield* write.pipe(
          Effect.zipRight(fs.rename(temporary, path)),
          Effect.mapError(ioError("cannot write the entry")),
          Effect.tapError(() => Effect.ignore(fs.remove(temporary)))
        )
        yield* fsyncDirectory
      })

    // --- the per-entry lock: a file created with O_EXCL, holding its owner's pid, host and a nonce ---

    const breakIfStale = (lock: string) =>
      Effect.gen(function*() {
        const content = yield* Effect.option(fs.readFileString(lock))
        if (Option.isNone(content)) return true // released meanwhile
        let owner: { pid?: unknown; host?: unknown } = {}
        try {
          owner = JSON.parse(content.value)
        } catch {
          // being written right now, or garbage: its age decides
        }
        const gone = owner.host === host && typeof owner.pid === "number" && owner.pid !== process.pid &&
          !isAlive(owner.pid)
        const info = yield* Effect.option(fs.stat(lock))
        const now = yield* Clock.currentTimeMillis
        const old = Option.isSome(info) && Option.isSome(info.value.mtime) &&
          info.value.mtime.value.getTime() < now - staleAfter
        if (!gone && !old) return false
        // renamed away first, so two processes breaking the same lock do not delete each other's new one
        const aside = `${lock}.${yield* randomHex}.stale`
        yield* fs.rename(lock, aside).pipe(Effect.zipRight(fs.remove(aside)), Effect.ignore)
        yield* Effect.logWarning("token store broke a stale lock").pipe(
          Effect.annotateLogs({ reason: gone ? "owner process gone" : "lock too old" })
        )
        return true
      })

    const acquireLock = (lock: string) =>
      Effect.gen(function*() {
        const nonce = yield* randomHex
        const content = JSON.stringify({ pid: process.pid, host, nonce })
        const deadline = (yield* Clock.currentTimeMillis) + lockTimeout
        while (true) {
          const created = yield* fs.writeFileString(lock, content, { flag: "wx", mode: 0o600 }).pipe(
            Effect.as(true),
            Effect.catchIf(isSystemError("AlreadyExists"), () => Effect.succeed(false)),
            Effect.mapError(ioError("cannot create the lock file"))
          )
          if (created) return nonce
          if (yield* breakIfStale(lock)) continue
          if ((yield* Clock.currentTimeMillis) >= deadline) {
            return yield* Effect.fail(storeError("Unavailable", "the entry stayed locked by another process"))
          }
          yield* Effect.sleep(Duration.millis(5 + (yield* Random.nextIntBetween(0, 20))))
        }
      })

    const releaseLock = (lock: string, nonce: string) =>
      fs.readFileString(lock).pipe(
        // never remove a lock another writer took after breaking ours
        Effect.flatMap((content) => content.includes(nonce) ? fs.remove(lock) : Effect.void),
        Effect.ignore
      )

    // one writer at a time in this process; the lock file serialises processes
    const writes = yield* Effect.makeSemaphore(1)

    // the version of what is stored; an entry that cannot be read (corrupted, another key) is replaced
    const storedVersion = (key: string) =>
      load(key).pipe(
        Effect.map(Option.match({ onNone: () => 0, onSome: (entry) => entry.version })),
        Effect.catchIf((error) => error.reason !== "Io", () => Effect.succeed(0))
      )

    const save = (key: string, entry: TokenStore.StoredToken): Effect.Effect<boolean, TokenStore.StoreError> =>
      writes.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        const path = pathOf(key)
        const lock = `${path}.lock`
        yield* Effect.acquireRelease(acquireLock(lock), (nonce) => releaseLock(lock, nonce))
        if ((yield* storedVersion(key)) >= entry.version) return false
        const text = TokenStore.encode(entry)
        yield* writeAtomically(path, secret === undefined ? text : seal(secret, key, text))
        return true
      })))

    // under the entry's lock, so a write under way finishes first instead of bringing the file back
    const remove = (key: string): Effect.Effect<void, TokenStore.StoreError> =>
      writes.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        const path = pathOf(key)
        const lock = `${path}.lock`
        yield* Effect.acquireRelease(acquireLock(lock), (nonce) => releaseLock(lock, nonce))
        yield* fs.remove(path).pipe(
          Effect.catchIf(isSystemError("NotFound"), () => Effect.void),
          Effect.mapError(ioError("cannot remove the entry"))
        )
        yield* fsyncDirectory
      })))

    // a watch on the directory; events are coalesced (a sliding buffer of one) and each re-reads the
    // entry, so a burst of writes costs one read, and only newer versions are passed on
    const changes = (key: string): Stream.Stream<TokenStore.StoredToken, TokenStore.StoreError> => {
      const name = Path.basename(pathOf(key))
      let last = -1
      return fs.watch(directory).pipe(
        Stream.filter((event) => Path.basename(event.path) === name),
        Stream.mapError(ioError("cannot watch the store directory")),
        Stream.buffer({ capacity: 1, strategy: "sliding" }),
        // a file that cannot be read now is reported by the source's next load, not here
        Stream.mapEffect(() => Effect.orElseSucceed(load(key), () => Option.none<TokenStore.StoredToken>())),
        Stream.filterMap((entry) => {
          if (Option.isNone(entry) || entry.value.version <= last) return Option.none()
          last = entry.value.version
          return entry
        })
      )
    }

    const base = { name: STORE, load, save }
    return {
      ...base,
      remove,
      refresh: (key, knownVersion, fetch) => TokenStore.localRefresh(base, key, knownVersion, fetch),
      changes
    } satisfies TokenStore.TokenStore
  })

/**
 * The file store as a layer.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { FileTokenStore } from "tokenwarden"
 *
 * const StoreLive = FileTokenStore.layer({ directory: "/var/lib/mydaemon/tokens" }).pipe(
 *   Layer.provide(NodeFileSystem.layer)
 * )
 * ```
 */
export const layer = (
  options: Options
): Layer.Layer<TokenStore.TokenStoreTag, TokenStore.StoreError | InvalidConfiguration, FileSystem.FileSystem> =>
  Layer.scoped(TokenStore.TokenStoreTag, make(options))

/**
 * An encryption key from `Config`, redacted and checked: a key of the wrong length fails with a
 * `ConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category config
 */
export const encryptionKeyConfig = (name: string): Config.Config<Redacted.Redacted<string>> =>
  Config.redacted(name).pipe(
    Config.mapOrFail((key) =>
      Either.match(parseEncryptionKey(key), {
        onLeft: (reason) => Either.left(configError(name, reason)),
        onRight: () => Either.right(key)
      })
    )
  )

const configError = (name: string, message: string) => ConfigError.InvalidData([name], message)

/**
 * The options from the environment: `TOKENWARDEN_STORE_DIRECTORY` and the optional
 * `TOKENWARDEN_STORE_KEY` (redacted), or `<PREFIX>_STORE_DIRECTORY` and `<PREFIX>_STORE_KEY`.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "TOKENWARDEN"): Config.Config<Options> =>
  Config.all({
    directory: Config.nonEmptyString(`${prefix}_STORE_DIRECTORY`),
    encryptionKey: Config.withDefault(encryptionKeyConfig(`${prefix}_STORE_KEY`), undefined)
  })

/**
 * The file store with its options from `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<
  TokenStore.TokenStoreTag,
  TokenStore.StoreError | InvalidConfiguration | ConfigError.ConfigError,
  FileSystem.FileSystem
> => Layer.scoped(TokenStore.TokenStoreTag, Effect.flatMap(Config.unwrap(options), make))
