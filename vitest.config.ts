import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // the secret sweep: every test's logs, failures, spans and child output are checked for test secrets
    setupFiles: ["test/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // tests against real processes (Redis, worker fleets) bound their own waits; keep the pool small on 2 cores
    pool: "forks",
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" }
  }
})
