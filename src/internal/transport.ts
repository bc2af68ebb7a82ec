/**
 * The system error code behind a failed request (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`,
 * `UND_ERR_SOCKET`): it says why without carrying anything that was sent. Only the code is kept,
 * never the error object, whose text can print the request.
 *
 * @internal
 */
export const errorCode = (cause: unknown): string | undefined => {
  let current = cause
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const code = (current as { readonly code?: unknown }).code
    if (typeof code === "string" && /^[A-Z][A-Z0-9_]{2,40}$/.test(code)) return code
    current = (current as { readonly cause?: unknown }).cause
  }
  return undefined
}
