import { Cause, Inspectable } from "effect"
import * as Util from "node:util"
import type { TokenError } from "tokenwarden"
import { EC_JWK, EC_PEM, OTHER_JWK, RSA_PEM } from "./fixtures/keys.js"

/**
 * The test secrets: every test that needs a client secret, password or token worth checking for
 * takes it from here, and the secret sweep (`test/setup.ts`) fails any test whose logs, failures,
 * spans or child-process output show one of them, in any of the forms `forms` lists.
 *
 * Short literals some tests still use (`"secret"`, `"s"`, `"pass"`) cannot be swept: they are words
 * the library's own messages use. They guard nothing; a test about leaks takes its secret from here.
 */

// 40 characters of a PEM's third base64 line: key material (the first lines are an ASN.1 header every
// key of the kind shares), enough to recognise it, in one line
function pemBody(pem: string): string {
  return pem.split("\n")[3]!.slice(0, 40)
}

/** A client secret (client_secret_basic or client_secret_post). */
export const CLIENT_SECRET = "cs_live_9f8e7d6c5b4a3210Qx"
/** A client secret long enough for HS256 (client_secret_jwt). */
export const JWT_SECRET = "csjwt_5b1d0e8c7a964f2e9d3c1b0a8f7e6d5c4b3a2918"
/** A wrong client secret, for InvalidClient. */
export const WRONG_SECRET = "cs_live_wrong_71c0ffee42"
/** A resource owner's password, with characters form encoding changes. */
export const PASSWORD = "Tr0ub4dor&3-horse"
/** A live-looking JWT access token. */
export const ACCESS = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJlLWxpdmU"
/** An opaque access token (not a JWT, nothing a pattern would call a credential). */
export const OPAQUE_ACCESS = "at-quiet-Fk2Lm9"
/** A refresh token. */
export const REFRESH = "rt_8xLOxBtZp8WqK2nR5vY7"
/** An unsigned id token. */
export const ID_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsIm5vbmNlIjoibjEifQ."
/** A static API token (Baack's root client, an authorized client's fixed token). */
export const API_TOKEN = "api-root-T0k3n-4f1c9e"

/** A store's encryption key (AES-256, base64 of 32 bytes). */
export const STORE_KEY = "nkf6h3dMD0Q+YKulbyCEqe1v1JYBUe6FQoBkeGDkmqo="

/** Secrets the provider tests copy from the providers' documents. */
export const DOCUMENT_SECRETS: ReadonlyArray<string> = [
  "937it3ow87i4ery69876wqire",
  "mypassword123",
  "my password+123",
  "b@ru+wa/s3cret",
  "bts-secret",
  "wrong-secret-value",
  "secret-value-456",
  "bearer-value-123",
  "key-value-789",
  "root-token-0123456789",
  "root-token-for-the-log-test"
]

/** The private parts of the test signing keys (`test/fixtures/keys.ts`): JWK `d` values, PEM bodies. */
export const KEY_SECRETS: ReadonlyArray<string> = [
  EC_JWK.d,
  OTHER_JWK.d,
  pemBody(EC_PEM),
  pemBody(RSA_PEM)
]

/** Every secret the sweep looks for. */
export const ALL: ReadonlyArray<string> = [
  CLIENT_SECRET,
  JWT_SECRET,
  WRONG_SECRET,
  PASSWORD,
  ACCESS,
  OPAQUE_ACCESS,
  REFRESH,
  ID_TOKEN,
  API_TOKEN,
  STORE_KEY,
  ...DOCUMENT_SECRETS,
  ...KEY_SECRETS
]

const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)

/** The forms a secret is looked for in: as is, URL-encoded, form-encoded, and base64 inside a Basic header. */
export const forms = (secret: string): ReadonlyArray<string> => [
  secret,
  encodeURIComponent(secret),
  form(secret),
  Buffer.from(`client:${secret}`, "utf8").toString("base64"),
  Buffer.from(`client:${form(secret)}`, "utf8").toString("base64")
]

/** The secrets of `secrets` that `text` holds in any of their `forms`, compared without case. */
export const found = (text: string, secrets: ReadonlyArray<string> = ALL): ReadonlyArray<string> => {
  const lowered = text.toLowerCase()
  return secrets.filter((secret) => forms(secret).some((f) => lowered.includes(f.toLowerCase())))
}

/** Every way a program prints an error. */
export const renderings = (error: TokenError.TokenError): ReadonlyArray<string> => [
  String(error),
  JSON.stringify(error),
  error.message,
  Cause.pretty(Cause.fail(error)),
  Inspectable.format(error),
  Util.inspect(error, { depth: 10 }),
  error.stack ?? ""
]
