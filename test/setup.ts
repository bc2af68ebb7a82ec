/**
 * Runs before every test file (vitest `setupFiles`): installs the secret sweep (`test/sweep.ts`).
 *
 * The sweep's logger and tracer become the defaults every fiber starts with, by changing the initial
 * values of the two fiber refs that hold them: no test has to provide anything, and a test that
 * replaces the logger or the tracer for itself still works as before. Every log level is let
 * through, so that debug lines are swept too; the sweep's logger takes the place of the console one
 * (which `it.effect` removes anyway), so that the debug lines do not flood the test output.
 */
import { Context, DefaultServices, FiberRef, HashSet, Logger, LogLevel, Tracer } from "effect"
import { afterEach, beforeEach } from "vitest"
import * as Sweep from "./sweep.js"

// `initial` is internal to effect: the value a fiber ref has where nothing set it
const setInitial = <A>(ref: FiberRef.FiberRef<A>, f: (initial: A) => A) => {
  const internal = ref as unknown as { initial: A }
  internal.initial = f(internal.initial)
}

setInitial(
  FiberRef.currentLoggers,
  (loggers) => loggers.pipe(HashSet.remove(Logger.defaultLogger), HashSet.add(Sweep.logger))
)
setInitial(FiberRef.currentMinimumLogLevel, () => LogLevel.All)
setInitial(
  DefaultServices.currentServices,
  (services) => Context.add(services, Tracer.Tracer, Sweep.tracer(Context.get(services, Tracer.Tracer)))
)

beforeEach(() => Sweep.reset())
afterEach(() => Sweep.check())
