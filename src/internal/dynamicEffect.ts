import type * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import { SingleShotGen, YieldWrap } from "effect/Utils"

interface Dynamic {
  commit(): Effect.Effect<unknown, unknown>
}

const DynamicProto: object = Object.assign(Object.create(Effectable.CommitPrototype), {
  [Symbol.iterator](this: Dynamic) {
    return new SingleShotGen(new YieldWrap(this.commit()))
  }
})

/**
 * An effect evaluated anew each time it runs, as `Effect.suspend(evaluate)` is. Under `yield*` it
 * evaluates at the moment the generator reaches it (which is when it runs) and hands the generator
 * what it evaluated to: a valid cached token is then one `Exit`, the cost of a `Ref.get`, where
 * `suspend` costs two operations. Run any other way (`flatMap`, `Effect.all`), it is `suspend`.
 *
 * @internal
 */
export const dynamic = <A, E>(evaluate: () => Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const self = Object.create(DynamicProto) as Dynamic
  self.commit = evaluate
  return self as unknown as Effect.Effect<A, E>
}
