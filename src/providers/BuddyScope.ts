/**
 * Buddy's 16 OAuth scopes and the containments its document states, to check what a token may do.
 * Re-exported by `Buddy`; use it from there.
 *
 * @since 0.1.0
 */
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"

/**
 * A Buddy scope, as a schema whose `literals` list all 16 in the document's order.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Scope = Schema.Literal(
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
 * One of Buddy's 16 scopes.
 *
 * @since 0.1.0
 * @category models
 */
export type Scope = typeof Scope.Type

/**
 * Every scope, in the document's order.
 *
 * @since 0.1.0
 * @category constants
 */
export const allScopes: ReadonlyArray<Scope> = Scope.literals

/**
 * Whether a string is one of Buddy's scopes.
 *
 * @since 0.1.0
 * @category guards
 */
export const isScope: (u: unknown) => u is Scope = Schema.is(Scope)

// Only the containments the document states ("contains ... rights"); WEBHOOK_MANAGE and WEBHOOK_ADD
// read alike but the document does not say that one contains the other, so neither is assumed.
const contains: Readonly<Partial<Record<Scope, ReadonlyArray<Scope>>>> = {
  REPOSITORY_WRITE: ["REPOSITORY_READ"],
  EXECUTION_RUN: ["EXECUTION_INFO"],
  EXECUTION_MANAGE: ["EXECUTION_RUN"],
  MANAGE_EMAILS: ["USER_EMAIL"]
}

/**
 * The scopes a scope grants: itself and, transitively, every scope it contains
 * (`EXECUTION_MANAGE` grants `EXECUTION_RUN` and `EXECUTION_INFO`).
 *
 * @since 0.1.0
 * @category getters
 */
export const implied = (scope: Scope): ReadonlyArray<Scope> => {
  const out: Array<Scope> = [scope]
  for (let i = 0; i < out.length; i++) {
    for (const inner of contains[out[i]!] ?? []) if (!out.includes(inner)) out.push(inner)
  }
  return out
}

/**
 * Every scope a list grants, contained ones included, in the document's order. Strings that are not
 * Buddy scopes (from a server's answer) are ignored.
 *
 * @since 0.1.0
 * @category combinators
 */
export const expand = (scopes: Iterable<string>): ReadonlyArray<Scope> => {
  const granted = new Set<Scope>()
  for (const scope of scopes) if (isScope(scope)) { for (const s of implied(scope)) granted.add(s) }
  return allScopes.filter((s) => granted.has(s))
}

/**
 * Whether the granted scopes cover the needed ones, containments included:
 * `covers(["EXECUTION_MANAGE"], "EXECUTION_INFO")` is true.
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
  const have = new Set(expand(granted))
  const want: Iterable<Scope> = typeof needed === "string" ? [needed] : needed
  for (const scope of want) if (!have.has(scope)) return false
  return true
})

/**
 * The shortest list granting the same: duplicates and scopes contained in others dropped, in the
 * document's order (`["EXECUTION_INFO", "EXECUTION_MANAGE", "EXECUTION_RUN"]` is `["EXECUTION_MANAGE"]`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const normalize = (scopes: Iterable<Scope>): ReadonlyArray<Scope> => {
  const given = new Set(scopes)
  const contained = new Set<Scope>()
  for (const scope of given) for (const inner of implied(scope).slice(1)) contained.add(inner)
  return allScopes.filter((s) => given.has(s) && !contained.has(s))
}
