/**
 * A fake device authorization server (RFC 8628) for tests: a device authorization endpoint and a
 * token endpoint whose answers to device code polls follow a script (`authorization_pending`,
 * `slow_down`, `access_denied`, `expired_token`, approval, an HTTP status), with every poll recorded at
 * the Clock time it arrived, so polling intervals can be asserted under TestClock. Approved flows get
 * a refresh token, and refresh tokens rotate, so a device-code token source can run its whole life.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type * as Http from "node:http"
import { readBody, send, serve } from "./internal/loopbackServer.js"

/**
 * One answer to a device code poll: an RFC 8628 section 3.5 outcome, or an HTTP error status (503
 * `temporarily_unavailable` by default, to test backing off).
 *
 * @since 0.1.0
 * @category models
 */
export type PollAnswer = "pending" | "slow_down" | "denied" | "expired" | "approve" | {
  readonly status: number
  readonly retryAfterSeconds?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The public client's id (authentication `none`); default `"device-app"`. */
  readonly clientId?: string
  /** The `interval` of device authorization responses in seconds; `undefined` omits it (RFC default 5). Default 5. */
  readonly interval?: number | undefined
  /** The `expires_in` of device codes in seconds; default 600. */
  readonly expiresIn?: number
  /** Lifetime of access tokens in seconds; default 3600. */
  readonly lifetimeSeconds?: number
  /** Answers to polls, in order, for every flow; once used up every poll gets `authorization_pending`. */
  readonly script?: ReadonlyArray<PollAnswer>
  /** `verification_uri_complete` in responses; default true. */
  readonly verificationUriComplete?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Poll {
  /** Clock milliseconds when the poll arrived. */
  readonly at: number
  readonly deviceCode: string
  /** The form as received. */
  readonly form: Readonly<Record<string, string>>
  /** What it was answered: an OAuth error code, `"token"`, or `"status <n>"`. */
  readonly answer: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DeviceFake {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly deviceAuthorizationUrl: string
  readonly tokenUrl: string
  /** The page `verification_uri` names (nothing serves it: the user's side is the script). */
  readonly verificationUri: string
  /** Appends answers to the script. */
  readonly script: (...answers: ReadonlyArray<PollAnswer>) => Effect.Effect<void>
  /** Device code polls, in arrival order. */
  readonly polls: Effect.Effect<ReadonlyArray<Poll>>
  /** Device authorization requests received. */
  readonly authorizations: Effect.Effect<ReadonlyArray<{ readonly at: number; readonly form: Record<string, string> }>>
  /** Refresh token requests received, with the refresh token each presented. */
  readonly refreshes: Effect.Effect<ReadonlyArray<{ readonly refreshToken: string; readonly answer: string }>>
  /** User codes issued, in order. */
  readonly userCodes: Effect.Effect<ReadonlyArray<string>>
  /** Refuses every refresh token issued so far, as when the user revokes the device. */
  readonly revokeAll: Effect.Effect<void>
}

interface Reply {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Reply => ({
  status,
  headers: { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers },
  body: JSON.stringify(body)
})

const oauthError = (error: string, status = 400, headers?: Record<string, string>) =>
  json(status, { error, error_description: `fake: ${error}` }, headers)

const random = () => Crypto.randomBytes(24).toString("base64url")
// RFC 8628 section 6.1: a base-20 alphabet without vowels, shown as XXXX-XXXX
const userCode = () => {
  const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
  const chars = Array.from(Crypto.randomBytes(8), (b) => alphabet[b % alphabet.length])
  return `${chars.slice(0, 4).join("")}-${chars.slice(4).join("")}`
}

/**
 * Starts the fake on 127.0.0.1 with a random port; its clock is the `Clock` of the fiber running
 * `make` (a TestClock in tests). It stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<DeviceFake, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const clientId = options.clientId ?? "device-app"
    const interval = "interval" in options ? options.interval : 5
    const expiresIn = options.expiresIn ?? 600
    const lifetime = options.lifetimeSeconds ?? 3600
    const script: Array<PollAnswer> = [...(options.script ?? [])]
    const flows = new Map<string, { expiresAt: number; done: boolean }>()
    const refreshTokens = new Map<string, { revoked: boolean }>()
    const polls: Array<Poll> = []
    const authorizations: Array<{ at: number; form: Record<string, string> }> = []
    const refreshes: Array<{ refreshToken: string; answer: string }> = []
    const userCodes: Array<string> = []
    let url = ""

    const issue = (): Reply => {
      const refreshToken = random()
      refreshTokens.set(refreshToken, { revoked: false })
      return json(200, {
        access_token: random(),
        token_type: "Bearer",
        expires_in: lifetime,
        refresh_token: refreshToken
      })
    }

    const deviceAuthorization = (form: URLSearchParams): Reply => {
      authorizations.push({ at: now(), form: Object.fromEntries(form) })
      if (form.get("client_id") !== clientId) return oauthError("invalid_client", 401)
      const deviceCode = random()
      const code = userCode()
      userCodes.push(code)
      flows.set(deviceCode, { expiresAt: now() + expiresIn * 1000, done: false })
      const verificationUri = `${url}/device`
      return json(200, {
        device_code: deviceCode,
        user_code: code,
        verification_uri: verificationUri,
        ...(options.verificationUriComplete === false
          ? {}
          : { verification_uri_complete: `${verificationUri}?user_code=${code}` }),
        expires_in: expiresIn,
        ...(interval === undefined ? {} : { interval })
      })
    }

    const pollAnswer = (deviceCode: string): [Reply, string] => {
      const flow = flows.get(deviceCode)
      if (flow === undefined || flow.done) return [oauthError("invalid_grant"), "invalid_grant"]
      if (now() >= flow.expiresAt) return [oauthError("expired_token"), "expired_token"]
      const next = script.shift() ?? "pending"
      if (typeof next === "object") {
        const headers: Record<string, string> = next.retryAfterSeconds === undefined
          ? {}
          : { "Retry-After": String(next.retryAfterSeconds) }
        return [oauthError("temporarily_unavailable", next.status, headers), `status ${next.status}`]
      }
      switch (next) {
        case "pending":
          return [oauthError("authorization_pending"), "authorization_pending"]
        case "slow_down":
          return [oauthError("slow_down"), "slow_down"]
        case "denied":
          flow.done = true
          return [oauthError("access_denied"), "access_denied"]
        case "expired":
          flow.done = true
          return [oauthError("expired_token"), "expired_token"]
        case "approve":
          flow.done = true
          return [issue(), "token"]
      }
    }

    const token = (form: URLSearchParams): Reply => {
      if (form.get("client_id") !== clientId) return oauthError("invalid_client", 401)
      switch (form.get("grant_type")) {
        case "urn:ietf:params:oauth:grant-type:device_code": {
          const deviceCode = form.get("device_code") ?? ""
          const [reply, answer] = pollAnswer(deviceCode)
          polls.push({ at: now(), deviceCode, form: Object.fromEntries(form), answer })
          return reply
        }
        case "refresh_token": {
          const presented = form.get("refresh_token") ?? ""
          const entry = refreshTokens.get(presented)
          if (entry === undefined || entry.revoked) {
            refreshes.push({ refreshToken: presented, answer: "invalid_grant" })
            return oauthError("invalid_grant")
          }
          entry.revoked = true // rotation: each refresh token is good once
          refreshes.push({ refreshToken: presented, answer: "token" })
          return issue()
        }
        default:
          return oauthError("unsupported_grant_type")
      }
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const pathname = new URL(req.url ?? "/", "http://127.0.0.1").pathname
        const form = new URLSearchParams(yield* readBody(req))
        const reply = req.method !== "POST"
          ? oauthError("invalid_request", 405)
          : pathname === "/device_authorization"
          ? deviceAuthorization(form)
          : pathname === "/token"
          ? token(form)
          : oauthError("invalid_request", 404)
        send(res, reply)
      })

    url = yield* serve(handle)

    return {
      url,
      deviceAuthorizationUrl: `${url}/device_authorization`,
      tokenUrl: `${url}/token`,
      verificationUri: `${url}/device`,
      script: (...answers) => Effect.sync(() => void script.push(...answers)),
      polls: Effect.sync(() => polls.slice()),
      authorizations: Effect.sync(() => authorizations.slice()),
      refreshes: Effect.sync(() => refreshes.slice()),
      userCodes: Effect.sync(() => userCodes.slice()),
      revokeAll: Effect.sync(() => refreshTokens.forEach((entry) => (entry.revoked = true)))
    } satisfies DeviceFake
  })
