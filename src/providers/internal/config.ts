import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as ClientAuth from "../../ClientAuth.js"

/**
 * How a provider's client sends its credentials: `basic` (`client_secret_basic`) or `post`
 * (`client_secret_post`).
 *
 * @internal
 */
export type ClientAuthMethod = "basic" | "post"

/**
 * The credential options every client-secret provider shares.
 *
 * @internal
 */
export interface ClientOptions {
  readonly clientId: string
  readonly clientSecret: ClientAuth.Secret
  readonly clientAuth?: ClientAuthMethod | undefined
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
}

/**
 * The client authentication for the options, over the provider's documented defaults.
 *
 * @internal
 */
export const clientAuth = (
  options: ClientOptions,
  defaults: { readonly method: ClientAuthMethod; readonly encoding: ClientAuth.BasicEncoding }
): ClientAuth.ClientAuth =>
  (options.clientAuth ?? defaults.method) === "post"
    ? ClientAuth.post(options.clientId, options.clientSecret)
    : ClientAuth.basic(options.clientId, options.clientSecret, { encoding: options.basicEncoding ?? defaults.encoding })

/**
 * `PREFIX_KEY`. The full name is built here rather than with `Config.nested`, whose separator is the
 * provider's path delimiter (`.` for `ConfigProvider.fromMap`): this way the variable is the same
 * with every provider, and a `ConfigError` names it exactly as the user must set it.
 *
 * @internal
 */
export const envName = (prefix: string, key: string): string => prefix === "" ? key : `${prefix}_${key}`

/**
 * An optional setting: absent is `undefined`, present but invalid still fails.
 *
 * @internal
 */
export const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.withDefault(config, undefined)

/**
 * `PREFIX_CLIENT_ID`, `PREFIX_CLIENT_SECRET` (redacted), and the optional `PREFIX_CLIENT_AUTH`
 * (`basic` or `post`) and `PREFIX_BASIC_ENCODING` (`form` or `plain`).
 *
 * @internal
 */
export const clientConfig = (prefix: string): Config.Config<ClientOptions> =>
  Config.all({
    clientId: Config.nonEmptyString(envName(prefix, "CLIENT_ID")),
    clientSecret: rotatingSecret(envName(prefix, "CLIENT_SECRET")),
    clientAuth: optional(Config.literal("basic", "post")(envName(prefix, "CLIENT_AUTH"))),
    basicEncoding: optional(Config.literal("form", "plain")(envName(prefix, "BASIC_ENCODING")))
  })

/**
 * A client secret from configuration: required now (a missing or empty one fails the layer, naming
 * the variable), and given to the source as the configuration itself, which the source reads again
 * (from the same `ConfigProvider`) after the server refuses the secret: one rotated in its file or
 * environment needs no restart.
 *
 * @internal
 */
export const rotatingSecret = (name: string): Config.Config<ClientAuth.Secret> => {
  const secret = Config.redacted(Config.nonEmptyString(name))
  return Config.map(secret, (): ClientAuth.Secret => secret)
}

/**
 * A list of scopes from one variable, separated by spaces or commas (`"a b"`, `"a,b"`). Any scope is
 * read (the source checks them when it is built); no scope at all, when `nonEmpty`, fails as invalid
 * data naming the variable.
 *
 * @internal
 */
export const scopeList = (
  name: string,
  options?: { readonly nonEmpty?: boolean | undefined }
): Config.Config<ReadonlyArray<string>> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const scopes = text.split(/[\s,]+/).filter((scope) => scope !== "")
      if (options?.nonEmpty === true && scopes.length === 0) {
        return Either.left(ConfigError.InvalidData([name], "at least one scope is required"))
      }
      return Either.right(scopes)
    })
  )
