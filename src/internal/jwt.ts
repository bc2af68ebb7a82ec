/**
 * Reads the `exp` claim of a JWT without verifying it, as a lifetime hint only (RFC 7519 section
 * 4.1.4: seconds since the epoch). Anything that is not a JWT with a numeric `exp` gives undefined.
 *
 * @internal
 */
export const peekExpiry = (token: string): number | undefined => {
  const parts = token.split(".")
  if (parts.length !== 3 || parts[1] === undefined || parts[1].length === 0) return undefined
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"))
    if (typeof payload !== "object" || payload === null || !("exp" in payload)) return undefined
    const exp = payload.exp
    return typeof exp === "number" && Number.isFinite(exp) && exp > 0 ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}
