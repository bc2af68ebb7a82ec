/**
 * How a client proves who it is to the token endpoint (RFC 6749 section 2.3).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { InvalidConfiguration } from "./TokenError.js"

/**
 * How id and secret are encoded before base64 in a Basic header: `form` is RFC 6749 section 2.3.1
 * (each form-url-encoded first); `plain` is `base64(id:secret)`, as Buddy's and Barracuda's documents
 * show. The two differ only when a secret holds reserved characters.
 *
 * @since 0.1.0
 * @category models
 */
export type BasicEncoding = "form" | "plain"

/**
 * A client authentication method.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientAuth = Data.TaggedEnum<{
  /** `client_secret_basic`: id and secret in an HTTP Basic header. */
  ClientSecretBasic: {
    readonly clientId: string
    readonly clientSecret: Redacted.Redacted<string>
    readonly encoding: BasicEncoding
  }
  /** `client_secret_post`: id and secret in the form body. */
  ClientSecretPost: { readonly clientId: string; readonly clientSecret: Redacted.Redacted<string> }
  /** `none`: a public client sends only its id. */
  None: { readonly clientId: string }
}>

const ClientAuth = Data.taggedEnum<ClientAuth>()

/**
 * `client_secret_basic`, form-encoded by default (RFC 6749 section 2.3.1).
 *
 * @since 0.1.0
 * @category constructors
 */
export const basic = (
  clientId: string,
  clientSecret: Redacted.Redacted<string>,
  options?: { readonly encoding?: BasicEncoding | undefined }
): ClientAuth => ClientAuth.ClientSecretBasic({ clientId, clientSecret, encoding: options?.encoding ?? "form" })

/**
 * `client_secret_post`: id and secret in the form body.
 *
 * @since 0.1.0
 * @category constructors
 */
export const post = (clientId: string, clientSecret: Redacted.Redacted<string>): ClientAuth =>
  ClientAuth.ClientSecretPost({ clientId, clientSecret })

/**
 * `none`: a public client (PKCE, device flow) that has no secret.
 *
 * @since 0.1.0
 * @category constructors
 */
export const none = (clientId: string): ClientAuth => ClientAuth.None({ clientId })

/**
 * The client id, whatever the method.
 *
 * @since 0.1.0
 * @category getters
 */
export const clientId = (self: ClientAuth): string => self.clientId

/**
 * Refuses a client authentication that cannot be written on the wire, before any request is sent.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (self: ClientAuth): Effect.Effect<ClientAuth, InvalidConfiguration> => {
  if (self.clientId === "") return Effect.fail(new InvalidConfiguration({ reason: "client id is empty" }))
  // RFC 7617 section 2: a user-id containing a colon cannot be told apart from the password
  if (self._tag === "ClientSecretBasic" && self.encoding === "plain" && self.clientId.includes(":")) {
    return Effect.fail(
      new InvalidConfiguration({ reason: "client id contains ':' and cannot be sent with plain Basic encoding" })
    )
  }
  return Effect.succeed(self)
}

const formEncode = (s: string): string => new URLSearchParams({ s }).toString().slice(2)

/**
 * Writes the credentials on a token request: the headers to add and the form fields to append.
 * This and the request body are the only places the client secret is unwrapped.
 *
 * @internal
 */
export const apply = (self: ClientAuth): {
  readonly headers: Readonly<Record<string, string>>
  readonly params: ReadonlyArray<readonly [string, string]>
} => {
  switch (self._tag) {
    case "ClientSecretBasic": {
      const secret = Redacted.value(self.clientSecret)
      const pair = self.encoding === "form"
        ? `${formEncode(self.clientId)}:${formEncode(secret)}`
        : `${self.clientId}:${secret}`
      return { headers: { authorization: `Basic ${Buffer.from(pair, "utf8").toString("base64")}` }, params: [] }
    }
    case "ClientSecretPost":
      return {
        headers: {},
        params: [["client_id", self.clientId], ["client_secret", Redacted.value(self.clientSecret)]]
      }
    case "None":
      return { headers: {}, params: [["client_id", self.clientId]] }
  }
}
