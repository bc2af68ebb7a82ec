import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect, List, Logger, LogLevel, Redacted } from "effect"
import { LineLogger } from "tokenwarden"

const date = new Date("2026-11-24T00:28:01.123Z")

describe("LineLogger", () => {
  it("writes durations as people write them, without spaces", () => {
    const cases: ReadonlyArray<readonly [Duration.DurationInput, string]> = [
      [0, "0ms"],
      [0.4, "0ms"],
      [250, "250ms"],
      [999.6, "1s"],
      [1000, "1s"],
      [1234, "1.234s"],
      ["1500 millis", "1.5s"],
      [Duration.seconds(59.999), "59.999s"],
      ["90 seconds", "1m30s"],
      ["1 hour", "1h"],
      [Duration.seconds(3605), "1h5s"],
      ["366 days", "366d"],
      [Duration.hours(26), "1d2h"],
      [Duration.infinity, "infinity"]
    ]
    for (const [input, expected] of cases) assert.strictEqual(LineLogger.formatDuration(input), expected, `${input}`)
  })

  it("one line: time, level, message, then key=value", () => {
    const line = LineLogger.format({
      date,
      level: "INFO",
      message: "token received",
      fields: [["provider", "demo"], ["scopes", "a b"], ["empty", ""], ["count", 3], ["ok", true]]
    })
    assert.strictEqual(
      line,
      "2026-11-24T00:28:01.123Z INFO  token received provider=demo scopes=\"a b\" empty=\"\" count=3 ok=true"
    )
  })

  it("renders _ms and _s numbers and Duration values as durations, drops the unit from the key; other numbers stay numbers", () => {
    const line = LineLogger.format({
      date,
      level: "WARN",
      message: "token request failed; retrying",
      fields: [
        ["retry_in_ms", 1000],
        ["expires_in_s", 3600],
        ["retry_after", Duration.millis(250)],
        ["attempt", 2],
        ["refresh_in_s", "never"]
      ]
    })
    assert.strictEqual(
      line,
      "2026-11-24T00:28:01.123Z WARN  token request failed; retrying retry_in=1s expires_in=1h retry_after=250ms attempt=2 refresh_in=never"
    )
  })

  it("keeps one event on one line: control characters escaped, quotes and = quoted", () => {
    const line = LineLogger.format({
      date,
      level: "ERROR",
      message: ["failed\nINFO forged line", "\u001b[31m"],
      fields: [["detail", "a=b \"c\"\r\nINFO forged"], ["path", "C:\\x"]]
    })
    assert.notInclude(line, "\n")
    assert.notInclude(line, "\r")
    assert.notInclude(line, "\u001b")
    assert.strictEqual(
      line,
      "2026-11-24T00:28:01.123Z ERROR failed\\nINFO forged line \\u001b[31m detail=\"a=b \\\"c\\\"\\r\\nINFO forged\" path=\"C:\\\\x\""
    )
  })

  it("prints a Redacted value as <redacted>, a Date as ISO, an object as JSON", () => {
    const line = LineLogger.format({
      date,
      level: "INFO",
      message: "values",
      fields: [["secret", Redacted.make("hunter2")], ["at", date], ["obj", { a: 1 }]]
    })
    assert.notInclude(line, "hunter2")
    assert.include(line, "secret=<redacted>")
    assert.include(line, "at=2026-11-24T00:28:01.123Z")
    assert.include(line, "obj=\"{\\\"a\\\":1}\"")
  })

  it.effect("as the Effect logger: annotations, spans and the cause, at the level's label", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const logger = LineLogger.make((line) => lines.push(line))
      yield* Effect.logWarning("token request failed; retrying").pipe(
        Effect.annotateLogs({ retry_in_ms: 1500, error: "ServerError" }),
        Effect.withLogSpan("refresh"),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      yield* Effect.logError("died", Cause.fail("boom")).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      yield* Effect.logDebug("hidden").pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Info)
      )
      assert.strictEqual(lines.length, 2)
      assert.match(
        lines[0]!,
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN {2}token request failed; retrying refresh=\d+ms (retry_in=1\.5s error=ServerError|error=ServerError retry_in=1\.5s)$/
      )
      assert.match(lines[1]!, /^\S+ ERROR died cause="Error: boom/)
    }))

  it("a failure without a message reads level then cause", () => {
    const line = LineLogger.format({ date, level: "ERROR", message: "", cause: Cause.fail("boom") })
    assert.match(line, /^2026-11-24T00:28:01\.123Z ERROR cause="Error: boom/)
  })

  it("formats a plain entry with spans and no fields", () => {
    const line = LineLogger.format({
      date,
      level: "INFO",
      message: "done",
      spans: List.make({ label: "run", startTime: date.getTime() - 90_000 })
    })
    assert.strictEqual(line, "2026-11-24T00:28:01.123Z INFO  done run=1m30s")
  })
})
