/**
 * Log lines for people: one line per event, `time level message key=value`, with durations written as
 * people write them (`1s`, `250ms`, `1h5m`). The demo, every example and `tokenwarden/node` print
 * this way.
 *
 * Annotations stay machine-friendly for other loggers (`retry_in_ms: 1000`); only this format renders
 * a number under a key ending in `_ms` or `_s`, or a `Duration`, as a duration (`retry_in=1s`), and
 * drops that unit from the key whatever the value (`refresh_in=never`).
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Inspectable from "effect/Inspectable"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as internal from "./internal/duration.js"

/**
 * One event, as `format` takes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Entry {
  readonly date: Date
  /** The level's label: `INFO`, `WARN`, `ERROR`, `DEBUG`… */
  readonly level: string
  /** Text, or several parts joined by a space (as `Effect.log("a", "b")` gives them). */
  readonly message: unknown
  readonly fields?: Iterable<readonly [string, unknown]> | undefined
  /** Log spans (`Effect.withLogSpan`): each printed as `label=<time since it started>`. */
  readonly spans?: Iterable<{ readonly label: string; readonly startTime: number }> | undefined
  readonly cause?: Cause.Cause<unknown> | undefined
}

/**
 * A duration as people write it, without spaces so that it needs no quotes: `250ms`, `1.5s`, `1m30s`,
 * `1h`, `366d`; below a millisecond, `0ms`. From a minute up, whole seconds.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatDuration: (input: Duration.DurationInput) => string = internal.formatDuration

// control characters would break the one-line promise (and can forge a line): escaped by JSON.stringify
const needsQuotes = (text: string) => text === "" || /[\s"=\\\p{Cc}]/u.test(text)
const quote = (text: string) => needsQuotes(text) ? JSON.stringify(text) : text
const unitSuffix = /^(.+)_(ms|s)$/

const text = (value: unknown): string =>
  typeof value === "string"
    ? value
    : Duration.isDuration(value)
    ? formatDuration(value)
    : value instanceof Date
    ? value.toISOString()
    : Redacted.isRedacted(value)
    ? String(value)
    : Inspectable.toStringUnknown(value, 0)

// `retry_in_ms: 1000` reads `retry_in=1s` (and `refresh_in_s: "never"` reads `refresh_in=never`); any
// other value is printed as itself, quoted when needed
const field = (key: string, value: unknown): string => {
  const unit = unitSuffix.exec(key)
  if (unit === null) return `${key}=${quote(text(value))}`
  if (typeof value === "number" && Number.isFinite(value)) {
    return `${unit[1]}=${formatDuration(unit[2] === "ms" ? Duration.millis(value) : Duration.seconds(value))}`
  }
  return `${unit[1]}=${quote(text(value))}`
}

// the message is free text, so it is not quoted; a line break in it is escaped, never printed
const message = (value: unknown): string =>
  Arr.ensure(value).map(text).join(" ").replace(/\p{Cc}/gu, (c) => JSON.stringify(c).slice(1, -1))

/**
 * One event as one line: `2026-11-24T00:28:01.123Z INFO  token received expires_in=1h refresh_in=45m`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (entry: Entry): string => {
  const said = message(entry.message)
  // a failure logged without a message (runMain's, say) reads `ERROR cause=…`
  const parts = said === ""
    ? [entry.date.toISOString(), entry.level]
    : [entry.date.toISOString(), entry.level.padEnd(5), said]
  if (entry.cause !== undefined && !Cause.isEmpty(entry.cause)) {
    parts.push(field("cause", Cause.pretty(entry.cause, { renderErrorCause: true })))
  }
  for (const span of entry.spans ?? []) {
    parts.push(`${span.label}=${formatDuration(entry.date.getTime() - span.startTime)}`)
  }
  for (const [key, value] of entry.fields ?? []) parts.push(field(key, value))
  return parts.join(" ").trimEnd()
}

/**
 * The lines as a `Logger`'s output, for composing (`Logger.withConsoleError`, `Logger.batched`…).
 *
 * @since 0.1.0
 * @category constructors
 */
export const formatter: Logger.Logger<unknown, string> = Logger.make((
  { annotations, cause, date, logLevel, message, spans }
) => format({ date, level: logLevel.label, message, fields: annotations, spans, cause }))

/**
 * A logger that writes each line with `write`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (write: (line: string) => void): Logger.Logger<unknown, void> => Logger.map(formatter, write)

/**
 * The lines on the console (`console.log`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const logger: Logger.Logger<unknown, void> = Logger.withConsoleLog(formatter)

/**
 * Replaces Effect's default logger with `logger`. With `NodeRuntime.runMain`, pass
 * `{ disablePrettyLogger: true }`, or both print.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never> = Logger.replace(Logger.defaultLogger, logger)
