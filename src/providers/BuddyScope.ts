/**
 * Buddy's scopes: the 16 its document lists, typed and autocompleted, and any other scope string a later
 * Buddy may add; the containments the document states, applied to the documented scopes only.
 * Re-exported by `Buddy`; use it from there.
 *
 * @since 0.1.0
 */
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"

/**
 * A scope Buddy's document lists, as a schema whose `literals` are all 16 in the document's order.
 *
 * @since 0.1.0
 * @category schemas
 */
export const KnownScope = Schema.Literal(
  "WORKSPACE",
  "PROJECT_DELETE",
  "REPOSITORY_READ",
  "REPOSITORY_WRITE",
  "EXECUTION_INFO",
  "EXECUTION_RUN",
  "EXECUTION_MANAGE",
  "USER_INFO",
  "USER_KEY",
  "USER_EMAIL",
  "INTEGRATION_INFO",
  "MEMBER_EMAIL",
  "MANAGE_EMAILS",
  "WEBHOOK_INFO",
  "WEBHOOK_ADD",
  "WEBHOOK_MANAGE"
)

/**
 * One of the 16 scopes Buddy's document lists.
 *
 * @since 0.1.0
 * @category models
 */
export type KnownScope = typeof KnownScope.Type

/**
 * A Buddy scope: one of the documented 16 (autocompleted), or any other scope string, so a scope Buddy
 * adds later needs no new release of tokenwarden.
 *
 * @since 0.1.0
 * @category models
 */
export type Scope = KnownScope | (string & {})

/**
 * A scope string Buddy can be sent: an RFC 6749 section 3.3 scope-token (printable ASCII but space, `"`
 * and `\`) without `+`, which joins Buddy's scopes on the wire.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Scope: Schema.Schema<Scope> = Schema.String.pipe(
  Schema.pattern(/^[\x21\x23-\x2a\x2c-\x5b\x5d-\x7e]+$/, { identifier: "BuddyScope" })
)

/**
 * Every documented scope, in the document's order.
 *
 * @since 0.1.0
 * @category constants
 */
export const allScopes: ReadonlyArray<KnownScope> = KnownScope.literals

/**
 * Whether a string is one of the 16 documented scopes.
 *
 * @since 0.1.0
 * @category guards
 */
export const isKnownScope: (u: unknown) => u is KnownScope = Schema.is(KnownScope)

/**
 * Whether a string can be sent as a Buddy scope, documented or not (see `Scope`).
 *
 * @since 0.1.0
 * @category guards
 */
export const isScope: (u: unknown) => u is Scope = Schema.is(Scope)

// Only the containments the document states ("contains ... rights"); WEBHOOK_MANAGE and WEBHOOK_ADD
// read alike but the document does not say that one contains the other, so neither is assumed.
const contains: Readonly<Partial<Record<KnownScope, ReadonlyArray<KnownScope>>>> = {
  REPOSITORY_WRITE: ["REPOSITORY_READ"],
  EXECUTION_RUN: ["EXECUTION_INFO"],
  EXECUTION_MANAGE: ["EXECUTION_RUN"],
  MANAGE_EMAILS: ["USER_EMAIL"]
}

/**
 * The scopes a scope grants: itself and, transitively, every scope it contains
 * (`EXECUTION_MANAGE` grants `EXECUTION_RUN` and `EXECUTION_INFO`). A scope the document does not list
 * grants itself only: no containment is assumed for it.
 *
 * @since 0.1.0
 * @category getters
 */
export const implied = (scope: Scope): ReadonlyArray<Scope> => {
  const out: Array<Scope> = [scope]
  for (let i = 0; i < out.length; i++) {
    const current = out[i]!
    for (const inner of isKnownScope(current) ? contains[current] ?? [] : []) if (!out.includes(inner)) out.push(inner)
  }
  return out
}

// the documented scopes in the document's order, then the others in the order given, each once
const ordered = (scopes: ReadonlySet<string>): ReadonlyArray<Scope> => [
  ...allScopes.filter((s) => scopes.has(s)),
  ...[...scopes].filter((s) => !isKnownScope(s))
]

/**
 * Every scope a list grants, contained ones included: the documented ones in the document's order,
 * then any other (non-empty) scope as it is, without containments.
 *
 * @since 0.1.0
 * @category combinators
 */
export const expand = (scopes: Iterable<string>): ReadonlyArray<Scope> => {
  const granted = new Set<string>()
  for (const scope of scopes) if (scope !== "") { for (const s of implied(scope)) granted.add(s) }
  return ordered(granted)
}

/**
 * Whether the granted scopes cover the needed ones, containments included:
 * `covers(["EXECUTION_MANAGE"], "EXECUTION_INFO")` is true. A scope the document does not list is
 * covered only by itself.
 *
 * @example
 * ```ts
 * import { Buddy } from "tokenwarden"
 *
 * Buddy.covers(["REPOSITORY_WRITE"], ["REPOSITORY_READ"]) // true
 * Buddy.covers(["USER_EMAIL"], "MANAGE_EMAILS") // false
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const covers: {
  (needed: Scope | Iterable<Scope>): (granted: Iterable<string>) => boolean
  (granted: Iterable<string>, needed: Scope | Iterable<Scope>): boolean
} = dual(2, (granted: Iterable<string>, needed: Scope | Iterable<Scope>): boolean => {
  const have = new Set<string>(expand(granted))
  const want: Iterable<Scope> = typeof needed === "string" ? [needed] : needed
  for (const scope of want) if (!have.has(scope)) return false
  return true
})

/**
 * The shortest list granting the same: duplicates and documented scopes contained in others dropped,
 * the documented ones in the document's order, then the others as given
 * (`["EXECUTION_INFO", "EXECUTION_MANAGE", "EXECUTION_RUN"]` is `["EXECUTION_MANAGE"]`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const normalize = (scopes: Iterable<Scope>): ReadonlyArray<Scope> => {
  const given = new Set<string>(scopes)
  const contained = new Set<string>()
  for (const scope of given) for (const inner of implied(scope).slice(1)) contained.add(inner)
  return ordered(new Set([...given].filter((s) => !contained.has(s))))
}
