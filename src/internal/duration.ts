import * as Duration from "effect/Duration"

/**
 * A duration as people write it, without spaces: `250ms`, `1.5s`, `1m30s`, `1h`, `366d`. For log lines
 * and error messages.
 *
 * @internal
 */
export const formatDuration = (input: Duration.DurationInput): string => {
  const duration = Duration.decode(input)
  if (!Duration.isFinite(duration)) return "infinity"
  const millis = Math.round(Duration.toMillis(duration))
  if (millis < 1000) return `${Math.max(0, millis)}ms`
  if (millis < 60_000) return `${Number((millis / 1000).toFixed(3))}s`
  let seconds = Math.round(millis / 1000)
  let out = ""
  for (const [unit, size] of units) {
    if (seconds >= size) {
      out += `${Math.floor(seconds / size)}${unit}`
      seconds %= size
    }
  }
  return out
}

const units: ReadonlyArray<readonly [string, number]> = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]]
