/**
 * A token store in a directory: one file per credential, replaced atomically (a temporary file,
 * fsync, rename, fsync of the directory), so a reader always sees one whole entry and a restarted
 * daemon reuses its token. Optionally encrypted at rest with AES-256-GCM.
 *
 * Processes sharing the directory on one host share one refresher per credential, as a Redis fleet
 * does: a lease file per credential, with an expiry and a fencing counter, taken and checked under the
 * entry's lock file (created with O_EXCL). A holder that dies (SIGKILL included) loses the lease when it
 * expires, or at once when its process is seen gone. For processes on several hosts, use
 * `RedisTokenStore`: a lease on a network file system is only as good as its locking.
 *
 * The store hands out only what it can vouch for: an entry, lease, lock or temporary file that is not a
 * regular file, is owned by another user or is open to others is refused (`Untrusted`), symbolic links
 * are never followed and FIFOs never read, and a read gives up after 5 seconds.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as FsPromises from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { AccessToken } from "./AccessToken.js"
import * as LeaseHolder from "./internal/lease.js"
import * as Sealed from "./internal/sealed.js"
import * as Shared from "./internal/shared.js"
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
  /**
   * How long a refresher holds the lease without renewing it: after a crash another process takes
   * over this long after the last renewal at the latest (at once when the holder's process is seen
   * gone on this host). Renewed every third of it while the request runs; 15 seconds by default.
   */
  readonly leaseTtl?: Duration.DurationInput | undefined
  /**
   * How long a process waits for another's refresh before refreshing alone (a `StoreError` the source
   * logs). Longer than a token request may take; 60 seconds by default.
   */
  readonly waitTimeout?: Duration.DurationInput | undefined
}

/**
 * The format of an encrypted file: `{ "format", "iv", "tag", "data" }`, base64 fields.
 *
 * @since 0.1.0
 * @category models
 */
export const encryptedFormat = Sealed.encryptedFormat

const STORE = "file"
const LEASE_FORMAT = "tokenwarden/lease/v1"
// an entry is a few kilobytes; anything much larger is not one, and is not read into memory
const MAX_FILE_BYTES = 1024 * 1024
const READ_TIMEOUT = Duration.seconds(5)

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
export const parseEncryptionKey: (
  text: Redacted.Redacted<string>
) => Either.Either<Redacted.Redacted<Buffer>, string> = Sealed.parseEncryptionKey

// a key is a file name: the default keys are hex hashes; any other key is hashed, so a user's
// `storeKey` can never climb out of the directory or collide with a lock or temporary file
const isPlain = (key: string) => /^[A-Za-z0-9_-]{1,128}$/.test(key)
const fileStem = (key: string) => isPlain(key) ? key : Crypto.createHash("sha256").update(key).digest("hex")

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists, under another user
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Where a pid means something: the host and, on Linux, the pid namespace. Containers on one host may
 * share a hostname (host networking) without seeing each other's processes: a holder there must not
 * be taken for gone.
 */
const processTable = (): string => {
  try {
    return `${Os.hostname()} ${Fs.readlinkSync("/proc/self/ns/pid")}`
  } catch {
    return Os.hostname()
  }
}

const posix = process.platform !== "win32"
const uid = typeof process.getuid === "function" ? process.getuid() : undefined
// O_NOFOLLOW: a symbolic link at the path fails the open (ELOOP) instead of being followed;
// O_NONBLOCK: opening a FIFO returns at once, and fstat then refuses it before anything is read
const READ_FLAGS = Fs.constants.O_RDONLY | (Fs.constants.O_NOFOLLOW ?? 0) | (Fs.constants.O_NONBLOCK ?? 0)

/** Why a file found in the store's directory is not to be trusted, if it is not. */
const distrust = (info: Fs.Stats, what: string): string | undefined => {
  if (info.isSymbolicLink()) return `${what} is a symbolic link`
  if (!info.isFile()) return `${what} is not a regular file`
  if (uid !== undefined && info.uid !== uid) return `${what} is owned by another user`
  if (posix && (info.mode & 0o077) !== 0) return `${what} is readable or writable by others`
  return undefined
}

/**
 * The text of a file the store wrote, or none when it is missing. Opened without following a link
 * and without blocking, then checked on the open descriptor (no window between check and read).
 */
const readPrivate = (path: string, what: string): Effect.Effect<Option.Option<string>, TokenStore.StoreError> =>
  Effect.tryPromise({
    try: async (): Promise<{ readonly text?: string; readonly refused?: string }> => {
      let handle: FsPromises.FileHandle
      try {
        handle = await FsPromises.open(path, READ_FLAGS)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === "ENOENT") return {}
        if (code === "ELOOP" || code === "EMLINK") return { refused: `${what} is a symbolic link` }
        throw error
      }
      try {
        const info = await handle.stat()
        const refused = distrust(info, what) ?? (info.size > MAX_FILE_BYTES ? `${what} is too large` : undefined)
        if (refused !== undefined) return { refused }
        return { text: await handle.readFile("utf8") }
      } finally {
        await handle.close()
      }
    },
    catch: (error) => storeError("Io", `cannot read ${what}: ${(error as NodeJS.ErrnoException).code ?? "error"}`)
  }).pipe(
    Effect.flatMap(({ refused, text }) =>
      refused !== undefined ? Effect.fail(storeError("Untrusted", refused)) : Effect.succeed(Option.fromNullable(text))
    ),
    // a file system that stops answering (a hung network mount) must not hold the source's start
    Effect.timeoutFail({
      duration: READ_TIMEOUT,
      onTimeout: () => storeError("Unavailable", `${what} could not be read within 5 seconds`)
    })
  )

/** A lease as its file holds it; `held: false` once released (the file stays: it keeps the counter). */
interface Lease {
  readonly fence: number
  readonly nonce: string
  readonly pid: number
  readonly host: string
  /** Epoch milliseconds: processes share no monotonic clock. */
  readonly expiresAt: number
  readonly held: boolean
}

const noLease: Lease = { fence: 0, nonce: "", pid: 0, host: "", expiresAt: 0, held: false }

const parseLease = (text: string): Lease | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  const l = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>
  return l.format === LEASE_FORMAT && Number.isSafeInteger(l.fence) && typeof l.nonce === "string" &&
      Number.isSafeInteger(l.pid) && typeof l.host === "string" && typeof l.expiresAt === "number" &&
      typeof l.held === "boolean"
    ? {
      fence: l.fence as number,
      nonce: l.nonce,
      pid: l.pid as number,
      host: l.host,
      expiresAt: l.expiresAt,
      held: l.held
    }
    : undefined
}

/** What every piece of a file store shares: its file system, directory and settings. */
interface Context {
  readonly fs: FileSystem.FileSystem
  readonly directory: string
  readonly secret: Redacted.Redacted<Buffer> | undefined
  readonly staleAfter: number
  readonly lockTimeout: number
  readonly leaseTtl: number
  readonly waitTimeout: number
  readonly host: string
}

/** The settings of a store from its options; a refused encryption key fails it. */
const makeContext = (
  fs: FileSystem.FileSystem,
  options: Options
): Effect.Effect<Context, InvalidConfiguration> =>
  Effect.gen(function*() {
    const secret = options.encryptionKey === undefined
      ? undefined
      : yield* Either.match(parseEncryptionKey(options.encryptionKey), {
        onLeft: (reason) => Effect.fail(new InvalidConfiguration({ reason })),
        onRight: Effect.succeed
      })
    return {
      fs,
      directory: Path.resolve(options.directory),
      secret,
      staleAfter: Duration.toMillis(options.staleLockAfter ?? Duration.seconds(10)),
      lockTimeout: Duration.toMillis(options.lockTimeout ?? Duration.seconds(5)),
      leaseTtl: Math.max(100, Math.round(Duration.toMillis(options.leaseTtl ?? Duration.seconds(15)))),
      waitTimeout: Duration.toMillis(options.waitTimeout ?? Duration.seconds(60)),
      host: processTable()
    }
  })

/** Creates the store's directory, or checks an existing one is ours alone (tightening its mode). */
const prepareDirectory = ({ directory, fs }: Context): Effect.Effect<void, TokenStore.StoreError> =>
  Effect.gen(function*() {
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
    } else if (uid !== undefined && Option.getOrUndefined(existing.value.uid) !== uid) {
      // its owner can plant entries whatever its mode says
      return yield* Effect.fail(storeError("Untrusted", "the store directory is owned by another user"))
    } else if (posix && (existing.value.mode & 0o1000) !== 0) {
      // in a sticky directory anyone may create files: a planted entry would be adopted as a token
      return yield* Effect.fail(
        storeError("Io", "the store directory is shared (sticky, like /tmp); give the store a directory of its own")
      )
    } else if (posix && (existing.value.mode & 0o077) !== 0) {
      // what others planted meanwhile stays refused: every file is checked as it is read
      yield* fs.chmod(directory, 0o700).pipe(Effect.mapError(ioError("cannot make the store directory private")))
      yield* Effect.logWarning("token store directory was readable or writable by others; changed its mode to 0700")
    }
  })

/** Removes the temporary files a crashed writer left behind. */
const removeStaleTemporaries = (
  { directory, fs, staleAfter }: Context
): Effect.Effect<void, TokenStore.StoreError> =>
  Effect.gen(function*() {
    // temporary files are written for milliseconds: an old one is a crashed writer's, and holds a token.
    // Only our own regular files are removed; anything else is reported and left alone.
    const now = yield* Clock.currentTimeMillis
    const names = yield* fs.readDirectory(directory).pipe(Effect.mapError(ioError("cannot list the store directory")))
    yield* Effect.forEach(
      names.filter((name) => /\.(?:json|lease)\.\d+\.[0-9a-f]+\.tmp$/.test(name)),
      (name) =>
        Effect.gen(function*() {
          const path = Path.join(directory, name)
          const info = yield* Effect.try(() => Fs.lstatSync(path))
          const refused = distrust(info, "a temporary file")
          if (refused !== undefined) {
            return yield* TokenStore.logStoreError(storeError("Untrusted", refused), undefined)
          }
          if (info.mtimeMs < now - staleAfter) yield* fs.remove(path)
        }).pipe(Effect.ignore),
      { discard: true }
    )
  })

/** The file names of a store's keys, remembering the keys behind hashed names. */
const makeNames = ({ directory }: Context) => {
  // the keys behind hashed file names, as this process met them: a notice names the key, never a hash
  const named = new Map<string, string>()
  const stemOf = (key: string) => {
    const stem = fileStem(key)
    if (stem !== key) named.set(stem, key)
    return stem
  }
  const pathOf = (key: string) => Path.join(directory, `${stemOf(key)}.json`)
  const leaseOf = (key: string) => Path.join(directory, `${stemOf(key)}.lease`)
  return { named, stemOf, pathOf, leaseOf }
}

type Names = ReturnType<typeof makeNames>

/** The store's one watch of its directory, and the notices read from it. */
const makeWatch = ({ directory, fs }: Context, { named }: Names) => {
  // one watch of the directory for the whole store, while anyone listens: notices, `changes` and the
  // refreshes waiting on a lease all read it
  const events = Shared.make(
    fs.watch(directory).pipe(
      Stream.map((event) => Path.basename(event.path)),
      // entries and leases only: a lock or temporary file comes and goes with every write, and would
      // wake every listener several times for nothing
      Stream.filter((name) => name.endsWith(".json") || name.endsWith(".lease")),
      Stream.mapError(ioError("cannot watch the store directory"))
    ),
    TokenStore.noticeCapacity
  )

  // an entry file replaced (or removed), named by the key this process met behind its hash, else by its
  // stem (an identity key is its own stem; an unmet key's hash reads as 64 hex digits nobody follows);
  // a name the store never makes is dropped
  const notices: Stream.Stream<TokenStore.Notice, TokenStore.StoreError> = events.stream.pipe(
    Stream.filterMap((name) => {
      if (!name.endsWith(".json")) return Option.none()
      const stem = name.slice(0, -".json".length)
      const key = named.get(stem) ?? (isPlain(stem) ? stem : undefined)
      return key === undefined ? Option.none() : Option.some({ key, version: undefined })
    })
  )
  return { events, notices }
}

type Watch = ReturnType<typeof makeWatch>

/** A random name part, from the system's generator, never the program's `Random` (seeded alike in tests). */
const randomHex = Effect.sync(() => Crypto.randomBytes(6).toString("hex"))

/** The private-file writer: a file replaced atomically (temporary file, fsync, rename, fsync of the directory). */
const makeWriter = ({ directory, fs }: Context) => {
  const fsyncDirectory = Effect.scoped(Effect.flatMap(fs.open(directory, { flag: "r" }), (dir) => dir.sync)).pipe(
    // durability of the rename; some platforms cannot open a directory, and the rename stands anyway
    Effect.ignore
  )

  // a lease is not made durable: after a crash of the host every holder is gone anyway
  const writeAtomically = (path: string, text: string, durable = true) =>
    Effect.gen(function*() {
      const temporary = `${path}.${process.pid}.${yield* randomHex}.tmp`
      const write = Effect.scoped(
        Effect.gen(function*() {
          // 0600 and O_EXCL from creation: never readable by others, never a link or FIFO planted first
          const file = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
          yield* file.writeAll(new TextEncoder().encode(text))
          if (durable) yield* file.sync
        })
      )
      yield* write.pipe(
        Effect.zipRight(fs.rename(temporary, path)),
        Effect.mapError(ioError("cannot write the entry")),
        Effect.tapError(() => Effect.ignore(fs.remove(temporary)))
      )
      if (durable) yield* fsyncDirectory
    })
  return { fsyncDirectory, writeAtomically }
}

type Writer = ReturnType<typeof makeWriter>

/**
 * The per-entry lock: a file created with O_EXCL, holding its owner's pid, host and a nonce, taken
 * under a semaphore of this process.
 */
const makeLocks = ({ fs, host, lockTimeout, staleAfter }: Context, { pathOf }: Names) =>
  Effect.gen(function*() {
    const breakIfStale = (lock: string) =>
      Effect.gen(function*() {
        // a lock that is not our own kind of file (planted while the directory was open) is broken
        const content = yield* readPrivate(lock, "a lock file").pipe(
          Effect.map(Option.map((text) => ({ text, trusted: true }))),
          Effect.catchAll((error) =>
            Effect.succeed(error.reason === "Untrusted" ? Option.some({ text: "", trusted: false }) : Option.none())
          )
        )
        if (Option.isNone(content)) return true // released meanwhile
        let owner: { pid?: unknown; host?: unknown } = {}
        try {
          owner = JSON.parse(content.value.text)
        } catch {
          // being written right now, or garbage: its age decides
        }
        const gone = owner.host === host && typeof owner.pid === "number" && owner.pid !== process.pid &&
          !isAlive(owner.pid)
        const info = yield* Effect.option(Effect.try(() => Fs.lstatSync(lock)))
        const now = yield* Clock.currentTimeMillis
        const old = Option.isSome(info) && info.value.mtimeMs < now - staleAfter
        if (content.value.trusted && !gone && !old) return false
        // renamed away first, so two processes breaking the same lock do not delete each other's new one
        const aside = `${lock}.${yield* randomHex}.stale`
        yield* fs.rename(lock, aside).pipe(Effect.zipRight(fs.remove(aside)), Effect.ignore)
        yield* Effect.logWarning("token store broke a stale lock").pipe(
          Effect.annotateLogs({
            reason: !content.value.trusted ? "not a lock of ours" : gone ? "owner process gone" : "lock too old"
          })
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
      readPrivate(lock, "a lock file").pipe(
        // never remove a lock another writer took after breaking ours
        Effect.flatMap((content) =>
          Option.isSome(content) && content.value.includes(nonce) ? fs.remove(lock) : Effect.void
        ),
        Effect.ignore
      )

    // one writer at a time in this process; the lock file serialises processes
    const writes = yield* Effect.makeSemaphore(1)
    return <A, E, R>(key: string, body: Effect.Effect<A, E, R>) =>
      writes.withPermits(1)(Effect.scoped(Effect.gen(function*() {
        const lock = `${pathOf(key)}.lock`
        yield* Effect.acquireRelease(acquireLock(lock), (nonce) => releaseLock(lock, nonce))
        return yield* body
      })))
  })

type Locked = Effect.Effect.Success<ReturnType<typeof makeLocks>>

/** The entries: read and decoded (opened when sealed), and written under their lock. */
const makeEntries = (
  { fs, secret }: Context,
  { pathOf }: Names,
  { fsyncDirectory, writeAtomically }: Writer,
  locked: Locked
) => {
  // what is stored under `key`: the decoded entry and the text it came from
  const readEntry = (key: string, identity?: string) =>
    readPrivate(pathOf(key), "the entry").pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.succeed(Option.none<TokenStore.Decoded & { readonly text: string }>()),
        onSome: (text) =>
          Sealed.open(STORE, secret, key, text).pipe(
            Effect.flatMap(({ plain }) => TokenStore.decodeEntry(STORE, plain, key, identity)),
            Effect.map((decoded) => Option.some({ ...decoded, text }))
          )
      }))
    )

  // the version of what is stored; an entry that cannot be read (corrupted, untrusted, another key) is replaced
  const storedVersion = (key: string) =>
    readEntry(key).pipe(
      Effect.map(Option.match({ onNone: () => 0, onSome: ({ entry }) => entry.version })),
      Effect.catchIf((error) => error.reason !== "Io", () => Effect.succeed(0))
    )

  const encodeFor = (key: string, entry: TokenStore.StoredToken) => {
    const text = TokenStore.encode(entry, key)
    return secret === undefined ? text : Sealed.seal(secret, key, text)
  }

  // under the entry's lock, after checking the version
  const writeEntry = (key: string, entry: TokenStore.StoredToken) =>
    Effect.gen(function*() {
      if ((yield* storedVersion(key)) >= entry.version) return false
      yield* writeAtomically(pathOf(key), encodeFor(key, entry))
      return true
    })

  const save = (key: string, entry: TokenStore.StoredToken): Effect.Effect<boolean, TokenStore.StoreError> =>
    locked(key, writeEntry(key, entry))

  // an entry of 0.1.0 is written again in the current format, bound to its key, unless it changed meanwhile
  const load = (key: string, identity?: string): Effect.Effect<
    Option.Option<TokenStore.StoredToken>,
    TokenStore.StoreError
  > =>
    TokenStore.loadUpgrading(readEntry(key, identity), (text, entry) =>
      locked(
        key,
        Effect.gen(function*() {
          const now = yield* readPrivate(pathOf(key), "the entry")
          if (Option.isNone(now) || now.value !== text) return false
          yield* writeAtomically(pathOf(key), encodeFor(key, entry))
          return true
        })
      ))

  // under the entry's lock, so a write under way finishes first instead of bringing the file back
  const remove = (key: string): Effect.Effect<void, TokenStore.StoreError> =>
    locked(
      key,
      Effect.gen(function*() {
        yield* fs.remove(pathOf(key)).pipe(
          Effect.catchIf(isSystemError("NotFound"), () => Effect.void),
          Effect.mapError(ioError("cannot remove the entry"))
        )
        yield* fsyncDirectory
      })
    )

  // a corrupted or untrusted entry does not stop a refresh: it is reported, and the refresher replaces it
  const readForRefresh = (key: string, identity: string | undefined) =>
    Effect.catchIf(
      Effect.map(readEntry(key, identity), Option.map((read) => read.entry)),
      (error) => error.reason !== "Io" && error.reason !== "Unavailable",
      (error) => TokenStore.logStoreError(error, Option.none<TokenStore.StoredToken>())
    )

  return { readForRefresh, writeEntry, load, save, remove }
}

type Entries = ReturnType<typeof makeEntries>

/** What taking the lease came to: another holds it, a newer entry is to be adopted, or it is ours. */
type Attempt =
  | { readonly _tag: "Held"; readonly expiresAt: number }
  | { readonly _tag: "Adopt"; readonly entry: TokenStore.StoredToken }
  | { readonly _tag: "Taken"; readonly lease: Lease; readonly storedVersion: number }

/** The lease file `<key>.lease`, read and replaced (not durably) only under the entry's lock. */
const makeLeaseFile = ({ leaseOf }: Names, { writeAtomically }: Writer) => {
  // a lease file that is not ours to trust (or not a lease) holds nothing: it is logged and replaced
  const readLease = (key: string) =>
    readPrivate(leaseOf(key), "the lease file").pipe(
      Effect.map(Option.match({
        onNone: () => noLease,
        onSome: (text) => parseLease(text) ?? noLease
      })),
      Effect.catchIf((error) => error.reason === "Untrusted", (error) => TokenStore.logStoreError(error, noLease))
    )

  const writeLease = (key: string, lease: Lease) =>
    writeAtomically(leaseOf(key), JSON.stringify({ format: LEASE_FORMAT, ...lease }), false)

  return { readLease, writeLease }
}

/** Whether a lease is the one this holder took. */
const ours = (lease: Lease, mine: Lease) => lease.fence === mine.fence && lease.nonce === mine.nonce

/** Whether a lease's holder is a process of this host that is gone. */
const holderGone = (host: string, lease: Lease) =>
  lease.host === host && lease.pid !== process.pid && lease.pid > 0 && !isAlive(lease.pid)

/** The lease: taken, kept alive, released, and the fenced write of its holder. */
const makeLease = (
  { host, leaseTtl }: Context,
  { readLease, writeLease }: ReturnType<typeof makeLeaseFile>,
  locked: Locked,
  { readForRefresh, writeEntry }: Entries
) => {
  // takes the lease if it is free, expired, or its holder's process is gone; the entry is read under
  // the same lock, so a token written by the holder before it lost the lease is adopted, not refreshed over
  const tryLease = (key: string, knownVersion: number, identity: string | undefined) =>
    locked(
      key,
      Effect.gen(function*(): Effect.fn.Return<Attempt, TokenStore.StoreError> {
        const lease = yield* readLease(key)
        const now = yield* Clock.currentTimeMillis
        const expired = lease.expiresAt <= now
        if (lease.held && !expired && !holderGone(host, lease)) return { _tag: "Held", expiresAt: lease.expiresAt }
        const stored = yield* readForRefresh(key, identity)
        const storedVersion = Option.match(stored, { onNone: () => 0, onSome: (entry) => entry.version })
        if (Option.isSome(stored) && storedVersion > knownVersion) return { _tag: "Adopt", entry: stored.value }
        const taken: Lease = {
          fence: lease.fence + 1,
          nonce: yield* randomHex,
          pid: process.pid,
          host,
          expiresAt: now + leaseTtl,
          held: true
        }
        yield* writeLease(key, taken)
        if (lease.held) {
          yield* Effect.logWarning("token store lease taken over").pipe(
            Effect.annotateLogs({ store: STORE, reason: expired ? "lease expired" : "holder process gone" })
          )
        }
        return { _tag: "Taken", lease: taken, storedVersion }
      })
    )

  const release = (key: string, mine: Lease) =>
    locked(
      key,
      Effect.flatMap(readLease(key), (lease) =>
        ours(lease, mine) ? writeLease(key, { ...lease, held: false }) : Effect.void)
    ).pipe(Effect.ignore)

  // renewed every third of the TTL while the token request runs; stops once the lease is another's
  const keepAlive = (key: string, mine: Lease) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.floor(leaseTtl / 3)))
        const renewed = yield* Effect.either(locked(
          key,
          Effect.gen(function*() {
            const lease = yield* readLease(key)
            if (!ours(lease, mine)) return false
            yield* writeLease(key, { ...lease, expiresAt: (yield* Clock.currentTimeMillis) + leaseTtl })
            return true
          })
        ))
        if (Either.isRight(renewed) && !renewed.right) return
      }
    })

  // 1 written, 0 a newer entry is stored, -1 the lease passed to another process; the lease is
  // released in the same step, so waiters find the entry and a free lease together
  const writeFenced = (key: string, mine: Lease, entry: TokenStore.StoredToken) =>
    locked(
      key,
      Effect.gen(function*() {
        const lease = yield* readLease(key)
        if (!ours(lease, mine)) return -1
        const written = yield* writeEntry(key, entry)
        yield* writeLease(key, { ...lease, held: false })
        return written ? 1 : 0
      })
    )

  const asHolder = <E>(
    key: string,
    mine: Lease,
    storedVersion: number,
    knownVersion: number,
    fetch: Effect.Effect<AccessToken, E>,
    identity: string | undefined
  ): Effect.Effect<TokenStore.Refreshed, E, Scope.Scope> =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => release(key, mine))
      yield* Effect.forkScoped(keepAlive(key, mine))
      return yield* LeaseHolder.fetchAsHolder({
        store: STORE,
        knownVersion,
        storedVersion,
        identity,
        fetch,
        write: (entry) => writeFenced(key, mine, entry)
      })
    })

  return { tryLease, asHolder }
}

/** `refresh`: adopts a newer entry, else takes the lease and fetches, else waits for the holder. */
const makeRefresh = (
  { leaseTtl, waitTimeout }: Context,
  { leaseOf, pathOf }: Names,
  { events }: Watch,
  { readForRefresh }: Entries,
  { asHolder, tryLease }: ReturnType<typeof makeLease>
) => {
  // wakes a waiting refresh when the entry or the lease file changes, through the store's one watch;
  // without a watch (a platform that has none) the wait falls back to its bound
  const wakeOnChange = (key: string) =>
    Effect.gen(function*() {
      const names = new Set([Path.basename(pathOf(key)), Path.basename(leaseOf(key))])
      const inbox = yield* events.subscribe
      // the watch may be starting: let it open before the entry is read
      yield* Effect.yieldNow()
      return {
        next: Queue.take(inbox).pipe(
          Effect.repeat({ until: (take) => Shared.holds(take, (name) => names.has(name)) })
        ),
        clear: Queue.takeAll(inbox)
      }
    })

  return <E>(
    key: string,
    knownVersion: number,
    fetch: Effect.Effect<AccessToken, E>,
    identity?: string
  ): Effect.Effect<TokenStore.Refreshed, E | TokenStore.StoreError> =>
    Effect.scoped(Effect.gen(function*() {
      // watching before reading: a write between the read and the wait is not missed
      const wake = yield* wakeOnChange(key)
      const deadline = (yield* Clock.currentTimeMillis) + waitTimeout
      while (true) {
        const stored = yield* readForRefresh(key, identity)
        if (Option.isSome(stored) && stored.value.version > knownVersion) {
          return { entry: stored.value, fetched: false }
        }
        const attempt = yield* tryLease(key, knownVersion, identity)
        if (attempt._tag === "Adopt") return { entry: attempt.entry, fetched: false }
        if (attempt._tag === "Taken") {
          return yield* Effect.scoped(
            asHolder(key, attempt.lease, attempt.storedVersion, knownVersion, fetch, identity)
          )
        }
        const now = yield* Clock.currentTimeMillis
        if (now >= deadline) {
          return yield* Effect.fail(
            storeError("Unavailable", "another process's refresh took longer than waitTimeout")
          )
        }
        // woken by the holder's write or release, else when its lease runs out; a holder on this host
        // that died is looked for every third of the TTL. A little jitter keeps the waiters from all
        // racing for the lease at once.
        const bound = Math.min(Math.max(attempt.expiresAt - now, 0), Math.floor(leaseTtl / 3), deadline - now)
        const jitter = yield* Random.nextIntBetween(10, 60)
        yield* Effect.raceFirst(wake.next, Effect.sleep(Duration.millis(bound + jitter)))
        yield* wake.clear
      }
    }))
}

/**
 * Builds a file store in `options.directory`, creating the directory (mode 0700) if needed, and
 * removing temporary files a crashed writer left behind.
 *
 * Guarantees: a reader always sees one whole entry (the file is only ever replaced by a rename);
 * a write never replaces a newer version while no lock holder stalls longer than `staleLockAfter`
 * (the lock is then broken, and the rename still keeps each file whole). Entry files have mode
 * 0600 from creation on. `refresh` lets one process of the host refresh a credential at a time (the
 * lease), writes only while its lease holds (the fencing counter), and adopts what another wrote.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenStore.TokenStore, TokenStore.StoreError | InvalidConfiguration, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const context = yield* makeContext(yield* FileSystem.FileSystem, options)
    yield* prepareDirectory(context)
    const names = makeNames(context)
    const watch = makeWatch(context, names)
    yield* removeStaleTemporaries(context)
    const writer = makeWriter(context)
    const locked = yield* makeLocks(context, names)
    const entries = makeEntries(context, names, writer, locked)
    const lease = makeLease(context, makeLeaseFile(names, writer), locked, entries)
    const refresh = makeRefresh(context, names, watch, entries, lease)
    const { load, remove, save } = entries
    const { notices } = watch
    const changes = (key: string, identity?: string): Stream.Stream<TokenStore.StoredToken, TokenStore.StoreError> =>
      Stream.suspend(() => {
        names.stemOf(key)
        return TokenStore.changesFromNotices({ notices, load }, key, identity)
      })

    return { name: STORE, load, save, remove, refresh, changes, notices } satisfies TokenStore.TokenStore
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
export const encryptionKeyConfig: (name: string) => Config.Config<Redacted.Redacted<string>> = Sealed.keyConfig

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
