/**
 * A token store in Redis for a fleet of processes sharing one credential: exactly one of them
 * refreshes at a time (a lease with a fencing token), the others adopt its token as it is published.
 * When Redis is unreachable every process refreshes alone, and they join up again when it returns.
 *
 * Redis holds, under the prefix (`tokenwarden:` by default):
 * - `token:<key>`: the entry, as `TokenStore.encode` writes it: bound to its key and to the credential
 *   identity, which are checked on read, so a key collision or a misrouted write is refused
 *   (`Untrusted`) instead of adopted by the fleet. Secrets are in clear unless an `encryptionKey` is
 *   given (AES-256-GCM, the Redis key as associated data). Anyone who can write to Redis can write a
 *   well-formed entry: against a hostile writer, the encryption key is required;
 * - `lease:<key>`: the fencing token of the process refreshing, expiring after `leaseTtl`;
 * - `fence:<key>`: the counter fencing tokens come from;
 * - channel `changes:<key>`: the version of each entry written, or `released` when a lease ends.
 *   Never a token: readers re-read the entry. A store listens to them all with one pattern
 *   subscription (`PSUBSCRIBE <prefix>changes:*`), however many keys it follows.
 *
 * Needs the `ioredis` package, loaded when a store is built.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import type { AccessToken } from "./AccessToken.js"
import * as LeaseHolder from "./internal/lease.js"
import { makeKeys } from "./internal/redisKeys.js"
import * as Sealed from "./internal/sealed.js"
import { InvalidConfiguration } from "./TokenError.js"
import * as TokenStore from "./TokenStore.js"

/**
 * Options of a Redis store.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS). Never logged. */
  readonly url: string | Redacted.Redacted<string>
  /** The password, when it is not in the URL. */
  readonly password?: Redacted.Redacted<string> | undefined
  /** TLS even for a `redis://` URL. */
  readonly tls?: boolean | undefined
  /** Prefix of every key and channel; `tokenwarden:` by default. */
  readonly keyPrefix?: string | undefined
  /**
   * How long a refresher holds the lease without renewing it: after a crash, another process takes
   * over this long after the last renewal. It is renewed every third of it while the request runs.
   * 15 seconds by default.
   */
  readonly leaseTtl?: Duration.DurationInput | undefined
  /**
   * How long a process waits for another's refresh, takeovers included, before refreshing alone
   * (a `StoreError` the source logs). Longer than a token request may take; 60 seconds by default.
   */
  readonly waitTimeout?: Duration.DurationInput | undefined
  /** How long one command may take before it fails (Redis counts as unreachable); 2 seconds by default. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** How long connecting may take; 5 seconds by default. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /**
   * Enables AES-256-GCM of entries: 32 bytes, as 64 hex digits or base64 (`openssl rand -base64 32`),
   * the same on every process of the fleet. Required when anyone who can write to this Redis might
   * write a token for the fleet to adopt: without it, the key binding stops collisions and misrouted
   * writes only. With a key, an entry in clear is refused (`Decryption`), and the next write replaces it.
   */
  readonly encryptionKey?: Redacted.Redacted<string> | undefined
}

const STORE = "redis"

const unavailable = (detail: string) => new TokenStore.StoreError({ store: STORE, reason: "Unavailable", detail })

// what an ioredis error says, short; its command arguments (an entry, with its tokens) are not kept
const describe = (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error)

  return message.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, 200)
}

const command = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, TokenStore.StoreError> =>
  Effect.tryPromise({ try: run, catch: (error) => unavailable(`${what}: ${describe(error)}`) })

// KEYS: token; ARGV: version, entry, channel. A late writer never replaces a newer entry; an entry
// that is not ours to read (corrupted, foreign) is replaced.
const SAVE = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and type(decoded.version) == 'number'
    and decoded.version >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`

// KEYS: token, lease; ARGV: fence, version, entry, channel, refused. A refresher writes only while the
// lease holds its fencing token (or has expired with nobody taking it over). `refused` is the entry it
// read and could not trust: replaced whatever version it claims, unless it changed since.
const SAVE_FENCED = `
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return -1 end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[5] then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and type(decoded.version) == 'number'
    and decoded.version >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1`

// KEYS: token; ARGV: old, new. An entry of 0.1.0 written again in the current format, unless it changed.
const UPGRADE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0`

// KEYS: lease, fence; ARGV: ttl, nonce. Returns {1, fencing token} when taken, {0, pttl} when held.
// The counter orders holders; the nonce keeps tokens unique when a Redis without persistence restarts
// and its counter with it.
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local fence = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return {1, fence}`

// KEYS: lease; ARGV: fence, ttl
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

// KEYS: lease; ARGV: fence, channel. Compare-and-delete; waiters wake at once instead of at expiry.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0`

// The part of an ioredis client this store uses, typed here: ioredis is an optional dependency, and a
// program that never builds a Redis store neither loads it nor needs its types.
interface Connection {
  readonly status: string
  connect(): Promise<void>
  quit(): Promise<unknown>
  disconnect(): void
  duplicate(): Connection
  get(key: string): Promise<string | null>
  del(...keys: Array<string>): Promise<number>
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
  psubscribe(pattern: string): Promise<unknown>
  on(event: string, listener: (...args: Array<any>) => void): unknown
  once(event: string, listener: (...args: Array<any>) => void): unknown
  off(event: string, listener: (...args: Array<any>) => void): unknown
}

interface ConnectionOptions {
  readonly host: string
  readonly port: number
  readonly db: number
  readonly username?: string
  readonly password?: string
  readonly tls?: { readonly servername: string }
  readonly enableOfflineQueue: boolean
  readonly maxRetriesPerRequest: number
  readonly commandTimeout: number
  readonly connectTimeout: number
  readonly retryStrategy: (times: number) => number
  readonly lazyConnect: boolean
  readonly connectionName: string
}

// a variable, not a literal: TypeScript does not resolve it, so typechecking never needs ioredis
const ioredis = "ioredis"

interface Event {
  readonly key: string
  /** An entry written (its version), a lease released, or a reconnect after which anything may be new. */
  readonly kind: "written" | "released" | "resync"
  readonly version: number | undefined
}

// a prefix is the operator's, and may hold glob characters: matched literally in the pattern
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

const isAuthError = (message: string) => /WRONGPASS|NOAUTH|invalid password|invalid username/i.test(message)

const connectionOptions = (options: Options): Either.Either<ConnectionOptions, string> => {
  let url: URL
  try {
    url = new URL(Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url)
  } catch {
    return Either.left("the Redis URL is not a URL") // the URL itself may hold a password: not repeated
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return Either.left("the Redis URL must start with redis:// or rediss://")
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  if (!Number.isInteger(db) || db < 0) return Either.left("the Redis URL's database must be a number")
  const host = url.hostname.replace(/^\[|\]$/g, "")
  const password = options.password !== undefined
    ? Redacted.value(options.password)
    : url.password === ""
    ? undefined
    : decodeURIComponent(url.password)
  const millis = (d: Duration.DurationInput | undefined, fallback: number) =>
    d === undefined ? fallback : Duration.toMillis(d)
  return Either.right({
    host,
    port: url.port === "" ? 6379 : Number(url.port),
    db,
    ...(url.username === "" ? {} : { username: decodeURIComponent(url.username) }),
    ...(password === undefined ? {} : { password }),
    ...(url.protocol === "rediss:" || options.tls === true ? { tls: { servername: host } } : {}),
    // a dead Redis must fail commands at once, never queue them: the source then refreshes alone
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: millis(options.commandTimeout, 2000),
    connectTimeout: millis(options.connectTimeout, 5000),
    // reconnect forever, at most every 2 seconds
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: true,
    connectionName: "tokenwarden"
  })
}

/** What the pieces of a Redis store read from its options, with ioredis loaded. */
interface Settings {
  readonly connection: ConnectionOptions
  readonly Redis: new(options: ConnectionOptions) => Connection
  readonly secret: Redacted.Redacted<Buffer> | undefined
  readonly prefix: string
  readonly leaseTtl: number
  readonly waitTimeout: number
}

/** Reads the options and loads ioredis; a refused URL or key, or a missing ioredis, fails it. */
const loadSettings = (options: Options): Effect.Effect<Settings, InvalidConfiguration> =>
  Effect.gen(function*() {
    const connection = yield* Either.match(connectionOptions(options), {
      onLeft: (reason) => Effect.fail(new InvalidConfiguration({ reason })),
      onRight: Effect.succeed
    })
    // loaded here, not at import: programs that never build a Redis store do not need ioredis
    const { Redis } = yield* Effect.tryPromise({
      try: () => import(ioredis) as Promise<{ readonly Redis: new(options: ConnectionOptions) => Connection }>,
      catch: () => new InvalidConfiguration({ reason: "the Redis token store needs the ioredis package" })
    })
    const secret = options.encryptionKey === undefined
      ? undefined
      : yield* Either.match(Sealed.parseEncryptionKey(options.encryptionKey), {
        onLeft: (reason) => Effect.fail(new InvalidConfiguration({ reason })),
        onRight: Effect.succeed
      })
    return {
      connection,
      Redis,
      secret,
      prefix: options.keyPrefix ?? "tokenwarden:",
      leaseTtl: Math.max(100, Math.round(Duration.toMillis(options.leaseTtl ?? Duration.seconds(15)))),
      waitTimeout: Duration.toMillis(options.waitTimeout ?? Duration.seconds(60))
    }
  })

type Keys = ReturnType<typeof makeKeys>

/** Runs a log line from an ioredis callback, annotated with the store. */
type Log = (effect: Effect.Effect<void>) => void

/** The command connection, closed with the scope; its state changes are logged once each way. */
const openClient = ({ connection, Redis }: Settings, log: Log) =>
  Effect.gen(function*() {
    let connected = false
    let lost = false
    let closing = false
    const client: Connection = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis(connection)),
      (c) =>
        Effect.promise(() => {
          closing = true
          return c.status === "ready" ? c.quit().then(() => {}, () => c.disconnect()) : Promise.resolve(c.disconnect())
        })
    )
    client.on("ready", () => {
      connected = true
      if (lost) {
        lost = false
        log(Effect.logInfo("redis connection restored; refreshes are shared again"))
      }
    })
    const down = (error?: unknown) => {
      if (closing) return
      if (connected || !lost) {
        connected = false
        lost = true
        log(
          Effect.logWarning("redis unreachable; each process refreshes alone until it returns").pipe(
            Effect.annotateLogs(error === undefined ? {} : { detail: describe(error) })
          )
        )
      }
    }
    let firstError: string | undefined
    client.on("error", (error: unknown) => {
      firstError ??= describe(error)
      down(error)
    })
    client.on("close", () => {
      if (connected) down()
    })
    return { client, firstError: () => firstError }
  })

/**
 * The subscriber connection (a subscription takes a connection of its own), closed with the scope:
 * one pattern subscription for every key, its messages published as events.
 */
const openSubscriber = (
  client: Connection,
  { channelPrefix, used }: Keys,
  events: PubSub.PubSub<Event>,
  runSync: <A>(effect: Effect.Effect<A>) => A
) =>
  Effect.gen(function*() {
    const subscriber: Connection = yield* Effect.acquireRelease(
      Effect.sync(() => client.duplicate()),
      (c) => Effect.sync(() => c.disconnect())
    )
    // one pattern for every key: a pool of 100,000 keys is still one subscription
    const pattern = `${globEscape(channelPrefix)}*`
    subscriber.on("error", () => {}) // reported through the command connection's state
    subscriber.on("pmessage", (_pattern: string, channel: string, message: string) => {
      if (!channel.startsWith(channelPrefix)) return
      const key = channel.slice(channelPrefix.length)
      const event: Event = /^\d{1,15}$/.test(message)
        ? { key, kind: "written", version: Number(message) }
        : { key, kind: "released", version: undefined }
      runSync(PubSub.publish(events, event))
    })
    let subscribed: Promise<unknown> = Promise.resolve()
    subscriber.on("ready", () => {
      // a failed PSUBSCRIBE (Redis down) is made again when the subscriber reconnects
      subscribed = subscriber.psubscribe(pattern).catch(() => undefined)
      // a reconnect loses what was published meanwhile: every key this process used is told to re-read
      // (none at the first connection)
      for (const key of used) runSync(PubSub.publish(events, { key, kind: "resync", version: undefined }))
    })
    return { subscriber, subscribed: () => subscribed }
  })

/** Connects a connection; done once it is ready or has failed (ioredis keeps reconnecting). */
const connect = (c: Connection) =>
  Effect.async<void>((resume) => {
    const done = () => {
      c.off("ready", done)
      c.off("error", done)
      resume(Effect.void)
    }
    c.once("ready", done)
    c.once("error", done)
    c.connect().catch(() => undefined)
  })

/** The notices of a store's events: writes and reconnects; a lease released is no write. */
const makeNotices = (events: PubSub.PubSub<Event>): Stream.Stream<TokenStore.Notice, TokenStore.StoreError> =>
  Stream.unwrapScoped(
    Effect.map(PubSub.subscribe(events), (inbox) =>
      Stream.fromQueue(inbox).pipe(
        Stream.filterMap((event) =>
          event.kind === "released" ? Option.none() : Option.some({ key: event.key, version: event.version })
        )
      ))
  )

/** A refused entry's error. */
const untrusted = (detail: string) => new TokenStore.StoreError({ store: STORE, reason: "Untrusted", detail })

/** What a refresh read: the entry it can trust, and the text of one it could not (to be replaced). */
interface ForRefresh {
  readonly entry: Option.Option<TokenStore.StoredToken>
  readonly refused: string
}

/** The entries: the codec (sealed when a key is given) and the scripts that write them. */
const makeEntries = (client: Connection, secret: Redacted.Redacted<Buffer> | undefined, { keys }: Keys) => {
  const read = (key: string) => command("GET", () => client.get(keys(key).token))

  // what is stored under `key`: the decoded entry and the text it came from; the version an envelope
  // shows in clear (for the scripts) must be the sealed one
  const readEntry = (key: string, identity?: string) =>
    Effect.flatMap(read(key), (text) =>
      text === null
        ? Effect.succeed(Option.none<TokenStore.Decoded & { readonly text: string }>())
        : Sealed.open(STORE, secret, keys(key).token, text).pipe(
          Effect.flatMap(({ envelope, plain }) =>
            Effect.flatMap(TokenStore.decodeEntry(STORE, plain, key, identity), (decoded) =>
              envelope !== undefined && envelope.version !== decoded.entry.version
                ? Effect.fail(untrusted("the envelope's version is not the sealed entry's"))
                : Effect.succeed(Option.some({ ...decoded, text })))
          )
        ))

  const encodeFor = (key: string, entry: TokenStore.StoredToken) => {
    const text = TokenStore.encode(entry, key)
    return secret === undefined ? text : Sealed.seal(secret, keys(key).token, text, { version: entry.version })
  }

  // an entry of 0.1.0 is written again in the current format, unless it changed meanwhile
  const load = (key: string, identity?: string): Effect.Effect<
    Option.Option<TokenStore.StoredToken>,
    TokenStore.StoreError
  > =>
    TokenStore.loadUpgrading(
      readEntry(key, identity),
      (text, entry) =>
        command("EVAL", () => client.eval(UPGRADE, 1, keys(key).token, text, encodeFor(key, entry))).pipe(
          Effect.map((result) => result === 1)
        )
    )

  const save = (key: string, entry: TokenStore.StoredToken): Effect.Effect<boolean, TokenStore.StoreError> => {
    const k = keys(key)
    return command("EVAL", () => client.eval(SAVE, 1, k.token, entry.version, encodeFor(key, entry), k.channel)).pipe(
      Effect.map((result) => result === 1)
    )
  }

  // the entry only: the fence counter keeps counting (a reused key never hands out an old fencing
  // token again) and a lease expires by itself
  const remove = (key: string): Effect.Effect<void, TokenStore.StoreError> =>
    Effect.asVoid(command("DEL", () => client.del(keys(key).token)))

  // an entry that cannot be trusted (corrupted, foreign, another key or credential, not sealed with
  // our key) does not stop a refresh: it is reported, and the refresher replaces it
  const loadForRefresh = (
    key: string,
    identity: string | undefined
  ): Effect.Effect<ForRefresh, TokenStore.StoreError> =>
    Effect.catchIf(
      Effect.map(readEntry(key, identity), (found): ForRefresh => ({
        entry: Option.map(found, (f) => f.entry),
        refused: ""
      })),
      (error) => error.reason !== "Unavailable",
      (error) =>
        Effect.zipRight(
          TokenStore.logStoreError(error, undefined),
          Effect.map(Effect.orElseSucceed(read(key), () => null), (text): ForRefresh => ({
            entry: Option.none(),
            refused: text ?? ""
          }))
        )
    )

  return { encodeFor, load, save, remove, loadForRefresh }
}

type Entries = ReturnType<typeof makeEntries>

/** The lease: taken, kept alive and released by scripts, and the fenced write of its holder. */
const makeLease = (client: Connection, leaseTtl: number, { keys }: Keys, { encodeFor, loadForRefresh }: Entries) => {
  const acquire = (key: string) => {
    const k = keys(key)
    const nonce = Crypto.randomBytes(6).toString("hex")
    return command("EVAL", () => client.eval(ACQUIRE, 2, k.lease, k.fence, leaseTtl, nonce)).pipe(
      Effect.map((result) => {
        const [taken, detail] = result as [number, string | number]
        return taken === 1
          ? { taken: true, fence: String(detail), pttl: 0 }
          : { taken: false, fence: "", pttl: Number(detail) }
      })
    )
  }

  const release = (key: string, fence: string) => {
    const k = keys(key)
    return Effect.ignore(command("EVAL", () => client.eval(RELEASE, 1, k.lease, fence, k.channel)))
  }

  // renewed every third of the TTL while the token request runs: a slow provider does not lose the
  // lease, a crashed process stops renewing and loses it after at most one TTL
  const keepAlive = (key: string, fence: string) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(Math.floor(leaseTtl / 3)))
        const renewed = yield* Effect.either(
          command("EVAL", () => client.eval(RENEW, 1, keys(key).lease, fence, leaseTtl))
        )
        if (Either.isRight(renewed) && renewed.right === 0) return
      }
    })

  // 1 written, 0 a newer entry is stored, -1 the lease passed to another process
  const writeFenced = (key: string, fence: string, entry: TokenStore.StoredToken, refused: string) => {
    const k = keys(key)
    const text = encodeFor(key, entry)
    return command(
      "EVAL",
      () => client.eval(SAVE_FENCED, 2, k.token, k.lease, fence, entry.version, text, k.channel, refused)
    ).pipe(Effect.map(Number))
  }

  const asHolder = <E>(
    key: string,
    fence: string,
    knownVersion: number,
    fetch: Effect.Effect<AccessToken, E>,
    identity: string | undefined
  ): Effect.Effect<TokenStore.Refreshed, E | TokenStore.StoreError, Scope.Scope> =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => release(key, fence))
      // an entry written between our last read and taking the lease: the rotated refresh token
      // it holds is the only valid one, so it is adopted, never refreshed over
      const { entry: stored, refused } = yield* loadForRefresh(key, identity)
      const storedVersion = Option.match(stored, { onNone: () => 0, onSome: (entry) => entry.version })
      if (Option.isSome(stored) && storedVersion > knownVersion) return { entry: stored.value, fetched: false }
      yield* Effect.forkScoped(keepAlive(key, fence))
      return yield* LeaseHolder.fetchAsHolder({
        store: STORE,
        knownVersion,
        storedVersion,
        identity,
        fetch,
        write: (entry) => writeFenced(key, fence, entry, refused)
      })
    })

  return { acquire, asHolder }
}

/** `refresh`: adopts a newer entry, else takes the lease and fetches, else waits for the holder. */
const makeRefresh = (
  { leaseTtl, waitTimeout }: Settings,
  events: PubSub.PubSub<Event>,
  { loadForRefresh }: Entries,
  { acquire, asHolder }: ReturnType<typeof makeLease>
) =>
<E>(
  key: string,
  knownVersion: number,
  fetch: Effect.Effect<AccessToken, E>,
  identity?: string
): Effect.Effect<TokenStore.Refreshed, E | TokenStore.StoreError> =>
  Effect.scoped(Effect.gen(function*() {
    // listening before reading: a write published between the read and the wait is not missed
    const inbox = yield* PubSub.subscribe(events)
    const deadline = (yield* Clock.currentTimeMillis) + waitTimeout
    while (true) {
      const { entry: stored } = yield* loadForRefresh(key, identity)
      if (Option.isSome(stored) && stored.value.version > knownVersion) {
        return { entry: stored.value, fetched: false }
      }
      const lease = yield* acquire(key)
      if (lease.taken) return yield* Effect.scoped(asHolder(key, lease.fence, knownVersion, fetch, identity))
      const now = yield* Clock.currentTimeMillis
      if (now >= deadline) {
        return yield* Effect.fail(unavailable("another process's refresh took longer than waitTimeout"))
      }
      // woken by the holder's write or release, else when its lease runs out (it died): never a
      // tight poll; a little jitter keeps the waiters from all racing for the lease at once
      const expiry = lease.pttl > 0 ? Math.min(lease.pttl, leaseTtl) : leaseTtl
      const jitter = yield* Random.nextIntBetween(20, 120)
      yield* Effect.raceFirst(
        Queue.take(inbox).pipe(Effect.repeat({ until: (event) => event.key === key })),
        Effect.sleep(Duration.millis(Math.min(expiry, deadline - now) + jitter))
      )
      yield* Queue.takeAll(inbox)
    }
  }))

/**
 * Builds a Redis store. Connects (bounded by `connectTimeout`) before returning, so a restarted
 * process finds its stored token; an unreachable Redis does not fail it (every process refreshes
 * alone until Redis is back), a refused password does (`InvalidConfiguration`). The connections
 * close with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenStore.TokenStore, InvalidConfiguration, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* loadSettings(options)
    const { connection } = settings
    const names = makeKeys(settings.prefix)

    const runtime = yield* Effect.runtime<never>()
    const runSync = Runtime.runSync(runtime)
    const log: Log = (effect) => runSync(Effect.annotateLogs(effect, { store: STORE }))
    const events = yield* PubSub.sliding<Event>(TokenStore.noticeCapacity)

    const { client, firstError } = yield* openClient(settings, log)
    const { subscribed, subscriber } = yield* openSubscriber(client, names, events, runSync)
    // a server that accepts the connection but never gets ready (still loading its data) does not
    // hold the program: it carries on as if Redis were down
    yield* Effect.all([connect(client), connect(subscriber)], { concurrency: 2, discard: true }).pipe(
      Effect.timeout(Duration.millis(connection.connectTimeout + 1000)),
      Effect.ignore
    )
    const refusal = firstError()
    if (client.status !== "ready" && refusal !== undefined && isAuthError(refusal)) {
      return yield* Effect.fail(new InvalidConfiguration({ reason: `Redis refused the credentials: ${refusal}` }))
    }
    // subscribed before the store is handed out: a write right after is heard
    yield* Effect.promise(() => subscribed()).pipe(
      Effect.timeout(Duration.millis(connection.commandTimeout)),
      Effect.ignore
    )

    const entries = makeEntries(client, settings.secret, names)
    const lease = makeLease(client, settings.leaseTtl, names, entries)
    const refresh = makeRefresh(settings, events, entries, lease)
    const notices = makeNotices(events)
    const { load, remove, save } = entries

    const changes = (key: string, identity?: string): Stream.Stream<TokenStore.StoredToken, TokenStore.StoreError> =>
      Stream.suspend(() => {
        names.used.add(key)
        return TokenStore.changesFromNotices({ notices, load }, key, identity)
      })

    return { name: STORE, load, save, remove, refresh, changes, notices } satisfies TokenStore.TokenStore
  })

/**
 * The Redis store as a layer; its connections close with the layer.
 *
 * @since 0.1.0
 * @category layers
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { RedisTokenStore } from "tokenwarden"
 *
 * const StoreLive = RedisTokenStore.layer({
 *   url: "rediss://redis.internal:6380",
 *   password: Redacted.make(process.env.REDIS_PASSWORD ?? "")
 * })
 * ```
 */
export const layer = (options: Options): Layer.Layer<TokenStore.TokenStoreTag, InvalidConfiguration> =>
  Layer.scoped(TokenStore.TokenStoreTag, make(options))

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> => Config.withDefault(config, undefined)

/**
 * The options from the environment: `REDIS_URL` (redacted: it may hold a password), `REDIS_PASSWORD`
 * (redacted), `REDIS_TLS`, `REDIS_KEY_PREFIX`, `REDIS_LEASE_TTL` and `REDIS_WAIT_TIMEOUT` (durations
 * such as `15 seconds`) and `REDIS_ENCRYPTION_KEY` (redacted); another prefix reads `<PREFIX>_URL` and
 * so on.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "REDIS"): Config.Config<Options> =>
  Config.all({
    url: Config.redacted(`${prefix}_URL`).pipe(
      Config.mapOrFail((url) =>
        /^rediss?:\/\//i.test(Redacted.value(url))
          ? Either.right(url)
          : Either.left(ConfigError.InvalidData([`${prefix}_URL`], "must start with redis:// or rediss://"))
      )
    ),
    password: optional(Config.redacted(`${prefix}_PASSWORD`)),
    tls: optional(Config.boolean(`${prefix}_TLS`)),
    keyPrefix: optional(Config.string(`${prefix}_KEY_PREFIX`)),
    leaseTtl: optional(Config.duration(`${prefix}_LEASE_TTL`)),
    waitTimeout: optional(Config.duration(`${prefix}_WAIT_TIMEOUT`)),
    encryptionKey: optional(Sealed.keyConfig(`${prefix}_ENCRYPTION_KEY`))
  })

/**
 * The Redis store with its options from `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<TokenStore.TokenStoreTag, InvalidConfiguration | ConfigError.ConfigError> =>
  Layer.scoped(TokenStore.TokenStoreTag, Effect.flatMap(Config.unwrap(options), make))
