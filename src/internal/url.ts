import * as Effect from "effect/Effect"
import { InvalidConfiguration } from "../TokenError.js"

const isLoopbackHost = (hostname: string): boolean =>
  hostname === "localhost" || hostname === "[::1]" || hostname === "::1" ||
  /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)

/**
 * Parses an endpoint URL and refuses anything but https, except on loopback hosts (tests, demos):
 * a secret sent over plain http to another host is a secret given away.
 *
 * @internal
 */
export const checkEndpoint = (url: string | URL, what = "token endpoint"): Effect.Effect<URL, InvalidConfiguration> =>
  Effect.suspend(() => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return Effect.fail(new InvalidConfiguration({ reason: `${what}: not a valid URL` }))
    }
    if (parsed.username !== "" || parsed.password !== "") {
      return Effect.fail(
        new InvalidConfiguration({ reason: `${what}: credentials in the URL are refused, use client authentication` })
      )
    }
    if (parsed.protocol === "https:") return Effect.succeed(parsed)
    if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return Effect.succeed(parsed)
    return Effect.fail(
      new InvalidConfiguration({
        reason: `${what} ${publicUrl(parsed)}: must use https (plain http is allowed only for loopback hosts)`
      })
    )
  })

/**
 * The URL as errors and logs may show it: no credentials, no query, no fragment.
 *
 * @internal
 */
export const publicUrl = (url: string | URL): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return "<invalid url>"
  }
}

/**
 * The text without its trailing slashes (a loop: `/\/+$/` takes quadratic time on many slashes).
 *
 * @internal
 */
export const trimTrailingSlashes = (text: string): string => {
  let end = text.length
  while (end > 0 && text.charCodeAt(end - 1) === 47) end--
  return text.slice(0, end)
}
