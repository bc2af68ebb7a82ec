/** Small numeric helpers shared by the scenarios and the report. */

export const percentile = (values: ArrayLike<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export const median = (values: ReadonlyArray<number>): number => percentile(values, 50)

export const max = (values: ArrayLike<number>): number => {
  let m = -Infinity
  for (let i = 0; i < values.length; i++) if (values[i]! > m) m = values[i]!
  return values.length === 0 ? NaN : m
}

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, millis)))

/** Formats a duration in milliseconds with a unit that keeps 3 significant digits. */
export const formatMillis = (ms: number): string => {
  if (!Number.isFinite(ms)) return "—"
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} µs`
  if (ms < 1000) return `${ms.toPrecision(3)} ms`
  return `${(ms / 1000).toPrecision(3)} s`
}

export const formatBytes = (bytes: number): string => {
  if (!Number.isFinite(bytes)) return "—"
  if (Math.abs(bytes) < 1024) return `${bytes.toFixed(0)} B`
  return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 2 : 1)} KB`
}

export const formatRatio = (value: number, base: number): string => {
  if (!Number.isFinite(value) || !Number.isFinite(base) || base === 0) return "—"
  const r = value / base
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : Math.abs(r) >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`
}

export const formatCount = (n: number): string => Number.isFinite(n) ? n.toLocaleString("en-US") : "—"
