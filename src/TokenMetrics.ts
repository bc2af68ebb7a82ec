/**
 * The metrics every token source reports, as Effect `Metric`s tagged with `provider` (and `outcome`).
 * Effect's metric registry is process-global: read them with `Metric.value` or export them with
 * an OpenTelemetry metrics layer.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * Token requests by outcome: `success`, `transient` (will be retried) or `permanent`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshTotal: Metric.Metric.Counter<number> = Metric.counter("tokenwarden_refresh_total", {
  description: "token requests by outcome",
  incremental: true
})

/**
 * Token request latency in milliseconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const refreshLatency = Metric.histogram(
  "tokenwarden_refresh_latency_ms",
  MetricBoundaries.exponential({ start: 5, factor: 2, count: 14 }),
  "token request latency in milliseconds"
)

/**
 * Seconds until the current token expires, set each time a token is received.
 *
 * @since 0.1.0
 * @category metrics
 */
export const secondsUntilExpiry = Metric.gauge("tokenwarden_token_seconds_until_expiry", {
  description: "seconds until the current token expires, at the time it was received"
})
