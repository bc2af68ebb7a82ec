/**
 * Worker threads that share one token: the main thread owns the token source and refreshes it in the
 * background (`share: true`); four worker threads get a mirror of it from the handle in `workerData`
 * (`mirror(handle)`) and call an API, never sending a token request of their own. An embedded
 * authorization server on 127.0.0.1 issues 2-second tokens; at the end the owner prints how many token
 * requests the server saw for all of them.
 *
 *   npx tsx examples/worker-pool.ts
 */
import { isMainThread, Worker, workerData } from "node:worker_threads"
import { log, mirror, start } from "tokenwarden/node"
import { AuthServer } from "tokenwarden/testing"

const WORKERS = 4
const RUN_MS = 4_000

interface Shared {
  readonly handle: NonNullable<Awaited<ReturnType<typeof start>>["handle"]>
  readonly resourceUrl: string
  readonly worker: number
}

const owner = async () => {
  const server = await AuthServer.start({ lifetimeSeconds: 2 })
  const tokens = await start({
    url: server.tokenUrl,
    clientId: "client",
    clientSecret: "secret",
    scopes: ["api"],
    share: true
  })
  const handle = tokens.handle!
  const workers = Array.from({ length: WORKERS }, (_, worker) =>
    new Worker(new URL(import.meta.url), {
      workerData: { handle, resourceUrl: server.resourceUrl, worker } satisfies Shared
    }))
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("exit", resolve))))
  log("info", "workers done", {
    workers: WORKERS,
    token_requests: await server.count(),
    seconds: RUN_MS / 1000
  })
  await tokens.close()
  await server.close()
}

const worker = async (shared: Shared) => {
  const tokens = await mirror(shared.handle, { logLevel: "warning" })
  let calls = 0
  let rejected = 0
  const until = Date.now() + RUN_MS
  while (Date.now() < until) {
    const response = await fetch(shared.resourceUrl, { headers: { authorization: await tokens.authorization() } })
    calls++
    if (response.status === 401) {
      rejected++
      // the API refused it: the owner gets one new token, however many workers say so
      await tokens.invalidate()
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  log("info", "worker finished", { worker: shared.worker, calls, rejected })
  await tokens.close()
}

await (isMainThread ? owner() : worker(workerData as Shared))
