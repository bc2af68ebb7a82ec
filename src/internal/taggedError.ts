import type * as Cause from "effect/Cause"
import * as Schema from "effect/Schema"

/**
 * The mark every error of the library carries, whatever module defines it.
 *
 * @internal
 */
export const TypeId: unique symbol = Symbol.for("tokenwarden/Error")

/** @internal */
export type TypeId = typeof TypeId

/**
 * What every error of the library has besides its fields: the mark, a `_tag` to `catchTag`, and
 * whether retrying the same call later may succeed.
 *
 * @internal
 */
export interface TokenwardenError extends Cause.YieldableError {
  readonly [TypeId]: TypeId
  readonly _tag: string
  /** Whether retrying the same call later may succeed (5xx, 429, no answer); permanent errors are not retried. */
  readonly transient: boolean
}

/**
 * The two rules an error class states once: whether it is transient, and its message.
 *
 * @internal
 */
export interface Rules<A> {
  readonly transient: boolean | ((self: A) => boolean)
  readonly message: (self: A) => string
}

/**
 * The class `TaggedError` builds: a `Schema.TaggedError` class whose instances are `TokenwardenError`s.
 *
 * @internal
 */
export interface TaggedErrorClass<Self, Tag extends string, Fields extends Schema.Struct.Fields> extends
  Schema.Class<
    Self,
    Fields,
    Schema.Struct.Encoded<Fields>,
    Schema.Struct.Context<Fields>,
    Schema.Struct.Constructor<Omit<Fields, "_tag">>,
    {},
    TokenwardenError
  >
{
  readonly _tag: Tag
}

/**
 * The one way the library defines an error, modelled on `@effect/platform`'s `TypeIdError`: a
 * `Schema.TaggedError` (so it encodes, decodes and crosses processes) identified as
 * `tokenwarden/<Module>/<Tag>`, marked with `TypeId`, with `transient` and `message` stated once.
 *
 * @internal
 */
export const TaggedError = <Self = never>(module: string) =>
<Tag extends string, Fields extends Schema.Struct.Fields>(
  tag: Tag,
  fields: Fields,
  rules: Rules<Schema.Struct.Type<Fields>>
): TaggedErrorClass<Self, Tag, { readonly _tag: Schema.tag<Tag> } & Fields> => {
  const Base = Schema.TaggedError<{}>(`tokenwarden/${module}/${tag}`)(tag, fields)
  const { message, transient } = rules
  Object.defineProperties(Base.prototype, {
    [TypeId]: { value: TypeId },
    transient: typeof transient === "boolean"
      ? { get: () => transient, configurable: true }
      : {
        get(this: Schema.Struct.Type<Fields>) {
          return transient(this)
        },
        configurable: true
      },
    // not enumerable, as Error.prototype.message: JSON and inspect show the fields, not this
    message: {
      get(this: Schema.Struct.Type<Fields>) {
        return message(this)
      },
      configurable: true
    }
  })
  return Base as any
}

/**
 * Whether a value is an error the library failed with, from any module.
 *
 * @internal
 */
export const isTokenwardenError = (u: unknown): u is TokenwardenError =>
  typeof u === "object" && u !== null && TypeId in u
