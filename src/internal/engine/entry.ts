/**
 * One token's record in the engine, and the groups and endpoints records share. Its times (`deadline`,
 * `usableUntil`, `expiry`, `dueAt`, `lastUsed`) are monotonic milliseconds (`internal/monotonic`). @internal
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
import type { Fifo } from "../fifo.js"

/** Where a token's request stands. @internal */
export const Phase = { Idle: 0, Queued: 1, Running: 2 } as const

/** @internal */
export type Phase = (typeof Phase)[keyof typeof Phase]

/** What a token's last request came to (`Refreshing` is `Valid` with a request running). @internal */
export const Status = { Pending: 0, Valid: 1, Retrying: 2, Failed: 3 } as const

/** @internal */
export type Status = (typeof Status)[keyof typeof Status]

/** The token endpoints of one URL, whatever the client: they share the request cap and its queues. @internal */
export interface Group {
  readonly url: string
  active: number
  readonly urgent: Fifo<Entry>
  readonly background: Fifo<Entry>
  failing: boolean
  /** How far our clock is ahead of the server's, from the last token received that said. */
  clockOffset: number | undefined
}

/** The endpoint options of every key with equal options (URL, client, timeout…), kept once. @internal */
export interface Endpoint {
  readonly key: string
  readonly options: TokenEndpoint.Options
  /** The name in logs and metrics, as `TokenEndpoint` shows it (one string shared by all). */
  readonly provider: string
  readonly group: Group
  refs: number
}

/** A token's place in a `TokenStore`: the identity checked on every read, the version held. @internal */
export interface Stored {
  readonly identity: string
  /** Where an entry of tokenwarden 0.1.0 may still be. */
  readonly legacyKey: string | undefined
  version: number
  /** The store was read once (at the first attempt), so a restart reuses what it holds. */
  loaded: boolean
}

/** What only some tokens need at a time, in a side object dropped when empty. @internal */
export class Rare {
  waiters: Deferred.Deferred<AccessToken, TokenError> | undefined = undefined
  listeners: Set<Queue.Queue<TokenState>> | undefined = undefined
  error: TokenError | undefined = undefined
  attempt = 0
  retryState: unknown = undefined
  prompt: DeviceFlow.Prompt | undefined = undefined
  stored: Stored | undefined = undefined
}

const noRare = new Rare()
const rareNames = Object.keys(noRare) as Array<keyof Rare>

// bits of `flags` after the phase (2 bits) and the status (2 bits)
const flagNames = [
  "urgent",
  "dormant",
  "released",
  // the grant can run (again): not a refresh-token grant, nor an authorization code redeemed
  "grantUsable",
  "refreshRefused",
  "invalidated",
  // past its first fetch (a source's `make`): a proxy's error page is passing from then on
  "started",
  // a caller's `refresh` sent the one request it may send in this step of the slow schedule
  "stepUsed",
  // `getValidFor` sent a request for the token held: it gets the freshest token, not another request
  "validForSent"
] as const
const bit = (name: (typeof flagNames)[number]): number => 1 << (4 + flagNames.indexOf(name))

/** The flags that keep a token from being handed out at once (`flags & Asleep`): released, dormant. @internal */
export const Asleep = bit("released") | bit("dormant")

/**
 * One token: a plain record of ten fields, its flags packed in one small integer and what is rare in
 * a side object (a pool holds 100,000), both read through accessors on the prototype. It keeps the
 * grant and a shared `Endpoint`, not the credential it was made from. @internal
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- defined on the prototype below
export interface Entry extends Rare, Record<(typeof flagNames)[number], boolean> {
  phase: Phase
  status: Status
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging -- the accessors are below
export class Entry implements HeapItem {
  deadline = 0
  heapIndex = -1
  /** The last token received; after `invalidate` no longer handed out, but still what a request replaces. */
  token: AccessToken | undefined = undefined
  /** 0 while there is no token to hand out: `now < usableUntil` is the whole hot-path check. */
  usableUntil = 0
  /** When `token` expires (`Infinity` without an expiry). */
  expiry = 0
  /** When the next request is due: the refresh time, or the next retry. */
  dueAt = Infinity
  lastUsed: number
  flags: number
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
    this.flags = grant._tag === "RefreshToken" ? 0 : bit("grantUsable")
  }

  get group(): Group {
    return this.endpoint.group
  }

  /** The refresh token to use: the last token's, or the grant's own before any; none once refused. */
  get refreshToken(): Redacted.Redacted<string> | undefined {
    if (this.refreshRefused) return undefined
    if (this.token !== undefined) return this.token.refreshToken
    return this.grant._tag === "RefreshToken" ? this.grant.refreshToken : undefined
  }

  accept(token: AccessToken): void {
    this.token = token
    this.refreshRefused = false
    this.invalidated = false
  }

  /** Drops the side object once nothing in it is needed. */
  tidy(): void {
    const rare = this.rare
    if (rare !== undefined && rareNames.every((name) => rare[name] === noRare[name])) this.rare = undefined
  }
}

// The accessors of the packed fields and of the side object's, defined once on the prototype.
const packed = (shift: number, mask: number): PropertyDescriptor => ({
  get(this: Entry) {
    return (this.flags >> shift) & mask
  },
  set(this: Entry, value: number) {
    this.flags = (this.flags & ~(mask << shift)) | (value << shift)
  }
})
const flag = (bit: number): PropertyDescriptor => ({
  get(this: Entry) {
    return (this.flags & bit) !== 0
  },
  set(this: Entry, on: boolean) {
    this.flags = on ? this.flags | bit : this.flags & ~bit
  }
})
const side = (name: keyof Rare): PropertyDescriptor => ({
  get(this: Entry) {
    return (this.rare ?? noRare)[name]
  },
  set(this: Entry, value: never) {
    ;(this.rare ??= new Rare())[name] = value
  }
})
Object.defineProperties(Entry.prototype, {
  phase: packed(0, 0b11),
  status: packed(2, 0b11),
  ...Object.fromEntries(flagNames.map((name) => [name, flag(bit(name))])),
  ...Object.fromEntries(rareNames.map((name) => [name, side(name)]))
})
