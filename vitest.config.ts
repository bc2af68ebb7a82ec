import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // the package's own name means its sources here, as tsconfig.json's `paths` say; users get dist/
    alias: [
      { find: /^tokenwarden$/, replacement: source("./src/index.ts") },
      { find: /^tokenwarden\/testing$/, replacement: source("./src/testing/index.ts") },
      { find: /^tokenwarden\/node$/, replacement: source("./src/node/index.ts") }
    ]
  },
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
