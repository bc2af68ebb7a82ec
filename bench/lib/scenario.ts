/** The scenarios of a run, in the order the report shows them. */
export const scenarioNames = ["hot", "herd", "expiry", "cost", "memory", "spread", "soak"] as const
export type Scenario = (typeof scenarioNames)[number]

/**
 * Scenarios whose figures are times (latencies, CPU per call, requests per second): their jobs run
 * with no other job at work on the machine. Memory (heap bytes) and the soak (wrong tokens, judged
 * with a margin far above any latency) count what load does not change.
 */
export const timingScenarios: ReadonlyArray<Scenario> = ["hot", "herd", "expiry", "cost", "spread"]
