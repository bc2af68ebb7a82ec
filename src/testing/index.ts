/**
 * Test support: in-process fake servers that speak real HTTP on 127.0.0.1, so programs using
 * tokenwarden can be tested offline.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 */
export * as AuthServer from "./AuthServer.js"

/**
 * @since 0.1.0
 */
export * as BaackFake from "./BaackFake.js"

/**
 * @since 0.1.0
 */
export * as BarapiCloudFake from "./BarapiCloudFake.js"

/**
 * @since 0.1.0
 */
export * as BarracudaFake from "./BarracudaFake.js"

/**
 * @since 0.1.0
 */
export * as BaruwaFake from "./BaruwaFake.js"

/**
 * @since 0.1.0
 */
export * as BuddyFake from "./BuddyFake.js"

/**
 * @since 0.1.0
 */
export * as DeviceFake from "./DeviceFake.js"
