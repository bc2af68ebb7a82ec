/**
 * @since 0.1.0
 */
export * as AccessToken from "./AccessToken.js"

/**
 * Signed JWT assertions (RFC 7523): the keys of `private_key_jwt`, `client_secret_jwt` and the JWT
 * bearer grant.
 *
 * @since 0.2.0
 */
export * as Assertion from "./Assertion.js"

/**
 * @since 0.1.0
 */
export * as AuthorizationCode from "./AuthorizationCode.js"

/**
 * @since 0.1.0
 */
export * as AuthorizedClient from "./AuthorizedClient.js"

/**
 * @since 0.1.0
 */
export * as Baack from "./providers/Baack.js"

/**
 * @since 0.1.0
 */
export * as BarapiCloud from "./providers/BarapiCloud.js"

/**
 * @since 0.1.0
 */
export * as Barracuda from "./providers/Barracuda.js"

/**
 * @since 0.1.0
 */
export * as Baruwa from "./providers/Baruwa.js"

/**
 * @since 0.1.0
 */
export * as Buddy from "./providers/Buddy.js"

/**
 * @since 0.1.0
 */
export * as ClientAuth from "./ClientAuth.js"

/**
 * @since 0.1.0
 */
export * as DeviceFlow from "./DeviceFlow.js"

/**
 * @since 0.1.0
 */
export * as Discovery from "./Discovery.js"

/**
 * @since 0.1.0
 */
export * as FileTokenStore from "./FileTokenStore.js"

/**
 * @since 0.1.0
 */
export * as Grant from "./Grant.js"

/**
 * @since 0.1.0
 */
export * as LineLogger from "./LineLogger.js"

/**
 * @since 0.1.0
 */
export * as RedisTokenStore from "./RedisTokenStore.js"

/**
 * @since 0.1.0
 */
export * as RefreshPolicy from "./RefreshPolicy.js"

/**
 * @since 0.1.0
 */
export * as Revocation from "./Revocation.js"

/**
 * @since 0.1.0
 */
export * as TokenEndpoint from "./TokenEndpoint.js"

/**
 * @since 0.1.0
 */
export * as TokenError from "./TokenError.js"

/**
 * Thread sharing: an owner's token source mirrored in worker threads.
 *
 * @since 0.2.0
 */
export * as TokenMirror from "./TokenMirror.js"

/**
 * Token exchange (RFC 8693) following another token source.
 *
 * @since 0.2.0
 */
export * as TokenExchange from "./TokenExchange.js"

/**
 * @since 0.1.0
 */
export * as TokenClient from "./TokenClient.js"

/**
 * @since 0.1.0
 */
export * as TokenMetrics from "./TokenMetrics.js"

/**
 * @since 0.1.0
 */
export * as TokenPool from "./TokenPool.js"

/**
 * @since 0.1.0
 */
export * as TokenResponse from "./TokenResponse.js"

/**
 * @since 0.1.0
 */
export * as TokenSource from "./TokenSource.js"

/**
 * @since 0.1.0
 */
export * as TokenState from "./TokenState.js"

/**
 * @since 0.1.0
 */
export * as TokenStore from "./TokenStore.js"
