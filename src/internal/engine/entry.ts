/**
 * One token's record in the engine, and the groups and endpoints records share. Its times (`deadline`,
 * `usableUntil`, `expiry`, `dueAt`, `lastUsed`) are monotonic milliseconds (`internal/monotonic`).
 *
 * @internal
 */
import type * as Deferred from "effect/Deferred"
import type * as Queue from "effect/Queue"
import type * as Redacted from "effect/Redacted"
import type { AccessToken } from "../../AccessToken.js"
import type * as DeviceFlow from "../../DeviceFlow.js"
import type * as Grant from "../../Grant.js"
import type * as TokenEndpoint from "../../TokenEndpoint.js"
import type { TokenError } from "../../TokenError.js"
import type { TokenState } from "../../TokenState.js"
import type { HeapItem } from "../deadlineHeap.js"

/**
 * Where a token's request stands.
 *
 * @internal
 */
export const Phase = { Idle: 0, Queued: 1, Running: 2 } as const

/** @internal */
export type Phase = (typeof Phase)[keyof typeof Phase]

/**
 * What a token's last request came to (`Refreshing` is `Valid` with a request running).
 *
 * @internal
 */
export const Status = { Pending: 0, Valid: 1, Retrying: 2, Failed: 3 } as const

/** @internal */
export type Status = (typeof Status)[keyof typeof Status]

/**
 * The token endpoints of one URL (whatever the client): they share the cap on concurrent requests
 * and its queues.
 *
 * @internal
 */
export interface Group {
  readonly url: string
  active: number
  readonly urgent: Fifo<Entry>
  readonly background: Fifo<Entry>
  failing: boolean
  /** How far our clock is ahead of the server's, from the last token received that said (see `AccessToken`). */
  clockOffset: number | undefined
}

/**
 * The endpoint options of every key with equal options (URL, client, timeout…), kept once. Its `id`
 * stands for all of them in the keys of its tokens.
 *
 * @internal
 */
export interface Endpoint {
  readonly id: number
  readonly key: string
  readonly options: TokenEndpoint.Options
  /** The endpoint's name in logs and metrics, as `TokenEndpoint` shows it (one string shared by all). */
  readonly provider: string
  /** Its URL's group; `group.url` is the URL as `TokenEndpoint` shows it. */
  readonly group: Group
  refs: number
}

/**
 * How a token is kept in a `TokenStore`: the credential's identity (checked on every read), the
 * version held, and where an entry of tokenwarden 0.1.0 may still be.
 *
 * @internal
 */
export interface Stored {
  readonly identity: string
  readonly legacyKey: string | undefined
  version: number
  /** The store was read once (at the first attempt), so a restart reuses what it holds. */
  loaded: boolean
}

/**
 * What only some tokens need at a time: callers waiting for a request, change listeners, the last
 * error and the retry schedule's state while the provider fails, the device flow's prompt, the
 * store's bookkeeping. Dropped when empty.
 *
 * @internal
 */
export class Rare {
  waiters: Deferred.Deferred<AccessToken, TokenError> | undefined = undefined
  listeners: Set<Queue.Queue<TokenState>> | undefined = undefined
  error: TokenError | undefined = undefined
  attempt = 0
  retryState: unknown = undefined
  prompt: DeviceFlow.Prompt | undefined = undefined
  stored: Stored | undefined = undefined
}

const PHASE = 0b11
const STATUS_SHIFT = 2
const STATUS = 0b11 << STATUS_SHIFT
const URGENT = 1 << 4
const DORMANT = 1 << 5
const RELEASED = 1 << 6
const GRANT_SPENT = 1 << 7
const REFRESH_REFUSED = 1 << 8
const INVALIDATED = 1 << 9
const STARTED = 1 << 10
const STEP_USED = 1 << 11
const VALID_FOR_SENT = 1 << 12

/**
 * One token: a plain record of twelve fields (flags packed in one small integer, what is rare
 * in a side object), mutated only by code that does not yield in between (JS runs one fiber at a
 * time), so it needs no Ref. A record keeps the grant and a shared `Endpoint`, not the credential
 * object it was made from, and no `TokenEndpoint` (one per client id would cost kilobytes per token).
 *
 * @internal
 */
export class Entry implements HeapItem {
  deadline = 0
  heapIndex = -1
  /** The last token received; after `invalidate` it is no longer handed out, but a new request still replaces it. */
  token: AccessToken | undefined = undefined
  /** 0 while there is no token to hand out: `now < usableUntil` is the whole hot-path check. */
  usableUntil = 0
  /** When `token` expires (`Infinity` without an expiry; 0 for a stored one held only to be refreshed). */
  expiry = 0
  /** When the next request is due: the refresh time, or the next retry. */
  dueAt = Infinity
  lastUsed: number
  flags = 0
  rare: Rare | undefined = undefined

  constructor(
    readonly key: string,
    readonly grant: Grant.Grant,
    /** Replaced when a caller's credential brings a rotated client secret (`Engine.unsafeRebind`). */
    public endpoint: Endpoint,
    now: number
  ) {
    this.lastUsed = now
    // a refresh-token grant is just its refresh token: it cannot run again once that one is rotated
    if (grant._tag === "RefreshToken") this.flags |= GRANT_SPENT
  }

  get group(): Group {
    return this.endpoint.group
  }

  get phase(): Phase {
    return (this.flags & PHASE) as Phase
  }
  set phase(phase: Phase) {
    this.flags = (this.flags & ~PHASE) | phase
  }
  get status(): Status {
    return ((this.flags & STATUS) >> STATUS_SHIFT) as Status
  }
  set status(status: Status) {
    this.flags = (this.flags & ~STATUS) | (status << STATUS_SHIFT)
  }
  get urgent(): boolean {
    return (this.flags & URGENT) !== 0
  }
  set urgent(on: boolean) {
    this.set(URGENT, on)
  }
  get dormant(): boolean {
    return (this.flags & DORMANT) !== 0
  }
  set dormant(on: boolean) {
    this.set(DORMANT, on)
  }
  get released(): boolean {
    return (this.flags & RELEASED) !== 0
  }
  set released(on: boolean) {
    this.set(RELEASED, on)
  }
  /** The grant can run (again): not a refresh-token grant, nor an authorization code already redeemed. */
  get grantUsable(): boolean {
    return (this.flags & GRANT_SPENT) === 0
  }
  set grantUsable(on: boolean) {
    this.set(GRANT_SPENT, !on)
  }
  /** Past its first fetch (a source's `make`): a proxy's error page is taken as passing from then on. */
  get started(): boolean {
    return (this.flags & STARTED) !== 0
  }
  set started(on: boolean) {
    this.set(STARTED, on)
  }
  /** A caller's `refresh` already sent the one request it may send in this step of the slow schedule. */
  get stepUsed(): boolean {
    return (this.flags & STEP_USED) !== 0
  }
  set stepUsed(on: boolean) {
    this.set(STEP_USED, on)
  }
  /** `getValidFor` sent a request for the token held: it gets the freshest token, not another request. */
  get validForSent(): boolean {
    return (this.flags & VALID_FOR_SENT) !== 0
  }
  set validForSent(on: boolean) {
    this.set(VALID_FOR_SENT, on)
  }
  get invalidated(): boolean {
    return (this.flags & INVALIDATED) !== 0
  }
  set invalidated(on: boolean) {
    this.set(INVALIDATED, on)
  }

  /** The refresh token to use: the last token's, or the grant's own before any; none once refused. */
  get refreshToken(): Redacted.Redacted<string> | undefined {
    if ((this.flags & REFRESH_REFUSED) !== 0) return undefined
    if (this.token !== undefined) return this.token.refreshToken
    return this.grant._tag === "RefreshToken" ? this.grant.refreshToken : undefined
  }
  refuseRefreshToken(): void {
    this.flags |= REFRESH_REFUSED
  }
  accept(token: AccessToken): void {
    this.token = token
    this.flags &= ~(REFRESH_REFUSED | INVALIDATED)
  }

  get waiters(): Deferred.Deferred<AccessToken, TokenError> | undefined {
    return this.rare?.waiters
  }
  set waiters(waiters: Deferred.Deferred<AccessToken, TokenError> | undefined) {
    this.more().waiters = waiters
  }
  get listeners(): Set<Queue.Queue<TokenState>> | undefined {
    return this.rare?.listeners
  }
  set listeners(listeners: Set<Queue.Queue<TokenState>> | undefined) {
    this.more().listeners = listeners
  }
  get error(): TokenError | undefined {
    return this.rare?.error
  }
  set error(error: TokenError | undefined) {
    this.more().error = error
  }
  get attempt(): number {
    return this.rare?.attempt ?? 0
  }
  set attempt(attempt: number) {
    this.more().attempt = attempt
  }
  get retryState(): unknown {
    return this.rare?.retryState
  }
  set retryState(state: unknown) {
    this.more().retryState = state
  }
  get prompt(): DeviceFlow.Prompt | undefined {
    return this.rare?.prompt
  }
  set prompt(prompt: DeviceFlow.Prompt | undefined) {
    this.more().prompt = prompt
  }
  get stored(): Stored | undefined {
    return this.rare?.stored
  }
  set stored(stored: Stored | undefined) {
    this.more().stored = stored
  }

  /** Drops the side object once nothing in it is needed. */
  tidy(): void {
    const rare = this.rare
    if (
      rare !== undefined && rare.waiters === undefined && rare.listeners === undefined && rare.error === undefined &&
      rare.retryState === undefined && rare.prompt === undefined && rare.stored === undefined
    ) {
      this.rare = undefined
    }
  }

  private more(): Rare {
    return (this.rare ??= new Rare())
  }

  private set(bit: number, on: boolean): void {
    this.flags = on ? this.flags | bit : this.flags & ~bit
  }
}

/**
 * A first-in first-out queue on an array with a moving head (`Array.shift` is O(n)).
 *
 * @internal
 */
export class Fifo<A> {
  private items: Array<A | undefined> = []
  private head = 0

  get length(): number {
    return this.items.length - this.head
  }

  push(item: A): void {
    this.items.push(item)
  }

  shift(): A | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }
}
