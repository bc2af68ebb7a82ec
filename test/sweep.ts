/**
 * The secret sweep: what a test produced that a user could see (log lines, failures, spans, child
 * process output) is gathered here while it runs, and `check` (run after every test by
 * `test/setup.ts`) fails the test when any of it shows a test secret (`test/secrets.ts`).
 *
 * How the sweep learns what a test produced, without the test's help:
 * - log lines: a logger installed as a default of every fiber keeps each line, rendered inside the
 *   fiber as a user's logger would render it (logfmt, JSON, the cause with `Cause.pretty`);
 * - failures: a tracer installed as the default wraps Effect's own and keeps the exit of every span
 *   that ends in failure; each of tokenwarden's operations runs in a span, so every error it returns
 *   passes through one. They are rendered after the test, outside any fiber, as a program that prints
 *   an error it got (`String`, `JSON.stringify`, `util.inspect`, `Cause.pretty`) does. The platform's
 *   own client spans are the exception: their errors are rendered as an exporter takes them;
 * - spans: their names, attributes and events, as an exporter would send them;
 * - whatever a test hands over itself: `failure` (an error it inspects), `output` (a child's stdout
 *   and stderr).
 */
import { Cause, Exit, Inspectable, Logger, Tracer } from "effect"
import * as Util from "node:util"
import * as Secrets from "./secrets.js"

interface Seen {
  readonly where: string
  readonly texts: () => ReadonlyArray<string>
}

const MAX_FAILURES = 1000

let seen: Array<Seen> = []
let failures = new Set<unknown>()

const json = (u: unknown): string => {
  try {
    return JSON.stringify(u) ?? ""
  } catch (e) {
    return `<JSON.stringify threw: ${String(e)}>`
  }
}

/** Every way a program prints a failure. */
export const renderings = (error: unknown): ReadonlyArray<string> => [
  String(error),
  json(error),
  Util.inspect(error, { depth: 10 }),
  Inspectable.format(error),
  Cause.pretty(Cause.fail(error))
]

const renderCause = (cause: Cause.Cause<unknown>): ReadonlyArray<string> => [
  Cause.pretty(cause),
  ...[...Cause.failures(cause), ...Cause.defects(cause)].flatMap(renderings)
]

/** Forgets what the previous test produced. */
export const reset = (): void => {
  seen = []
  failures = new Set()
}

/** Keeps a failure (an error, or a `Cause`) to render after the test. */
export const failure = (where: string, error: unknown): void => {
  if (failures.has(error) || failures.size >= MAX_FAILURES) return
  failures.add(error)
  seen.push({
    where,
    texts: () => Cause.isCause(error) ? renderCause(error) : renderings(error)
  })
}

/** Keeps text a child process wrote. */
export const output = (where: string, text: string): void => {
  seen.push({ where, texts: () => [text] })
}

/** The default logger of every fiber in the test process: keeps every line. */
export const logger = Logger.make((options) => {
  const lines = [Logger.logfmtLogger.log(options), Logger.jsonLogger.log(options)]
  seen.push({ where: "log line", texts: () => lines })
  if (!Cause.isEmpty(options.cause)) failure("logged cause", options.cause)
})

/** Wraps a tracer so that every span's name, attributes, events and failure are kept. */
export const tracer = (inner: Tracer.Tracer): Tracer.Tracer =>
  Tracer.make({
    context: (f, fiber) => inner.context(f, fiber),
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = inner.span(name, parent, context, links, startTime, kind, options)
      const attributes = new Map<string, unknown>()
      const events: Array<string> = []
      const attribute = span.attribute.bind(span)
      const event = span.event.bind(span)
      const end = span.end.bind(span)
      span.attribute = (key, value) => {
        attributes.set(key, value)
        attribute(key, value)
      }
      span.event = (eventName, time, eventAttributes) => {
        events.push(`${eventName} ${json(eventAttributes)}`)
        event(eventName, time, eventAttributes)
      }
      span.end = (endTime, exit) => {
        end(endTime, exit)
        seen.push({
          where: `span ${name}`,
          texts: () => [name, ...[...attributes].map(([k, v]) => `${k}=${Inspectable.toStringUnknown(v)}`), ...events]
        })
        if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
          // the platform's client span ends with the platform's own error, which tokenwarden never hands
          // to the user (it hands over a copy without credentials): of that one, only what an exporter
          // takes (Cause.pretty: messages and stacks)
          if (name.startsWith("http.client")) {
            const cause = exit.cause
            seen.push({ where: `failure of span ${name}`, texts: () => [Cause.pretty(cause)] })
          } else {
            failure(`failure of span ${name}`, exit.cause)
          }
        }
      }
      for (const [key, value] of Object.entries(options?.attributes ?? {})) attributes.set(key, value)
      return span
    }
  })

/** Every test secret that what the test produced shows, and where. */
export const leaks = (): ReadonlyArray<string> =>
  seen.flatMap(({ texts, where }) =>
    texts().flatMap((text) => Secrets.found(text).map((secret) => `${where}: ${secret} in ${text.slice(0, 400)}`))
  )

/** Throws when what the test produced shows a test secret. */
export const check = (): void => {
  const found = leaks()
  reset()
  if (found.length > 0) {
    throw new Error(`secret sweep: a test secret leaked\n${found.slice(0, 5).join("\n")}`)
  }
}
