/**
 * Where tokens live beyond one process's memory: a store behind each `TokenSource`, so a restarted
 * daemon reuses its still-valid token (and its refresh token), and a fleet of workers shares one
 * credential with exactly one refresher at a time.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import type { ClientAuth } from "./ClientAuth.js"
import type { Grant } from "./Grant.js"
import * as Key from "./internal/engine/key.js"
import * as Shared from "./internal/shared.js"
import { TaggedError } from "./internal/taggedError.js"

/**
 * A stored token and its version. Versions only grow: a write with a version not above the stored one
 * is refused, so a late writer never overwrites a newer token (a fencing token).
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredToken {
  readonly token: AccessToken
  readonly version: number
  /**
   * The credential identity (`TokenStore.key` of the source's options) the entry was written for,
   * when the writer said; a reader that knows its own refuses an entry of another credential.
   */
  readonly identity?: string | undefined
}

/**
 * A store that could not be read or written: unreachable, a corrupted or foreign entry, a wrong
 * encryption key, or an entry the store cannot vouch for (`Untrusted`: a file others could write, a
 * symbolic link, a FIFO, an entry written under another key or for another credential). The source
 * logs it and carries on without the entry (a fresh grant, never a half-read or planted token).
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends TaggedError<StoreError>("TokenStore")("StoreError", {
  store: Schema.String,
  reason: Schema.Literal("Unavailable", "Corrupted", "Decryption", "Io", "Untrusted"),
  detail: Schema.String
}, {
  transient: (self) => self.reason === "Unavailable" || self.reason === "Io",
  message: (self) => `${self.store} token store: ${self.reason.toLowerCase()}: ${self.detail}`
}) {}

/**
 * What `refresh` came back with: a token this process fetched (and wrote), or a newer one another
 * process wrote meanwhile, adopted instead of fetching.
 *
 * @since 0.1.0
 * @category models
 */
export interface Refreshed {
  readonly entry: StoredToken
  readonly fetched: boolean
}

/**
 * A write to a store: which key changed, and its version when the store knows it (the Redis store
 * does; the file store does not, and a reconnect to Redis tells every key this process used without
 * one, since writes made meanwhile were not heard). Never the entry: a listener loads it itself.
 *
 * @since 0.2.0
 * @category models
 */
export interface Notice {
  /** Exactly the key given to `save` or `refresh`. */
  readonly key: string
  readonly version: number | undefined
}

/**
 * A token store.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenStore {
  /** A name for logs and errors (`memory`, `file`, `redis`). */
  readonly name: string
  /**
   * The entry under `key`, if any. With `identity`, an entry written for another credential is
   * refused (`Untrusted`).
   */
  readonly load: (key: string, identity?: string) => Effect.Effect<Option.Option<StoredToken>, StoreError>
  /** Writes `entry` if its version is above the stored one; tells whether it was written. */
  readonly save: (key: string, entry: StoredToken) => Effect.Effect<boolean, StoreError>
  /** Deletes the entry under `key`, if any (an entry moved to another key, a user logged out). */
  readonly remove: (key: string) => Effect.Effect<void, StoreError>
  /**
   * Gets the next token for `key`, the one refresher across processes: runs `fetch` and writes its
   * token (before returning it, so a crash never loses a new refresh token), or adopts an entry newer
   * than `knownVersion` written by another process meanwhile. `fetch` failures pass through. The
   * entry written carries `identity`, and entries read are checked against it, as in `load`.
   */
  readonly refresh: <E>(
    key: string,
    knownVersion: number,
    fetch: Effect.Effect<AccessToken, E>,
    identity?: string
  ) => Effect.Effect<Refreshed, E | StoreError>
  /**
   * Entries written for `key` by anyone, as they are written (empty where nobody else writes); with
   * `identity`, entries of another credential are left out, as `load` refuses them.
   */
  readonly changes: (key: string, identity?: string) => Stream.Stream<StoredToken, StoreError>
  /**
   * Every write to the store by anyone, as it happens: one subscription for the whole store (one Redis
   * pattern subscription, one directory watch), however many keys are followed. A notice says only
   * which key changed (and its version when the store knows it); the listener loads the entry itself.
   */
  readonly notices: Stream.Stream<Notice, StoreError>
}

/**
 * The token store of a source or pool made with `store: true`; without that option a source or pool
 * keeps its tokens in its own memory only, even if a store is provided.
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenStoreTag extends Context.Tag("tokenwarden/TokenStore")<TokenStoreTag, TokenStore>() {}

/**
 * What the options of a source or pool add to its requirements: `TokenStore` exactly when `store` is `true`.
 *
 * @since 0.2.0
 * @category models
 */
export type StoreOf<O> = O extends { readonly store: true } ? TokenStoreTag : never

/** The store the options ask for (`store: true`), else none. @internal */
export const asked = <O extends object>(options: O): Effect.Effect<TokenStore | undefined, never, StoreOf<O>> =>
  ("store" in options && options.store === true ? TokenStoreTag : Effect.succeed(undefined)) as Effect.Effect<
    TokenStore | undefined,
    never,
    StoreOf<O>
  >

/**
 * What names a credential in a store: the parts of a `TokenSource`'s options that change what the
 * server issues (of the grant and client authentication, only what is not secret counts).
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyParts {
  readonly url: string | URL
  readonly clientAuth: ClientAuth
  readonly grant: Grant
  /** Whose token this is, as the source's `subject` option gives it. */
  readonly subject?: string | undefined
}

/**
 * The store key a `TokenSource` without a `storeKey` uses for a credential: a SHA-256 hash (64 hex
 * digits) of the endpoint URL, client id, client authentication method, grant type, username,
 * subject, sorted scopes and sorted extra parameters. No secret goes into it, and keys and file names
 * show nothing of the credential. For a user's entry, to `remove` it at logout.
 *
 * @since 0.1.0
 * @category constructors
 */
export const key = (parts: KeyParts): string => Key.identity(parts)

// ---------------------------------------------------------------------------------------------
// the stored form, shared by every persistent store
// ---------------------------------------------------------------------------------------------

const Secret = Schema.Redacted(Schema.String)

const TokenJson = Schema.Struct({
  value: Schema.Redacted(Schema.NonEmptyString),
  type: Schema.NonEmptyString,
  issuedAt: Schema.Number,
  expiresAt: Schema.optional(Schema.Number),
  lifetimeSource: Schema.Literal("expires_in", "jwt", "previous", "default", "none"),
  scopes: Schema.Array(Schema.String),
  refreshToken: Schema.optional(Secret),
  extra: Schema.Redacted(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  clockOffset: Schema.optional(Schema.Number)
})

/**
 * The format stored entries are written in. Its times are epoch milliseconds of the writer's clock,
 * a JWT's `exp` moved onto it by the server's `Date` header; since v3 the token also carries the
 * writer's `clockOffset` to the server, so a reader whose clock differs moves them onto its own.
 * Entries of v2 (without it) are read as they are.
 *
 * @since 0.1.0
 * @category models
 */
export const format = "tokenwarden/v3"

/**
 * The formats read as they are: the current one and v2, which differs only in lacking `clockOffset`.
 *
 * @since 0.2.0
 * @category models
 */
export const readableFormats: ReadonlyArray<string> = [format, "tokenwarden/v2"]

/**
 * The JSON form of a stored entry: bound to the key it is stored under and, when the writer knows
 * it, to the credential identity, so an entry copied, misrouted or colliding under another key is
 * refused on read. Secrets are written in clear inside it: a persistent store is protected by file
 * modes, Redis ACLs and, optionally, encryption at rest.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StoredTokenJson = Schema.parseJson(Schema.Struct({
  format: Schema.Literal(format, "tokenwarden/v2"),
  key: Schema.String,
  identity: Schema.optional(Schema.String),
  version: Schema.Int.pipe(Schema.nonNegative()),
  token: TokenJson
}))

// 0.1.0's form, bound to nothing: read once, and written again in the current one
const LegacyJson = Schema.parseJson(Schema.Struct({
  format: Schema.Literal("tokenwarden/v1"),
  version: Schema.Int.pipe(Schema.nonNegative()),
  token: TokenJson
}))

/**
 * Encodes an entry to its stored text, bound to `key`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (entry: StoredToken, key: string): string => {
  const t = entry.token
  return Schema.encodeSync(StoredTokenJson)({
    format,
    key,
    ...(entry.identity === undefined ? {} : { identity: entry.identity }),
    version: entry.version,
    token: {
      value: t.value,
      type: t.type,
      issuedAt: t.issuedAt,
      ...(t.expiresAt === undefined ? {} : { expiresAt: t.expiresAt }),
      lifetimeSource: t.lifetimeSource,
      scopes: t.scopes,
      ...(t.refreshToken === undefined ? {} : { refreshToken: t.refreshToken }),
      extra: t.extra as Redacted.Redacted<{ readonly [x: string]: unknown }>,
      ...(t.clockOffset === undefined ? {} : { clockOffset: t.clockOffset })
    }
  })
}

/**
 * A decoded entry, and whether it was in 0.1.0's format (to be written again in the current one).
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoded {
  readonly entry: StoredToken
  readonly legacy: boolean
}

const corrupted = (store: string) =>
  new StoreError({ store, reason: "Corrupted", detail: "the stored entry is not a tokenwarden token" })

/**
 * Decodes stored text read under `key`: an entry bound to another key, or written for another
 * credential than `identity`, is `Untrusted`; anything that is not a whole entry is `Corrupted` (the
 * parse error is not kept: it would print the stored secrets). An entry of 0.1.0 (bound to nothing)
 * is accepted and marked `legacy`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decodeEntry = (
  store: string,
  text: string,
  key: string,
  identity?: string
): Effect.Effect<Decoded, StoreError> =>
  Schema.decodeUnknown(StoredTokenJson)(text).pipe(
    Effect.flatMap((d): Effect.Effect<Decoded, StoreError> => {
      if (d.key !== key) {
        return Effect.fail(
          new StoreError({ store, reason: "Untrusted", detail: "the entry was written under another key" })
        )
      }
      if (identity !== undefined && d.identity !== undefined && d.identity !== identity) {
        return Effect.fail(
          new StoreError({ store, reason: "Untrusted", detail: "the entry was written for another credential" })
        )
      }
      const entry: StoredToken = { version: d.version, token: d.token, identity: d.identity ?? identity }
      return Effect.succeed({ entry, legacy: false })
    }),
    Effect.catchTag("ParseError", () =>
      Schema.decodeUnknown(LegacyJson)(text).pipe(
        Effect.map((d): Decoded => ({ entry: { version: d.version, token: d.token, identity }, legacy: true })),
        Effect.mapError(() => corrupted(store))
      ))
  )

/**
 * Decodes stored text read under `key`; see `decodeEntry`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decode = (
  store: string,
  text: string,
  key: string,
  identity?: string
): Effect.Effect<StoredToken, StoreError> => Effect.map(decodeEntry(store, text, key, identity), (d) => d.entry)

// ---------------------------------------------------------------------------------------------
// memory
// ---------------------------------------------------------------------------------------------

/**
 * A store in this process's memory, shared by every source of the same credential in the process.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<TokenStore> = Effect.gen(function*() {
  const entries = new Map<string, StoredToken>()
  const inflight = new Map<string, Deferred.Deferred<Refreshed>>()
  const load = (key: string, identity?: string) =>
    Effect.suspend(() => {
      const entry = entries.get(key)
      // another credential's entry under a shared key is refused, as the persistent stores refuse it
      return entry !== undefined && identity !== undefined && entry.identity !== undefined &&
          entry.identity !== identity
        ? Effect.fail(
          new StoreError({
            store: "memory",
            reason: "Untrusted",
            detail: "the entry was written for another credential"
          })
        )
        : Effect.succeed(Option.fromNullable(entry))
    })
  const written = yield* PubSub.sliding<Notice>(noticeCapacity)
  const save = (key: string, entry: StoredToken) =>
    Effect.suspend(() => {
      const current = entries.get(key)
      if (current !== undefined && current.version >= entry.version) return Effect.succeed(false)
      entries.set(key, entry)
      return Effect.as(PubSub.publish(written, { key, version: entry.version }), true)
    })
  const notices: Stream.Stream<Notice, StoreError> = Stream.fromPubSub(written)
  return {
    name: "memory",
    load,
    save,
    remove: (key) => Effect.sync(() => void entries.delete(key)),
    refresh: (key, knownVersion, fetch, identity) =>
      Effect.suspend(() => {
        // the in-process lease: sources of one credential share the refresh under way
        const running = inflight.get(key)
        if (running !== undefined) {
          return Effect.flatMap(Effect.exit(Deferred.await(running)), (exit) =>
            Exit.isSuccess(exit) && exit.value.entry.version > knownVersion
              ? Effect.succeed({ entry: exit.value.entry, fetched: false })
              : localRefresh({ name: "memory", load, save }, key, knownVersion, fetch, identity))
        }
        const deferred = Deferred.unsafeMake<Refreshed>(FiberId.none)
        inflight.set(key, deferred)
        return localRefresh({ name: "memory", load, save }, key, knownVersion, fetch, identity).pipe(
          Effect.onExit((exit) => {
            inflight.delete(key)
            return Exit.isSuccess(exit) ? Deferred.succeed(deferred, exit.value) : Deferred.interrupt(deferred)
          })
        )
      }),
    changes: (key, identity) => changesFromNotices({ notices, load }, key, identity),
    notices
  } satisfies TokenStore
})

/**
 * The memory store as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenStoreTag> = Layer.effect(TokenStoreTag, makeMemory)

/**
 * How many notices a listener may fall behind before the oldest are dropped (the latest is always
 * kept, so a `changes` stream still reaches the newest entry).
 *
 * @since 0.2.0
 * @category models
 */
export const noticeCapacity = 16_384

// one subscription to a store's notices behind all its `changes` streams, routed by key: a notice
// wakes the streams of its key only, however many keys are followed
const routes = new WeakMap<Stream.Stream<Notice, StoreError>, (key: string) => Stream.Stream<Notice, StoreError>>()
const routeOf = (notices: Stream.Stream<Notice, StoreError>) => {
  let route = routes.get(notices)
  if (route === undefined) {
    // the newest notice of a key is enough: the entry is loaded anyway, so a burst costs one load
    route = Shared.keyed(notices, (notice) => notice.key, 1)
    routes.set(notices, route)
  }
  return route
}

/**
 * `changes` derived from a store's `notices`: the notices of `key`, each loading the entry (with
 * `identity`, as `load` checks it); only versions above the last passed on are emitted, and an entry
 * that cannot be read now is skipped (the source's next load reports it). However many keys are
 * followed, a store's `notices` is run once for all of them, and a notice wakes the streams of its key
 * only. Every built-in store's `changes` is this.
 *
 * @since 0.2.0
 * @category combinators
 */
export const changesFromNotices = (
  store: Pick<TokenStore, "notices" | "load">,
  key: string,
  identity?: string
): Stream.Stream<StoredToken, StoreError> =>
  Stream.suspend(() => {
    let last = -1
    return routeOf(store.notices)(key).pipe(
      // a notice of a version already passed on costs no load
      Stream.filter((notice) => notice.version === undefined || notice.version > last),
      Stream.mapEffect(() => Effect.orElseSucceed(store.load(key, identity), () => Option.none<StoredToken>())),
      Stream.filterMap((entry) => {
        if (Option.isNone(entry) || entry.value.version <= last) return Option.none()
        last = entry.value.version
        return entry
      })
    )
  })

/**
 * `refresh` for a store with no cross-process coordination: adopt a newer entry if one was written
 * (by another source in the process, or another process sharing a file), else fetch and write. A
 * store that cannot be read or written is logged and passed by: the fetched token is never lost.
 *
 * @since 0.1.0
 * @category combinators
 */
export const localRefresh = <E>(
  store: Pick<TokenStore, "name" | "load" | "save">,
  key: string,
  knownVersion: number,
  fetch: Effect.Effect<AccessToken, E>,
  identity?: string
): Effect.Effect<Refreshed, E> =>
  Effect.gen(function*() {
    const stored = yield* store.load(key, identity).pipe(
      Effect.catchAll((error) => logStoreError(error, Option.none()))
    )
    if (Option.isSome(stored) && stored.value.version > knownVersion) {
      return { entry: stored.value, fetched: false }
    }
    const token = yield* fetch
    const version = Math.max(knownVersion, Option.isSome(stored) ? stored.value.version : 0) + 1
    const entry: StoredToken = { token, version, identity }
    yield* store.save(key, entry).pipe(Effect.catchAll((error) => logStoreError(error, false)))
    return { entry, fetched: true }
  })

/**
 * `load` for a persistent store: the entry `read` found, after writing an entry of 0.1.0's format
 * again in the current one with `rewrite` (which tells whether it did: it must not replace an entry
 * changed meanwhile). A failed rewrite is only logged: the entry read is good, and the next load tries
 * again.
 *
 * @since 0.1.0
 * @category combinators
 */
export const loadUpgrading = (
  read: Effect.Effect<Option.Option<Decoded & { readonly text: string }>, StoreError>,
  rewrite: (text: string, entry: StoredToken) => Effect.Effect<boolean, StoreError>
): Effect.Effect<Option.Option<StoredToken>, StoreError> =>
  Effect.flatMap(read, (found) => {
    if (Option.isNone(found)) return Effect.succeed(Option.none())
    const { entry, legacy, text } = found.value
    if (!legacy) return Effect.succeed(Option.some(entry))
    return rewrite(text, entry).pipe(
      Effect.flatMap((done) =>
        done ? Effect.logInfo("token store entry rewritten in the current format") : Effect.void
      ),
      Effect.catchAll((error) => logStoreError(error, undefined)),
      Effect.as(Option.some(entry))
    )
  })

/**
 * Logs a store error (typed, no secrets in it) and goes on with a fallback value.
 *
 * @since 0.1.0
 * @category combinators
 */
export const logStoreError = <A>(error: StoreError, fallback: A): Effect.Effect<A> =>
  Effect.as(
    Effect.logWarning("token store failed; going on without it").pipe(
      Effect.annotateLogs({ error: error._tag, store: error.store, reason: error.reason, detail: error.detail })
    ),
    fallback
  )
