/**
 * Encryption at rest shared by the file and Redis stores: AES-256-GCM, a fresh 12-byte IV per write,
 * and associated data naming where the entry lives, so a ciphertext copied to another place fails to
 * open instead of handing out another credential's token.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as TokenStore from "../TokenStore.js"

/** @internal */
export const encryptedFormat = "tokenwarden/aes-256-gcm/v1"

const IV_BYTES = 12
const TAG_BYTES = 16
const CLEAR_FORMATS: ReadonlySet<unknown> = new Set([...TokenStore.readableFormats, "tokenwarden/v1"])

/**
 * Reads an AES-256 key given as 64 hex digits or base64 (standard or URL-safe). The message of a
 * refused key says what is expected, never what was given.
 *
 * @internal
 */
export const parseEncryptionKey = (
  text: Redacted.Redacted<string>
): Either.Either<Redacted.Redacted<Buffer>, string> => {
  const trimmed = Redacted.value(text).trim()
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, "hex")
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
    ? Buffer.from(trimmed, "base64")
    : undefined
  return bytes !== undefined && bytes.length === 32
    ? Either.right(Redacted.make(bytes))
    : Either.left("the encryption key must be 32 bytes, given as 64 hex digits or 44 base64 characters")
}

/**
 * An encryption key from `Config`, redacted and checked: a key of the wrong length fails with a
 * `ConfigError` naming the variable.
 *
 * @internal
 */
export const keyConfig = (name: string): Config.Config<Redacted.Redacted<string>> =>
  Config.redacted(name).pipe(
    Config.mapOrFail((key) =>
      Either.match(parseEncryptionKey(key), {
        onLeft: (reason) => Either.left(ConfigError.InvalidData([name], reason)),
        onRight: () => Either.right(key)
      })
    )
  )

const aad = (place: string) => Buffer.from(`${encryptedFormat}\n${place}`, "utf8")

/**
 * Seals `plaintext` for `place` (a file's key, a Redis key) into an envelope
 * `{ format, …clear, iv, tag, data }`; `clear` holds what must stay readable without the key (the
 * version a Redis script compares), and the reader checks it against the sealed entry.
 *
 * @internal
 */
export const seal = (
  secret: Redacted.Redacted<Buffer>,
  place: string,
  plaintext: string,
  clear: Readonly<Record<string, number>> = {}
): string => {
  const iv = Crypto.randomBytes(IV_BYTES)
  const cipher = Crypto.createCipheriv("aes-256-gcm", Redacted.value(secret), iv)
  cipher.setAAD(aad(place))
  const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  return JSON.stringify({
    format: encryptedFormat,
    ...clear,
    iv: iv.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
    data: data.toString("base64")
  })
}

const base64Field = (value: unknown): Buffer | undefined =>
  typeof value === "string" && /^[A-Za-z0-9+/]*={0,2}$/.test(value) ? Buffer.from(value, "base64") : undefined

/**
 * What a stored text holds: the entry text in clear, or an envelope opened with the key. With a key,
 * an entry in clear is refused (a planted entry needs no key); without one, an envelope is.
 * `envelope` is the parsed envelope, for its clear fields.
 *
 * @internal
 */
export const open = (
  store: string,
  secret: Redacted.Redacted<Buffer> | undefined,
  place: string,
  text: string
): Effect.Effect<
  { readonly plain: string; readonly envelope?: Readonly<Record<string, unknown>> },
  TokenStore.StoreError
> => {
  const fail = (reason: TokenStore.StoreError["reason"], detail: string) =>
    Effect.fail(new TokenStore.StoreError({ store, reason, detail }))
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return fail("Corrupted", "the stored entry is not JSON (truncated or foreign)")
  }
  const envelope = typeof parsed === "object" && parsed !== null ? parsed as Record<string, unknown> : {}
  if (CLEAR_FORMATS.has(envelope.format)) {
    return secret === undefined
      ? Effect.succeed({ plain: text })
      : fail("Decryption", "the entry is stored in clear, but an encryption key is configured")
  }
  if (envelope.format !== encryptedFormat) return fail("Corrupted", "the stored entry is not a tokenwarden token")
  if (secret === undefined) return fail("Decryption", "the entry is encrypted, but no encryption key is configured")
  const [iv, tag, data] = [base64Field(envelope.iv), base64Field(envelope.tag), base64Field(envelope.data)]
  if (iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || data === undefined) {
    return fail("Corrupted", "the encrypted envelope is malformed")
  }
  return Effect.try({
    try: () => {
      const decipher = Crypto.createDecipheriv("aes-256-gcm", Redacted.value(secret), iv)
      decipher.setAAD(aad(place))
      decipher.setAuthTag(tag)
      return { plain: Buffer.concat([decipher.update(data), decipher.final()]).toString("utf8"), envelope }
    },
    // GCM authentication failed: another key, or an entry altered or moved from another place
    catch: () =>
      new TokenStore.StoreError({
        store,
        reason: "Decryption",
        detail: "the entry does not decrypt with the configured key"
      })
  })
}
